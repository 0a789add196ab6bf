"""Over-optimisation of direct alignment algorithms: gold reward against KL along DPO, IPO and SLiC training.

Rafailov et al. 2024, "Scaling Laws for Reward Model Overoptimization in Direct Alignment
Algorithms" (abstract read; the setting follows it): DAAs have no proxy reward model, yet their
policies' quality, judged by a gold reward, still rises and then falls as they move away from the
reference, often within an epoch. For each variant (a loss and its β) a policy is trained from the
same start on the same pairs, in the same batch order, with the ordinary trainer
(:func:`rewardlab.policy.trainer.train_policy`); at step 0 and every ``eval_every`` steps it samples
replies to held-out prompts, and those same replies give

- KL(π‖π_ref) = E_y~π[log π(y|x) − log π_ref(y|x)], as :mod:`rewardlab.policy.sampled_kl` estimates
  it (temperature 1, the exact tokens drawn; exactly 0 at step 0, where π is π_ref), and
- the mean gold reward of the replies.

The same seeds draw the replies at every checkpoint of every variant (common random numbers), so
differences between points are not sampling noise of different draws. Gold reward against
d = sqrt(KL) is fitted with Gao et al.'s R(d) = d·(α − β·log d) (:mod:`.daa_overopt_fit`), on the
gain over step 0; a noisy KL estimate below 0 is counted as d = 0.

Reward-augmented variants (``dpo+ra``, Zhang et al. 2024, :mod:`.reward_augmented`) train on the
goal-conditioned pairs of the same data and are sampled with the goal "reach the best score in the
training data" in front of each prompt; their KL is to the reference on that same conditioned
prompt, and the gold model scores the reply against the plain prompt, as it does every other.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.policy.daa_overopt_fit import fit_gold_form
from rewardlab.policy.lora import LoraSettings, adapters_off
from rewardlab.policy.registry import get_policy_loss
from rewardlab.policy.trainer import PolicyTrainConfig
from rewardlab.precision import Precision, precision_problem
from rewardlab.runs.config import Checked
from rewardlab.runs.data import SplitDataConfig

if TYPE_CHECKING:
    from rewardlab.models.causal_lm import CausalLM
    from rewardlab.models.reward_model import RewardModel

RA_SUFFIX = "+ra"
"""A loss name ending in this trains on reward-augmented pairs (e.g. ``dpo+ra``)."""


@dataclass(frozen=True)
class Variant:
    loss: str
    """The loss as the user named it (``slic``, not its registered name ``hinge``)."""
    beta: float
    reward_augmented: bool = False

    @property
    def name(self) -> str:
        return f"{self.loss}{RA_SUFFIX if self.reward_augmented else ''} β={self.beta:g}"


def parse_variants(losses: Sequence[str], betas: Sequence[float]) -> list[Variant]:
    """Every (loss, β), losses first; ``dpo+ra`` is DPO on reward-augmented pairs."""
    variants = []
    for text in losses:
        name = text.strip()
        augmented = name.endswith(RA_SUFFIX)
        base = name[: -len(RA_SUFFIX)] if augmented else name
        variants += [Variant(base, float(beta), augmented) for beta in betas]
    return variants


@dataclass
class DAAOveroptConfig(Checked):
    gold: str
    """A saved rewardlab reward model: the reward really wanted."""
    policy: str = "smollm2"
    losses: list[str] = field(default_factory=lambda: ["dpo", "ipo", "slic"])
    betas: list[float] = field(default_factory=lambda: [0.01, 0.1, 0.5])
    data: SplitDataConfig = field(default_factory=SplitDataConfig)
    max_train_pairs: int | None = None
    train: PolicyTrainConfig = field(default_factory=lambda: PolicyTrainConfig(lr=5e-6))
    """Shared by every variant; ``loss`` and ``loss_args`` are set per variant."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    eval_every: int = 10
    prompts: int = 8
    """Distinct held-out prompts sampled at each checkpoint."""
    samples: int = 4
    """Replies per prompt at each checkpoint (temperature 1)."""
    max_new_tokens: int = 48
    seed: int = 0
    split: str = "test"
    """The held-out split the prompts come from."""
    gold_precision: Precision = "auto"
    progress: bool = False

    def problems(self) -> list[str]:
        from rewardlab.models.reward_model import saved_model_problem

        found: list[str] = []
        if problem := saved_model_problem(self.gold):
            found.append(f"--gold {self.gold}: {problem}")
        if not self.losses:
            found.append("--losses: name at least one loss (e.g. dpo,ipo,slic)")
        if not self.betas:
            found.append("--betas: give at least one β (e.g. 0.01,0.1,0.5)")
        found += [f"--betas: β must be > 0 (got {b:g})" for b in self.betas if not b > 0]
        for variant in parse_variants(self.losses, [1.0]):
            try:
                loss = get_policy_loss(variant.loss)
            except ValueError as e:
                found.append(f"--losses: {e}")
                continue
            if "beta" not in loss.options:
                found.append(f"--losses: policy loss {loss.name!r} has no β to vary")
            if loss.needs_token_rewards:
                found.append(f"--losses: policy loss {loss.name!r} needs a guide model, which this study does not load")
        found += [f"train.{p}" for p in self.train.problems(None)]
        found += [f"lora.{p}" for p in self.lora.problems()]
        found += self.data.problems()
        for name in ("eval_every", "prompts", "samples", "max_new_tokens"):
            if getattr(self, name) < 1:
                found.append(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(self, name)})")
        if self.max_train_pairs is not None and self.max_train_pairs < 1:
            found.append(f"--max-train-pairs must be >= 1 (got {self.max_train_pairs})")
        if self.split not in ("test", "validation"):
            found.append(f"--split must be test or validation (got {self.split!r})")
        if problem := precision_problem(self.gold_precision, "--precision"):
            found.append(problem)
        return found


