"""An optional bearer token for a scoring server reachable from other machines.

The server binds to loopback by default. Bound wider, anyone who reaches the port can spend its
compute and read its model's rewards; ``--token-file`` makes every request but ``/health`` (left
open for load balancers and monitors) carry ``Authorization: Bearer <token>``. The token is
compared in constant time, so response timing does not reveal how much of a guess was right.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path
from typing import Any

from rewardlab.serve.asgi import RequestError, send_error


def read_token(path: str | Path) -> str:
    """The token on the file's first line; a missing, empty or multi-word file is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such token file (--token-file)")
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ValueError(f"{path}: the token file is empty; put the token on its first line")
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError(f"{path}: the token must be one word of printable ASCII (it travels in an HTTP header)")
    return token


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def exposure_warning(host: str, has_token: bool) -> str | None:
    """What to tell the user who serves beyond this machine without a token; None when safe."""
    if has_token or is_loopback(host):
        return None
    return (
        f"serving on {host} without a token: anyone who reaches this port can use the server; "
        "give --token-file PATH (clients then send 'Authorization: Bearer <token>') or bind to 127.0.0.1"
    )


class BearerToken:
    """ASGI middleware: 401 for a request without ``Authorization: Bearer <token>``, except ``open_paths``."""

    def __init__(self, app: Any, token: str, open_paths: tuple[str, ...] = ("/health",)) -> None:
        self.app = app
        self.token = token.encode("ascii")
        self.open_paths = open_paths

    def allowed(self, scope: dict) -> bool:
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.strip().partition(b" ")
        return hmac.compare_digest(token.strip(), self.token) and scheme.lower() == b"bearer"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths or self.allowed(scope):
            await self.app(scope, receive, send)
            return
        message = "is missing or wrong: send the header 'Authorization: Bearer <token>' (the server's --token-file)"
        await send_error(RequestError("authorization", message, 401, {"www-authenticate": "Bearer"}), send)
