"""One suite over every registered objective: the contract the trainer relies on.

The suite reads the registry, so an objective added as a module of ``rewardlab.objectives`` is
tested here without this file changing; its known-answer tests live in its own test file.
"""

import pkgutil
import sys

import pytest
import torch

import rewardlab.objectives
from rewardlab.data.records import PreferencePair
from rewardlab.data.split import Splits
from rewardlab.objectives import get_objective, objective_names
from rewardlab.objectives.registry import dummy_batch
from rewardlab.training.batching import trainable_pairs


def test_every_module_of_the_package_is_found_without_an_import_list():
    """The first lookup imports every module of ``rewardlab.objectives``, each of which registers its
    objectives; at least one objective per family module."""
    names = objective_names()
    modules = [m.name for m in pkgutil.iter_modules(rewardlab.objectives.__path__, "rewardlab.objectives.")]
    assert modules and all(m in sys.modules for m in modules)
    families = {get_objective(n).fn.__module__ for n in names}
    assert "rewardlab.objectives.bradley_terry" in families and families <= set(modules)


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
        "user": dummy_batch(objective, {}, size=5).get("user"),
    }, chosen


@pytest.mark.parametrize("name", objective_names())
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


def tied_batch(name: str) -> tuple[dict, list[torch.Tensor]]:
    """One pair labelled as a tie at equal rewards, and nothing else to learn from it: margin 0, no
    strength, no ratings (NaN); and the reward tensors gradients reach."""
    size = get_objective(name).outputs({})
    shape = (1,) if size == 1 else (1, size)
    chosen = torch.full(shape, 0.3, requires_grad=True)
    rejected = torch.full(shape, 0.3, requires_grad=True)
    unrated = torch.full(shape, float("nan"))
    batch = {
        "chosen": chosen,
        "rejected": rejected,
        "tie": torch.tensor([True]),
        "margin": torch.zeros(1),
        "strength": torch.full((1,), float("nan")),
        "chosen_rating": unrated,
        "rejected_rating": unrated,
        "user": dummy_batch(get_objective(name), {}, size=1).get("user"),
    }
    return batch, [chosen, rejected]


@pytest.mark.parametrize("name", [n for n in objective_names() if get_objective(n).pairwise])
def test_a_tie_is_learnt_as_a_tie_or_left_out_of_training(name):
    """A tie says neither reply is better, so at equal rewards it must push neither reward. An
    objective taking ``tie`` declares it learns ties that way (gradient 0 there); for any other the
    training data path leaves tied pairs out and says how many. Bradley-Terry's tie target ½ gives
    ∂/∂r_c [-½ log σ(d) - ½ log σ(-d)] = -½σ(-d) + ½σ(d) = 0 at d = 0, while a tie read as a
    preference gives -σ(-0) = -0.5 (``adaptive_margin`` before ties were a declared capability)."""
    objective = get_objective(name)
    tie, plain = PreferencePair("q", "a", "b", tie=True), PreferencePair("q", "c", "d")
    printed: list[str] = []
    kept = trainable_pairs(objective, Splits(train=[tie, plain], validation=[tie]), printed.append)
    if any(p.tie for p in kept.train):
        batch, rewards = tied_batch(name)
        objective(batch).losses.sum().backward()
        assert objective.uses_ties
        assert all(r.grad.abs().max().item() < 1e-7 for r in rewards)
    else:
        assert not objective.uses_ties and kept.train == [plain] and kept.validation == []
        assert printed == [f"2 tie-labelled pairs left out: objective {name!r} cannot learn from ties"]


def test_data_of_ties_only_is_refused_for_an_objective_that_cannot_learn_them():
    tie = PreferencePair("q", "a", "b", tie=True)
    with pytest.raises(ValueError, match="all 1 training pairs are tie-labelled"):
        trainable_pairs(get_objective("adaptive_margin"), Splits(train=[tie]), print)
    kept = Splits(train=[tie])
    assert trainable_pairs(get_objective("bradley_terry"), kept, print) is kept
