"""Policy training over several processes (``accelerate launch``): each takes its share of every batch.

The update is the one process's with the same global batch: each process's objective is the weighted
sum of its pairs' losses over the global batch size, and the gradients are summed, by
:func:`rewardlab.training.compute.sum_gradients` when every process holds the whole policy, or by the
engine when the launch shards it (``training/sharding.py``, ``training/deepspeed_zero.py``). Losses
computed per pair allow this split; a loss that compares the pairs of a batch with each other (MaxMin
DPO's groups) would see only a share, and is refused.

The per-pair tables computed before training (the reference's log-probabilities, a guide's token
rewards) are read the same way: each process reads its share of every first-epoch batch, with the
rows beside it that its training pass will have, then every process receives every row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from rewardlab.models.logprobs import PairLogps, PairTokens
from rewardlab.models.reference import cached_reference_logps
from rewardlab.policy.registry import PolicyLoss
from rewardlab.training.sharding import Sharding


@dataclass(frozen=True)
class Processes:
    """This process's place among those training together (rank 0 of 1 alone)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Processes:
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, batch: list[int]) -> list[int]:
        """This process's pairs of a global batch (every process gets one when the batch has enough)."""
        return batch[self.rank :: self.world]

    def total(self, values: Tensor) -> Tensor:
        """The sum over the processes of each one's ``values`` (``values`` itself in a process alone)."""
        if self.world > 1:
            values = values.clone()
            dist.all_reduce(values)
        return values

    def largest(self, value: int, device: torch.device) -> int:
        """The largest of the processes' ``value``."""
        if self.world == 1:
            return value
        tensor = torch.tensor([value], device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())


def first_visit_logps(
    model: torch.nn.Module,
    tokens: PairTokens,
    pad_id: int,
    batches: list[list[int]],
    max_row_tokens: int | None,
    processes: Processes,
) -> PairLogps:
    """``model``'s log-probabilities of the pairs of ``batches`` (NaN rows elsewhere), on every process:
    each reads its share of each batch in one pass, as it trains on them; the rows are then summed across
    processes, each row having been read by one. Every process runs one pass per batch (a sharded model's
    pass is a collective): a process with no share of a batch reads a pair and drops it."""
    device = next(model.parameters()).device
    parts: list[tuple[list[int], PairLogps]] = []
    for batch in batches:
        share = processes.share(batch)
        logps = cached_reference_logps(
            model, tokens.select(share or batch[:1]), pad_id, None, len(batch), max_row_tokens
        )
        if share:
            parts.append((share, logps.logps))
    read = torch.zeros(len(tokens))
    for rows, _ in parts:
        read[rows] = 1.0
    read = processes.total(read.to(device)).cpu() > 0

    def table(name: str) -> Tensor:
        """One field's rows from every process: token-level fields padded to the widest reply."""
        local = [(rows, getattr(logps, name).float()) for rows, logps in parts]
        shape: tuple[int, ...] = (len(tokens),)
        if "token" in name:
            shape += (processes.largest(max((v.shape[1] for _, v in local), default=0), device),)
        out = torch.zeros(shape)
        for rows, values in local:
            if values.dim() == 2:
                out[rows, : values.shape[1]] = values
            else:
                out[rows] = values
        out = processes.total(out.to(device)).cpu()
        if name.endswith("_mask"):
            return out > 0
        out[~read] = float("nan")
        return out

    return PairLogps(*(table(name) for name in PairLogps.__dataclass_fields__))


def split_problems(loss: PolicyLoss, batch_pairs: int, processes: Processes, sharding: Sharding | None) -> list[str]:
    """Why this run cannot be split across the launch's processes as asked (none: it can)."""
    found = []
    if sharding is not None and processes.world == 1:
        found.append(f"{sharding.name} shards across processes, and this launch started one")
    if processes.world == 1:
        return found
    if loss.couples_pairs:
        found.append(
            f"policy loss {loss.name!r} compares the pairs of a batch with each other, so a batch cannot be "
            f"split across processes: train it in one process (this launch started {processes.world})"
        )
    if batch_pairs < processes.world:
        found.append(
            f"batch_pairs must be at least the number of processes ({processes.world}; got {batch_pairs} pairs "
            "a step): each process trains on its share of every batch"
        )
    return found
