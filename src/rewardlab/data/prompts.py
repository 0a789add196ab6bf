"""Recover the prompt when a dataset stores only the two full conversations.

Many preference sets (Anthropic HH-RLHF, TRL's conversational format) keep no separate prompt: the
chosen and rejected sides repeat the whole dialogue and differ only in the last reply. A reward
model needs the prompt and the two replies apart, so these pure functions cut them apart again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable

from rewardlab.data.records import Message, Prompt

ASSISTANT_MARKER = "\n\nAssistant:"
"""Where an assistant turn starts in an HH-style transcript."""

ROLES = ("user", "assistant", "system")

_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")
_LAST_SPACE = re.compile(r"\s(?=\S*\Z)")
_ROLE_OF_SPEAKER = {"Human": "user", "Assistant": "assistant"}


class SplitError(ValueError):
    """Two conversations do not end in one assistant reply each; ``side`` says which one is at fault.

    ``side`` is ``"chosen"`` or ``"rejected"`` so a caller can name the user's own field.
    """

    def __init__(self, side: str, reason: str) -> None:
        self.side = side
        self.reason = reason
        super().__init__(f"{side}: {reason}")


def split_shared_prefix(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two transcripts into (prompt, chosen reply, rejected reply) at their shared start.

    The shared start is cut back to the end of its last ``"\\n\\nAssistant:"`` marker, so the
    prompt ends where the compared replies begin even when they open with the same words; without
    a marker it is cut back to a whitespace boundary so no word is split. ``prompt + reply``
    gives back each original exactly.
    """
    shorter = min(len(chosen), len(rejected))
    common = chosen[: next((i for i in range(shorter) if chosen[i] != rejected[i]), shorter)]
    marker = common.rfind(ASSISTANT_MARKER)
    if marker >= 0:
        cut = marker + len(ASSISTANT_MARKER)
    else:
        last_space = _LAST_SPACE.search(common)
        cut = last_space.end() if last_space else 0
    return common[:cut], chosen[cut:], rejected[cut:]


def split_shared_messages(
    chosen: list[Message], rejected: list[Message]
) -> tuple[tuple[Message, ...], Message, Message]:
    """Split two full conversations into (shared prompt messages, chosen reply, rejected reply).

    The prompt is the longest run of identical leading messages; what is left on each side must be
    exactly one assistant message, otherwise the pair does not compare two replies to one prompt
    and a ``SplitError`` says why.
    """
    for side, messages in (("chosen", chosen), ("rejected", rejected)):
        if not messages:
            raise SplitError(side, "is an empty conversation (expected at least an assistant reply)")
    shared = 0
    # Stop one short of the shorter side so identical conversations (ties) keep their last reply.
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    for side, messages in (("chosen", chosen), ("rejected", rejected)):
        rest = messages[shared:]
        if len(rest) != 1:
            raise SplitError(
                side,
                f"has {len(rest)} messages after the {shared} it shares with the other side "
                "(expected exactly one assistant reply)",
            )
        if rest[0].get("role") != "assistant":
            raise SplitError(side, f'ends with a "{rest[0].get("role")}" message (expected an assistant reply)')
    return tuple(chosen[:shared]), chosen[shared], rejected[shared]


def transcript_to_messages(text: str) -> tuple[Message, ...]:
    """Parse an HH-style ``\\n\\nHuman: ...\\n\\nAssistant: ...`` transcript into chat messages.

    This lets a chat template be applied to HH data. Contents are stripped of surrounding
    whitespace; a final empty assistant turn (the ``"Assistant:"`` cue that ends a prompt) is
    dropped so the template can add its own generation cue. Text before the first marker, or text
    without any marker, becomes a user message.
    """
    messages: list[Message] = []
    turns = _TURN.split(text)
    # re.split with one group gives [preamble, speaker, content, speaker, content, ...].
    preamble = turns[0].strip()
    if preamble or len(turns) == 1:
        messages.append({"role": "user", "content": preamble})
    for speaker, content in zip(turns[1::2], turns[2::2], strict=True):
        messages.append({"role": _ROLE_OF_SPEAKER[speaker], "content": content.strip()})
    if len(messages) > 1 and messages[-1] == {"role": "assistant", "content": ""}:
        messages.pop()
    return tuple(messages)


def prompt_key(prompt: Prompt) -> Hashable:
    """A hashable key for a prompt: the text itself, or the conversation as canonical JSON."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)
