"""Who is asking, and whether a form came from the page that was served to them.

An annotator logs in with the personal link ``/login?token=T``; the token then travels in a cookie
that scripts cannot read (HttpOnly) and that the browser sends only on requests made from this
site (SameSite=Strict). The server never keeps a token: the store compares its hash.

Every form carries a CSRF token, an HMAC of the session token under the project's secret
(the "HMAC-based token" pattern of the OWASP CSRF cheat sheet): a page on another site can make the
browser post a form, but cannot read ours to copy the token, and without the secret cannot forge one.
Every task form also carries a signed ticket binding the item, the moment it was shown and how it
was chosen to the annotator it was shown to, so a posted form cannot claim an item that was never
offered, move ``shown_at`` (the dashboard's time per label) or pass a chosen item off as a random
one (the held-out set of the learning curve).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

COOKIE = "rewardlab_collect"
COOKIE_SETTINGS = {"httponly": True, "samesite": "strict", "path": "/", "max_age": 30 * 24 * 3600}


def _sign(secret: bytes, purpose: str, message: str) -> str:
    return hmac.new(secret, f"{purpose}\n{message}".encode(), hashlib.sha256).hexdigest()


def csrf_token(secret: bytes, session_token: str) -> str:
    """The token every form of this session carries: HMAC-SHA256(secret, "csrf" ‖ session token)."""
    return _sign(secret, "csrf", session_token)


def csrf_valid(secret: bytes, session_token: str, given: str | None) -> bool:
    """Whether ``given`` is this session's CSRF token; compared in constant time."""
    return bool(given) and hmac.compare_digest(csrf_token(secret, session_token), str(given))


@dataclass(frozen=True)
class Ticket:
    """What the server decided when it showed a task: signed, so the form cannot change it."""

    annotator_id: int
    item_id: int
    submission_id: str
    shown_at: float
    selection: str

    def message(self) -> str:
        return f"{self.annotator_id}:{self.item_id}:{self.submission_id}:{self.shown_at!r}:{self.selection}"

    def sign(self, secret: bytes) -> str:
        return _sign(secret, "ticket", self.message())

    def valid(self, secret: bytes, signature: str | None) -> bool:
        return bool(signature) and hmac.compare_digest(self.sign(secret), str(signature))
