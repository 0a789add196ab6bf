"""Preference pairs into the token ids a policy is trained on: prompt, then each reply up to its eos.

A policy generates its reply after the prompt, so the prompt is encoded the way generation will
see it: with a chat template, the conversation followed by the assistant header
(``add_generation_prompt``); without one, the prompt text as written. The reply is the text the
template puts after that header (so it ends with the template's end-of-turn token), or the reply
text followed by the eos token. Prompt and reply are tokenised separately, exactly as they will
be at generation time.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from rewardlab.data.prompts import transcript_to_messages
from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.models.formatting import TextFormat
from rewardlab.models.logprobs import PairTokens


def prompt_and_reply_texts(
    prompt: Prompt, reply: str, fmt: TextFormat, tokenizer: PreTrainedTokenizerBase
) -> tuple[str, str]:
    """The prompt as generation sees it, and the reply text that follows it up to end of turn."""
    if fmt == "plain":
        if not isinstance(prompt, str):
            prompt = "\n".join(f"{m['role']}: {m['content']}" for m in prompt) + "\nassistant: "
        return prompt, reply + (tokenizer.eos_token or "")
    messages = list(transcript_to_messages(prompt) if isinstance(prompt, str) else prompt)
    head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": reply}], tokenize=False)
    if not full.startswith(head):
        raise ValueError(
            "the tokenizer's chat template does not render a reply after its generation prompt "
            "(the conversation with the reply does not start with the conversation without it); use text format 'plain'"
        )
    return head, full[len(head) :]


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    fmt: TextFormat,
    max_prompt_tokens: int,
    max_reply_tokens: int,
) -> PairTokens:
    """Token ids of every pair: prompts cut from the left (the latest turns matter most), replies
    cut from the right (their start is what the policy learns to produce)."""
    if max_prompt_tokens < 1 or max_reply_tokens < 1:
        raise ValueError(
            f"max_prompt_tokens and max_reply_tokens must be >= 1 (got {max_prompt_tokens}, {max_reply_tokens})"
        )
    refuse_two_prompts(pairs)
    prompts, chosen, rejected = [], [], []
    for pair in pairs:
        prompt_text, chosen_text = prompt_and_reply_texts(pair.prompt, pair.chosen, fmt, tokenizer)
        _, rejected_text = prompt_and_reply_texts(pair.prompt, pair.rejected, fmt, tokenizer)
        ids = tokenizer([prompt_text, chosen_text, rejected_text], add_special_tokens=False)["input_ids"]
        prompts.append(ids[0][-max_prompt_tokens:])
        chosen.append(ids[1][:max_reply_tokens])
        rejected.append(ids[2][:max_reply_tokens])
    return PairTokens(prompts, chosen, rejected)


def refuse_two_prompts(pairs: Sequence[PreferencePair]) -> None:
    """A policy compares two replies to one prompt (its log-ratios share the prompt's tokens), so a pair
    whose rejected side has its own prompt (MAPL's intra-sample pairs) is refused, not misread."""
    two = [p for p in pairs if p.rejected_prompt is not None]
    if two:
        where = two[0].source or two[0].id or "a pair without a source"
        raise ValueError(
            f"{len(two)} of {len(pairs)} pairs have a rejected_prompt (first: {where}); policy training compares "
            "two replies to one prompt: set data.multi_level_intra=false or drop the rejected_prompt field"
        )
