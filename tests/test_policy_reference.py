"""Reference log-probabilities: computed once, read back from the cache, missed when data or model change."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from rewardlab.models.logprobs import PairTokens, plain_pair_logps
from rewardlab.models.reference import cached_reference_logps, model_fingerprint, tokens_fingerprint

torch.set_num_threads(1)


def pairs(n: int = 5, seed: int = 0) -> PairTokens:
    rng = random.Random(seed)

    def ids(low: int, high: int) -> list[int]:
        return [rng.randrange(3, 400) for _ in range(rng.randint(low, high))]

    return PairTokens([ids(1, 10) for _ in range(n)], [ids(1, 6) for _ in range(n)], [ids(1, 6) for _ in range(n)])


class ForwardCounter:
    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        model.register_forward_hook(self._count)

    def _count(self, *_: object) -> None:
        self.calls += 1


def test_second_call_reads_the_cache(tiny_decoder_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    model.train()
    counter = ForwardCounter(model)
    tokens = pairs()

    first = cached_reference_logps(model, tokens, pad_id=0, cache_dir=tmp_path, batch_pairs=2)
    assert not first.from_cache and first.path.is_file() and counter.calls == 3  # 5 pairs, 2 per pass
    assert model.training, "the model's mode must be restored"
    assert not first.logps.chosen_logps.requires_grad

    second = cached_reference_logps(model, tokens, pad_id=0, cache_dir=tmp_path, batch_pairs=2)
    assert second.from_cache and second.path == first.path and counter.calls == 3
    for field in ("chosen_logps", "rejected_logps", "chosen_token_logps", "rejected_token_logps", "chosen_token_mask"):
        assert torch.equal(getattr(second.logps, field), getattr(first.logps, field)), field

    with torch.no_grad():
        live = plain_pair_logps(model, tokens, pad_id=0)
    assert torch.allclose(second.logps.chosen_logps, live.chosen_logps, atol=1e-5)
    assert torch.allclose(second.logps.rejected_token_logps, live.rejected_token_logps, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name], "no temporary file may be left behind"


def test_changed_dataset_or_model_misses_the_cache(tiny_decoder_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    tokens = pairs()
    original = cached_reference_logps(model, tokens, pad_id=0, cache_dir=tmp_path)

    edited = PairTokens(tokens.prompts, [tokens.chosen[0] + [7], *tokens.chosen[1:]], tokens.rejected)
    changed_data = cached_reference_logps(model, edited, pad_id=0, cache_dir=tmp_path)
    assert not changed_data.from_cache and changed_data.path != original.path

    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    changed_model = cached_reference_logps(model, tokens, pad_id=0, cache_dir=tmp_path)
    assert not changed_model.from_cache and changed_model.path not in (original.path, changed_data.path)


def test_unreadable_cache_file_is_recomputed(tiny_decoder_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    tokens = pairs(n=2)
    first = cached_reference_logps(model, tokens, pad_id=0, cache_dir=tmp_path)
    first.path.write_bytes(b"not a safetensors file")
    again = cached_reference_logps(model, tokens, pad_id=0, cache_dir=tmp_path)
    assert not again.from_cache and torch.equal(again.logps.chosen_logps, first.logps.chosen_logps)
    assert cached_reference_logps(model, tokens, pad_id=0, cache_dir=tmp_path).from_cache


def test_fingerprints_see_boundaries_and_weights(tiny_decoder_dir):
    """Moving a token from the prompt to the reply changes the data; any weight change changes the model."""
    a = PairTokens([[1, 2]], [[3]], [[4]])
    b = PairTokens([[1]], [[2, 3]], [[4]])
    assert tokens_fingerprint(a) != tokens_fingerprint(b)
    assert tokens_fingerprint(a) == tokens_fingerprint(PairTokens([[1, 2]], [[3]], [[4]]))
    model = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    before = model_fingerprint(model)
    assert model_fingerprint(AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)) == before
    with torch.no_grad():
        model.lm_head.weight[3, 3] += 1e-6
    assert model_fingerprint(model) != before


def test_bad_batch_size_is_refused(tiny_decoder_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    with pytest.raises(ValueError, match="batch_pairs must be >= 1"):
        cached_reference_logps(model, pairs(n=1), pad_id=0, cache_dir=tmp_path, batch_pairs=0)


def test_a_file_written_for_another_key_is_not_trusted(tiny_decoder_dir, tmp_path):
    """The file name holds a prefix of the key; the full key inside the file is checked too."""
    model = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    a = cached_reference_logps(model, pairs(seed=1), pad_id=0, cache_dir=tmp_path)
    b = cached_reference_logps(model, pairs(seed=2), pad_id=0, cache_dir=tmp_path)
    b.path.write_bytes(a.path.read_bytes())
    again = cached_reference_logps(model, pairs(seed=2), pad_id=0, cache_dir=tmp_path)
    assert not again.from_cache and torch.equal(again.logps.chosen_logps, b.logps.chosen_logps)
