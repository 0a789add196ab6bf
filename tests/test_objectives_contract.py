"""One suite over every registered objective: the contract the trainer relies on."""

import pytest
import torch

from rewardlab.objectives import get_objective, objective_names

NEW = {
    "regression",
    "bt_regression",
    "davidson",
    "soft_bradley_terry",
    "adaptive_margin",
    "plackett_luce",
    "gpm",
    "multi_attribute_regression",
    "ensemble_bradley_terry",
}


def test_every_family_is_registered():
    assert set(objective_names()) >= NEW


def batch_for(name: str) -> tuple[dict, torch.Tensor]:
    """Every field the objective asks for, sized from its head, and the tensor gradients must reach."""
    objective = get_objective(name)
    size = objective.outputs({})
    g = torch.Generator().manual_seed(0)
    if "ranked" in objective.inputs:
        ranked = torch.randn(3, 4, generator=g, requires_grad=True)
        mask = torch.tensor([[True] * 4, [True] * 4, [True, True, True, False]])
        return {"ranked": ranked, "ranked_mask": mask}, ranked
    shape = (5,) if size == 1 else (5, size)
    chosen = torch.randn(shape, generator=g, requires_grad=True)
    return {
        "chosen": chosen,
        "rejected": torch.randn(shape, generator=g),
        "margin": torch.rand(5, generator=g),
        "tie": torch.tensor([False, True, False, False, False]),
        "strength": 0.5 + 0.5 * torch.rand(5, generator=g),
        "chosen_rating": torch.randn(shape, generator=g),
        "rejected_rating": torch.randn(shape, generator=g),
    }, chosen


@pytest.mark.parametrize("name", sorted(NEW))
def test_objective_returns_per_item_losses_accuracy_and_gradients(name):
    torch.manual_seed(0)
    batch, leaf = batch_for(name)
    objective = get_objective(name)
    assert objective.summary  # the first docstring line, shown by `rewardlab objectives`
    out = objective(batch)
    items = leaf.shape[0]
    assert out.losses.shape == (items,) and torch.isfinite(out.losses).all()
    accuracy = out.metrics["accuracy"]
    assert accuracy.shape == (items,) and accuracy.dtype.is_floating_point
    assert ((accuracy >= 0) & (accuracy <= 1)).all()
    assert not any(m.requires_grad for m in out.metrics.values())
    out.losses.sum().backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0
