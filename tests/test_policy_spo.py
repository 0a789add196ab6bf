"""SPO (Li et al. 2024): the degraded replies, the preference-degree loss, and a tiny CLI run.

The shared example: one chosen reply of three tokens, β = 1, K = 2 degraded variants.

    log π_ref(y_t) = [-1, -3, -2]  → surprisal [1, 3, 2]: key order token 1, token 2, token 0
    ρ_t = [0.5, 1.0, -0.5]        → variant k drops ⌊k·3/3⌋ = k most key tokens:
    r_0 = 0.5 + 1 − 0.5 = 1,  r_1 = 0.5 − 0.5 = 0 (drops token 1),  r_2 = 0.5 (drops tokens 1, 2)
    L_deg = ½·[(log(e¹ + e⁰ + e^0.5) − 1) + (log(e⁰ + e^0.5) − 0)] = ½·(0.6802697 + 0.9740770) = 0.8271733
    DPO with ρ_w = 1, ρ_l = −1: ℓ(2) = log(1 + e⁻²) = 0.1269280
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.policy import get_policy_loss, policy_loss_names
from rewardlab.policy.losses import degraded_logratios, dpo_loss, spo_loss

torch.set_num_threads(1)

REFERENCE = torch.tensor([[-1.0, -3.0, -2.0]])
RHO = torch.tensor([[0.5, 1.0, -0.5]])
MASK = torch.ones(1, 3, dtype=torch.bool)


def example(rho: torch.Tensor = RHO) -> dict[str, torch.Tensor]:
    return {
        "chosen_logps": (REFERENCE + rho).sum(-1),
        "rejected_logps": torch.tensor([-1.0]),
        "reference_chosen_logps": REFERENCE.sum(-1),
        "reference_rejected_logps": torch.tensor([0.0]),
        "chosen_token_logps": REFERENCE + rho,
        "reference_chosen_token_logps": REFERENCE,
        "chosen_token_mask": MASK,
    }


def random_batch(n: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch: dict[str, torch.Tensor] = {}
    for side, width in (("chosen", 6), ("rejected", 4)):
        mask = torch.arange(width)[None, :] < torch.randint(1, width + 1, (n,), generator=g)[:, None]
        tokens, reference = -torch.rand((n, width), generator=g) * 3, -torch.rand((n, width), generator=g) * 3
        batch |= {f"{side}_token_mask": mask, f"{side}_token_logps": tokens, f"reference_{side}_token_logps": reference}
        batch |= {f"{side}_logps": (tokens * mask).sum(-1), f"reference_{side}_logps": (reference * mask).sum(-1)}
    return batch


def test_degraded_variants_hand_computed():
    """Variant k drops the k most surprising tokens: [1, 0, 0.5] (see the module docstring)."""
    assert degraded_logratios(RHO, -REFERENCE, MASK, levels=2).tolist() == [[1.0, 0.0, 0.5]]
    # n = 5, K = 2: ⌊0⌋, ⌊5/3⌋ = 1, ⌊10/3⌋ = 3 tokens dropped; key scores put token 4 first, then 3, 2...
    ones = torch.ones(1, 5)
    assert degraded_logratios(ones, torch.arange(5.0)[None], torch.ones(1, 5, dtype=torch.bool), 2).tolist() == [
        [5.0, 4.0, 2.0]
    ]


def test_degraded_variants_ignore_padding_and_never_empty_a_reply():
    """Padded entries (NaN here) change nothing; the last variant keeps at least one token."""
    padded = torch.cat([RHO, torch.full((1, 2), float("nan"))], dim=-1)
    scores = torch.cat([-REFERENCE, torch.full((1, 2), 99.0)], dim=-1)
    mask = torch.cat([MASK, torch.zeros(1, 2, dtype=torch.bool)], dim=-1)
    assert degraded_logratios(padded, scores, mask, 2).tolist() == [[1.0, 0.0, 0.5]]
    one = degraded_logratios(torch.tensor([[2.0]]), torch.tensor([[1.0]]), torch.ones(1, 1, dtype=torch.bool), 3)
    assert one.tolist() == [[2.0, 2.0, 2.0, 2.0]]


def test_spo_hand_computed():
    """λ = 1: ℓ(2) + L_deg = 0.1269280 + 0.8271733; the rewards are DPO's β·ρ."""
    out = spo_loss(**example(), beta=1.0, degree_weight=1.0, levels=2)
    assert out.extras["degree_loss"].tolist() == pytest.approx([0.8271733], abs=1e-6)
    assert out.losses.tolist() == pytest.approx([0.1269280 + 0.8271733], abs=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([1.0]) and out.rejected_rewards.tolist() == pytest.approx(
        [-1.0]
    )


def test_spo_without_the_degree_loss_is_dpo():
    """λ = 0 is exactly DPO, whatever the token log-probabilities; with sides="both" too."""
    batch = random_batch()
    sequence = {
        k: batch[k] for k in ("chosen_logps", "rejected_logps", "reference_chosen_logps", "reference_rejected_logps")
    }
    expected = dpo_loss(**sequence, beta=0.3).losses
    for sides in ("chosen", "both"):
        out = get_policy_loss("spo")(batch, beta=0.3, degree_weight=0.0, levels=3, sides=sides)
        assert torch.equal(out.losses, expected)


def test_the_degree_loss_prefers_the_more_complete_reply():
    """The same lift (so the same DPO loss) on the key tokens, which the degraded replies lose, gives
    a lower degree loss than on the glue tokens they keep; its gradient lifts the key tokens only."""
    on_key = spo_loss(**example(torch.tensor([[0.0, 1.0, 0.0]])), beta=1.0, degree_weight=1.0)
    on_glue = spo_loss(**example(torch.tensor([[1.0, 0.0, 0.0]])), beta=1.0, degree_weight=1.0)
    assert on_key.chosen_rewards.item() == on_glue.chosen_rewards.item()
    assert on_key.extras["degree_loss"].item() < on_glue.extras["degree_loss"].item()
    # the order complete ≻ degraded is learnt: a large lift on the key tokens drives the loss to 0
    far = spo_loss(**example(torch.tensor([[0.0, 20.0, 20.0]])), beta=1.0, degree_weight=1.0)
    assert far.extras["degree_loss"].item() < 1e-6

    tokens = (REFERENCE + RHO).clone().requires_grad_(True)
    batch = example() | {"chosen_token_logps": tokens}
    spo_loss(**batch, beta=1.0, degree_weight=1.0).losses.sum().backward()
    # (the DPO term reads the sequence sums, so this is the degree term's gradient alone)
    assert tokens.grad[0, 1] < 0 and tokens.grad[0, 2] < 0  # the removed key tokens are lifted
    assert tokens.grad[0, 0].item() == pytest.approx(0.0, abs=1e-6)  # every variant keeps token 0


def test_spo_is_registered_with_what_it_needs_and_refuses_bad_options():
    assert "spo" in policy_loss_names()
    loss = get_policy_loss("spo")
    assert loss.needs_reference and loss.token_level and not loss.needs_token_rewards
    assert loss.options == {"beta": 0.1, "degree_weight": 0.1, "levels": 2, "sides": "chosen"}
    for bad, match in (
        ({"degree_weight": -1.0}, "degree_weight"),
        ({"levels": 0}, "levels"),
        ({"sides": "x"}, "sides"),
    ):
        with pytest.raises(ValueError, match=match):
            spo_loss(**example(), **bad)


def test_spo_is_listed_and_runs_from_the_cli(tiny_decoder_dir, tmp_path):
    listed = CliRunner().invoke(app, ["policy-losses"], catch_exceptions=False)
    assert listed.exit_code == 0 and "spo" in listed.output and "degree_weight" in listed.output
    rows = [
        {"prompt": f"Tell me about {t} ({i}).", "chosen": f"Sure! Here is something about {t}.", "rejected": "No."}
        for i, t in enumerate(["bread", "tea", "rain", "cats", "snow", "bikes"] * 2)
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "spo"
    args = ["dpo", "--data", str(tmp_path / "pairs.jsonl"), "--policy", str(tiny_decoder_dir), "--output", str(out)]
    args += ["--loss", "spo", "train.steps=4", "train.batch_pairs=8", "train.lr=3e-3", "num_threads=1"]
    args += ["train.loss_args.degree_weight=0.5", "train.loss_args.sides=both", "eval.kl_samples=0"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("degree_loss" in step for step in steps)
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert json.loads((out / "report.json").read_text())["loss"] == "spo"
