"""Batched generation: greedy rows are ``generate``'s greedy replies, sampled rows are plain seeded draws,
and a prompt's replies do not depend on how the rows were batched."""

from __future__ import annotations

import math

import pytest
import torch

from rewardlab.models.causal_lm import CausalLM
from rewardlab.sampling.batched import decode_rows, next_tokens, reply_seed, sample_replies_batched
from rewardlab.sampling.generation import SampleConfig, prompt_prefix

torch.set_num_threads(1)
PROMPTS = (
    "Hi",
    "Tell me about the sea and the moon at night, please.",
    "What is the capital of France?",
    "def add(a, b): return a + b. Explain this code to me in detail.",
    "Name a colour.",
    "How do I bake bread?",
)


@pytest.fixture(scope="module")
def lm(tiny_decoder_dir) -> CausalLM:
    """The tiny decoder with weights drawn at std 0.3 (the saved ones are so small that every greedy
    reply repeats one token) and its end-of-turn logit raised, so that some replies end early and
    others run to the limit: rows leave the batch at different steps."""
    lm = CausalLM.from_pretrained(tiny_decoder_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in lm.model.parameters():
            if parameter.dim() == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        lm.model.get_output_embeddings().weight[lm.tokenizer.eos_token_id] *= 1.5
    return lm


def greedy_generate(lm: CausalLM, prefix: list[int], max_new_tokens: int) -> list[int]:
    generated = lm.model.generate(
        input_ids=torch.tensor([prefix]),
        attention_mask=torch.ones(1, len(prefix), dtype=torch.long),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        top_k=None,
        top_p=None,
        pad_token_id=lm.pad_id,
        eos_token_id=lm.tokenizer.eos_token_id,
    )
    return generated[0, len(prefix) :].tolist()


def test_greedy_rows_are_generates_greedy_replies(lm):
    """Prompts of 37 to 74 tokens left-padded in one batch, two rows each: every row equals ``generate``
    on its prompt alone, end-of-turn included where it ended (the test needs both kinds of row)."""
    prefixes = [prompt_prefix(lm, p) for p in PROMPTS]
    owners = [i for i in range(len(PROMPTS)) for _ in range(2)]
    rows = decode_rows(lm, prefixes, owners, max_new_tokens=30)
    eos = lm.tokenizer.eos_token_id
    for owner, (reply, ended) in zip(owners, rows, strict=True):
        assert reply + ([eos] if ended else []) == greedy_generate(lm, prefixes[owner], 30)
        assert ended or len(reply) == 30
    assert len({len(p) for p in prefixes}) == len(PROMPTS)
    assert any(ended for _, ended in rows) and not all(ended for _, ended in rows)


def test_next_tokens_draws_from_the_tempered_softmax():
    """logits (0, ln 3): P(token 1) = 3/(1+3) = 0.75; at temperature 2, √3/(1+√3) = 0.634. With 4000
    draws the frequency's standard deviation is √(0.75·0.25/4000) = 0.0068, so ±0.03 is 4.4 σ."""
    logits = torch.tensor([[0.0, math.log(3.0)]]).repeat(4000, 1)
    for temperature, expected in ((1.0, 0.75), (2.0, math.sqrt(3) / (1 + math.sqrt(3)))):
        generators = [torch.Generator().manual_seed(row) for row in range(4000)]
        drawn = next_tokens(logits, temperature, generators)
        assert drawn.float().mean().item() == pytest.approx(expected, abs=0.03)
    assert next_tokens(torch.tensor([[0.0, 1.0], [2.0, 1.0]]), 0.0, None).tolist() == [1, 0]
    with pytest.raises(ValueError, match="one generator per row"):
        next_tokens(logits[:2], 1.0, None)


def reference_draw(lm: CausalLM, prefix: list[int], seed: int, max_new_tokens: int, temperature: float) -> list[int]:
    """The plainest sampler: the whole text read again at every step, no cache, no padding, one row."""
    generator = torch.Generator().manual_seed(seed)
    tokens: list[int] = []
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            logits = lm.model(input_ids=torch.tensor([prefix + tokens])).logits[0, -1]
            token = torch.multinomial(torch.softmax(logits.float() / temperature, -1), 1, generator=generator).item()
            if token == lm.tokenizer.eos_token_id:
                break
            tokens.append(token)
    return tokens


def test_sampled_rows_are_plain_seeded_draws(lm):
    """Each batched row (cached, left-padded, other rows leaving the batch) draws what the plain
    uncached sampler draws with the row's seed."""
    config = SampleConfig(n=3, max_new_tokens=12, temperature=1.0, seed=5)
    batched = sample_replies_batched(lm, PROMPTS[:4], config, batch_rows=5)
    for prompt, samples in zip(PROMPTS[:4], batched, strict=True):
        prefix = prompt_prefix(lm, prompt)
        for index, sample in enumerate(samples):
            reference = reference_draw(lm, prefix, reply_seed(5, prefix, index), 12, 1.0)
            assert sample.tokens == len(reference)
            assert sample.text == lm.tokenizer.decode(reference, skip_special_tokens=True).strip()
            assert sample.finished == (len(reference) < 12)
    assert any(s.finished for row in batched for s in row) and not all(s.finished for row in batched for s in row)


def test_a_prompts_replies_do_not_depend_on_batching(lm):
    """Batch size, other prompts, their order and N change nothing; the seed does."""
    config = SampleConfig(n=4, max_new_tokens=10, seed=0)
    wide = sample_replies_batched(lm, PROMPTS, config, batch_rows=64)
    narrow = sample_replies_batched(lm, PROMPTS, config, batch_rows=3)
    assert narrow == wide
    alone = sample_replies_batched(lm, [PROMPTS[2], PROMPTS[0]], config, batch_rows=5)
    assert alone == [wide[2], wide[0]]
    more = sample_replies_batched(lm, PROMPTS[:2], SampleConfig(n=6, max_new_tokens=10, seed=0))
    assert [m[:4] for m in more] == wide[:2]
    other = sample_replies_batched(lm, PROMPTS[:2], SampleConfig(n=4, max_new_tokens=10, seed=1))
    assert [s.text for s in other[0]] != [s.text for s in wide[0]]
    assert len({s.text for s in wide[1]}) > 1


def test_on_prompt_sees_each_prompt_once_with_its_replies(lm):
    seen: dict[int, list] = {}
    out = sample_replies_batched(
        lm, PROMPTS[:3], SampleConfig(n=2, max_new_tokens=4), batch_rows=3, on_prompt=seen.__setitem__
    )
    assert sorted(seen) == [0, 1, 2] and [seen[i] for i in range(3)] == out


def test_bad_settings_are_refused(lm):
    with pytest.raises(ValueError, match="batch_rows must be a positive integer"):
        sample_replies_batched(lm, PROMPTS, SampleConfig(n=2), batch_rows=0)
    with pytest.raises(ValueError, match="one seed per row"):
        decode_rows(lm, [[1, 2]], [0, 0], max_new_tokens=2, temperature=1.0, seeds=[1])
    with pytest.raises(ValueError, match="at least one token"):
        decode_rows(lm, [[]], [0], max_new_tokens=2)
