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
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardlab.atomic import atomic_directory, write_text_atomic
from rewardlab.data import ColumnMap, load_preferences, split_pairs
from rewardlab.models.backbones import resolve_backbone, set_activation_checkpointing
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.formatting import choose_format
from rewardlab.models.reward_model import RewardModel, ensure_pad_token
from rewardlab.policy.evaluation import distinct_prompts, held_out_accuracy, win_rate
from rewardlab.policy.lora import add_lora, merged_and_base
from rewardlab.policy.registry import get_policy_loss
from rewardlab.policy.run_config import DPORunConfig
from rewardlab.policy.run_report import render_report
from rewardlab.policy.trainer import PolicyTrainResult, train_policy
from rewardlab.progress import progress_bar
from rewardlab.training.checkpoint import checkpoint_step
from rewardlab.training.trainer import MetricLogger, RunExists


@dataclass(frozen=True)
class DPORunOutput:
    output_dir: Path
    policy_dir: Path
    report: dict[str, Any]


def run_dpo(config: DPORunConfig, overwrite: bool = False, resume: bool = False) -> DPORunOutput:
    """One run; ``resume=True`` continues the run in ``config.output_dir`` from its last checkpoint
    (same configuration, except that ``train.steps`` may grow), or starts it when there is none."""
    config.validate()
    out = Path(config.output_dir)
    checkpoint = out / "checkpoint"
    resuming = resume and (checkpoint / "state.json").is_file()
    if resuming:
        _check_same_run(out / "config.yaml", config)
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise RunExists(
            f"{out} already holds a run; pass --resume to continue it, --overwrite to replace it, "
            "or choose another --output"
        )
    judge = RewardModel.from_pretrained(config.eval.judge_model) if config.eval.judge_model else None
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    train_pairs, test_pairs, data_info = _load_split(config)
    model_dir = resolve_backbone(config.policy)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ensure_pad_token(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if config.gradient_checkpointing:
        set_activation_checkpointing(model, enable=True)
    if config.lora.enabled:
        torch.manual_seed(config.train.seed)  # the adapters start from seeded random A (and B = 0)
        model, base = add_lora(model, config.lora), None  # the reference is the base, adapters off
    else:
        base = copy.deepcopy(model).eval().requires_grad_(False)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.yaml")
    if resuming:
        MetricLogger.truncate(out / "metrics.jsonl", checkpoint_step(checkpoint))
    started = time.perf_counter()
    trained = _train(model, base, tokenizer, train_pairs, config, out, resuming)
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


def _load_split(config: DPORunConfig) -> tuple[list[Any], list[Any], dict[str, Any]]:
    d = config.data
    path = None if d.path in (None, "", "default") else d.path
    loaded = load_preferences(
        path, columns=ColumnMap.parse(d.columns) if d.columns else None, skip_bad_rows=d.skip_bad_rows
    )
    splits = split_pairs(loaded.pairs, validation=d.validation_fraction, test=d.test_fraction, seed=d.split_seed)
    train = splits.train[: d.max_train_pairs] if d.max_train_pairs else splits.train
    held = splits.validation if config.eval.split == "validation" else splits.test
    test = held[: config.eval.max_pairs] if config.eval.max_pairs else held
    if not train:
        raise ValueError(f"{path or 'embedded data'}: the training split is empty ({len(loaded.pairs)} pairs)")
    info = {
        "path": path or "embedded HH-RLHF harmless",
        "pairs": len(loaded.pairs),
        "skipped_rows": len(loaded.skipped),
        "train_pairs": len(train),
        "test_pairs": len(test),
        "evaluated_on": config.eval.split,
        "split": {"validation": d.validation_fraction, "test": d.test_fraction, "seed": d.split_seed},
    }
    return train, test, info


def _train(
    model: torch.nn.Module,
    base: torch.nn.Module | None,
    tokenizer: Any,
    pairs: list[Any],
    config: DPORunConfig,
    out: Path,
    resuming: bool,
) -> PolicyTrainResult:
    """``train_policy`` with a line of ``metrics.jsonl`` and a progress-bar update per step, checkpointing
    into ``out/checkpoint`` and caching the reference log-probabilities in ``out/cache`` (unless
    ``train.cache_dir`` says where)."""
    train = config.train
    if train.cache_dir is None:
        train = dataclasses.replace(train, cache_dir=str(out / "cache"))
    with (
        (out / "metrics.jsonl").open("a" if resuming else "w", encoding="utf-8") as metrics,
        progress_bar(config.progress, "dpo", config.train.steps) as advance,
    ):
        last = time.perf_counter()

        def log(step: int, values: dict[str, float]) -> None:
            nonlocal last
            now = time.perf_counter()
            metrics.write(json.dumps({"step": step, **values, "seconds": now - last}) + "\n")
            metrics.flush()
            last = now
            advance(loss=f"{values['loss']:.4f}", acc=f"{values['accuracy']:.2f}")

        checkpoint = out / "checkpoint"
        return train_policy(
            model, tokenizer, pairs, train, reference_model=base, log=log, checkpoint_dir=checkpoint, resume=resuming
        )


def _check_same_run(saved: Path, config: DPORunConfig) -> None:
    """A resumed run must train what the interrupted one trained: every option that changes the
    weights must be the same (``train.steps`` may grow; output, progress and evaluation may change)."""
    if not saved.is_file():
        raise ValueError(f"{saved}: missing; cannot check that --resume continues the same run")
    before = _flat(yaml.safe_load(saved.read_text(encoding="utf-8")))
    now = _flat(dataclasses.asdict(config))
    weights = ("policy", "data.", "train.", "lora.", "gradient_checkpointing")
    free = ("train.steps", "train.save_every")
    changed = [
        f"{key}: {before.get(key)!r} -> {value!r}"
        for key, value in now.items()
        if key.startswith(weights) and key not in free and before.get(key) != value
    ]
    if changed:
        raise ValueError(
            f"{saved.parent} was trained with other options; --resume needs the same ones: " + "; ".join(changed)
        )


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-6}}`` as ``{"train.lr": 1e-6}`` (loss_args stays one value)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "loss_args":
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


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
    if judge is not None:
        e = config.eval
        trained = CausalLM(model, tokenizer, fmt, "trained", t.max_prompt_tokens)
        original = CausalLM(base, tokenizer, fmt, config.policy, t.max_prompt_tokens)
        prompts = distinct_prompts(test_pairs, e.win_prompts)
        outcome = win_rate(trained, original, judge, prompts, e.max_new_tokens, e.temperature, e.seed, e.bootstrap_seed)
        result["win_rate"] = {
            "judge": e.judge_model,
            "decoding": "greedy" if e.temperature == 0 else f"sampled, temperature {e.temperature}, seed {e.seed}",
            "max_new_tokens": e.max_new_tokens,
            **outcome.as_dict(),
        }
    return result
