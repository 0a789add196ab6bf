"""Configuration of a ``rewardlab dpo`` run: nested dataclasses, YAML, ``key.sub=value`` overrides.

The training options are :class:`rewardlab.policy.trainer.PolicyTrainConfig` itself (under
``train.``), so the command line and the Python API cannot drift apart. Every problem is reported
at once (:class:`rewardlab.runs.config.ConfigError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.policy.lora import LoraSettings
from rewardlab.policy.registry import PolicyLoss, get_policy_loss
from rewardlab.policy.trainer import PolicyTrainConfig
from rewardlab.runs.config import RunConfig, load_run_config
from rewardlab.runs.data import SplitDataConfig
from rewardlab.runs.trackers import report_to_problems


@dataclass
class DPODataConfig(SplitDataConfig):
    max_train_pairs: int | None = None
    """Train on the first N pairs of the training split only (None: all); ConvexDA (``convex_da``) and
    reward augmentation then add their pairs to those N."""
    multi_level_intra: bool = False
    """With ``multi_level``: add MAPL's intra-sample pairs; off here, as a policy run refuses pairs whose
    two sides have different prompts (its log-ratios compare two replies to one prompt)."""
    reward_augmented: bool = False
    """Train on reward-augmented pairs (Zhang et al. 2024): each training pair, which needs
    ``chosen_rating`` and ``rejected_rating``, becomes two pairs conditioned on the score to reach
    (``policy/reward_augmented.py``); equal-rated pairs are dropped. Held-out pairs stay as they are."""


@dataclass
class DPOEvalConfig:
    split: str = "test"
    """The held-out split the run is evaluated on: test, or validation (to choose options without
    looking at the test split)."""
    max_pairs: int | None = None
    """Held-out pairs to evaluate, the first N of the split (None: all)."""
    judge_model: str | None = None
    """A saved rewardlab reward model: judges the trained policy's replies against the base policy's."""
    win_prompts: int = 32
    """Distinct held-out prompts the two policies answer for the win rate."""
    max_new_tokens: int = 48
    temperature: float = 0.0
    """0: greedy; otherwise sampled, seeded by ``seed`` and the prompt."""
    seed: int = 0
    bootstrap_seed: int = 0
    kl_prompts: int = 4
    """Distinct held-out prompts the trained policy samples replies to for the KL(π‖π_ref) estimate (0: none)."""
    kl_samples: int = 4
    """Replies sampled per prompt (temperature 1, at most ``max_new_tokens`` tokens) for that estimate (0: none)."""


@dataclass
class DPORunConfig(RunConfig):
    output_dir: str = "runs/dpo"
    policy: str = "smollm2"
    """smollm2, or a local causal LM folder."""
    guide_model: str | None = None
    """Token-guided losses (tgdpo): a DPO-trained causal LM folder, sharing the policy's tokenizer, whose
    log-ratio to the policy's starting point gives each reply token its guidance reward."""
    data: DPODataConfig = field(default_factory=DPODataConfig)
    train: PolicyTrainConfig = field(default_factory=PolicyTrainConfig)
    eval: DPOEvalConfig = field(default_factory=DPOEvalConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA adapters instead of full fine-tuning (lora.enabled=true); the saved policy is the merged model."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more time."""
    num_threads: int | None = None
    report_to: str = "none"
    """Experiment trackers that also receive the metrics: none, or tensorboard, wandb, mlflow, trackio
    (comma-separated); each needs its extra, e.g. ``pip install 'rewardlab[tensorboard]'``."""
    progress: bool = True

    def problems(self) -> list[str]:
        problems: list[str] = []
        try:
            loss = get_policy_loss(self.train.loss)
        except ValueError as e:
            loss = None
            problems.append(f"train.loss: {e}")
        problems += [f"train.{p}" for p in self.train.problems(loss)]
        problems += self._guide_problems(loss)
        problems += [f"lora.{p}" for p in self.lora.problems()]
        problems += self.data.problems()
        if self.data.test_fraction <= 0:
            problems.append("data.test_fraction must be > 0: the run is evaluated on the held-out test split")
        for name, value in (
            ("data.max_train_pairs", self.data.max_train_pairs),
            ("eval.max_pairs", self.eval.max_pairs),
            ("eval.win_prompts", self.eval.win_prompts),
            ("eval.max_new_tokens", self.eval.max_new_tokens),
            ("num_threads", self.num_threads),
        ):
            if value is not None and value < 1:
                problems.append(f"{name} must be >= 1 (got {value})")
        for name in ("kl_prompts", "kl_samples"):
            if getattr(self.eval, name) < 0:
                problems.append(f"eval.{name} must be >= 0, 0 to skip the sampled KL (got {getattr(self.eval, name)})")
        if self.eval.split not in ("test", "validation"):
            problems.append(f"eval.split must be test or validation (got {self.eval.split!r})")
        if self.eval.split == "validation" and self.data.validation_fraction <= 0:
            problems.append("eval.split is validation but data.validation_fraction is 0")
        if self.eval.temperature < 0:
            problems.append(f"eval.temperature must be >= 0 (got {self.eval.temperature})")
        problems += report_to_problems(self.report_to)
        return problems

    def _guide_problems(self, loss: PolicyLoss | None) -> list[str]:
        """A token-guided loss without a guide model, or a guide model no loss reads."""
        if loss is None:
            return []
        if loss.needs_token_rewards and not self.guide_model:
            return [
                f"guide_model: policy loss {loss.name!r} needs token rewards from a guide model; "
                "set guide_model=FOLDER (--guide-model), a DPO-trained causal LM sharing the policy's tokenizer"
            ]
        if self.guide_model and not loss.needs_token_rewards:
            return [f"guide_model is set but policy loss {loss.name!r} reads no token rewards"]
        return []


def load_dpo_config(path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()) -> DPORunConfig:
    """Defaults, then the YAML file, then ``key.sub=value`` overrides; checked, all problems at once."""
    return load_run_config(DPORunConfig(), path, overrides)
