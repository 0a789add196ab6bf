"""Reward-model training speed and accuracy: rewardlab against TRL's ``RewardTrainer``, in one run.

What is measured
----------------
For each backbone (all-MiniLM-L6-v2, SmolLM2-135M-Instruct) this script trains reward models with
TRL's ``RewardTrainer`` and with rewardlab's trainer, one configuration per subprocess, alternating
between the two tools, and reports for every run:

- pairs/s and real (non-padding) tokens/s over the training loop only: from the first batch to the
  end of the last optimiser step, without model loading, tokenisation, checkpoint saving or
  evaluation (TRL: a callback's ``on_train_begin`` to its last ``on_step_end``; rewardlab: the sum
  of its logging windows, which span exactly its loop). Real tokens are those of both texts of
  every pair trained on, as TRL counts them; rewardlab computes a decoder pair's shared prompt once,
  which shows as speed, not as fewer tokens;
- the process's whole wall time (loading, tokenisation, training, and scoring where there is one),
  and how many cores' worth of CPU other processes used meanwhile (from /proc/stat): before each
  run the script waits for a quiet CPU;
- the peak resident memory of the run's process, read when training ends (so it is per run);
- for MiniLM (one epoch), pairwise accuracy on the 370 held-out pairs with a 95 % bootstrap
  interval, and a paired bootstrap comparison of rewardlab with TRL's fastest setting on the same
  pairs. SmolLM2 trains on too few pairs (default 80) to judge accuracy.

Why the comparison is fair
--------------------------
- Same data: the embedded HH-RLHF harmless pairs split by ``rewardlab.data.split_pairs`` (seed 0);
  both tools train on train + validation (1,480 pairs) and are scored on the same 370 test pairs.
- TRL drops pairs longer than ``max_length`` instead of truncating them, so for the throughput
  ratio rewardlab trains on exactly the pairs TRL keeps (checked against TRL's own filtered
  dataset); rewardlab trained on all 1,480 pairs is reported separately, for accuracy.
- Same work: 8 pairs a step, lr 2e-5, max length 256, one epoch, seed 0, 2 torch threads, the same
  environment variables, no evaluation or saving inside the timed loop; TRL keeps its own default
  of disabled dropout (``RewardConfig.disable_dropout``).
- SmolLM2 (about 10 s a step) trains one epoch over ``--smollm2-steps`` x 8 pairs, a seeded sample
  of TRL's survivors, the same pairs for every run: a fixed step count over the whole set would
  give each tool different pairs (rewardlab's length-bucketed batches and TRL's random ones differ
  in length), so pairs/s would compare different work.
- TRL is compared at its best, not its defaults: it runs at its defaults (bf16 autocast and
  gradient checkpointing on a CPU), without gradient checkpointing in fp32 and in bf16, and with
  length-grouped batches (``train_sampling_strategy="group_by_length"`` with a precomputed
  ``length`` column and ``remove_unused_columns=False``, without which it cannot run) in bf16 and in
  fp32; the fastest of these is "TRL best" and ratios are rewardlab / TRL best. On a CPU without
  bf16 units (no AMX, no AVX512-BF16), where bf16 matrix products are emulated at a few GFLOP/s and
  rewardlab computes in fp32, TRL's bf16 runs stop after ``--emulated-bf16-steps`` steps, unscored.
- Same text, where it matters: rewardlab renders SmolLM2's input with the model's chat template by
  default, which makes a pair longer than TRL's raw transcript; real tokens/s covers that, and
  rewardlab also runs with TRL's text format (``model.text_format=plain``) on SmolLM2.
- Accuracy: each model scores its own text format (TRL: the full transcript plus its eos token,
  tokenised as TRL tokenises it; rewardlab: ``RewardModel.from_pretrained`` and
  ``evaluate_pairs``), texts truncated from the left to 256 tokens, fp32, ties in score count 1/2.

Usage
-----
    python benchmarks/train_vs_trl.py --backbones minilm
    python benchmarks/train_vs_trl.py --backbones minilm --rounds 2   # each run twice, in turn
    python benchmarks/train_vs_trl.py --backbones smollm2 --smollm2-steps 10
    python benchmarks/train_vs_trl.py --quick          # smoke test: 3 steps' worth of pairs per run
    python benchmarks/train_vs_trl.py --runs rewardlab --rewardlab-set micro_batch_tokens=null

Results go to ``benchmarks/results/train_vs_trl.{md,json}`` (``train_vs_trl_quick`` with
``--quick``, another name with ``--output``); a section per backbone, so running the backbones one
at a time fills one report.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_LENGTH = 256
BATCH_SIZE = 8
LEARNING_RATE = 2e-5
SEED = 0
THREADS = 2
QUICK_STEPS = 3
DISTURBED_CORES = 0.1
"""A run whose loop other processes took more CPU from than this (in cores) is repeated."""
BACKBONES = ("minilm", "smollm2")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CHILD_ENV = {
    "OMP_NUM_THREADS": str(THREADS),
    "MKL_NUM_THREADS": str(THREADS),
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONHASHSEED": "0",
    # What rewardlab's runs set before torch computes (bitwise-repeatable MKL, tuning.py); here for both tools alike.
    "MKL_CBWR": "AUTO,STRICT",
}


@dataclass(frozen=True)
class RunSpec:
    """One training run, executed in its own process."""

    key: str
    label: str
    tool: str  # "trl" or "rewardlab"
    backbone: str  # "minilm" or "smollm2"
    data_path: str  # JSONL of full transcripts ("chosen", "rejected"; TRL's files also "idx")
    pair_set: str  # "trl_kept" or "all"
    evaluate: bool
    work_dir: str
    gradient_checkpointing: bool | None = None  # TRL only; None keeps RewardConfig's default
    bf16: bool | None = None  # TRL only; None keeps RewardConfig's default
    group_by_length: bool = False  # TRL only
    text_format: str = "auto"  # rewardlab only: its default, or "plain" (TRL's raw-transcript text)
    onednn_cache: int | None = None  # TRL only: oneDNN's kernel cache capacity (None: oneDNN's default, 1024)
    train_layers: int | None = None  # rewardlab only: train the top blocks only (None: every weight, the default)
    max_steps: int | None = None  # TRL only: stop after this many steps (None: the whole epoch)
    overrides: tuple[tuple[str, Any], ...] = ()  # rewardlab only: settings changed from its defaults


# -- data ------------------------------------------------------------------------------------------


def load_split() -> tuple[list[Any], list[Any]]:
    """(train + validation, test) pairs of the embedded data, split with ``split_pairs`` defaults."""
    from rewardlab.data import load_preferences, split_pairs

    splits = split_pairs(load_preferences().pairs)
    return splits.train + splits.validation, splits.test


def transcript(prompt: str, reply: str) -> str:
    """The raw HH-RLHF form: the implicit prompt followed by the reply."""
    if not isinstance(prompt, str):
        raise TypeError("the embedded data has text prompts; a conversation prompt was not expected")
    return prompt + reply


def backbone_dir(backbone: str) -> Path:
    if backbone == "minilm":
        from rewardlab.models.backbones import minilm_dir

        return minilm_dir()
    from rewardlab.models.smollm2 import smollm2_dir

    return smollm2_dir()


def trl_tokenizer(backbone: str) -> Any:
    """The backbone's tokenizer, with an eos token (MiniLM has none; TRL appends one to every text)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(backbone_dir(backbone))
    if tokenizer.eos_token is None:
        tokenizer.eos_token = tokenizer.sep_token
    return tokenizer


