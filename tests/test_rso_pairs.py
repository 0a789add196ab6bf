"""RSO pairs (Liu et al. 2023): two draws of π_sft·exp(r/β) ranked by reward, and `rewardlab sample-pairs`.

That accepted candidates follow the tilted target is tested in ``test_sampling_rejection.py``; here,
what the pairs built from them must look like, and the command end to end on tiny models.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.loading import load_preferences
from rewardlab.data.split import split_pairs
from rewardlab.models.reward_model import RewardModel
from rewardlab.sampling.rejection import tilted_distribution
from rewardlab.sampling.rso_pairs import prompt_rng, rso_pairs

torch.set_num_threads(1)

BASE = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
REWARDS = np.array([0.0, 1.0, -0.5, 2.0, 0.5])


def paired_frequencies(beta: float, trials: int = 20_000, candidates: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """How often each support point is a pair's chosen and its rejected reply, candidates drawn from BASE."""
    rng = np.random.default_rng(0)
    chosen, rejected = np.zeros(len(BASE)), np.zeros(len(BASE))
    for _ in range(trials):
        labels = rng.choice(len(BASE), size=candidates, p=BASE)
        for c, r in rso_pairs(REWARDS[labels], beta, 2, rng):
            chosen[labels[c]] += 1
            rejected[labels[r]] += 1
    return chosen / chosen.sum(), rejected / rejected.sum()


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_a_pair_is_two_draws_of_the_tilted_policy_ranked_by_reward(beta):
    """With q = π_r, a pair of two independent draws, ties dropped, has chosen = y with probability
    2·q(y)·q(r < r(y)) / (1 − Σ q²) and rejected = y with 2·q(y)·q(r > r(y)) / (1 − Σ q²)."""
    q = tilted_distribution(BASE, REWARDS, beta)
    below = np.array([q[r > REWARDS].sum() for r in REWARDS])
    above = np.array([q[r < REWARDS].sum() for r in REWARDS])
    no_tie = 1 - (q**2).sum()
    chosen, rejected = paired_frequencies(beta)
    assert 0.5 * np.abs(chosen - 2 * q * below / no_tie).sum() < 0.01
    assert 0.5 * np.abs(rejected - 2 * q * above / no_tie).sum() < 0.01
    # and not the pairs of the untilted policy
    p_no_tie = 1 - (BASE**2).sum()
    base_below = np.array([BASE[r > REWARDS].sum() for r in REWARDS])
    assert 0.5 * np.abs(chosen - 2 * BASE * base_below / p_no_tie).sum() > 0.05


def test_small_beta_pairs_the_best_candidates_and_ties_are_dropped():
    rng = np.random.default_rng(0)
    rewards = [0.1, 3.0, -2.0, 1.5, 0.7, 2.2]
    assert rso_pairs(rewards, 1e-4, 4, rng) == [(1, 5), (3, 4)]  # drawn best first, ranked within a pair
    assert rso_pairs(rewards, 1e-4, 5, rng) == [(1, 5), (3, 4)]  # an odd last draw stays unpaired
    assert rso_pairs([1.0, 1.0, 1.0], 1.0, 2, rng) == []
    with pytest.raises(ValueError, match="accept must be at least 2"):
        rso_pairs(rewards, 1.0, 1, rng)


def test_acceptance_draws_are_seeded_per_prompt():
    a, b = prompt_rng(0, "hello").random(3), prompt_rng(0, "hello").random(3)
    assert a.tolist() == b.tolist()
    assert prompt_rng(1, "hello").random(3).tolist() != a.tolist()
    assert prompt_rng(0, ({"role": "user", "content": "hello"},)).random(3).tolist() != a.tolist()


TOPICS = ["bread", "the sea", "France", "rain", "cats", "music", "tea", "stars"]


@pytest.fixture(scope="module")
def reward_dir(tiny_encoder_dir, tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("rso-reward")
    return RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64).save_pretrained(root / "rm")


