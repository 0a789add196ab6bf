"""Sharded training through DeepSpeed's ZeRO (stage 2: gradients and AdamW state in slices; stage 3:
the weights too), for ``accelerate launch --config_file configs/accelerate/deepspeed-zero{2,3}.yaml``.

rewardlab calls ``deepspeed.initialize`` itself with the run's AdamW and schedule (``Accelerator.prepare``
keeps DeepSpeed off CPUs, where DeepSpeed itself runs and can be tested). DeepSpeed averages gradients
across processes, so each process's loss (its share of the global batch's sum over the global batch
size) is multiplied by the number of processes: the gradient is then the one-process gradient, and so
is the update (``tests/test_sharding.py``). Weights and moments are gathered whole through DeepSpeed's
``safe_get_full_*`` functions, so checkpoints are those of a one-process run (``sharding.ShardedCompute``).
"""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist

from rewardlab.training.sharding import ShardedCompute, Sharding

SLOTS = ("exp_avg", "exp_avg_sq")


def _deepspeed():
    try:
        import deepspeed
    except ImportError:
        raise ValueError(
            "this launch asks for DeepSpeed, which is not installed: pip install 'rewardlab[distributed]'"
        ) from None
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)  # its per-step INFO lines
    return deepspeed


class DeepSpeedCompute(ShardedCompute):
    """The slices held by a DeepSpeed engine (ZeRO stage 2 or 3)."""

    def __init__(self, whole: torch.nn.Module, sharding: Sharding, precision: str, device: torch.device) -> None:
        super().__init__(whole, device)
        self.stage, self.precision = sharding.stage, precision
        self.engine = None
        self.world = dist.get_world_size()

    def start(self, optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float | None) -> None:
        """Hand the module, AdamW and the schedule to DeepSpeed, which slices them."""
        super().start(optimizer, scheduler, max_grad_norm)
        config = {
            "train_micro_batch_size_per_gpu": 1,  # rewardlab plans its own passes; DeepSpeed only counts them
            "gradient_accumulation_steps": 1,
            "gradient_clipping": max_grad_norm or 0.0,  # 0: no clipping
            "zero_optimization": {"stage": self.stage},
            "zero_allow_untested_optimizer": True,  # torch's AdamW: its step is DeepSpeed's to call
            "bf16": {"enabled": self.precision == "bf16"},
            "steps_per_print": 2**62,
        }
        self.engine, *_ = _deepspeed().initialize(
            model=self.module, optimizer=optimizer, lr_scheduler=scheduler, config=config
        )

    def backward(self, loss: torch.Tensor, last: bool) -> None:
        self.engine.set_gradient_accumulation_boundary(last)  # reduce once a step, after the last pass
        self.engine.backward(loss * self.world)  # DeepSpeed averages over processes; the loss is a share of a sum
        # What the engine's forward does first, and rewardlab's passes call the module itself: without it
        # ZeRO-3 counts every pass of a step as the first, and each pass's gradient replaces the last's.
        self.engine.optimizer.clear_backward_seen_flag()

    def step(self, optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float | None) -> float:
        self.engine.step()  # clips, steps AdamW and the schedule, clears the gradients
        return float(self.engine.get_global_grad_norm())

    def _trained(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]

    def whole_weights(self) -> dict[str, torch.Tensor]:
        safe_get_full_fp32_param = _deepspeed().utils.safe_get_full_fp32_param
        whole, done = {}, {}
        for name, p in self.module.named_parameters(remove_duplicate=False):  # a tied weight under each name
            if p not in done:
                done[p] = safe_get_full_fp32_param(p).detach().cpu() if p.requires_grad else self._frozen(p)
            whole[name] = done[p]
        for name, buffer in self.module.named_buffers():
            whole[name] = buffer.detach().cpu()
        kept = self.module.state_dict().keys()  # the saved names: no non-persistent buffers
        return {k: v for k, v in whole.items() if k in kept}

    def _frozen(self, p: torch.nn.Parameter) -> torch.Tensor:
        """A weight the optimiser does not hold, whole (ZeRO-3 slices those too)."""
        if self.stage == 3:
            with _deepspeed().zero.GatheredParameters([p]):
                return p.detach().float().cpu().clone()
        return p.detach().float().cpu().clone()

    def whole_moments(self, optimizer: torch.optim.Optimizer) -> dict[str, dict[str, torch.Tensor]]:
        safe_get_full_optimizer_state = _deepspeed().utils.safe_get_full_optimizer_state
        self._link_moments()
        step = self._adam_step()
        moments = {}
        for name, p in self._trained():
            slots = {slot: safe_get_full_optimizer_state(p, slot).detach().cpu() for slot in SLOTS}
            moments[name] = {"step": step.clone(), **slots}
        return moments

    def _adam_step(self) -> torch.Tensor:
        """AdamW's step count (one per flat group in DeepSpeed, all equal)."""
        states = list(self.engine.optimizer.optimizer.state.values())
        return states[0]["step"].detach().float().cpu().clone() if states else torch.tensor(0.0)

    def load_whole(self, weights: dict[str, torch.Tensor], moments: dict, optimizer: torch.optim.Optimizer) -> None:
        utils = _deepspeed().utils
        self._create_moments()
        for name, p in self.module.named_parameters():
            if p.requires_grad:  # AdamW's fp32 weight and moments
                utils.safe_set_full_fp32_param(p, weights[name].to(p.device))
                for slot in SLOTS:
                    utils.safe_set_full_optimizer_state(p, moments[name][slot].to(p.device), slot)
            if self.stage == 3:  # and the weight the passes read, which ZeRO-3 refreshes from it only at a step
                with _deepspeed().zero.GatheredParameters([p], modifier_rank=0):  # None would drop the copy
                    p.data.copy_(weights[name])
            else:
                p.data.copy_(weights[name])
        step = next(iter(moments.values()))["step"]
        for state in self.engine.optimizer.optimizer.state.values():
            state["step"] = step.clone().to(state["step"].dtype) if torch.is_tensor(state["step"]) else float(step)

    def _create_moments(self) -> None:
        """AdamW creates its state at its first step; DeepSpeed links it to each weight only then."""
        zero = self.engine.optimizer
        flat = [p for group in zero.optimizer.param_groups for p in group["params"]]
        flat += getattr(zero, "fp32_partitioned_groups_flat", [])  # ZeRO-3's, which AdamW's state is keyed by
        for p in flat:
            if "exp_avg" not in zero.optimizer.state.get(p, {}):
                zero.optimizer.state[p] = {
                    "step": torch.tensor(0.0),
                    "exp_avg": torch.zeros_like(p),
                    "exp_avg_sq": torch.zeros_like(p),
                }
        self._link_moments()

    def _link_moments(self) -> None:
        """Point each weight's view into AdamW's state (ZeRO-2 links it once, which may precede the state)."""
        zero = self.engine.optimizer
        if hasattr(zero, "_lazy_init_hp_params_optimizer_state"):
            zero._hp_optimizer_states_linked = False
            zero._lazy_init_hp_params_optimizer_state()