def with_eos(text: str, eos: str) -> str:
    """What TRL's ``add_eos`` does to a non-conversational text."""
    return text if text.endswith(eos) else text + eos


def trl_survivors(pairs: list[Any], backbone: str) -> list[int]:
    """Indices of the pairs TRL keeps: both sides, eos added, at most ``MAX_LENGTH`` tokens."""
    tokenizer = trl_tokenizer(backbone)

    def fits(text: str) -> bool:
        return len(tokenizer(with_eos(text, tokenizer.eos_token))["input_ids"]) <= MAX_LENGTH

    return [
        i
        for i, p in enumerate(pairs)
        if fits(transcript(p.prompt, p.chosen)) and fits(transcript(p.prompt, p.rejected))
    ]


def write_transcripts(pairs: list[Any], indices: Iterable[int], path: Path, with_index: bool = False) -> Path:
    """``pairs[i]`` for each index as full transcripts, the raw file's own form, which rewardlab reads
    back into the same pairs (its explicit ``prompt`` form rejects an empty reply, which three
    embedded pairs have). ``with_index`` adds ``idx`` = i, to check which pairs TRL keeps.
    """
    with path.open("w", encoding="utf-8") as f:
        for i in indices:
            pair = pairs[i]
            row: dict[str, Any] = {
                "chosen": transcript(pair.prompt, pair.chosen),
                "rejected": transcript(pair.prompt, pair.rejected),
            }
            if with_index:
                row["idx"] = i
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def sample(indices: list[int], size: int | None) -> list[int]:
    """A seeded sample of ``size`` indices in their original order (all of them when ``size`` is None)."""
    if size is None or size >= len(indices):
        return list(indices)
    return sorted(random.Random(SEED).sample(indices, size))


def check_round_trip(path: Path, expected: list[Any]) -> None:
    """rewardlab must read ``path`` back into exactly ``expected`` (same pairs, same order)."""
    from rewardlab.data import load_preferences

    if load_preferences(path).pairs != expected:
        raise RuntimeError(f"{path}: rewardlab does not read back the pairs that were written")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# -- plan ------------------------------------------------------------------------------------------


