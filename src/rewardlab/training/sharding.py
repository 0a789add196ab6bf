"""Sharded training: each process holds a slice of the weights, gradients and AdamW moments (FSDP2).

``accelerate launch --config_file configs/accelerate/fsdp-zero3.yaml -m rewardlab train ...`` (or ``dpo``) starts
the processes and says, through the environment it sets, how to shard; rewardlab then shards the model with
PyTorch's own ``fully_shard`` (FSDP2) rather than through ``Accelerator.prepare``, so that one code path
runs on GPUs and on CPUs (where accelerate keeps FSDP off, yet ``fully_shard`` runs over gloo and can be
tested). Two settings, in DeepSpeed's terms:

- ZeRO-3 (``FULL_SHARD``, ``reshard_after_forward: true``): parameters are gathered block by block for
  each forward and backward and freed after; the least memory.
- ZeRO-2 (``SHARD_GRAD_OP``, ``reshard_after_forward: false``): parameters stay gathered from forward to
  backward; gradients and optimiser state stay sharded. Less communication, more memory.

The update is the one data parallelism gives (``trainer.py``, ``policy/trainer.py``): each process's loss is
its share of the global batch's sum over the global batch size, and gradients are summed (divide factor 1),
not averaged.
Every forward pass is a collective, so every process runs as many passes per step as the busiest one
(``equal_pass_count``). Rank 0 keeps the whole fp32 model beside its slice, gathered before each evaluation
and save: evaluation, checkpoints and the saved model are those of a one-process run, and a checkpoint
is not tied to a number of processes.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch.distributed.checkpoint.state_dict import StateDictOptions

from rewardlab.models.reward_model import scalar_head
from rewardlab.runs.checkpoint import TrainState, load_checkpoint, save_checkpoint

TRUE = ("true", "1", "yes")
WHOLE = StateDictOptions(full_state_dict=True)
WHOLE_ON_CPU = StateDictOptions(full_state_dict=True, cpu_offload=True)


@dataclass(frozen=True)
class Sharding:
    """How the launch asked to shard: which engine, and ZeRO's stage (3: weights too; 2: not)."""

    engine: str
    """fsdp (PyTorch's FSDP2) or deepspeed."""
    stage: int

    @property
    def name(self) -> str:
        if self.engine == "deepspeed":
            return f"DeepSpeed ZeRO-{self.stage}"
        return f"FSDP2, ZeRO-{self.stage} ({'FULL_SHARD' if self.stage == 3 else 'SHARD_GRAD_OP'})"


def launch_sharding(environ: Mapping[str, str] = os.environ) -> Sharding | None:
    """The sharding an ``accelerate launch --config_file ...`` asked for, read from the variables the
    launcher sets (``ACCELERATE_USE_FSDP``, ``FSDP_*``, ``ACCELERATE_USE_DEEPSPEED``); None for none.

    Settings rewardlab would not honour are refused rather than ignored: a run that silently kept every
    weight on every process would run out of memory where the user planned it would fit.
    """
    if environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in TRUE:
        return _deepspeed(environ)
    if environ.get("ACCELERATE_USE_FSDP", "false").lower() not in TRUE:
        return None
    strategy = environ.get("FSDP_SHARDING_STRATEGY", "FULL_SHARD").upper()
    strategy = {"1": "FULL_SHARD", "2": "SHARD_GRAD_OP", "3": "NO_SHARD", "4": "HYBRID_SHARD"}.get(strategy, strategy)
    if strategy not in ("FULL_SHARD", "SHARD_GRAD_OP"):
        raise ValueError(f"fsdp_sharding_strategy {strategy} is not supported: use FULL_SHARD or SHARD_GRAD_OP")
    for key in ("FSDP_OFFLOAD_PARAMS", "FSDP_ACTIVATION_CHECKPOINTING"):
        if environ.get(key, "false").lower() in TRUE:
            option = key.removeprefix("FSDP_").lower()
            hint = " (use gradient_checkpointing=true in the train config)" if "CHECKPOINTING" in key else ""
            raise ValueError(f"fsdp_{option}: true is not supported by rewardlab train{hint}")
    reshard = environ.get("FSDP_RESHARD_AFTER_FORWARD", str(strategy == "FULL_SHARD"))
    return Sharding("fsdp", 3 if reshard.lower() in TRUE else 2)


