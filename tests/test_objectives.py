"""Objective maths against hand-computed values, and the registry's contract."""

import math

import pytest
import torch

from rewardlab.objectives import get_objective, objective_names, register_objective
from rewardlab.objectives.bradley_terry import bradley_terry_loss


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_bradley_terry_hand_computed():
    """r_c - r_r = 1 - 0 = 1 → loss = -log σ(1) = 0.31326; gap -2 → -log σ(-2) = 2.12693."""
    out = bradley_terry_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]))
    assert out.losses.tolist() == pytest.approx([0.3132617, 2.1269280], abs=1e-6)
    assert out.metrics["accuracy"].tolist() == [1.0, 0.0]


def test_margin_shifts_the_gap():
    """With m = 0.5: -log σ(1 - 0.5) = 0.47408."""
    out = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]), margin=torch.tensor([0.5]))
    assert out.losses.item() == pytest.approx(-log_sigmoid(0.5), abs=1e-6)
    unused = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]), margin=torch.tensor([0.5]), use_margin=False)
    assert unused.losses.item() == pytest.approx(-log_sigmoid(1.0), abs=1e-6)


def test_label_smoothing_is_the_conservative_mixture():
    """ε = 0.1, d = 2: 0.9·(-log σ(2)) + 0.1·(-log σ(-2)) = 0.9·0.12693 + 0.1·2.12693 = 0.32693."""
    out = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.0]), label_smoothing=0.1)
    assert out.losses.item() == pytest.approx(0.9 * 0.1269280 + 0.1 * 2.1269280, abs=1e-6)


def test_center_term_adds_squared_sum():
    """η = 0.01, r_c = 3, r_r = 1: -log σ(2) + 0.01·16 = 0.12693 + 0.16."""
    out = bradley_terry_loss(torch.tensor([3.0]), torch.tensor([1.0]), center_coef=0.01)
    assert out.losses.item() == pytest.approx(0.1269280 + 0.16, abs=1e-6)


def test_tie_is_minimised_at_equal_rewards():
    """A tied pair has target 1/2: the loss -½log σ(d) - ½log σ(-d) is smallest at d = 0 (log 2)."""
    gaps = torch.linspace(-3, 3, 61)
    out = bradley_terry_loss(gaps, torch.zeros_like(gaps), tie=torch.ones_like(gaps, dtype=torch.bool))
    assert gaps[out.losses.argmin()].item() == pytest.approx(0.0, abs=1e-6)
    assert out.losses.min().item() == pytest.approx(math.log(2), abs=1e-6)


def test_gradient_pushes_chosen_up_and_rejected_down():
    chosen = torch.tensor([0.0], requires_grad=True)
    rejected = torch.tensor([0.0], requires_grad=True)
    bradley_terry_loss(chosen, rejected).losses.sum().backward()
    assert chosen.grad.item() == pytest.approx(-0.5) and rejected.grad.item() == pytest.approx(0.5)


def test_registry_passes_batch_fields_and_options():
    objective = get_objective("Bradley-Terry")
    assert objective.inputs == ("chosen", "rejected", "margin", "tie")
    assert "label_smoothing" in objective.options
    batch = {"chosen": torch.tensor([1.0]), "rejected": torch.tensor([0.0]), "margin": None, "tie": None}
    assert objective(batch, label_smoothing=0.0).losses.item() == pytest.approx(0.3132617, abs=1e-6)


def test_registry_rejects_unknown_names_and_options_and_duplicates():
    with pytest.raises(ValueError, match=r"registered objectives: .*bradley_terry"):
        get_objective("no-such-loss")
    assert (
        get_objective("bradley_terry")
        .check_options({"smoothing": 0.1})[0]
        .startswith("objective 'bradley_terry' has no option 'smoothing'")
    )
    with pytest.raises(ValueError, match="already registered"):
        register_objective("bradley_terry")(bradley_terry_loss)
    assert "bradley_terry" in objective_names()