def plan_runs(
    backbone: str, files: dict[str, Path], work: Path, emulated_bf16_steps: int | None = None
) -> list[RunSpec]:
    """The runs for one backbone, TRL and rewardlab alternating.

    With ``emulated_bf16_steps`` (a CPU without bf16 units, where bf16 matrix products run at a few
    GFLOP/s and one epoch would take hours), TRL's bf16 runs stop after that many steps and are not
    scored: their speed is measured, their accuracy is not.
    """
    evaluate = backbone == "minilm"
    common = {"backbone": backbone, "evaluate": evaluate, "work_dir": str(work)}
    trl = {"tool": "trl", "data_path": str(files["trl"]), "pair_set": "trl_kept", **common}
    rl = {"tool": "rewardlab", **common}
    runs = [
        RunSpec(key="trl-default", label="TRL, defaults (bf16 autocast, grad. checkpointing)", **trl),
        RunSpec(
            key="trl-fp32", label="TRL, fp32, no grad. checkpointing", gradient_checkpointing=False, bf16=False, **trl
        ),
        RunSpec(
            key="rewardlab",
            label="rewardlab, defaults, on TRL's pairs",
            data_path=str(files["kept"]),
            pair_set="trl_kept",
            **rl,
        ),
        RunSpec(
            key="trl-bf16",
            label="TRL, bf16 autocast, no grad. checkpointing",
            gradient_checkpointing=False,
            bf16=True,
            **trl,
        ),
    ]
    if evaluate:
        runs.append(
            RunSpec(
                key="rewardlab-all",
                label="rewardlab, defaults, all training pairs (long ones truncated)",
                data_path=str(files["all"]),
                pair_set="all",
                **rl,
            )
        )
    if backbone == "smollm2":
        runs.append(
            RunSpec(
                key="rewardlab-plain",
                label="rewardlab, TRL's text format (text_format=plain), on TRL's pairs",
                data_path=str(files["kept"]),
                pair_set="trl_kept",
                text_format="plain",
                **rl,
            )
        )
    top_third = {"minilm": 2, "smollm2": 10}[backbone]  # of 6 and 30 blocks
    runs.append(
        RunSpec(
            key="rewardlab-top-third",
            label=f"rewardlab, training only the top {top_third} blocks (model.train_layers), on TRL's pairs",
            data_path=str(files["kept"]),
            pair_set="trl_kept",
            train_layers=top_third,
            **rl,
        )
    )
    grouped = {"gradient_checkpointing": False, "bf16": True, "group_by_length": True, **trl}
    runs.append(RunSpec(key="trl-bf16-grouped", label="TRL, bf16, no grad. ckpt, length-grouped batches", **grouped))
    runs.append(
        RunSpec(
            key="trl-bf16-grouped-cache16",
            label="TRL, bf16, no grad. ckpt, length-grouped, oneDNN cache of 16 kernels (rewardlab's setting)",
            onednn_cache=16,
            **grouped,
        )
    )
    runs.append(
        RunSpec(
            key="trl-fp32-grouped",
            label="TRL, fp32, no grad. ckpt, length-grouped batches",
            **grouped | {"bf16": False},
        )
    )
    if emulated_bf16_steps:
        runs = [cap_emulated_bf16(run, emulated_bf16_steps) for run in runs]
    return runs


def with_overrides(run: RunSpec, overrides: list[tuple[str, Any]]) -> RunSpec:
    """A rewardlab run with ``--rewardlab-set`` settings, named in its label."""
    if run.tool != "rewardlab" or not overrides:
        return run
    named = ", ".join(f"{key}={value}" for key, value in overrides)
    return dataclasses.replace(run, overrides=run.overrides + tuple(overrides), label=f"{run.label}; {named}")


def cap_emulated_bf16(run: RunSpec, steps: int) -> RunSpec:
    """A TRL bf16 run (RewardConfig's default is bf16) cut to ``steps`` steps and not scored."""
    if run.tool != "trl" or run.bf16 is False:
        return run
    label = f"{run.label}; {steps} step{'s' if steps > 1 else ''} only (bf16 is emulated on this CPU)"
    return dataclasses.replace(run, max_steps=steps, evaluate=False, label=label)


# -- child: one training run ------------------------------------------------------------------------


def peak_rss_gb() -> float:
    """This process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def trl_arguments(spec: RunSpec, output_dir: Path) -> dict[str, Any]:
    """RewardConfig arguments: the shared settings, TRL's defaults unless the spec says otherwise."""
    args: dict[str, Any] = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "max_length": MAX_LENGTH,
        "seed": SEED,
        "eval_strategy": "no",
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        # Device choice only (this machine has no GPU); without it RewardConfig's default bf16=True is refused.
        "use_cpu": True,
    }
    args["num_train_epochs"] = 1
    if spec.gradient_checkpointing is not None:
        args["gradient_checkpointing"] = spec.gradient_checkpointing
    if spec.bf16 is not None:
        args["bf16"] = spec.bf16
    if spec.max_steps is not None:
        args["max_steps"] = spec.max_steps
    if spec.group_by_length:
        # TRL's dataset has no input_ids column, so the sampler needs a precomputed "length" column,
        # which Trainer would drop as unused before building the sampler.
        args["train_sampling_strategy"] = "group_by_length"
        args["remove_unused_columns"] = False
    return args


def make_loop_timer() -> Any:
    """A callback timing TRL's loop: on_train_begin to the last on_step_end."""
    from transformers import TrainerCallback

    class LoopTimer(TrainerCallback):
        def __init__(self) -> None:
            self.started = self.ended = 0.0
            self.steps = 0
            self.cpu = CpuMeter()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.cpu.mark()
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.ended = time.perf_counter()
            self.steps += 1
            self.cpu.mark()

    return LoopTimer()


def counting_reward_trainer() -> type:
    """``RewardTrainer`` that also counts the pairs it trains on (TRL counts the tokens itself)."""
    from trl import RewardTrainer

    class CountingRewardTrainer(RewardTrainer):
        pairs_trained = 0

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            if model.training:
                self.pairs_trained += inputs["input_ids"].shape[0] // 2
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    return CountingRewardTrainer


def dropout_probabilities(model: Any) -> list[float]:
    import torch

    return sorted({float(m.p) for m in model.modules() if isinstance(m, torch.nn.Dropout)})


