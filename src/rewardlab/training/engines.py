"""The sharding engine a launch asked for (FSDP2 in ``sharding.py``, DeepSpeed in ``deepspeed_zero.py``),
and a reward model trained in its slices; policies use the engines directly (``policy/trainer.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from rewardlab.models.reward_model import RewardModel
from rewardlab.runs.checkpoint import TrainState
from rewardlab.training.compute import use_training_attention
from rewardlab.training.deepspeed_zero import DeepSpeedCompute
from rewardlab.training.sharding import FSDPCompute, ShardedCompute, Sharding, blocks_then_root, shard_units


def sharded_compute(
    whole: torch.nn.Module,
    sharding: Sharding,
    precision: str,
    device: torch.device,
    units: Callable[[torch.nn.Module], list[torch.nn.Module]] = blocks_then_root,
) -> ShardedCompute:
    """The engine the launch asked for, holding ``whole``'s slices (``units``: what FSDP gathers as one;
    DeepSpeed gathers ZeRO-3's weights module by module itself)."""
    if sharding.engine == "deepspeed":
        return DeepSpeedCompute(whole, sharding, precision, device)
    return FSDPCompute(whole, sharding, precision, device, units)


class ShardedRewardModel:
    """A reward model trained in slices, with ``ComputeModel``'s interface: ``model`` (the slices, which the
    passes run on and the optimiser updates) and ``master`` (whole on rank 0); the rest is the engine's."""

    def __init__(self, master: RewardModel, sharding: Sharding, precision: str, device: torch.device) -> None:
        if master.users is not None:
            raise ValueError("a pluralistic objective (one row per annotator) cannot be trained sharded yet")
        self.master = master
        self.engine = sharded_compute(master.model, sharding, precision, device, units=shard_units)
        use_training_attention(self.engine.module, master.shares_prefix, device)
        self.model = RewardModel(self.engine.module, master.tokenizer, master.info)

    @property
    def trained(self) -> RewardModel:
        """The model whose weights the optimiser updates: the slices."""
        return self.model

    def start(self, optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float) -> None:
        self.engine.start(optimizer, scheduler, max_grad_norm)

    def backward(self, loss: torch.Tensor, last: bool) -> None:
        self.engine.backward(loss, last)

    def step(self, optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float) -> float:
        return self.engine.step(optimizer, scheduler, max_grad_norm)

    def gather(self) -> None:
        self.engine.gather()

    def save(self, path: Path, optimizer: torch.optim.Optimizer, scheduler, state: TrainState) -> None:
        self.engine.save(path, optimizer, scheduler, state)

    def load(self, path: Path, optimizer: torch.optim.Optimizer, scheduler) -> TrainState:
        return self.engine.load(path, optimizer, scheduler)

    def release(self) -> None:
        self.engine.release()