def _deepspeed(environ: Mapping[str, str]) -> Sharding:
    """A DeepSpeed launch: ZeRO stage 2 or 3 from the accelerate config's ``deepspeed_config``."""
    if "ACCELERATE_DEEPSPEED_CONFIG_FILE" in environ:
        raise ValueError(
            "a DeepSpeed JSON config (deepspeed_config_file) is not read by rewardlab train: give zero_stage in "
            "the accelerate config (configs/accelerate/deepspeed-zero2.yaml); precision and clipping come from "
            "the train config"
        )
    stage = environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    if stage not in ("2", "3"):
        raise ValueError(f"DeepSpeed zero_stage {stage} is not supported: use 2 or 3")
    for part in ("OPTIMIZER", "PARAM"):
        if environ.get(f"ACCELERATE_DEEPSPEED_OFFLOAD_{part}_DEVICE", "none").lower() != "none":
            raise ValueError(f"DeepSpeed offload_{part.lower()}_device is not supported by rewardlab train: use none")
    if environ.get("ACCELERATE_DEEPSPEED_ZERO3_INIT", "false").lower() in TRUE:
        raise ValueError("DeepSpeed zero3_init_flag: true is not supported: every process loads the whole backbone")
    return Sharding("deepspeed", int(stage))


def transformer_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a transformer (every module held in a ``ModuleList``): the units FSDP
    gathers one at a time, so that at most one block's full weights exist beside the slices."""
    return [block for m in module.modules() if isinstance(m, torch.nn.ModuleList) for block in m]


def shard_units(module: torch.nn.Module) -> list[torch.nn.Module]:
    """What FSDP gathers as one: each block, then each module the reward model calls by itself (a
    decoder's backbone and head run apart for packed pairs, ``models/shared_prefix.py``), the root last."""
    parts = [module.base_model if module.base_model is not module else None, scalar_head(module)]
    return [*transformer_blocks(module), *(p for p in parts if p is not None), module]


def blocks_then_root(module: torch.nn.Module) -> list[torch.nn.Module]:
    """What FSDP gathers as one for a model called only through its root (a causal-LM policy): each
    block, then the root (a tied embedding and output layer stay in one unit)."""
    return [*transformer_blocks(module), module]


class ShardedCompute:
    """The module the training passes run on, in slices across the processes (``module``), and ``whole``:
    the whole fp32 module on rank 0 (for evaluation and saving), freed elsewhere. Each engine (FSDP2
    here, DeepSpeed in ``training/deepspeed_zero.py``) says how to slice, step and gather; reward models
    and policies use them alike (``training/engines.py`` picks one)."""

    def __init__(self, whole: torch.nn.Module, device: torch.device) -> None:
        self.whole = whole
        self.main = dist.get_rank() == 0
        self.module = copy.deepcopy(whole).to(device)
        if not self.main:
            whole.to("meta")  # only rank 0 evaluates and saves
        self.order: list[str] = []
        """Parameter names in the optimiser's order: the index a one-process checkpoint gives each."""

    def start(self, optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float | None) -> None:
        """Take the optimiser built on ``module``'s weights (before an engine regroups them)."""
        name_of = {p: n for n, p in self.module.named_parameters()}
        self.order = [name_of[p] for group in optimizer.param_groups for p in group["params"]]
        self.groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        self.sizes = [len(g["params"]) for g in optimizer.param_groups]

    def gather(self) -> None:
        """Copy the slices into rank 0's whole module (every process must call it: it is a collective)."""
        whole = self.whole_weights()
        if self.main:
            self.whole.load_state_dict(whole)

    def release(self) -> None:
        """Nothing to do: the loop's last step gathered the final weights (it always saves)."""

    def save(self, path: Path, optimizer: torch.optim.Optimizer, scheduler, state: TrainState, extra=None) -> None:
        """Write the checkpoint of a one-process run (``runs/checkpoint.py``) from rank 0, after ``gather``:
        the gathered weights and AdamW moments, in the one-process format: not tied to a number of processes."""
        moments = self.whole_moments(optimizer)
        if self.main:
            index = {name: i for i, name in enumerate(self.order)}
            per_index = {index[name]: slots for name, slots in moments.items()}
            save_checkpoint(path, self.whole, Moments(per_index, self._groups()), scheduler, state, extra)

    def load(self, path: Path, optimizer: torch.optim.Optimizer, scheduler) -> TrainState:
        """Resume from a checkpoint of a sharded run or of a one-process one: every process reads it
        whole and keeps its slice."""
        whole = Moments({}, self._groups())
        state = load_checkpoint(path, self.whole if self.main else None, whole, scheduler)
        moments = {self.order[i]: value for i, value in whole.loaded["state"].items()}
        self.load_whole(tied_names(self.module, load_file(path / "model.safetensors")), moments, optimizer)
        return state

    def _groups(self) -> list[dict]:
        """The optimiser's parameter groups as a one-process run saves them: hyperparameters and indices."""
        starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        return [{**g, "params": list(range(a, a + n))} for g, a, n in zip(self.groups, starts, self.sizes, strict=True)]

    # what each engine does its own way
    def backward(self, loss: torch.Tensor, last: bool) -> None:
        raise NotImplementedError

    def step(self, optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float | None) -> float:
        """Clip (``None``: not), step AdamW and the schedule (if any), clear the gradients; the global norm."""
        raise NotImplementedError

    def whole_weights(self) -> dict[str, torch.Tensor]:
        """Every weight whole, on rank 0 at least (a collective)."""
        raise NotImplementedError

    def whole_moments(self, optimizer: torch.optim.Optimizer) -> dict[str, dict[str, torch.Tensor]]:
        """AdamW's state of every trained weight, whole, by name, on rank 0 at least (a collective)."""
        raise NotImplementedError

    def load_whole(self, weights: dict[str, torch.Tensor], moments: dict, optimizer: torch.optim.Optimizer) -> None:
        """Keep this process's slice of whole weights and moments."""
        raise NotImplementedError