def run_trl(spec: RunSpec) -> dict[str, Any]:
    from datasets import Dataset
    from trl import RewardConfig

    tokenizer = trl_tokenizer(spec.backbone)
    config = RewardConfig(**trl_arguments(spec, Path(spec.work_dir) / f"out-{spec.key}"))
    timer = make_loop_timer()
    trainer = counting_reward_trainer()(
        model=str(backbone_dir(spec.backbone)),
        args=config,
        train_dataset=Dataset.from_list(read_jsonl(spec.data_path)),
        processing_class=tokenizer,
        callbacks=[timer],
    )
    if spec.group_by_length:
        trainer.train_dataset = trainer.train_dataset.map(
            lambda e: {"length": max(len(e["chosen_ids"]), len(e["rejected_ids"]))}
        )
    kept = sorted(trainer.train_dataset["idx"])
    metrics = trainer.train().metrics
    result = {
        "pairs": trainer.pairs_trained,
        "tokens": int(trainer._total_train_tokens),
        "steps": timer.steps,
        "loop_s": timer.ended - timer.started,
        "others_cores_loop": timer.cpu.others_cores,
        "peak_rss_gb": peak_rss_gb(),
        "trl_kept_indices": kept,
        "trl_train_runtime_s": metrics.get("train_runtime"),
        "settings": {
            "gradient_checkpointing": config.gradient_checkpointing,
            "model_checkpointing_on": bool(getattr(trainer.model, "is_activation_checkpointing", False)),
            "bf16": config.bf16,
            "mixed_precision": str(trainer.accelerator.mixed_precision),
            "disable_dropout": config.disable_dropout,
            "dropout_p": dropout_probabilities(trainer.model),
            "train_sampling_strategy": config.train_sampling_strategy,
            "lr_scheduler": getattr(config.lr_scheduler_type, "value", str(config.lr_scheduler_type)),
        },
    }
    if spec.evaluate:
        _, test = load_split()
        result["correct"] = score_trl_model(trainer.model, tokenizer, test)
    return result


def score_trl_model(model: Any, tokenizer: Any, pairs: list[Any]) -> list[float]:
    """Per-pair correctness of a TRL-trained model on its own text format, left-truncated to 256 tokens."""
    from rewardlab.evaluate.metrics import pairwise_correct
    from rewardlab.models.reward_model import RewardModel, RewardModelInfo
    from rewardlab.models.sequences import encode_texts

    texts = [with_eos(transcript(p.prompt, p.chosen), tokenizer.eos_token) for p in pairs]
    texts += [with_eos(transcript(p.prompt, p.rejected), tokenizer.eos_token) for p in pairs]
    encoded = encode_texts(tokenizer, texts, MAX_LENGTH, add_special_tokens=True)
    check_trl_tokenisation(tokenizer, texts, encoded.ids)
    scorer = RewardModel(model, tokenizer, RewardModelInfo(text_format="plain", max_length=MAX_LENGTH))
    scores = scorer.score_ids(encoded.ids, precision="fp32")
    n = len(pairs)
    return pairwise_correct(scores[:n], scores[n:]).tolist()


def check_trl_tokenisation(tokenizer: Any, texts: list[str], ids: list[list[int]]) -> None:
    """Texts that fit must get exactly TRL's token ids (``tokenizer(text)``)."""
    for text, encoded in zip(texts, ids, strict=True):
        reference = tokenizer(text)["input_ids"]
        if len(reference) <= MAX_LENGTH and reference != encoded:
            raise RuntimeError("scoring tokenises a text differently from TRL")


def instrument_rewardlab_loop(module: Any, cpu: CpuMeter) -> dict[str, float]:
    """Count what rewardlab's loop does: time, pairs and computed tokens from its logging windows
    (which together span the loop), and the real tokens of both texts of every pair it trains on.

    The two token counts differ for decoders, where rewardlab computes a pair's shared prompt once;
    ``text_tokens`` is what TRL counts (the non-padding tokens of the chosen and rejected texts).
    """
    totals = {"seconds": 0.0, "pairs": 0.0, "computed_tokens": 0.0, "text_tokens": 0.0}

    class TimedWindow(module.Window):
        def __init__(self) -> None:
            cpu.mark()
            super().__init__()

        def flush(self, accelerator: Any) -> dict[str, float]:
            totals["seconds"] += time.perf_counter() - self.started
            totals["pairs"] += float(self.sums[2])
            totals["computed_tokens"] += float(self.sums[3])
            cpu.mark()
            return super().flush(accelerator)

    step = module._train_step

    def counted_step(model: Any, data: Any, global_batch: list[int], *args: Any, **kwargs: Any) -> Any:
        totals["text_tokens"] += sum(len(data.chosen[i]) + len(data.rejected[i]) for i in global_batch)
        return step(model, data, global_batch, *args, **kwargs)

    module.Window = TimedWindow
    module._train_step = counted_step
    return totals


def rewardlab_overrides(spec: RunSpec) -> dict[str, Any]:
    """rewardlab's defaults plus the shared settings; no validation, test split or checkpoint in the loop."""
    return {
        "output_dir": str(Path(spec.work_dir) / f"out-{spec.key}"),
        "data.path": spec.data_path,
        "data.validation_fraction": 0.0,
        "data.test_fraction": 0.0,
        "model.backbone": spec.backbone,
        "model.max_length": MAX_LENGTH,
        "model.text_format": spec.text_format,
        "model.head_init": "random",  # TRL starts from the backbone's fresh head too: the same training, timed
        "model.train_layers": spec.train_layers,
        "batch_size": BATCH_SIZE,
        "optim.lr": LEARNING_RATE,
        "epochs": 1.0,
        "keep_best": False,
        "eval_every": 10**9,
        "save_every": 10**9,
        "seed": SEED,
        "num_threads": THREADS,
        "progress": False,
    } | dict(spec.overrides)


