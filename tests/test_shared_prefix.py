"""Shared-prefix packing for decoders: one pass gives the rewards and gradients of two separate passes."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rewardlab.models.attention import NAME
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.shared_prefix import common_prefix_length, pack_pairs, packed_pair_rewards, split_pair


def test_split_pair_keeps_a_token_for_each_reply():
    assert split_pair([1, 2, 3, 4], [1, 2, 5]) == ([1, 2], [3, 4], [5])
    assert split_pair([1, 2], [1, 2, 3]) == ([1], [2], [2, 3])  # chosen is a prefix of rejected
    assert common_prefix_length([7, 8], [9]) == 0


def random_pairs(n: int, vocab: int, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    rng = random.Random(seed)
    chosen, rejected = [], []
    for _ in range(n):
        prompt = [rng.randrange(3, vocab) for _ in range(rng.randint(1, 30))]
        chosen.append(prompt + [rng.randrange(3, vocab) for _ in range(rng.randint(1, 12))])
        rejected.append(prompt + [rng.randrange(3, vocab) for _ in range(rng.randint(1, 12))])
    return chosen, rejected


# eager adds the mask to the logits (a float mask); rewardlab's training attention takes either
@pytest.mark.parametrize("attention", ["sdpa", "eager", NAME])
def test_packed_rewards_and_gradients_equal_separate_passes(attention, tiny_decoder_dir):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_decoder_dir, num_labels=1, attn_implementation=attention
    )
    model.config.pad_token_id = 0
    chosen, rejected = random_pairs(6, model.config.vocab_size, seed=1)

    packed = pack_pairs(chosen, rejected, pad_id=0)
    assert packed.real_tokens < sum(map(len, chosen + rejected))
    r_c, r_r = packed_pair_rewards(model, packed)
    (r_c - 2 * r_r).sum().backward()
    packed_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    separate = [model(input_ids=torch.tensor([ids])).logits[0, 0] for ids in chosen + rejected]
    s_c, s_r = torch.stack(separate[:6]), torch.stack(separate[6:])
    (s_c - 2 * s_r).sum().backward()

    assert r_c.tolist() == pytest.approx(s_c.tolist(), abs=1e-5)
    assert r_r.tolist() == pytest.approx(s_r.tolist(), abs=1e-5)
    assert len(set(s_c.tolist())) == 6, "rewards must differ between pairs for the test to mean anything"
    for name, param in model.named_parameters():
        if param.grad is not None:
            assert torch.allclose(packed_grads[name], param.grad, atol=1e-5), name


def test_a_reward_models_shared_and_separate_pair_rewards_agree(tiny_decoder_dir):
    """``RewardModel.pair_rewards`` (prompt read once) equals ``separate_pair_rewards`` (each text in its row)."""
    model = RewardModel.from_backbone(str(tiny_decoder_dir), max_length=64)
    chosen, rejected = random_pairs(5, model.model.config.vocab_size, seed=2)
    r_c, r_r, shared_tokens = model.pair_rewards(chosen, rejected)
    s_c, s_r, separate_tokens = model.separate_pair_rewards(chosen, rejected)
    assert model.shares_prefix and shared_tokens < separate_tokens == sum(map(len, chosen + rejected))
    assert r_c.tolist() == pytest.approx(s_c.tolist(), abs=1e-5)
    assert r_r.tolist() == pytest.approx(s_r.tolist(), abs=1e-5)


def test_packed_pairs_are_batched_by_their_rows_width():
    """A decoder's pair is one row (prompt once): batches are grouped, and the token budget counted,
    by that row's width, so a pass's packed rows never exceed the budget."""
    from rewardlab.training.batching import EncodedPairs, micro_batches

    chosen, rejected = random_pairs(40, 50, seed=3)
    data = EncodedPairs(chosen, rejected, [None] * 40, [1.0] * 40, [False] * 40, 0, packed=True)
    rows = [pack_pairs([c], [r], pad_id=0).input_ids for c, r in zip(chosen, rejected, strict=True)]
    assert data.lengths == [row.shape[1] for row in rows]
    assert data.reply_counts == [1] * 40
    assert sum(data.lengths) < sum(map(len, chosen + rejected)), "each prompt is in one row, not two"
    groups = micro_batches(range(40), data.lengths, data.reply_counts, None, 120)
    assert sorted(i for g in groups for i in g) == list(range(40))
    for group in groups:
        rows = pack_pairs([chosen[i] for i in group], [rejected[i] for i in group], pad_id=0).input_ids
        assert rows.numel() <= 120 or len(group) == 1
    assert any(len(g) > 1 for g in groups)