def write_prompts(path) -> None:
    rows = [{"prompt": f"Tell me about {t}.", "chosen": f"Sure, {t}.", "rejected": "No."} for t in TOPICS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def sample_pairs(tiny_decoder_dir, reward_dir, tmp_path, *extra: str):
    write_prompts(tmp_path / "prefs.jsonl")
    args = ["sample-pairs", "--policy", str(tiny_decoder_dir), "--reward-model", str(reward_dir)]
    args += ["--data", str(tmp_path / "prefs.jsonl"), "--split", "all", "--prompts", "8", "--n", "8"]
    args += ["--accept", "4", "--max-new-tokens", "6", "--precision", "fp32", "--output", str(tmp_path / "rso.jsonl")]
    return CliRunner().invoke(app, [*args, *extra])


def test_sample_pairs_writes_pairs_that_dpo_trains_on(tiny_decoder_dir, reward_dir, tmp_path):
    result = sample_pairs(tiny_decoder_dir, reward_dir, tmp_path, "--beta", "0.5")
    assert result.exit_code == 0, result.output
    assert "8 prompts × 8 candidates" in result.output
    rows = [json.loads(line) for line in (tmp_path / "rso.jsonl").read_text().splitlines()]
    assert 8 <= len(rows) <= 16  # at most accept // 2 = 2 pairs per prompt; ties (same reply twice) dropped
    prompts = {f"Tell me about {t}." for t in TOPICS}
    for row in rows:
        assert row["prompt"] in prompts
        assert row["chosen"] and row["rejected"] and row["chosen"] != row["rejected"]
        assert row["chosen_rating"] > row["rejected_rating"]
    # the labels are the reward model's own scores of the replies
    model = RewardModel.from_pretrained(reward_dir)
    scored = model.score([r["prompt"] for r in rows], [r["chosen"] for r in rows], precision="fp32")
    assert scored == pytest.approx([r["chosen_rating"] for r in rows], abs=1e-4)

    # the pairs of one prompt share a group, so a split never puts a prompt on both sides
    loaded = load_preferences(tmp_path / "rso.jsonl").pairs
    assert {p.group for p in loaded} == {r["group"] for r in rows} and len({r["group"] for r in rows}) == 8
    splits = split_pairs(loaded, validation=0.0, test=0.5)
    assert not {p.group for p in splits.train} & {p.group for p in splits.test}

    first = (tmp_path / "rso.jsonl").read_text()
    again = sample_pairs(tiny_decoder_dir, reward_dir, tmp_path, "--beta", "0.5")
    assert again.exit_code == 0 and (tmp_path / "rso.jsonl").read_text() == first  # seeded: the same pairs

    out = tmp_path / "dpo"
    args = ["dpo", "--data", str(tmp_path / "rso.jsonl"), "--policy", str(tiny_decoder_dir), "--output", str(out)]
    args += ["train.steps=2", "train.batch_pairs=4", "num_threads=1", "eval.kl_prompts=0"]
    trained = CliRunner().invoke(app, args)
    assert trained.exit_code == 0, trained.output
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["pairs"] == len(rows) and report["steps"] == 2


def test_sample_pairs_reports_bad_options_as_one_line(tiny_decoder_dir, reward_dir, tmp_path):
    result = sample_pairs(tiny_decoder_dir, reward_dir, tmp_path, "--beta", "0", "--accept", "9")
    assert result.exit_code == 2
    assert "beta must be positive" in result.output and "accept must be between 2 and n=8" in result.output
    assert not (tmp_path / "rso.jsonl").exists()


def test_sample_pairs_labelled_by_r3_need_no_preference_data(tiny_decoder_dir, tmp_path):
    """Preference-free alignment (Kim & Seo 2024): R³ labels the pairs, and its scores are kept as ratings."""
    from rewardlab.evaluate.relevance import load_relevance_scorer

    write_prompts(tmp_path / "prefs.jsonl")
    args = ["sample-pairs", "--policy", str(tiny_decoder_dir), "--scorer", "r3"]
    args += ["--data", str(tmp_path / "prefs.jsonl"), "--split", "all", "--prompts", "4", "--n", "6"]
    args += ["--accept", "4", "--max-new-tokens", "8"]
    args += ["--precision", "fp32", "--output", str(tmp_path / "r3.jsonl")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "r3.jsonl").read_text().splitlines()]
    assert rows and all(r["chosen_rating"] > r["rejected_rating"] for r in rows)
    r3 = load_relevance_scorer("minilm")
    assert r3.score([r["prompt"] for r in rows], [r["chosen"] for r in rows]) == pytest.approx(
        [r["chosen_rating"] for r in rows], abs=1e-5
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "exactly one of a reward model and a scorer"),
        (["--scorer", "judge"], "compares two replies"),
        (["--scorer", "r3", "--direction", "1,0"], "direction needs a multi-attribute reward model"),
        (["--scorer", "nope"], "nope"),
    ],
)
def test_sample_pairs_refuses_a_reward_it_cannot_use_before_sampling(tiny_decoder_dir, tmp_path, extra, message):
    write_prompts(tmp_path / "prefs.jsonl")
    args = ["sample-pairs", "--policy", str(tiny_decoder_dir), "--data", str(tmp_path / "prefs.jsonl"), "--n", "4"]
    result = CliRunner().invoke(app, [*args, "--accept", "2", "--output", str(tmp_path / "x.jsonl"), *extra])
    assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "x.jsonl").exists()
