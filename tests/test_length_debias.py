"""Length-debiased reward models (issue 29): balanced training data, ODIN's length head, and the
post-hoc removal of the reward's length trend."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import rewardlab
from rewardlab.cli import app
from rewardlab.data.length_balance import balance_length, length_balanced_weights
from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.data_split import load_pairs
from rewardlab.evaluate.length_removal import LengthRemovedScorer, evaluate_length_removed
from rewardlab.evaluate.metrics import pairwise_correct
from rewardlab.models.reward_model import RewardModel
from rewardlab.objectives import get_objective
from rewardlab.objectives.odin import pearson
from rewardlab.rewards.transforms import fit_length_regression, remove_length
from rewardlab.training.config import ConfigError, load_config
from rewardlab.training.reply_lengths import keep_first_outputs

# -- 1. length-balanced training data ------------------------------------------------------------------


def test_length_balanced_weights_on_a_hand_made_set() -> None:
    """Three chosen-longer pairs (weights 1, 1, 2: W₊ = 4), one chosen-shorter (W₋ = 2), one of equal
    lengths and one tie. Each group must weigh (4 + 2)/2 = 3: the longer ones × 3/4, the shorter × 3/2:
    0.75, 0.75, 1.5, 3; equal and tie keep 1. Total 8 before and after."""
    pairs = [
        PreferencePair("q", "long reply", "short"),
        PreferencePair("q", "longer one", "tiny"),
        PreferencePair("q", "long again", "small", weight=2.0),
        PreferencePair("q", "no", "a much longer reply", weight=2.0),
        PreferencePair("q", "same", "size"),
        PreferencePair("q", "a", "a longer tie", tie=True),
    ]
    assert length_balanced_weights(pairs) == [0.75, 0.75, 1.5, 3.0, 1.0, 1.0]
    balanced = balance_length(pairs)
    assert [p.weight for p in balanced] == [0.75, 0.75, 1.5, 3.0, 1.0, 1.0]
    assert sum(p.weight for p in balanced) == sum(p.weight for p in pairs) == 8
    assert [p.chosen for p in balanced] == [p.chosen for p in pairs]  # nothing else changed


def test_balancing_needs_both_groups() -> None:
    with pytest.raises(ValueError, match=r"data\.balance_length: the training pairs need both"):
        length_balanced_weights([PreferencePair("q", "long reply", "short")])


def test_balance_length_is_a_config_key() -> None:
    assert load_config(None, ["data.balance_length=true"]).data.balance_length is True
    with pytest.raises(ConfigError, match="balance_length"):
        load_config(None, ["data.balance_length=maybe"])


def test_a_training_run_balances_or_says_why_it_cannot(tiny_encoder_dir, tmp_path) -> None:
    """The key reaches the trainer: data whose chosen reply is always the longer cannot be balanced,
    and the run stops before building a model, naming the key."""
    rows = [{"prompt": f"q{i}", "chosen": "a long reply " * (i % 3 + 2), "rejected": "short"} for i in range(30)]
    data = tmp_path / "longer.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"data\.balance_length"):
        rewardlab.train(
            data=str(data), backbone=str(tiny_encoder_dir), output_dir=tmp_path / "run", **{"data.balance_length": True}
        )


# -- 2. ODIN: a length head dropped from the finished model ---------------------------------------------


def test_odin_loss_exact_values() -> None:
    """r_Q = 0 everywhere (constant: ρ(r_Q, L) = 0) and r_L = L exactly (ρ(r_L, L) = 1). Both pairs
    have (r_Q + r_L)_c − (r_Q + r_L)_r = 1, so each loss is log(1 + e⁻¹) + 1·(|0| − 1) = 0.31326 − 1."""
    chosen = torch.tensor([[0.0, 2.0], [0.0, 4.0]])
    rejected = torch.tensor([[0.0, 1.0], [0.0, 3.0]])
    batch = {
        "chosen": chosen,
        "rejected": rejected,
        "chosen_length": torch.tensor([2.0, 4.0]),
        "rejected_length": torch.tensor([1.0, 3.0]),
    }
    out = get_objective("odin")(batch)
    expected = math.log1p(math.exp(-1)) - 1
    assert torch.allclose(out.losses, torch.full((2,), expected), atol=1e-6)
    assert out.metrics["accuracy"].tolist() == [0.0, 0.0]  # r_Q ties: the served reward orders nothing
    plain = get_objective("odin")({"chosen": chosen, "rejected": rejected})  # no lengths: Bradley-Terry on the sum
    assert torch.allclose(plain.losses, torch.full((2,), math.log1p(math.exp(-1))), atol=1e-6)


def test_odin_is_registered_with_a_training_only_length_head() -> None:
    odin = get_objective("odin")
    assert odin.outputs({}) == 2 and odin.saved_outputs({}) == 1 and odin.head == "reward"
    assert {"chosen_length", "rejected_length"} <= set(odin.inputs)
    assert odin.check_values({"length_coef": -1}) == [
        "objective.args: length_coef must be ≥ 0 (got -1) (objective 'odin')"
    ]


def synthetic_replies(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features of n replies mixing a quality q, a length ℓ (independent of q) and noise through a fixed
    random matrix, so no single feature is either; returns (features, q, ℓ in characters)."""
    quality = torch.randn(n, generator=generator)
    length = 50 + 450 * torch.rand(n, generator=generator)
    standard = (length - 275) / 130
    latent = torch.stack(
        [quality, standard, torch.randn(n, generator=generator), torch.randn(n, generator=generator)], 1
    )
    mixing = torch.randn(4, 6, generator=torch.Generator().manual_seed(7))
    return latent @ mixing, quality, length


