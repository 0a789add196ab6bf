"""Linear probing before fine-tuning (LP-FT): start training from a fitted head, not a random one.

A freshly initialised head sends random gradients into the pretrained backbone for the first
hundreds of steps, and on a small preference set those steps distort features the head could have
used as they were. LP-FT (Kumar et al., 2022, "Fine-Tuning can Distort Pretrained Features and
Underperform Out-of-Distribution") first fits the head alone on the frozen backbone's features,
then fine-tunes everything from there. For a Bradley-Terry reward head r(x) = w·φ(x) + b the
probe is L2-regularised logistic regression on feature differences:

    w* = argmin_w  −(1/Σ_i v_i) Σ_i v_i log σ(w·(φ(x_i^c) − φ(x_i^r)))  +  λ‖w‖²

(v_i the pair weights; b cancels in every difference and is set to 0), with λ chosen by the
Bradley-Terry loss on the validation pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from accelerate import Accelerator

from rewardlab.models.reward_model import RewardModel, scalar_head
from rewardlab.objectives import Objective
from rewardlab.objectives.bradley_terry import bradley_terry_loss
from rewardlab.training.batching import EncodedPairs

L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2)


@dataclass(frozen=True)
class ProbeResult:
    l2: float
    train_loss: float
    validation_loss: float | None

    def __str__(self) -> str:
        held_out = f", validation loss {self.validation_loss:.4f}" if self.validation_loss is not None else ""
        return f"training loss {self.train_loss:.4f}{held_out}, L2 {self.l2:g}"


def probe_applies(objective: Objective) -> bool:
    """The probe fits one reward per reply from ordered pairs: a scalar head trained on pairs, or the first
    output of a head whose other outputs are for training only (``Objective.kept_outputs``, ODIN)."""
    return objective.head == "reward" and objective.saved_outputs({}) == 1 and "ranked" not in objective.inputs


def pair_feature_differences(
    model: RewardModel, data: EncodedPairs, precision: str, accelerator: Accelerator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """φ(chosen) − φ(rejected) per ordered pair (ties have no order and are left out), and the pairs' weights."""
    keep = [i for i in range(len(data)) if not data.tie[i]]
    ids = [data.chosen[i] for i in keep] + [data.rejected[i] for i in keep]
    features = _head_inputs(model, ids, precision, accelerator)
    n = len(keep)
    return features[:n] - features[n:], torch.tensor([data.weight[i] for i in keep], dtype=torch.float32)


def _head_inputs(
    model: RewardModel, ids: list[list[int]], precision: str, accelerator: Accelerator | None
) -> torch.Tensor:
    """φ of every sequence. With several processes each computes every world-th one and all gather them:
    the same features, bit for bit (scoring does not depend on what else is in a batch), in 1/world of the time."""
    world = accelerator.num_processes if accelerator is not None else 1
    if world == 1:
        return model.outputs_ids(ids, precision=precision, head_inputs=True)
    rank = accelerator.process_index
    mine = model.outputs_ids(ids[rank::world], precision=precision, head_inputs=True)
    padded = accelerator.pad_across_processes(mine.to(accelerator.device), dim=0)
    gathered = accelerator.gather(padded).cpu().view(world, *padded.shape)
    features = torch.empty(len(ids), gathered.shape[-1])
    for r in range(world):
        features[r::world] = gathered[r, : len(range(r, len(ids), world))]
    return features


def probe_loss(w: torch.Tensor, diffs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The weighted mean Bradley-Terry loss of the linear reward w·φ (the objective's own loss)."""
    gaps = diffs @ w
    return (weights * bradley_terry_loss(gaps, torch.zeros_like(gaps)).losses).sum() / weights.sum()


def fit_linear_bt(diffs: torch.Tensor, weights: torch.Tensor, l2: float) -> torch.Tensor:
    """w* of the module docstring, by L-BFGS (the objective is convex)."""
    w = torch.zeros(diffs.shape[1], dtype=torch.float64, requires_grad=True)
    diffs, weights = diffs.double(), weights.double()
    optimiser = torch.optim.LBFGS([w], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = probe_loss(w, diffs, weights) + l2 * (w @ w)
        loss.backward()
        return loss

    optimiser.step(closure)
    return w.detach().float()


def probe_head(
    model: RewardModel,
    train: EncodedPairs,
    validation: EncodedPairs | None,
    precision: str = "auto",
    accelerator: Accelerator | None = None,
) -> ProbeResult:
    """Set ``model``'s reward head (its first output) to the probe fitted on ``train`` (λ chosen on ``validation``; the
    smallest of the grid without one) and report the fit. With several processes (``accelerator``)
    they share the feature pass; each then fits the same head from the same features."""
    head = scalar_head(model.model)
    if head is None:
        raise ValueError("a linear probe needs a linear reward head")
    diffs, weights = pair_feature_differences(model, train, precision, accelerator)
    if not len(diffs):
        raise ValueError("a linear probe needs ordered (not tie-labelled) training pairs")
    held_out = pair_feature_differences(model, validation, precision, accelerator) if validation is not None else None
    if held_out is None or not len(held_out[0]):
        l2, score = L2_GRID[0], None
        w = fit_linear_bt(diffs, weights, l2)
    else:
        fits = {l2: fit_linear_bt(diffs, weights, l2) for l2 in L2_GRID}
        losses = {l2: float(probe_loss(w, *held_out)) for l2, w in fits.items()}
        l2 = min(losses, key=losses.__getitem__)
        w, score = fits[l2], losses[l2]
    with torch.no_grad():
        head.weight[:1].copy_(w[None].to(head.weight))  # the reward; further training-only outputs keep their init
        if head.bias is not None:
            head.bias[:1].zero_()
    return ProbeResult(l2, float(probe_loss(w, diffs, weights)), score)
