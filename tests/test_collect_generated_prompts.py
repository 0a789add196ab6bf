"""``collect add-items --prompts F --policy P``: a conversation prompt reaches the policy as a conversation.

Found reading the generation path while generating items with SmolLM2 for issue 30: a JSONL prompt
given as a list of messages was flattened to ``role: content`` text before generation, so the policy's
chat template wrapped the whole transcript in one user turn and the policy answered a different
question from the one shown.
"""

from __future__ import annotations

import json
from pathlib import Path

from rewardlab.collect.items import policy_items, prompt_text, read_prompts
from rewardlab.models.causal_lm import CausalLM
from rewardlab.sampling.generation import SampleConfig, prompt_prefix, sample_replies

CONVERSATION = (
    {"role": "user", "content": "Hi there."},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Name a colour."},
)


def test_read_prompts_keeps_a_conversation_and_a_text(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"prompt": list(CONVERSATION)}, {"prompt": "What is 2+2?"}]
    prompts.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    assert read_prompts(prompts) == [CONVERSATION, "What is 2+2?"]


def test_the_policy_continues_the_conversation_and_the_item_shows_it(tmp_path: Path, tiny_decoder_dir: Path) -> None:
    """The replies are those the policy draws for the conversation through its chat template (three turns),
    not for the flattened text (one user turn, another token prefix, so other seeded draws)."""
    lm = CausalLM.from_pretrained(str(tiny_decoder_dir), precision="auto")
    flattened = prompt_text(CONVERSATION)
    assert prompt_prefix(lm, CONVERSATION) != prompt_prefix(lm, flattened)  # so the two can be told apart
    config = SampleConfig(n=2, max_new_tokens=6, temperature=1.0, seed=0, chunk=2)
    as_conversation = [s.text for s in sample_replies(lm, [CONVERSATION], config)[0]]
    as_flat_text = [s.text for s in sample_replies(lm, [flattened], config)[0]]
    assert as_conversation != as_flat_text

    (item,) = policy_items(str(tiny_decoder_dir), [CONVERSATION], replies=2, max_new_tokens=6, progress=False)
    assert list(item.replies) == as_conversation
    assert item.prompt == "user: Hi there.\n\nassistant: Hello! How can I help?\n\nuser: Name a colour."