@dataclass(frozen=True)
class Checkpoint:
    step: int
    kl: float
    kl_se: float
    sqrt_kl: float
    gold: float
    gold_se: float
    replies: int
    mean_tokens: float
    train_loss: float | None


@dataclass
class StudyData:
    train: list[PreferencePair]
    prompts: list[Prompt]
    info: dict[str, Any]
    goal_score: float | None = None
    """The best rating in the training pairs: the goal reward-augmented policies are prompted with."""


def load_study_data(config: DAAOveroptConfig) -> StudyData:
    from rewardlab.policy.evaluation import distinct_prompts
    from rewardlab.runs.data import load_split

    data = load_split(config.data, say=lambda message: None)
    data.require_training_pairs()
    train = data.splits.train[: config.max_train_pairs] if config.max_train_pairs else data.splits.train
    prompts = distinct_prompts(data.part(config.split), config.prompts)
    if not prompts:
        raise ValueError(f"--data: the {config.split} split holds no pairs to take prompts from")
    ratings = [r for p in train for r in (p.chosen_rating, p.rejected_rating) if isinstance(r, int | float)]
    info = {
        "path": config.data.path if config.data.path not in (None, "", "default") else "embedded HH-RLHF harmless",
        "pairs": len(data.loaded.pairs),
        "skipped_rows": len(data.loaded.skipped),
        "train_pairs": len(train),
        "prompts_from": config.split,
        "prompts": len(prompts),
    }
    return StudyData(train, prompts, info, max(ratings) if ratings else None)


def run_daa_overopt(config: DAAOveroptConfig) -> dict[str, Any]:
    """Train every variant from the same start, measure each checkpoint, and return the study as a
    JSON-ready dict (:mod:`.daa_overopt_report` writes it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardlab.models.backbones import resolve_backbone
    from rewardlab.models.reward_model import RewardModel, ensure_pad_token
    from rewardlab.models.weight_files import require_safetensors
    from rewardlab.precision import resolve_precision
    from rewardlab.tuning import tune_cpu

    tune_cpu()
    config.check()
    variants = parse_variants(config.losses, config.betas)
    study = load_study_data(config)
    if any(v.reward_augmented for v in variants) and study.goal_score is None:
        raise ValueError("--losses: a +ra variant needs chosen_rating and rejected_rating (map them with --columns)")
    gold = RewardModel.from_pretrained(config.gold)
    model_dir = require_safetensors(resolve_backbone(config.policy), config.policy)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ensure_pad_token(tokenizer)
    start = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval().requires_grad_(False)
    curves: dict[str, dict[str, Any]] = {}
    for variant in variants:
        began = time.perf_counter()
        points, precision = train_and_measure(start, tokenizer, study, variant, gold, config)
        curves[variant.name] = curve_record(variant, points, time.perf_counter() - began)
    t = config.train
    return {
        "policy": config.policy,
        "gold": config.gold,
        "data": study.info,
        "goal_score": study.goal_score,
        "train": {
            "steps": t.steps,
            "batch_pairs": t.batch_pairs,
            "lr": t.lr,
            "seed": t.seed,
            "max_prompt_tokens": t.max_prompt_tokens,
            "max_reply_tokens": t.max_reply_tokens,
            "precision": precision,
            "lora": dataclasses.asdict(config.lora) if config.lora.enabled else None,
        },
        "eval": {
            "every": config.eval_every,
            "prompts": len(study.prompts),
            "samples_per_prompt": config.samples,
            "max_new_tokens": config.max_new_tokens,
            "seed": config.seed,
            "gold_precision": resolve_precision(config.gold_precision),
        },
        "curves": curves,
    }


def curve_record(variant: Variant, points: Sequence[Checkpoint], seconds: float) -> dict[str, Any]:
    """A variant's checkpoints and the fit of their gold gain over step 0 against sqrt(KL)."""
    fit = fit_gold_form([p.sqrt_kl for p in points], [p.gold - points[0].gold for p in points])
    return {
        "loss": variant.loss,
        "registered_loss": get_policy_loss(variant.loss).name,
        "beta": variant.beta,
        "reward_augmented": variant.reward_augmented,
        "points": [dataclasses.asdict(p) for p in points],
        "fit": fit.as_dict() if fit is not None else None,
        "seconds": round(seconds, 1),
    }


