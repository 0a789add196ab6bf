"""Whether a reply refuses or deflects: one phrase list for every rule that asks (a phrase match, not a classifier).

The synthesis judge's refusal tool (``curation.synthesis_tools``) and the refusal aspect of
``rewardlab data groups`` (``data.user_groups``) both read it, so the two mean the same thing.
"""

from __future__ import annotations

import re

REFUSALS = (
    r"\bi (?:can ?not|can't|won'?t|will not)\b",
    r"\bi(?:'?m| am) (?:unable|not able|not going) to\b",
    r"\bi(?:'?m| am) sorry\b",
    r"\bi apologi[sz]e\b",
    r"\bas an ai\b",
    r"\bi (?:do not|don't) (?:know|have|feel comfortable|think i should)\b",
)
REFUSAL = re.compile("|".join(REFUSALS), re.IGNORECASE)


def refuses(reply: str, within: int | None = None) -> bool:
    """Whether ``reply`` (its first ``within`` characters, when given) holds one of :data:`REFUSALS`."""
    return REFUSAL.search(reply if within is None else reply[:within]) is not None