def run_rewardlab(spec: RunSpec) -> dict[str, Any]:
    from rewardlab.precision import resolve_precision
    from rewardlab.training import trainer as rl_trainer
    from rewardlab.training.config import load_config

    cpu = CpuMeter()
    totals = instrument_rewardlab_loop(rl_trainer, cpu)
    config = load_config(None, rewardlab_overrides(spec))
    trained = rl_trainer.train(config, overwrite=True)
    result = {
        "pairs": int(totals["pairs"]),
        "tokens": int(totals["text_tokens"]),
        "computed_tokens": int(totals["computed_tokens"]),
        "steps": trained.steps,
        "loop_s": totals["seconds"],
        "rewardlab_loop_seconds": getattr(trained, "loop_seconds", None),
        "others_cores_loop": cpu.others_cores,
        "peak_rss_gb": peak_rss_gb(),
        "settings": {
            "precision": resolve_precision(config.precision),
            "text_format": config.model.text_format,
            "dropout": config.model.dropout,
            "gradient_checkpointing": config.model.gradient_checkpointing,
            "lr_scheduler": "cosine, 5 % warmup",
        },
    }
    if spec.evaluate:
        result["correct"] = score_rewardlab_model(trained.model_dir)
    return result


def score_rewardlab_model(model_dir: Path) -> list[float]:
    from rewardlab.evaluate.metrics import pairwise_correct
    from rewardlab.evaluate.pairwise import evaluate_pairs
    from rewardlab.models.reward_model import RewardModel

    _, test = load_split()
    evaluation = evaluate_pairs(RewardModel.from_pretrained(model_dir), test, precision="fp32")
    return pairwise_correct(evaluation.chosen_scores, evaluation.rejected_scores).tolist()


def child_main(spec_path: Path, result_path: Path) -> None:
    import torch

    torch.set_num_threads(THREADS)
    fields = json.loads(spec_path.read_text(encoding="utf-8"))
    spec = RunSpec(**fields | {"overrides": tuple(tuple(kv) for kv in fields["overrides"])})
    started = time.perf_counter()
    result = run_trl(spec) if spec.tool == "trl" else run_rewardlab(spec)
    result["child_s"] = time.perf_counter() - started
    result["torch_threads"] = torch.get_num_threads()
    result["rewardlab_commit"] = git_state()
    result_path.write_text(json.dumps(result), encoding="utf-8")


# -- parent: run, summarise, report ----------------------------------------------------------------


def child_env(spec: RunSpec) -> dict[str, str]:
    """The child's environment: rewardlab sets oneDNN's cache capacity when imported unless it is set
    already (and the TRL child imports rewardlab for its data), so a TRL run is given oneDNN's own
    default, 1024, explicitly unless its spec asks for another capacity."""
    env = os.environ | CHILD_ENV
    if spec.tool == "trl":
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(spec.onednn_cache or 1024)
    return env


def run_child(spec: RunSpec, work: Path, max_wait_s: float) -> dict[str, Any]:
    """Run one spec in a fresh interpreter, once the CPU is quiet; its output goes to a log file."""
    spec_path, result_path, log_path = (work / f"{spec.backbone}-{spec.key}.{ext}" for ext in ("spec", "json", "log"))
    spec_path.write_text(json.dumps(dataclasses.asdict(spec)), encoding="utf-8")
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path), "--result", str(result_path)]
    others_before = wait_for_quiet(max_wait_s)
    print(f"[{now()}] {spec.backbone} {spec.key}: running (log {log_path})", flush=True)
    busy, own, started = cpu_busy_s(), own_cpu_s(), time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=child_env(spec), check=False)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise RuntimeError(f"{spec.key} failed with exit code {process.returncode}:\n{tail}")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result["others_cores_before"] = others_before
    result["others_cores"] = max(0.0, (cpu_busy_s() - busy) - (own_cpu_s() - own)) / wall
    print(
        f"[{now()}] {spec.backbone} {spec.key}: {result['pairs'] / result['loop_s']:.3f} pairs/s, "
        f"{result['tokens'] / result['loop_s']:.1f} tokens/s, {result['steps']} steps, "
        f"peak RSS {result['peak_rss_gb']:.2f} GB, other processes {result['others_cores_loop']:.2f} cores "
        f"in the loop, {result['others_cores']:.2f} over the run",
        flush=True,
    )
    return result


