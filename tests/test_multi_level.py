"""MAPL's multi-level pairs (Sun et al. 2025): construction invariants and the signal they add.

Known answers: every intra-sample record's reply satisfies all the instructions of its chosen
prompt and violates one of its rejected prompt's; every inter-sample pair's chosen reply answers
more requests with an originally chosen reply. The property: with a true reward that counts
satisfied instructions, Bradley-Terry on the plain pairs (no instructions in any prompt) leaves the
instruction weights at zero, so (x_w, y) and (x_l, y) tie; with the intra-sample records it ranks
them right.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from rewardlab.data.multi_level import (
    INTER_SUBSET,
    TEMPLATES,
    Instruction,
    PromptPreference,
    inter_sample_pairs,
    intra_sample_pairs,
    make_instruction,
    multi_level_pairs,
    satisfied_count,
    with_instructions,
)
from rewardlab.data.records import PreferencePair
from rewardlab.data.split import split_pairs
from rewardlab.objectives.bradley_terry import bradley_terry_loss
from rewardlab.runs.data import SplitDataConfig, load_split

WORDS = ["river", "stone", "garden", "window", "yellow", "quiet", "market", "candle", "forest", "silver", "music"]


def synthetic_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        chosen = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))
        rejected = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
        pairs.append(PreferencePair(f"Describe thing {i}.", chosen, rejected, group=f"g{i % 7}" if i % 2 else None))
    return pairs


def test_instructions_are_rendered_parsed_and_checked():
    """ "a b c" has 3 words: at most 3 holds, at least 4 fails; "b" is used, "violin" is not."""
    prompt = with_instructions("Hi.", [Instruction("max_words", 3), Instruction("min_words", 4)])
    assert prompt == "Hi.\n\nAnswer in at most 3 words.\nAnswer in at least 4 words."
    assert satisfied_count(prompt, "a b c") == (1, 2)
    words = with_instructions("Hi.", [Instruction("include_word", "bee"), Instruction("exclude_word", "violin")])
    assert satisfied_count(words, "a bee c") == (2, 2) and satisfied_count(words, "a Violin") == (0, 2)
    conversation = (
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Yes?"},
        {"role": "user", "content": "So?"},
    )
    extended = with_instructions(conversation, [Instruction("max_words", 3)])
    assert extended[:2] == conversation[:2] and extended[2]["content"] == "So?\n\nAnswer in at most 3 words."
    assert satisfied_count(extended, "a b") == (1, 1)
    assert satisfied_count("Answer in at most five words.", "a") == (0, 0)  # not one of ours: not parsed


def test_a_word_glued_to_digits_is_never_named_as_used():
    """ "hello123" does not contain the word "hello", so include_word may only name "world"."""
    rng = random.Random(0)
    made = {make_instruction("include_word", "hello123 world", True, rng).arg for _ in range(20)}
    assert made == {"world"}


def test_intra_sample_records_order_two_prompts_for_one_reply():
    pairs = synthetic_pairs(40)
    intra = intra_sample_pairs(pairs, seed=3, max_instructions=3)
    assert len(intra) == 2 * len(pairs)  # every reply here has >= 2 words, so every kind works both ways
    for record, (pair, reply) in zip(intra, [(p, r) for p in pairs for r in (p.chosen, p.rejected)], strict=True):
        assert isinstance(record, PromptPreference) and record.reply == reply
        assert record.prompt.startswith(pair.prompt) and record.rejected_prompt.startswith(pair.prompt)
        good, total = satisfied_count(record.prompt, reply)
        bad, total_l = satisfied_count(record.rejected_prompt, reply)
        assert 1 <= total <= 3 and total == total_l and good == total and bad < total_l
        assert record.group == (pair.group if pair.group is not None else split_pairs_key(pair))
    assert intra == intra_sample_pairs(pairs, seed=3)  # deterministic
    assert intra != intra_sample_pairs(pairs, seed=4)
    # a pair's records do not depend on the other pairs
    assert intra_sample_pairs(pairs[5:6], seed=3) == intra[10:12]


def split_pairs_key(pair: PreferencePair) -> str:
    from rewardlab.data.split import content_key

    return pair.id if pair.id is not None else content_key(pair)


def test_intra_sample_skips_a_reply_that_cannot_violate_any_instruction_both_ways():
    """A one-word reply cannot violate "at most N words" (N >= 1) but other kinds still work both ways."""
    pair = PreferencePair("Q?", "pineapple", "Two words")
    records = intra_sample_pairs([pair], seed=0)
    assert [r.reply for r in records] == ["pineapple", "Two words"]
    with pytest.raises(ValueError, match="max_instructions"):
        intra_sample_pairs([pair], max_instructions=0)


def test_inter_sample_pairs_prefer_replies_answering_more_requests():
    pairs = synthetic_pairs(30)
    inter = inter_sample_pairs(pairs, seed=1, weight=0.5)
    assert len(inter) == 2 * len(pairs)
    for k, derived in enumerate(inter):
        a = pairs[k // 2]
        assert derived.prompt.startswith(f"Answer both requests.\n\n1. {a.prompt}\n\n2. Describe thing")
        assert derived.chosen.startswith("1. ") and "\n\n2. " in derived.rejected
        assert derived.subset == INTER_SUBSET and derived.weight == 0.5
        assert derived.group == (a.group if a.group is not None else split_pairs_key(a))
    assert inter == inter_sample_pairs(pairs, seed=1, weight=0.5)
    assert (
        inter_sample_pairs(pairs[:1]) == [] and inter_sample_pairs([PreferencePair("q", "a", "b", tie=True)] * 3) == []
    )


def test_inter_sample_chain_counts_good_answers():
    """Replies "good-i" and "bad-i": the chosen side of each derived pair has one more "good" answer."""
    pairs = [PreferencePair(f"q{i}", f"good-{i}", f"bad-{i}") for i in range(6)]
    for derived in inter_sample_pairs(pairs, seed=0):
        assert derived.chosen.count("good-") == derived.rejected.count("good-") + 1


def test_derived_pairs_stay_in_their_originals_split():
    pairs = synthetic_pairs(60)
    mixed, intra = multi_level_pairs(pairs, seed=0)
    assert len(mixed) == 3 * len(pairs) and len(intra) == 2 * len(pairs)
    assert [p for p in mixed if p.subset != INTER_SUBSET] == pairs  # originals kept, in order
    splits = split_pairs(mixed, validation=0.1, test=0.2, seed=5)
    plain = split_pairs(pairs, validation=0.1, test=0.2, seed=5)
    for name in ("train", "validation", "test"):
        keys = {split_pairs_key(p) if p.group is None else p.group for p in getattr(plain, name)}
        derived = [p for p in getattr(splits, name) if p.subset == INTER_SUBSET]
        assert all(p.group in keys for p in derived), name


def test_the_data_option_adds_inter_pairs_to_the_training_split_only(tmp_path):
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in synthetic_pairs(50)]
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    said: list[str] = []
    plain = load_split(SplitDataConfig(path=str(path)), say=said.append)
    inter_only = SplitDataConfig(path=str(path), multi_level=True, multi_level_weight=0.5, multi_level_intra=False)
    mixed = load_split(inter_only, say=said.append)
    assert mixed.splits.test == plain.splits.test and mixed.splits.validation == plain.splits.validation
    assert len(mixed.splits.train) == 3 * len(plain.splits.train)
    assert {p.weight for p in mixed.splits.train if p.subset == INTER_SUBSET} == {0.5}
    n = len(plain.splits.train)
    assert said == [f"multi-level (MAPL): {2 * n} inter-sample and 0 intra-sample pairs added to {n} training pairs"]
    assert SplitDataConfig(multi_level_weight=0).problems() == ["data.multi_level_weight must be > 0 (got 0)"]


def features(prompt: str, reply: str) -> torch.Tensor:
    """Known features of (x, y): reply length, then per instruction kind the count satisfied and violated."""
    from rewardlab.data.multi_level import instructions_in

    row = [len(reply.split()) / 10]
    for kind in TEMPLATES:
        mine = [i for i in instructions_in(prompt) if i.kind == kind]
        row += [sum(i.satisfied_by(reply) for i in mine), sum(not i.satisfied_by(reply) for i in mine)]
    return torch.tensor(row, dtype=torch.float32)


def fit_probe(chosen: torch.Tensor, rejected: torch.Tensor, steps: int = 300) -> torch.Tensor:
    w = torch.zeros(chosen.shape[1], requires_grad=True)
    optimizer = torch.optim.Adam([w], lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        bradley_terry_loss(chosen @ w, rejected @ w).losses.mean().backward()
        optimizer.step()
    return w.detach()


def test_intra_sample_pairs_teach_what_plain_pairs_cannot():
    """True reward: length (chosen replies are longer) plus satisfied minus violated instructions.

    Plain pairs have no instructions, so their instruction features are 0 and BT's gradient on
    those weights is exactly 0: the probe scores (x_w, y) and (x_l, y) the same (accuracy 0 on
    strict order). With the intra-sample records added, it ranks every held-out record right.
    """
    train, held = synthetic_pairs(80, seed=0), synthetic_pairs(40, seed=1)
    held_intra = intra_sample_pairs(held, seed=9)
    tests = (
        torch.stack([features(r.prompt, r.reply) for r in held_intra]),
        torch.stack([features(r.rejected_prompt, r.reply) for r in held_intra]),
    )

    def accuracy(w: torch.Tensor) -> float:
        return ((tests[0] @ w) > (tests[1] @ w)).float().mean().item()

    plain_c = torch.stack([features(p.prompt, p.chosen) for p in train])
    plain_r = torch.stack([features(p.prompt, p.rejected) for p in train])
    plain = fit_probe(plain_c, plain_r)
    assert plain[1:].abs().max().item() == 0.0 and accuracy(plain) == 0.0
    intra = intra_sample_pairs(train, seed=0)
    both_c = torch.cat([plain_c, torch.stack([features(r.prompt, r.reply) for r in intra])])
    both_r = torch.cat([plain_r, torch.stack([features(r.rejected_prompt, r.reply) for r in intra])])
    learned = fit_probe(both_c, both_r)
    assert accuracy(learned) == 1.0
    assert ((plain_c @ learned) > (plain_r @ learned)).all()  # the original preference is kept
