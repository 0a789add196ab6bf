"""The model the forward and backward passes run on: a bf16 copy of the fp32 weights, or the weights.

On CPUs with AMX, bf16 matrices multiply about 3x faster than fp32, yet bf16 autocast trains only
about 1.3x faster: it casts every weight again at every forward and back-propagates through the
casts, and keeps activations in fp32. Here the passes run on a copy of the model held in bf16
(the scalar head stays fp32), while the optimiser keeps the fp32 weights and its moments: after
each forward pass the bf16 gradients are added into fp32 gradients, and after each optimiser step
the fp32 weights are copied into the bf16 copy. Updates much smaller than a weight, which bf16 would
round away, accumulate in fp32 as in ordinary mixed-precision training.

Training on CPUs runs attention as matrix products: with a mask, PyTorch's fused CPU attention has
a fast forward but a slow backward. MiniLM, 8 pairs a step: rewardlab's defaults at 23.9 pairs/s,
15.4 with fused attention (`benchmarks/ablation.py`). Encoders use transformers' eager attention,
decoders ``models.attention`` (the same products without copying shared key/value heads, keeping
one copy of the probabilities).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from rewardlab.models import attention
from rewardlab.models.reward_model import RewardModel, bf16_copy


class ComputeWeights:
    """Pairs an fp32 ``master`` module (saved, checkpointed, optimised) with ``module``, the one the
    training passes run on: a bf16 copy of it when ``precision == "bf16"``, else ``master`` itself.

    Works for any module (reward models through :class:`ComputeModel`, causal-LM policies directly).
    Only weights that require gradients are paired, so frozen weights (a LoRA base) are never copied back.
    """

    def __init__(self, master: torch.nn.Module, precision: str) -> None:
        if precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be bf16 or fp32 here (got {precision!r}); resolve 'auto' first")
        self.master = master
        self.module = bf16_copy(master) if precision == "bf16" else master
        self._pairs = [
            (m, c)
            for m, c in zip(master.parameters(), self.module.parameters(), strict=True)
            if m is not c and m.requires_grad
        ]

    def accumulate_gradients(self) -> None:
        """Add the copy's gradients into the fp32 gradients and clear them (a no-op without a copy)."""
        for master, compute in self._pairs:
            if compute.grad is None:
                continue
            if master.grad is None:
                master.grad = compute.grad.float()
            else:
                master.grad.add_(compute.grad)
            compute.grad = None

    @torch.no_grad()
    def refresh(self) -> None:
        """Copy the fp32 weights into the bf16 copy (after every optimiser step)."""
        for master, compute in self._pairs:
            compute.copy_(master)

    def backward(self, loss: torch.Tensor, last: bool) -> None:
        """Add this pass's gradient into the fp32 gradients."""
        loss.backward()
        self.accumulate_gradients()

    def step(self, optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float | None) -> float:
        """``optimizer_step`` on the fp32 weights, then refresh the copy; the norm before clipping."""
        norm = optimizer_step(list(self.master.parameters()), optimizer, scheduler, max_grad_norm)
        self.refresh()
        return norm

    def release(self) -> None:
        """Drop the copy."""
        self.module = self.master
        self._pairs = []


def optimizer_step(
    params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float | None
) -> float:
    """One update of the weights of ``params`` that train: their gradients summed across processes when
    several train together (``sum_gradients``), clipped to ``max_grad_norm`` (None: not), AdamW's and the
    schedule's step (if any), the gradients cleared. Returns the norm before clipping."""
    trained = [p for p in params if p.requires_grad]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        sum_gradients(trained)
    with_grad = [p for p in trained if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(with_grad, max_grad_norm if max_grad_norm is not None else math.inf)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


def sum_gradients(params: list[torch.nn.Parameter]) -> None:
    """Data parallelism: sum the gradients of the weights that train across processes, in one flat buffer
    (a process that ran no pass contributes zeros); every process then takes the same step."""
    trained = [p for p in params if p.requires_grad]
    for p in trained:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in trained])
    dist.all_reduce(flat)
    offset = 0
    for p in trained:
        p.grad.copy_(flat[offset : offset + p.numel()].view_as(p.grad))
        offset += p.numel()


def use_training_attention(module: torch.nn.Module, shares_prefix: bool, device: torch.device) -> None:
    """On CPUs, attention as matrix products (module docstring): eager for encoders, ``models.attention``
    for decoders whose pairs share a prompt."""
    if device.type == "cpu" and module.config._attn_implementation == "sdpa":
        module.set_attn_implementation(attention.NAME if shares_prefix else "eager")


def trained_weights(model: RewardModel) -> list[torch.nn.Parameter]:
    """The weights the optimiser updates: the model's, and a pluralistic model's user table."""
    users = list(model.users.parameters()) if model.users is not None else []
    return [*model.model.parameters(), *users]


class ComputeModel:
    """Pairs the fp32 ``master`` reward model (saved, checkpointed, optimised) with ``model``, the one
    the training passes run on: a bf16 copy when ``precision == "bf16"``, else ``master`` itself."""

    def __init__(self, master: RewardModel, precision: str, device: torch.device) -> None:
        self.master = master
        self._attention = master.model.config._attn_implementation
        self._weights = ComputeWeights(master.model, precision)
        if precision == "bf16":
            self.model = RewardModel(self._weights.module, master.tokenizer, master.info)
        else:
            self.model = master
        use_training_attention(self.model.model, master.shares_prefix, device)

    def accumulate_gradients(self) -> None:
        """Add the copy's gradients into the fp32 gradients and clear them (a no-op without a copy)."""
        self._weights.accumulate_gradients()

    @property
    def trained(self) -> RewardModel:
        """The model whose weights the optimiser updates: the fp32 master."""
        return self.master

    def refresh(self) -> None:
        """Copy the fp32 weights into the bf16 copy (after every optimiser step)."""
        self._weights.refresh()

    def gather(self) -> None:
        """Nothing to do: the master holds the trained weights (``ShardedCompute`` gathers its slices)."""

    def backward(self, loss: torch.Tensor, last: bool) -> None:
        """Add this pass's gradient into the fp32 gradients."""
        self._weights.backward(loss, last)

    def step(self, optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float | None) -> float:
        """``optimizer_step`` on the fp32 weights and a pluralistic model's user table, then refresh the
        copy; the norm before clipping."""
        norm = optimizer_step(trained_weights(self.master), optimizer, scheduler, max_grad_norm)
        self.refresh()
        return norm

    def release(self) -> None:
        """Give the master its attention back for scoring, and drop the copy."""
        self.master.model.set_attn_implementation(self._attention)
        self.model = self.master
        self._weights.release()