def train_and_measure(
    start: torch.nn.Module,
    tokenizer: Any,
    study: StudyData,
    variant: Variant,
    gold: RewardModel,
    config: DAAOveroptConfig,
) -> tuple[list[Checkpoint], str]:
    """Train a copy of ``start`` with ``variant``'s loss and β, measuring step 0 and every
    ``eval_every`` steps (and the last) from the trainer's per-step callback."""
    from rewardlab.models.causal_lm import CausalLM
    from rewardlab.models.formatting import choose_format
    from rewardlab.policy.lora import add_lora
    from rewardlab.policy.reward_augmented import goal_conditioned_prompt, reward_augmented_pairs
    from rewardlab.policy.trainer import train_policy
    from rewardlab.progress import progress_bar

    pairs, shown = study.train, study.prompts
    if variant.reward_augmented:
        pairs = reward_augmented_pairs(study.train)
        if not pairs:
            raise ValueError("--losses: reward augmentation left no training pairs (every pair is a tie)")
        shown = [goal_conditioned_prompt(p, float(study.goal_score or 0)) for p in study.prompts]
    model = copy.deepcopy(start).requires_grad_(True)
    reference: torch.nn.Module | None = start
    if config.lora.enabled:
        torch.manual_seed(config.train.seed)  # the adapters start from seeded random A (and B = 0)
        model, reference = add_lora(model, config.lora), None  # the reference is the base, adapters off
    t = config.train
    train = dataclasses.replace(t, loss=variant.loss, loss_args={**t.loss_args, "beta": variant.beta})
    fmt = choose_format(tokenizer, t.text_format)
    policy_lm = CausalLM(model, tokenizer, fmt, "policy", t.max_prompt_tokens, t.max_reply_tokens)
    reference_lm = dataclasses.replace(policy_lm, model=reference if reference is not None else model)

    def measure(step: int, loss: float | None) -> Checkpoint:
        model.eval()
        point = measure_checkpoint(policy_lm, reference_lm, gold, study.prompts, shown, config, step, loss)
        model.train()
        return point

    points = [measure(0, None)]
    with progress_bar(config.progress, variant.name, train.steps) as advance:

        def log(step: int, values: dict[str, float]) -> None:
            if step % config.eval_every == 0 or step == train.steps:
                points.append(measure(step, values["loss"]))
            advance(loss=f"{values['loss']:.4f}", kl=f"{points[-1].kl:.3f}", gold=f"{points[-1].gold:.3f}")

        result = train_policy(model, tokenizer, pairs, train, reference_model=reference, log=log)
    return points, result.precision


@torch.inference_mode()
def measure_checkpoint(
    policy: CausalLM,
    reference: CausalLM,
    gold: RewardModel,
    prompts: Sequence[Prompt],
    shown: Sequence[Prompt],
    config: DAAOveroptConfig,
    step: int,
    train_loss: float | None = None,
) -> Checkpoint:
    """Sample ``config.samples`` replies of ``policy`` to each of ``shown`` (the prompts as the
    policy sees them), estimate KL(π‖π_ref) on them as ``sampled_kl`` does, and score them with
    ``gold`` against ``prompts`` (the plain prompts)."""
    from rewardlab.policy.sampled_kl import sample_reply_tokens
    from rewardlab.sampling.generation import prompt_prefix

    prefixes: list[list[int]] = []
    replies: list[list[int]] = []
    judged: list[Prompt] = []
    for prompt, seen in zip(prompts, shown, strict=True):
        prefix = prompt_prefix(policy, seen)
        for reply in sample_reply_tokens(policy, prefix, config.samples, config.max_new_tokens, config.seed):
            prefixes.append(prefix)
            replies.append(reply)
            judged.append(prompt)
    if not replies:
        raise ValueError(f"step {step}: every sampled reply was empty; nothing to measure")
    policy_logps, lengths = policy.continuation_logps(prefixes, replies)
    with adapters_off(reference.model):
        reference_logps, _ = reference.continuation_logps(prefixes, replies)
    terms = np.array(policy_logps, dtype=np.float64) - np.array(reference_logps, dtype=np.float64)
    texts = [policy.tokenizer.decode(r, skip_special_tokens=True).strip() for r in replies]
    scores = np.array(gold.score(judged, texts, precision=config.gold_precision), dtype=np.float64)
    kl = float(terms.mean())
    return Checkpoint(
        step=step,
        kl=kl,
        kl_se=_std_error(terms),
        sqrt_kl=math.sqrt(max(kl, 0.0)),
        gold=float(scores.mean()),
        gold_se=_std_error(scores),
        replies=len(replies),
        mean_tokens=float(np.mean(lengths)),
        train_loss=train_loss,
    )


def _std_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
