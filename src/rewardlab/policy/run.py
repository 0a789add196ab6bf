"""One ``rewardlab dpo`` run: data → split → train → save → evaluate → report.

The output folder holds ``config.yaml`` (the resolved configuration), ``metrics.jsonl`` (one line
per step), ``policy/`` (the trained policy and its tokenizer, safetensors, written atomically; with
LoRA the merged model, so it loads without ``peft``) and
``report.json`` / ``report.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from accelerate import Accelerator
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardlab.atomic import atomic_directory, write_text_atomic
from rewardlab.models.backbones import resolve_backbone, set_activation_checkpointing
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.formatting import choose_format
from rewardlab.models.reward_model import RewardModel, ensure_pad_token
from rewardlab.models.weight_files import require_safetensors
from rewardlab.policy.evaluation import distinct_prompts, held_out_accuracy, win_rate
from rewardlab.policy.lora import add_lora, merged_and_base
from rewardlab.policy.registry import get_policy_loss
from rewardlab.policy.reward_augmented import reward_augmented_pairs
from rewardlab.policy.run_config import DPORunConfig
from rewardlab.policy.run_report import render_report
from rewardlab.policy.sampled_kl import sampled_kl
from rewardlab.policy.trainer import PolicyTrainResult, train_policy
from rewardlab.progress import progress_bar
from rewardlab.runs.augmentation import augment_training_pairs
from rewardlab.runs.checkpoint import checkpoint_step
from rewardlab.runs.config import flat_options
from rewardlab.runs.data import load_split
from rewardlab.runs.folder import RunFolder, RunRules, claim_run_folder, holds_anything
from rewardlab.runs.metrics import MetricLogger
from rewardlab.runs.trackers import start_trackers, tracker_names
from rewardlab.training.sharding import launch_sharding
from rewardlab.tuning import tune_cpu

WEIGHTS = ("policy", "guide_model", "data.", "train.", "lora.", "gradient_checkpointing")
"""Options that change the trained weights: a resumed run keeps them, except the two below."""
GROWABLE = ("train.steps", "train.save_every")
RULES = RunRules(
    occupied=holds_anything,
    may_change=lambda key: not key.startswith(WEIGHTS) or key in GROWABLE,
    owned=("checkpoint", "metrics.jsonl", "policy", "report.json", "report.md"),
)
"""A policy run's folder: taken once it holds anything; ``--overwrite`` removes the previous run's files
(rewardlab's only; the reference cache, keyed by content, stays) once the new run has loaded its models,
so that a kill cannot leave the old checkpoint for ``--resume`` beside the new config."""


@dataclass(frozen=True)
class DPORunOutput:
    output_dir: Path
    policy_dir: Path
    report: dict[str, Any]


def run_dpo(config: DPORunConfig, overwrite: bool = False, resume: bool = False) -> DPORunOutput | None:
    """One run; ``resume=True`` continues the run in ``config.output_dir`` from its last checkpoint
    (same configuration, except that ``train.steps`` may grow), or starts it when there is none.
    Applies rewardlab's CPU settings for the run (:func:`rewardlab.tune_cpu`).

    Under ``accelerate launch`` the processes train together, each on its share of every batch, the
    policy whole on each or sliced across them as the launch's config says (``docs/distributed``);
    rank 0 alone writes and evaluates, and the others return None."""
    tune_cpu()
    config.check()
    folder = claim_run_folder(config.output_dir, config, RULES, resume=resume, overwrite=overwrite)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())  # joins the launch's processes, if any
    main = accelerator.is_main_process
    out = folder.path
    judge = RewardModel.from_pretrained(config.eval.judge_model) if config.eval.judge_model and main else None
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    train_pairs, test_pairs, data_info = _load_split(config)
    model_dir = require_safetensors(resolve_backbone(config.policy), config.policy)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ensure_pad_token(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(accelerator.device)
    guide = _load_guide(config.guide_model, model).to(accelerator.device) if config.guide_model else None
    if config.gradient_checkpointing:
        set_activation_checkpointing(model, enable=True)
    base = None  # the policy before training, for rank 0's evaluation; with LoRA, its adapters switched off
    if config.lora.enabled:
        torch.manual_seed(config.train.seed)  # the adapters start from seeded random A (and B = 0)
        model = add_lora(model, config.lora)
    elif main:
        base = copy.deepcopy(model).eval().requires_grad_(False)
    if main:
        folder.start()  # every check passed, data and models loaded: only now may a previous run go
        config.save(folder.config)
    started = time.perf_counter()
    trained = _train(model, guide, tokenizer, train_pairs, config, folder, main)
    if dist.is_initialized():  # training is over for all: the others leave, cleanly, while rank 0 evaluates
        dist.barrier()
        dist.destroy_process_group()
        if main and config.num_threads is None and accelerator.device.type == "cpu":
            _take_the_cores_left()
    if not main:
        return None
    history = trained.history
    train_seconds = time.perf_counter() - started
    if config.lora.enabled:
        model, base = merged_and_base(model)
    if config.gradient_checkpointing:
        set_activation_checkpointing(model, enable=False)
    model.eval()
    policy_dir = out / "policy"
    with atomic_directory(policy_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    report = {
        "policy": config.policy,
        "guide_model": config.guide_model,
        "loss": get_policy_loss(config.train.loss).name,
        "loss_args": config.train.loss_args,
        "lora": {"r": config.lora.r, "alpha": config.lora.alpha, "target_modules": config.lora.target_modules}
        if config.lora.enabled
        else None,
        "data": data_info,
        "steps": len(history),
        "precision": trained.precision,
        "train_seconds": train_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "first_loss": history[0]["loss"],
        "last_loss": history[-1]["loss"],
        **_evaluate(model, base, tokenizer, test_pairs, config, judge),
    }
    write_text_atomic(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / "report.md", render_report(report))
    return DPORunOutput(out, policy_dir, report)


def _take_the_cores_left() -> None:
    """Rank 0 evaluates alone on CPUs: it takes the threads of this machine's processes that left
    (a launch gives each process its share of the cores)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(min(os.cpu_count() or 1, torch.get_num_threads() * local))


def _load_split(config: DPORunConfig) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """The training pairs (the first ``data.max_train_pairs``, then ConvexDA's and reward augmentation's
    pairs added to those), the held-out pairs, and what the report says about them."""
    d = config.data
    # the count of skipped rows goes to the report; ConvexDA runs below, on the pairs trained on
    data = load_split(dataclasses.replace(d, convex_da=False), say=lambda message: None)
    data.require_training_pairs()
    train = data.splits.train[: d.max_train_pairs] if d.max_train_pairs else data.splits.train
    source_pairs = len(train)
    convex = None
    if d.convex_da:
        train = augment_training_pairs(train, d.convex_da_settings(), say=lambda message: None)
        convex = {"source_pairs": source_pairs, "added": len(train) - source_pairs, "encoder": d.convex_da_encoder}
    augmented_from = len(train)
    if d.reward_augmented:
        train = reward_augmented_pairs(train)
        if not train:
            raise ValueError(f"{data.loaded.path}: reward augmentation left no training pairs (every pair is a tie)")
    held = data.part(config.eval.split)
    test = held[: config.eval.max_pairs] if config.eval.max_pairs else held
    info = {
        "path": d.path if d.path not in (None, "", "default") else "embedded HH-RLHF harmless",
        "pairs": len(data.loaded.pairs),
        "skipped_rows": len(data.loaded.skipped),
        "train_pairs": len(train),
        "reward_augmented": {"source_pairs": augmented_from} if d.reward_augmented else None,
        "convex_da": convex,
        "test_pairs": len(test),
        "evaluated_on": config.eval.split,
        "split": {"validation": d.validation_fraction, "test": d.test_fraction, "seed": d.split_seed},
    }
    return train, test, info


def _load_guide(path: str, policy: torch.nn.Module) -> torch.nn.Module:
    """The frozen guide model of a token-guided loss; it must share the policy's vocabulary, since
    its log-probabilities are read at the policy's tokens."""
    guide = AutoModelForCausalLM.from_pretrained(require_safetensors(resolve_backbone(path), path), dtype=torch.float32)
    size, expected = guide.get_output_embeddings().weight.shape[0], policy.get_output_embeddings().weight.shape[0]
    if size != expected:
        raise ValueError(
            f"guide_model {path}: its vocabulary has {size} tokens, the policy's {expected}; "
            "the guide must be trained from the policy (same tokenizer)"
        )
    return guide.eval().requires_grad_(False)


def _train(
    model: torch.nn.Module,
    guide: torch.nn.Module | None,
    tokenizer: Any,
    pairs: list[Any],
    config: DPORunConfig,
    folder: RunFolder,
    main: bool,
) -> PolicyTrainResult:
    """``train_policy`` with a line of ``metrics.jsonl`` and a progress update per step (from rank 0),
    checkpointing into ``checkpoint/`` and caching the reference log-probabilities in ``cache/``
    (unless ``train.cache_dir`` says where). The reference is the policy before its first step."""
    train = config.train
    if train.cache_dir is None:
        train = dataclasses.replace(train, cache_dir=str(folder.path / "cache"))
    steps_log = _steps_log(config, folder, min(train.batch_pairs, len(pairs))) if main else nullcontext()
    with steps_log as log:
        return train_policy(
            model,
            tokenizer,
            pairs,
            train,
            guide_model=guide,
            log=log,
            checkpoint_dir=folder.checkpoint,
            resume=folder.resuming,
            sharding=launch_sharding(),
        )


@contextmanager
def _steps_log(config: DPORunConfig, folder: RunFolder, per_step: int) -> Iterator[Callable[[int, dict], None]]:
    """The function that writes each step's line of ``metrics.jsonl`` and updates the progress bar."""
    step = checkpoint_step(folder.checkpoint) if folder.resuming else 0
    trackers = start_trackers(tracker_names(config.report_to), folder.path, "rewardlab-dpo", flat_options(config))
    with (
        MetricLogger(folder.metrics, resume_step=step, trackers=trackers) as metrics,
        progress_bar(config.progress, "dpo", config.train.steps) as advance,
    ):
        last = time.perf_counter()

        def log(step: int, values: dict[str, float]) -> None:
            nonlocal last
            now = time.perf_counter()
            metrics.log(step, {**values, "seconds": now - last})
            rate = {"pairs/s": f"{per_step / max(now - last, 1e-9):.1f}"}
            advance(loss=f"{values['loss']:.4f}", acc=f"{values['accuracy']:.2f}", **rate)
            last = now

        yield log


def _evaluate(
    model: torch.nn.Module,
    base: torch.nn.Module,
    tokenizer: Any,
    test_pairs: list[Any],
    config: DPORunConfig,
    judge: RewardModel | None,
) -> dict[str, Any]:
    fmt = choose_format(tokenizer, config.train.text_format)
    t = config.train
    held_out = held_out_accuracy(
        model,
        base,
        tokenizer,
        test_pairs,
        fmt,
        t.max_prompt_tokens,
        t.max_reply_tokens,
        t.batch_pairs,
        config.eval.bootstrap_seed,
    )
    result: dict[str, Any] = {"held_out": held_out.as_dict()}
    e = config.eval
    trained = CausalLM(model, tokenizer, fmt, "trained", t.max_prompt_tokens)
    original = CausalLM(base, tokenizer, fmt, config.policy, t.max_prompt_tokens)
    if e.kl_prompts and e.kl_samples:
        kl_prompts = distinct_prompts(test_pairs, e.kl_prompts)
        result["sampled_kl"] = sampled_kl(
            trained, original, kl_prompts, e.kl_samples, e.max_new_tokens, e.seed
        ).as_dict()
    if judge is not None:
        prompts = distinct_prompts(test_pairs, e.win_prompts)
        outcome = win_rate(trained, original, judge, prompts, e.max_new_tokens, e.temperature, e.seed, e.bootstrap_seed)
        result["win_rate"] = {
            "judge": e.judge_model,
            "decoding": "greedy" if e.temperature == 0 else f"sampled, temperature {e.temperature}, seed {e.seed}",
            "max_new_tokens": e.max_new_tokens,
            **outcome.as_dict(),
        }
    return result
