"""One ``rewardlab distill train`` run: data → load student and teachers (one tokenizer) → train → save.

With ``student_samples`` (a file from :func:`run_student_samples`, ``rewardlab distill samples``) each
training pair's rejected reply is the SFT student's own sample for its prompt, as ADPA is defined.

The output folder holds ``config.yaml``, ``metrics.jsonl`` (one line per step), ``student/`` (the
trained student with its tokenizer, safetensors, atomic; with LoRA the merged model) and ``report.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewardlab.atomic import atomic_directory, write_text_atomic
from rewardlab.data.records import PreferencePair
from rewardlab.distill.student_samples import read_student_samples, with_student_rejected, write_student_samples
from rewardlab.distill.trainer import DistillTrainConfig, DistillTrainResult, shared_vocabulary_problems, train_distill
from rewardlab.models.backbones import resolve_backbone
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import ensure_pad_token
from rewardlab.models.weight_files import require_safetensors
from rewardlab.policy.lora import LoraSettings, add_lora, merged_and_base
from rewardlab.policy.run_config import DPODataConfig
from rewardlab.progress import progress_bar
from rewardlab.runs.checkpoint import checkpoint_step
from rewardlab.runs.config import RunConfig, load_run_config
from rewardlab.runs.data import load_split
from rewardlab.runs.folder import RunFolder, RunRules, claim_run_folder, holds_anything
from rewardlab.runs.metrics import MetricLogger
from rewardlab.sampling.generation import SampleConfig

RULES = RunRules(
    occupied=holds_anything,
    may_change=lambda key: key in ("train.steps", "train.save_every", "progress", "num_threads"),
    owned=("checkpoint", "metrics.jsonl", "student", "report.json"),
)


@dataclass
class DistillRunConfig(RunConfig):
    output_dir: str = "runs/distill"
    student: str = ""
    """The student's folder (e.g. from `rewardlab distill student`); it must share the teacher's tokenizer."""
    teacher: str | None = None
    """The aligned teacher (e.g. the policy/ folder of a `rewardlab dpo` run)."""
    teacher_reference: str | None = None
    """The teacher before alignment (its DPO reference), for the advantage of adpa methods."""
    data: DPODataConfig = field(default_factory=DPODataConfig)
    student_samples: str | None = None
    """A samples file (``rewardlab distill samples``): the rejected replies become the student's own."""
    train: DistillTrainConfig = field(default_factory=DistillTrainConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    num_threads: int | None = None
    progress: bool = True

    def problems(self) -> list[str]:
        found = [f"train.{p}" for p in self.train.problems()]
        found += [f"lora.{p}" for p in self.lora.problems()] + self.data.problems()
        if not self.student:
            found.append("student: set the student's folder (student=PATH, --student)")
        if not found:
            weights = self.train.loss_weights()
            if weights.needs_teacher and not self.teacher:
                found.append(f"teacher: method {self.train.method!r} needs the aligned teacher (--teacher)")
            if weights.needs_teacher_reference and not self.teacher_reference:
                found.append(
                    f"teacher_reference: method {self.train.method!r} needs the teacher's reference "
                    "(--teacher-reference)"
                )
        if self.student_samples and not Path(self.student_samples).is_file():
            found.append(f"student_samples: no file {self.student_samples} (write it with `rewardlab distill samples`)")
        if self.num_threads is not None and self.num_threads < 1:
            found.append(f"num_threads must be >= 1 (got {self.num_threads})")
        return found


@dataclass(frozen=True)
class DistillRunOutput:
    output_dir: Path
    student_dir: Path
    report: dict[str, Any]


def load_distill_config(path: str | Path | None = None, overrides: Any = ()) -> DistillRunConfig:
    return load_run_config(DistillRunConfig(), path, overrides)


def load_frozen(name: str, shown: str) -> tuple[torch.nn.Module, Any]:
    """A causal LM and its tokenizer from a packaged name or folder (safetensors only), frozen."""
    folder = require_safetensors(resolve_backbone(name), f"{shown} {name}")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model.eval().requires_grad_(False), AutoTokenizer.from_pretrained(folder)


def training_pairs(data_config: DPODataConfig) -> list[PreferencePair]:
    """The pairs a run trains on: the training split, its first ``max_train_pairs``."""
    data = load_split(data_config, say=lambda message: None)
    data.require_training_pairs()
    limit = data_config.max_train_pairs
    return data.splits.train[:limit] if limit else data.splits.train


def run_student_samples(
    student: str,
    output: str | Path,
    data_config: DPODataConfig,
    sampling: SampleConfig,
    *,
    max_prompt_tokens: int = 512,
    batch_rows: int = 16,
    progress: bool = True,
) -> Path:
    """One sampled reply of ``student`` (the SFT start) per distinct prompt of the training pairs that
    ``data_config`` selects, written to ``output`` for ``student_samples``; resumable."""
    prompts = [pair.prompt for pair in training_pairs(data_config)]
    lm = CausalLM.from_pretrained(student, max_prompt_tokens=max_prompt_tokens)
    return write_student_samples(
        lm, prompts, output, sampling, student=str(student), batch_rows=batch_rows, progress=progress
    )


def run_distill(config: DistillRunConfig, overwrite: bool = False, resume: bool = False) -> DistillRunOutput:
    """One run, resumable from its checkpoint (same options, except that ``train.steps`` may grow)."""
    config.check()
    folder = claim_run_folder(config.output_dir, config, RULES, resume=resume, overwrite=overwrite)
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    pairs = training_pairs(config.data)
    if config.student_samples:
        pairs = with_student_rejected(pairs, read_student_samples(config.student_samples), config.student_samples)
    student_dir = require_safetensors(resolve_backbone(config.student), f"student {config.student}")
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    ensure_pad_token(tokenizer)
    student = AutoModelForCausalLM.from_pretrained(student_dir, dtype=torch.float32)
    weights = config.train.loss_weights()
    teachers: dict[str, torch.nn.Module | None] = {"teacher": None, "teacher_reference": None}
    problems: list[str] = []
    for name, wanted in (("teacher", weights.needs_teacher), ("teacher_reference", weights.needs_teacher_reference)):
        path = getattr(config, name)
        if wanted and path:
            model, their_tokenizer = load_frozen(path, name)
            problems += shared_vocabulary_problems(student, tokenizer, model, their_tokenizer, f"{name} {path}")
            teachers[name] = model
    if problems:
        raise ValueError("the models cannot be distilled:\n" + "\n".join(f"  - {p}" for p in problems))
    if config.lora.enabled:
        torch.manual_seed(config.train.seed)
        student = add_lora(student, config.lora)
    folder.start()
    config.save(folder.config)
    started = time.perf_counter()
    trained = _train(student, tokenizer, pairs, config, teachers, folder)
    seconds = time.perf_counter() - started
    if config.lora.enabled:
        student, _ = merged_and_base(student)
    out_dir = folder.path / "student"
    with atomic_directory(out_dir) as tmp:
        student.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    history = trained.history
    report = {
        "student": config.student,
        "teacher": config.teacher if weights.needs_teacher else None,
        "teacher_reference": config.teacher_reference if weights.needs_teacher_reference else None,
        "method": config.train.method,
        "weights": vars(weights),
        "student_samples": config.student_samples,
        "train_pairs": len(pairs),
        "steps": len(history),
        "train_seconds": seconds,
        "first": history[0],
        "last": history[-1],
    }
    write_text_atomic(folder.path / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return DistillRunOutput(folder.path, out_dir, report)


def _train(
    student: torch.nn.Module,
    tokenizer: Any,
    pairs: list[Any],
    config: DistillRunConfig,
    teachers: dict[str, torch.nn.Module | None],
    folder: RunFolder,
) -> DistillTrainResult:
    step = checkpoint_step(folder.checkpoint) if folder.resuming else 0
    with (
        MetricLogger(folder.metrics, resume_step=step) as metrics,
        progress_bar(config.progress, f"distill {config.train.method}", config.train.steps) as advance,
    ):

        def log(step: int, values: dict[str, float]) -> None:
            metrics.log(step, values)
            advance(loss=f"{values['loss']:.4f}")

        return train_distill(
            student,
            tokenizer,
            pairs,
            config.train,
            teacher=teachers["teacher"],
            teacher_reference=teachers["teacher_reference"],
            log=log,
            checkpoint_dir=folder.checkpoint,
            resume=folder.resuming,
        )