def fit_head(objective: str, outputs: int, steps: int = 400) -> torch.nn.Linear:
    """A linear head on the synthetic features, trained full-batch on 600 pairs labelled by
    Bradley-Terry with true utility q + ℓ_standardised: length explains half the label."""
    g = torch.Generator().manual_seed(0)
    xa, qa, la = synthetic_replies(600, g)
    xb, qb, lb = synthetic_replies(600, g)
    utility_gap = (qa - qb) + (la - lb) / 130
    a_wins = torch.rand(600, generator=g) < torch.sigmoid(utility_gap)
    pick = a_wins.unsqueeze(1)
    chosen, rejected = torch.where(pick, xa, xb), torch.where(pick, xb, xa)
    lengths = torch.where(a_wins, la, lb), torch.where(a_wins, lb, la)
    torch.manual_seed(0)
    head = torch.nn.Linear(6, outputs)
    optimiser = torch.optim.Adam(head.parameters(), lr=0.05)
    fn = get_objective(objective)
    for _ in range(steps):
        batch = {"chosen": head(chosen).squeeze(-1), "rejected": head(rejected).squeeze(-1)}
        batch |= {"chosen_length": lengths[0], "rejected_length": lengths[1]}
        loss = fn(batch).losses.mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return head


@pytest.fixture
def one_thread():
    """Tiny full-batch fits run ~8x faster on one thread than contending for a busy machine's cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_odin_quality_head_is_uncorrelated_with_length_where_bradley_terry_is_not(one_thread) -> None:
    """The paper's claim, on a known answer: the labels reward quality and length equally, so a plain
    Bradley-Terry reward learns q + ℓ (correlation with ℓ about 1/√2 ≈ 0.71), while ODIN's quality head
    carries q alone (correlation with ℓ near 0, with q near 1) on held-out replies, while its length
    head follows ℓ."""
    features, quality, length = synthetic_replies(2000, torch.Generator().manual_seed(99))
    plain_head, odin_head = fit_head("bradley_terry", 1), fit_head("odin", 2)
    with torch.no_grad():
        plain, odin = plain_head(features).squeeze(-1), odin_head(features)[:, 0]
    assert pearson(plain, length) > 0.6
    assert abs(pearson(odin, length)) < 0.1  # 0.67 for Bradley-Terry; -0.05 measured (in-sample: ~0)
    assert pearson(odin, quality) > 0.95
    assert pearson(odin_head(features)[:, 1].detach(), length) > 0.99


def write_pairs(path: Path, n: int = 48) -> Path:
    """Pairs whose chosen reply says "helpful", of random lengths either way."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        good = "helpful " + "word " * rng.randint(1, 12)
        bad = "rude " + "word " * rng.randint(1, 12)
        rows.append({"prompt": f"question {i % 6}", "chosen": good, "rejected": bad})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_odin_trains_balanced_and_saves_the_quality_head_alone(tiny_encoder_dir, tmp_path) -> None:
    """A run with ODIN and balanced data: the saved model has one output (the quality head) and loads
    as a plain reward model."""
    result = rewardlab.train(
        data=str(write_pairs(tmp_path / "pairs.jsonl")),
        backbone=str(tiny_encoder_dir),
        output_dir=tmp_path / "run",
        objective="odin",
        precision="fp32",
        progress=False,
        num_threads=1,
        max_steps=4,
        batch_size=8,
        eval_every=2,
        **{"data.balance_length": True},
    )
    model = RewardModel.from_pretrained(result.model_dir)
    assert model.model.config.num_labels == 1 and model.info.head == "reward" and model.info.objective == "odin"
    assert len(model.score(["q", "q"], ["helpful word", "rude word word"], precision="fp32")) == 2
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(x["loss"]) for x in lines)


