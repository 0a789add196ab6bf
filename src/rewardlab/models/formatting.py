"""How a (prompt, reply) pair becomes the text a backbone reads, recorded so scoring matches training."""

from __future__ import annotations

from typing import Literal

from transformers import PreTrainedTokenizerBase

from rewardlab.data.prompts import transcript_to_messages
from rewardlab.data.records import Prompt

TextFormat = Literal["plain", "chat"]


def choose_format(tokenizer: PreTrainedTokenizerBase, requested: str = "auto") -> TextFormat:
    """``chat`` when the tokenizer has a chat template (instruction-tuned decoders), else ``plain``."""
    if requested not in ("auto", "plain", "chat"):
        raise ValueError(f"text format must be auto, plain or chat (got {requested!r})")
    if requested == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "plain"
    if requested == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ValueError("text format 'chat' needs a tokenizer with a chat template; use 'plain'")
    return requested


def format_text(prompt: Prompt, reply: str, fmt: TextFormat, tokenizer: PreTrainedTokenizerBase) -> str:
    """The text to score for ``reply`` given ``prompt``.

    ``plain`` keeps the words as they are (an HH transcript reads as written); ``chat`` renders
    the conversation with the tokenizer's own template, parsing HH transcripts into turns first,
    so a chat model sees replies the way it was trained to produce them.
    """
    if fmt == "plain":
        if isinstance(prompt, str):
            return f"{prompt.rstrip()}\n{reply.lstrip()}" if prompt.strip() else reply
        turns = [f"{m['role']}: {m['content']}" for m in prompt]
        return "\n".join([*turns, f"assistant: {reply}"])
    messages = list(transcript_to_messages(prompt) if isinstance(prompt, str) else prompt)
    messages.append({"role": "assistant", "content": reply})
    return tokenizer.apply_chat_template(messages, tokenize=False)