def run_undisturbed(spec: RunSpec, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run a spec, repeating it (at most ``args.retries`` times) while other processes disturb its loop."""
    discarded = []
    for attempt in range(args.retries + 1):
        raw = run_child(spec, work, args.max_wait_quiet)
        if raw["others_cores_loop"] <= DISTURBED_CORES or attempt == args.retries:
            break
        print(f"[{now()}] {spec.key}: other processes used {raw['others_cores_loop']:.2f} cores; repeating", flush=True)
        discarded.append({k: raw[k] for k in ("pairs", "tokens", "loop_s", "others_cores_loop")})
    raw["discarded_attempts"] = discarded
    return raw


# -- other processes on the CPU ---------------------------------------------------------------------


def cpu_busy_s() -> float:
    """CPU-seconds all processes on this machine have been busy since boot (all cores, from /proc/stat)."""
    first_line = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in first_line.split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU-seconds used by this process and its finished children."""
    usages = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return sum(u.ru_utime + u.ru_stime for u in usages)


def others_cores(seconds: float) -> float:
    """Cores' worth of CPU that other processes use over the next ``seconds``."""
    busy, own = cpu_busy_s(), own_cpu_s()
    time.sleep(seconds)
    return max(0.0, (cpu_busy_s() - busy) - (own_cpu_s() - own)) / seconds


class CpuMeter:
    """Cores' worth of CPU that other processes use between the first and the latest ``mark()``.

    Used inside a run to watch its training loop alone: the busy time of the whole machine
    (/proc/stat) minus this process's own CPU time, over the wall time.
    """

    def __init__(self) -> None:
        self.first: tuple[float, float, float] | None = None
        self.others_cores = 0.0

    def mark(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        reading = (cpu_busy_s(), usage.ru_utime + usage.ru_stime, time.perf_counter())
        if self.first is None:
            self.first = reading
            return
        busy, own, wall = (b - a for a, b in zip(self.first, reading, strict=True))
        self.others_cores = max(0.0, busy - own) / max(wall, 1e-9)


def wait_for_quiet(max_wait_s: float, threshold: float = 0.1) -> float:
    """Wait (at most ``max_wait_s``) until other processes use under ``threshold`` cores; returns their use."""
    deadline = time.monotonic() + max_wait_s
    last_note = -math.inf
    while True:
        load = others_cores(5.0)
        if load < threshold or time.monotonic() >= deadline:
            return load
        if time.monotonic() - last_note > 300:
            print(f"[{now()}] other processes use {load:.2f} cores; waiting for a quiet CPU", flush=True)
            last_note = time.monotonic()
        time.sleep(25)


def now() -> str:
    return dt.datetime.now().strftime("%H:%M:%S")


def accuracy_summary(correct: list[float]) -> dict[str, float]:
    import numpy as np

    from rewardlab.evaluate.metrics import bootstrap_ci

    values = np.asarray(correct)
    low, high = bootstrap_ci(values)
    return {"accuracy": float(values.mean()), "ci_low": low, "ci_high": high, "n": int(values.size)}


def paired_comparison(a: list[float], b: list[float]) -> dict[str, float]:
    """Accuracy difference a - b on the same pairs, with a paired bootstrap 95 % interval."""
    import numpy as np

    from rewardlab.evaluate.metrics import bootstrap_ci

    x, y = np.asarray(a), np.asarray(b)
    low, high = bootstrap_ci(x - y)
    return {
        "difference": float((x - y).mean()),
        "ci_low": low,
        "ci_high": high,
        "only_a_right": int(((x == 1) & (y == 0)).sum()),
        "only_b_right": int(((x == 0) & (y == 1)).sum()),
    }


def summarise_run(spec: RunSpec, raw: dict[str, Any]) -> dict[str, Any]:
    row = {
        "key": spec.key,
        "label": spec.label,
        "tool": spec.tool,
        "pair_set": spec.pair_set,
        "pairs": raw["pairs"],
        "steps": raw["steps"],
        "tokens": raw["tokens"],
        "loop_s": raw["loop_s"],
        "pairs_per_s": raw["pairs"] / raw["loop_s"],
        "tokens_per_s": raw["tokens"] / raw["loop_s"],
        "peak_rss_gb": raw["peak_rss_gb"],
        "child_s": raw["child_s"],
        "others_cores": raw["others_cores"],
        "others_cores_loop": raw["others_cores_loop"],
        "discarded_attempts": raw["discarded_attempts"],
        "others_cores_before": raw["others_cores_before"],
        "torch_threads": raw["torch_threads"],
        "rewardlab_commit": raw["rewardlab_commit"],
        "settings": raw["settings"],
    }
    for extra in ("trl_train_runtime_s", "computed_tokens", "rewardlab_loop_seconds"):
        if extra in raw:
            row[extra] = raw[extra]
    if "correct" in raw:
        row["held_out"] = accuracy_summary(raw["correct"])
        row["correct"] = raw["correct"]
    return row


def add_ratios(rows: list[dict[str, Any]]) -> str | None:
    """Add each comparable run's ratio to the fastest TRL run (pairs/s); returns its key (None: no TRL run)."""
    trl_rows = [r for r in rows if r["tool"] == "trl"]
    if not trl_rows:
        return None
    best = max(trl_rows, key=lambda r: r["pairs_per_s"])
    for row in rows:
        if row["pair_set"] == "trl_kept":
            row["ratio_pairs_per_s"] = row["pairs_per_s"] / best["pairs_per_s"]
            row["ratio_tokens_per_s"] = row["tokens_per_s"] / best["tokens_per_s"]
    return best["key"]


def paired_rows(rows: list[dict[str, Any]], best_key: str | None) -> list[dict[str, Any]]:
    """rewardlab's runs against TRL best, pair by pair on the held-out set."""
    by_key = {r["key"]: r for r in rows}
    best = by_key.get(best_key)
    if best is None or "correct" not in best:
        return []
    return [
        {"a": r["key"], "b": best_key, **paired_comparison(r["correct"], best["correct"])}
        for r in rows
        if r["tool"] == "rewardlab" and "correct" in r
    ]


def git_state() -> str:
    """The rewardlab commit measured, marked ``+modified`` when src/ differs from it."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" +modified src/" if git("status", "--porcelain", "src") else "")


def environment() -> dict[str, Any]:
    import datasets
    import torch
    import transformers
    import trl

    from rewardlab.precision import cpu_has_fast_bf16

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "rewardlab_commit": git_state(),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "cpu_fast_bf16": cpu_has_fast_bf16(),
        "torch_threads": THREADS,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "datasets": datasets.__version__,
    }


def sample_size(backbone: str, args: argparse.Namespace) -> int | None:
    """Pairs per run when not all: ``steps x 8`` for SmolLM2 and for --quick, so one epoch is that many steps."""
    if args.quick:
        return QUICK_STEPS * BATCH_SIZE
    return args.smollm2_steps * BATCH_SIZE if backbone == "smollm2" else None


def run_backbone(backbone: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    train, test = load_split()
    kept = trl_survivors(train, backbone)
    size = sample_size(backbone, args)
    trl_set, all_set = sample(kept, size), sample(list(range(len(train))), size)
    files = {
        # Without sampling TRL gets every pair and filters them itself; a sample is drawn from its survivors.
        "trl": write_transcripts(train, trl_set if size else range(len(train)), work / f"{backbone}-trl.jsonl", True),
        "kept": write_transcripts(train, trl_set, work / f"{backbone}-kept.jsonl"),
        "all": write_transcripts(train, all_set, work / f"{backbone}-all.jsonl"),
    }
    check_round_trip(files["kept"], [train[i] for i in trl_set])
    check_round_trip(files["all"], [train[i] for i in all_set])
    print(
        f"{backbone}: {len(train)} training pairs, TRL keeps {len(kept)}, runs train on {len(trl_set)}; "
        f"{len(test)} held out",
        flush=True,
    )
    from rewardlab.precision import cpu_has_fast_bf16

    planned = plan_runs(backbone, files, work, None if cpu_has_fast_bf16() else args.emulated_bf16_steps)
    specs = [with_overrides(s, args.rewardlab_set) for s in planned if not args.runs or s.key in args.runs.split(",")]
    raws: dict[str, list[dict[str, Any]]] = {spec.key: [] for spec in specs}
    for _ in range(args.rounds):  # every configuration once a round, in turn, so drift reaches them all
        for spec in specs:
            raw = run_undisturbed(spec, work, args)
            if spec.tool == "trl" and raw["trl_kept_indices"] != trl_set:
                raise RuntimeError(f"{spec.key}: TRL kept a different pair set than predicted")
            raws[spec.key].append(raw)
    rows = []
    for spec in specs:
        speeds = [raw["pairs"] / raw["loop_s"] for raw in raws[spec.key]]
        row = summarise_run(spec, raws[spec.key][speeds.index(max(speeds))])
        rows.append(row | {"pairs_per_s_rounds": speeds})
    best_key = add_ratios(rows)
    schedule = "one epoch" if size is None else f"one epoch over a seeded sample of {len(trl_set)} of TRL's pairs"
    return {
        "backbone": backbone,
        "command": "python benchmarks/train_vs_trl.py " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "schedule": schedule,
        "pairs": {"train": len(train), "trl_kept": len(kept), "trained_on": len(trl_set), "held_out": len(test)},
        "trl_best": best_key,
        "runs": rows,
        "paired": paired_rows(rows, best_key),
    }


# -- report ----------------------------------------------------------------------------------------


def fmt_acc(row: dict[str, Any]) -> str:
    held = row.get("held_out")
    if not held:
        return "–"
    return f"{held['accuracy']:.3f} [{held['ci_low']:.3f}, {held['ci_high']:.3f}]"


def fmt_others(row: dict[str, Any]) -> str:
    return f"{row['others_cores_loop']:.2f} cores" if "others_cores_loop" in row else "–"


def fmt_rounds(row: dict[str, Any]) -> str:
    rounds = row.get("pairs_per_s_rounds", [])
    return f" ({', '.join(f'{v:.2f}' for v in rounds)})" if len(rounds) > 1 else ""


def fmt_ratio(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:.2f}" if key in row else "– (other pairs)"


def sample_note(pairs: dict[str, int]) -> str:
    trained_on = pairs.get("trained_on", pairs["trl_kept"])
    if trained_on >= pairs["trl_kept"]:
        return ""
    return f", and every run trains on the same seeded sample of {trained_on:,} of those"


def repeated_note(runs: list[dict[str, Any]]) -> str:
    repeated = [f"{r['key']} ({len(r['discarded_attempts'])}x)" for r in runs if r.get("discarded_attempts")]
    note = f" Repeated because other processes disturbed the loop: {', '.join(repeated)}." if repeated else ""
    commits = sorted({r.get("rewardlab_commit", "?") for r in runs})
    if len(commits) > 1:
        note += f" The rewardlab code changed during the runs: {', '.join(commits)}."
    return note


def section_markdown(section: dict[str, Any]) -> str:
    env = section["environment"]
    pairs = section["pairs"]
    name = {"minilm": "all-MiniLM-L6-v2", "smollm2": "SmolLM2-135M-Instruct"}[section["backbone"]]
    best = next((r for r in section["runs"] if r["key"] == section["trl_best"]), {"label": "no TRL run"})
    lines = [
        f"### {name}, {section['schedule']}",
        "",
        f"`{section['command']}` ({section['date']}; {env['cpu']}, {env['cpu_cores']} cores, "
        f"{env['torch_threads']} torch threads; torch {env['torch']}, transformers {env['transformers']}, "
        f"trl {env['trl']}; rewardlab {env.get('rewardlab_commit', '?')}). "
        f"Training pairs: {pairs['train']:,}, of which TRL keeps {pairs['trl_kept']:,} "
        f"(at most {MAX_LENGTH} tokens){sample_note(pairs)}; held out: {pairs['held_out']}. "
        f"TRL best: {best['label']}." + repeated_note(section["runs"]),
        "",
        "| configuration | pairs trained | steps | pairs/s | real tokens/s | ratio to TRL best (pairs/s) "
        "| ratio (tokens/s) | peak RSS | held-out acc [95 % CI] | process time | other processes (loop) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in section["runs"]:
        lines.append(
            f"| {row['label']} | {row['pairs']:,} | {row['steps']} | {row['pairs_per_s']:.3f}{fmt_rounds(row)} | "
            f"{row['tokens_per_s']:,.0f} | {fmt_ratio(row, 'ratio_pairs_per_s')} | "
            f"{fmt_ratio(row, 'ratio_tokens_per_s')} | {row['peak_rss_gb']:.2f} GB | {fmt_acc(row)} | "
            f"{row['child_s']:.0f} s | {fmt_others(row)} |"
        )
    if section["paired"]:
        labels = {r["key"]: r["label"] for r in section["runs"]}
        lines += [
            "",
            "| paired on the held-out pairs | accuracy difference [95 % paired bootstrap CI] | only A right | "
            "only B right |",
            "|---|---|---|---|",
        ]
        for p in section["paired"]:
            lines.append(
                f"| A = {labels[p['a']]} vs B = {labels[p['b']]} | {p['difference']:+.3f} "
                f"[{p['ci_low']:+.3f}, {p['ci_high']:+.3f}] | {p['only_a_right']} | {p['only_b_right']} |"
            )
    return "\n".join(lines) + "\n"


NOTES = """\
pairs/s and real tokens/s cover the training loop only (first batch to last optimiser step); real
tokens are the non-padding tokens of both texts of every pair trained on, counted alike for both
tools. Ratios are to the fastest TRL run on the same pairs. Peak RSS is the run's own process when
training ends. Process time is the whole run: loading, tokenisation, training, and for MiniLM
scoring the held-out pairs. Other processes: cores' worth of CPU used by other processes during
the timed loop. Held-out accuracy: 370 pairs, fp32 scores, texts cut from the left to 256 tokens,
ties in score 1/2, 95 % percentile bootstrap interval. With `--rounds N` every configuration runs
N times, one configuration after the other in each round, and the row shows its fastest run, with
the pairs/s of every round in brackets.
"""


def report_markdown(sections: dict[str, dict[str, Any]]) -> str:
    parts = ["## Reward-model training: rewardlab vs TRL RewardTrainer", "", NOTES]
    parts += [section_markdown(sections[b]) for b in BACKBONES if b in sections]
    return "\n".join(parts)


def write_report(sections: dict[str, dict[str, Any]], name: str) -> Path:
    """Merge the new sections into the stored results ``name``.{json,md} (other backbones' sections are kept)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RESULTS_DIR / name
    json_path = stem.with_suffix(".json")
    stored = json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else {}
    stored = stored | sections
    json_path.write_text(json.dumps(stored, indent=1) + "\n", encoding="utf-8")
    md_path = stem.with_suffix(".md")
    md_path.write_text(report_markdown(stored), encoding="utf-8")
    return md_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="minilm,smollm2", help="comma-separated: minilm, smollm2")
    parser.add_argument(
        "--smollm2-steps",
        type=int,
        default=10,
        help="SmolLM2 runs train one epoch over this many steps' worth of pairs (x8), the same pairs for all",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke test: one epoch over {QUICK_STEPS} steps' worth of pairs"
    )
    parser.add_argument(
        "--max-wait-quiet",
        type=float,
        help="before each run, wait up to this many seconds for other processes to leave the CPU "
        "(default 3600, 0 with --quick)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        help=f"repeat a run at most this many times when other processes used over {DISTURBED_CORES} cores "
        "in its loop (default 2, 0 with --quick)",
    )
    parser.add_argument("--runs", help="comma-separated keys of the runs to make (default: all)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each configuration, taken in turn")
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary folder (models, logs)")
    parser.add_argument(
        "--output",
        help="results file name in benchmarks/results, without extension (default train_vs_trl, or "
        "train_vs_trl_quick with --quick)",
    )
    parser.add_argument(
        "--rewardlab-set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="change one rewardlab setting from its default in every rewardlab run, e.g. "
        "micro_batch_tokens=null (repeatable; the value is JSON)",
    )
    parser.add_argument(
        "--emulated-bf16-steps",
        type=int,
        default=3,
        help="on a CPU without bf16 units, TRL's bf16 runs stop after this many steps (unscored)",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    if args.max_wait_quiet is None:
        args.max_wait_quiet = 0.0 if args.quick else 3600.0
    if args.retries is None:
        args.retries = 0 if args.quick else 2
    unknown = set(args.backbones) - set(BACKBONES)
    if unknown:
        parser.error(f"unknown backbone(s) {sorted(unknown)}; choose from {', '.join(BACKBONES)}")
    if args.smollm2_steps < 1:
        parser.error("--smollm2-steps must be at least 1")
    if args.emulated_bf16_steps < 1:
        parser.error("--emulated-bf16-steps must be at least 1")
    args.rewardlab_set = [parse_setting(parser, text) for text in args.rewardlab_set]
    return args


def parse_setting(parser: argparse.ArgumentParser, text: str) -> tuple[str, Any]:
    """``KEY=JSON`` as (key, value); a value that is not JSON is taken as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        parser.error(f"--rewardlab-set expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child_main(args.child, args.result)
        return
    os.environ.update(CHILD_ENV)
    work = Path(tempfile.mkdtemp(prefix="train_vs_trl_"))
    try:
        sections = {backbone: run_backbone(backbone, args, work) for backbone in args.backbones}
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    path = write_report(sections, args.output or ("train_vs_trl_quick" if args.quick else "train_vs_trl"))
    print()
    print(report_markdown(sections))
    print(f"written to {path} and {path.with_suffix('.json')}")


if __name__ == "__main__":
    main()
