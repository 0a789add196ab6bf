"""N replies per prompt: the shared prompt encoding changes nothing, seeds are per prompt and chunk."""

from __future__ import annotations

import pytest
import torch

from rewardlab.models.causal_lm import CausalLM
from rewardlab.sampling.generation import SampleConfig, chunk_seed, prompt_prefix, sample_prompt

torch.set_num_threads(1)
PROMPT = "Tell me about the sea and the moon at night, please."


@pytest.fixture(scope="module")
def lm(tiny_decoder_dir) -> CausalLM:
    return CausalLM.from_pretrained(tiny_decoder_dir)


def test_shared_prompt_encoding_gives_plain_generation(lm):
    """Encoding the prompt once and repeating its cache samples exactly what generate does from scratch."""
    config = SampleConfig(n=4, max_new_tokens=10, temperature=1.0, seed=3, chunk=4)
    samples = sample_prompt(lm, PROMPT, config)
    prefix = prompt_prefix(lm, PROMPT)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(chunk_seed(3, prefix, 0))
        plain = lm.model.generate(
            input_ids=torch.tensor([prefix] * 4),
            attention_mask=torch.ones(4, len(prefix), dtype=torch.long),
            max_new_tokens=10,
            do_sample=True,
            temperature=1.0,
            top_k=None,
            top_p=None,
            pad_token_id=lm.pad_id,
            eos_token_id=lm.tokenizer.eos_token_id,
        )
    eos = lm.tokenizer.eos_token_id
    expected = []
    for row in plain[:, len(prefix) :].tolist():
        reply = row[: row.index(eos)] if eos in row else row
        expected.append(lm.tokenizer.decode(reply, skip_special_tokens=True).strip())
    assert [s.text for s in samples] == expected
    assert len(set(expected)) > 1  # sampled, not four copies of one reply


def test_replies_are_reproducible_and_grow_by_chunks(lm):
    small = sample_prompt(lm, PROMPT, SampleConfig(n=4, max_new_tokens=8, chunk=2, seed=0))
    large = sample_prompt(lm, PROMPT, SampleConfig(n=6, max_new_tokens=8, chunk=2, seed=0))
    assert large[:4] == small
    assert sample_prompt(lm, PROMPT, SampleConfig(n=4, max_new_tokens=8, chunk=2, seed=0)) == small
    other = sample_prompt(lm, PROMPT, SampleConfig(n=4, max_new_tokens=8, chunk=2, seed=1))
    assert [s.text for s in other] != [s.text for s in small]
    for s in large:
        assert s.tokens <= 8 and (s.finished or s.tokens == 8)


def test_sample_config_lists_every_problem():
    problems = SampleConfig(n=0, max_new_tokens=-1, temperature=0.0, chunk=0).problems()
    assert len(problems) == 4
    with pytest.raises(ValueError, match="temperature must be positive"):
        SampleConfig(temperature=float("nan")).check()
