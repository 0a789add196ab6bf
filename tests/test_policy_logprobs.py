"""Packed log-probabilities (prompt read once per pair) equal the plain two-sequence computation."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM

from rewardlab.models.logprobs import (
    PairTokens,
    assign_rows,
    model_attention_mask,
    pack_preferences,
    packed_pair_logps,
    plain_pair_logps,
)

torch.set_num_threads(1)


def sharpened_model(model_dir, attention: str = "sdpa") -> torch.nn.Module:
    """The tiny decoder with larger weights: its fresh initialisation predicts nearly uniform tokens,
    which would hide a wrong position id or mask behind tiny differences."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attention)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return model


def random_pairs(n: int, vocab: int, seed: int) -> PairTokens:
    """Pairs whose prompts, chosen and rejected replies all have different lengths (1 to many tokens)."""
    rng = random.Random(seed)

    def ids(low: int, high: int) -> list[int]:
        return [rng.randrange(3, vocab) for _ in range(rng.randint(low, high))]

    return PairTokens([ids(1, 14) for _ in range(n)], [ids(1, 9) for _ in range(n)], [ids(1, 9) for _ in range(n)])


def test_plain_computation_matches_a_hand_indexed_forward(tiny_decoder_dir):
    """Reply token j is predicted from position p − 1 + j of ``prompt + reply`` (no padding, one row)."""
    model = sharpened_model(tiny_decoder_dir)
    tokens = PairTokens([[5, 6, 7]], [[8, 9]], [[10, 11, 12, 13]])
    out = plain_pair_logps(model, tokens, pad_id=0)
    for reply, total in ((tokens.chosen[0], out.chosen_logps), (tokens.rejected[0], out.rejected_logps)):
        row = torch.tensor([tokens.prompts[0] + reply])
        logps = model(input_ids=row).logits[0].log_softmax(-1)
        expected = sum(logps[2 + j, token] for j, token in enumerate(reply))
        assert total.item() == pytest.approx(expected.item(), abs=1e-5)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("max_row_tokens", [None, 64])
def test_packed_logps_and_gradients_equal_the_plain_computation(tiny_decoder_dir, attention, max_row_tokens):
    model = sharpened_model(tiny_decoder_dir, attention)
    tokens = random_pairs(6, model.config.vocab_size, seed=1)
    packed = pack_preferences(tokens, pad_id=0, max_row_tokens=max_row_tokens)
    if max_row_tokens is not None:
        assert packed.input_ids.shape[0] < len(tokens), "several pairs must share a row for this case to mean anything"

    weights_c, weights_r = torch.linspace(1, 2, 6), torch.linspace(-1, -3, 6)
    got = packed_pair_logps(model, packed)
    (weights_c * got.chosen_logps + weights_r * got.rejected_logps).sum().backward()
    packed_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    want = plain_pair_logps(model, tokens, pad_id=0)
    (weights_c * want.chosen_logps + weights_r * want.rejected_logps).sum().backward()

    assert len(set(want.chosen_logps.tolist())) == 6, "log-probabilities must differ between pairs"
    for field in ("chosen_logps", "rejected_logps", "chosen_token_logps", "rejected_token_logps"):
        assert torch.allclose(getattr(got, field), getattr(want, field), atol=1e-5), field
    assert torch.equal(got.chosen_token_mask, want.chosen_token_mask)
    assert got.chosen_lengths.tolist() == [len(c) for c in tokens.chosen]
    for name, param in model.named_parameters():
        assert torch.allclose(packed_grads[name], param.grad, atol=1e-5), name


def test_packing_reads_each_prompt_once_and_barely_pads():
    """Rows hold prompt + chosen + rejected: the prompt is not repeated, and a row budget packs
    several pairs per row so the padding is small."""
    tokens = random_pairs(20, 400, seed=2)
    prompts = sum(map(len, tokens.prompts))
    replies = sum(map(len, tokens.chosen + tokens.rejected))
    packed = pack_preferences(tokens, pad_id=0, max_row_tokens=128)
    assert packed.real_tokens == prompts + replies  # the plain rows hold 2·prompts + replies
    assert packed.input_ids.numel() < 1.25 * packed.real_tokens
    # logits are needed only where a reply token is predicted: one position per reply token,
    # the prompt's last position shared by both replies
    assert int(packed.keep.sum()) == replies - len(tokens)


def test_rejected_reply_cannot_see_the_chosen_one_and_restarts_positions():
    packed = pack_preferences(PairTokens([[5, 6]], [[7, 8, 9]], [[10, 11]]), pad_id=0)
    mask = packed.attention_mask[0, 0]
    assert packed.position_ids[0].tolist() == [0, 1, 2, 3, 4, 2, 3]
    assert mask[5].tolist() == [True, True, False, False, False, True, False]
    assert mask[4].tolist() == [True, True, True, True, True, False, False]


def test_assign_rows_respects_the_budget():
    assert assign_rows([5, 5, 5, 20, 1, 4], max_row_tokens=10) == [[3], [0, 1], [2, 5, 4]]
    assert assign_rows([5, 5], max_row_tokens=None) == [[0], [1]]
    with pytest.raises(ValueError, match="max_row_tokens must be >= 1"):
        assign_rows([5], max_row_tokens=0)


def test_empty_prompt_or_reply_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="pair 1: the prompt has no tokens"):
        PairTokens([[1], []], [[2], [3]], [[4], [5]])
    with pytest.raises(ValueError, match="one entry per pair"):
        PairTokens([[1]], [[2], [3]], [[4]])


def test_attention_kernels_without_4d_masks_are_refused():
    model = torch.nn.Linear(1, 1)
    model.config = SimpleNamespace(_attn_implementation="flash_attention_2")
    with pytest.raises(ValueError, match="load it with attn_implementation='sdpa'"):
        model_attention_mask(model, torch.ones((1, 1, 2, 2), dtype=torch.bool))


class WithoutLogitsToKeep(torch.nn.Module):
    """A causal LM whose forward cannot restrict its logits (older or custom models)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def forward(self, input_ids, position_ids, attention_mask, use_cache):
        return self.inner(
            input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask, use_cache=use_cache
        )


def test_models_that_return_every_logit_give_the_same_logps(tiny_decoder_dir):
    model = sharpened_model(tiny_decoder_dir)
    tokens = random_pairs(3, model.config.vocab_size, seed=3)
    got = packed_pair_logps(WithoutLogitsToKeep(model), pack_preferences(tokens, pad_id=0))
    want = plain_pair_logps(model, tokens, pad_id=0)
    assert torch.allclose(got.chosen_logps, want.chosen_logps, atol=1e-5)
    assert torch.allclose(got.rejected_logps, want.rejected_logps, atol=1e-5)