def test_keeping_the_first_output_keeps_the_quality_reward(tiny_encoder_dir) -> None:
    """Cutting a two-output head to its first row leaves output 0 of every text as it was."""
    model = RewardModel.from_backbone(str(tiny_encoder_dir), outputs=2)
    ids = model.encode(["q", "q"], ["a reply", "another, longer reply"]).ids
    both = model.outputs_ids(ids, precision="fp32")
    keep_first_outputs(model, 1)
    assert model.model.config.num_labels == 1
    assert torch.equal(model.outputs_ids(ids, precision="fp32"), both[:, 0])


# -- 3. the reward's length trend removed after training ------------------------------------------------


def test_length_regression_exact_values() -> None:
    """r = (1, 2, 4) at ℓ = (0, 1, 2): mean ℓ = 1, mean r = 7/3, Σ(ℓ−1)(r−7/3) = 4/3 + 0 + 5/3 = 3,
    Σ(ℓ−1)² = 2, so b = 3/2 and a = 7/3 − 3/2 = 5/6; r − bℓ = (1, 0.5, 1)."""
    rewards, lengths = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0.0, 1.0, 2.0])
    fit = fit_length_regression(rewards, lengths)
    assert fit.slope == pytest.approx(1.5) and fit.intercept == pytest.approx(5 / 6)
    assert remove_length(rewards, lengths, fit.slope).tolist() == [1.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="two replies of different lengths"):
        fit_length_regression(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 3.0]))


class LengthLovingScorer:
    """A reward with a known answer: 1 for a reply that says "helpful", plus 0.1 per character."""

    def score(self, prompts, replies) -> list[float]:
        return [("helpful" in r) + 0.1 * len(r) for r in replies]


def test_removing_the_fitted_trend_removes_the_length_bias() -> None:
    """Fitted over replies whose quality is independent of length, b ≈ 0.1 (the scorer's own slope), and
    r − bℓ orders pairs by quality alone: right whether the chosen reply is the longer or the shorter,
    where the raw reward fails every pair whose chosen reply is 10 or more characters shorter."""
    rng = random.Random(1)
    replies = [("helpful " if rng.random() < 0.5 else "rude ") + "x" * rng.randint(0, 60) for _ in range(400)]
    scorer = LengthLovingScorer()
    lengths = torch.tensor([float(len(r)) for r in replies])
    fit = fit_length_regression(torch.tensor(scorer.score([""] * 400, replies)), lengths)
    assert fit.slope == pytest.approx(0.1, abs=0.01)
    good = ["helpful " + "x" * k for k in (0, 40, 5, 30)]
    bad = ["rude " + "x" * k for k in (40, 0, 30, 5)]  # chosen shorter, longer, shorter, longer
    raw = pairwise_correct(scorer.score([""] * 4, good), scorer.score([""] * 4, bad))
    debiased = LengthRemovedScorer(scorer, fit.slope)
    fixed = pairwise_correct(debiased.score([""] * 4, good), debiased.score([""] * 4, bad))
    assert raw.tolist() == [0, 1, 0, 1] and fixed.tolist() == [1, 1, 1, 1]


def test_length_removed_command_fits_on_validation_and_reports_test(tiny_encoder_dir, tmp_path) -> None:
    """The slope the command reports is the least-squares slope of the model's rewards on the validation
    split's replies (recomputed here with numpy), and the test split is reported before and after."""
    data = str(write_pairs(tmp_path / "pairs.jsonl", n=120))
    model_dir = RewardModel.from_backbone(str(tiny_encoder_dir)).save_pretrained(tmp_path / "model")
    output = evaluate_length_removed(str(model_dir), data, precision="fp32", log=lambda _: None)
    validation = load_pairs(data, split="validation", log=lambda _: None)
    replies = [p.chosen for p in validation] + [p.rejected for p in validation]
    rewards = RewardModel.from_pretrained(model_dir).score(
        [p.prompt for p in validation] * 2, replies, precision="fp32"
    )
    assert output.fit.slope == pytest.approx(np.polyfit([len(r) for r in replies], rewards, 1)[0], rel=1e-6)
    assert output.after.overall.n == output.before.overall.n == len(load_pairs(data, split="test", log=lambda _: None))
    result = CliRunner().invoke(
        app, ["length-removed", str(model_dir), data, "--precision", "fp32", "--report", str(tmp_path / "report")]
    )
    assert result.exit_code == 0, result.output
    assert "| length removed |" in result.output and (tmp_path / "report" / "eval.json").exists()
    refused = CliRunner().invoke(app, ["length-removed", str(model_dir), data, "--fit-split", "test"])
    assert refused.exit_code != 0 and "fit the trend on pairs you do not report" in refused.output