class FSDPCompute(ShardedCompute):
    """Slices by PyTorch's ``fully_shard`` (FSDP2): ZeRO-3 frees each unit's gathered weights after its
    forward, ZeRO-2 keeps them until its backward."""

    def __init__(
        self,
        whole: torch.nn.Module,
        sharding: Sharding,
        precision: str,
        device: torch.device,
        units: Callable[[torch.nn.Module], list[torch.nn.Module]],
    ) -> None:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        super().__init__(whole, device)
        policy = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16 if precision == "bf16" else None, reduce_dtype=torch.float32
        )
        for unit in units(self.module):
            fully_shard(unit, reshard_after_forward=sharding.stage == 3, mp_policy=policy)
            unit.set_gradient_divide_factor(1.0)  # each process's loss is already its share of the global mean
            unit.set_force_sum_reduction_for_comms(True)  # a plain sum (gloo has no pre-multiplied sum)

    def backward(self, loss: torch.Tensor, last: bool) -> None:
        loss.backward()  # reduces each unit's gradients into this process's slice

    def step(self, optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float | None) -> float:
        trained = [p for p in self.module.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(trained, max_grad_norm if max_grad_norm is not None else math.inf)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return float(norm.full_tensor())

    def whole_weights(self) -> dict[str, torch.Tensor]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(self.module, options=WHOLE_ON_CPU)

    def whole_moments(self, optimizer: torch.optim.Optimizer) -> dict[str, dict[str, torch.Tensor]]:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        whole = get_optimizer_state_dict(self.module, optimizer, options=WHOLE_ON_CPU)
        return whole.get("state", {})  # empty on ranks other than 0

    def load_whole(self, weights: dict[str, torch.Tensor], moments: dict, optimizer: torch.optim.Optimizer) -> None:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

        set_model_state_dict(self.module, weights, options=WHOLE)
        names = iter(self.order)
        groups = [
            {**g, "params": [next(names) for _ in range(n)]} for g, n in zip(self.groups, self.sizes, strict=True)
        ]
        set_optimizer_state_dict(self.module, optimizer, {"state": moments, "param_groups": groups}, options=WHOLE)


def tied_names(module: torch.nn.Module, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weights`` under every name of ``module``'s tied weights (a checkpoint stores a tied weight once:
    a decoder's output layer, which is its embedding)."""
    names: dict[torch.nn.Parameter, list[str]] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        names.setdefault(p, []).append(name)
    out = dict(weights)
    for aliases in names.values():
        stored = [weights[n] for n in aliases if n in weights]
        for name in aliases:
            if stored:
                out.setdefault(name, stored[0])
    return out


class Moments:
    """Stands in for the optimiser in ``runs/checkpoint.py``: gives the gathered moments, keyed as a
    one-process optimiser keys them, and keeps what a checkpoint holds for ``ShardedCompute.load``."""

    def __init__(self, state: dict[int, dict], groups: list[dict]) -> None:
        self.state, self.groups = state, groups
        self.loaded: dict = {}

    def state_dict(self) -> dict:
        return {"state": self.state, "param_groups": self.groups}

    def load_state_dict(self, loaded: dict) -> None:
        self.loaded = loaded


def equal_pass_count(passes: int) -> int:
    """The most forward passes any process has this step (every process must run that many)."""
    count = torch.tensor([passes])
    dist.all_reduce(count, op=dist.ReduceOp.MAX)
    return int(count.item())
