"""One ``rewardlab prm train`` run: chains → split → train → save → evaluate → report.

The output folder holds ``config.yaml``, ``metrics.jsonl`` (one line per step), ``checkpoint/`` (for
``--resume``), ``model/`` (a reward model folder: it loads with ``RewardModel.from_pretrained`` and plain
transformers, and scores a prompt followed by the first t steps with the logit that the chain is still
right) and ``report.json`` / ``report.md`` (first-wrong-step localisation on the held-out chains).
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from rewardlab.atomic import write_text_atomic
from rewardlab.data.chains import StepChain, read_chains
from rewardlab.models.backbones import DEFAULT_BACKBONE
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.step_scoring import step_logits
from rewardlab.process.scoring import localisation
from rewardlab.process.trainer import ProcessTrainConfig, train_process_model
from rewardlab.progress import progress_bar
from rewardlab.runs.checkpoint import checkpoint_step
from rewardlab.runs.config import RunConfig
from rewardlab.runs.folder import RunRules, claim_run_folder, holds_anything
from rewardlab.runs.metrics import MetricLogger
from rewardlab.tuning import tune_cpu

RULES = RunRules(
    occupied=holds_anything,
    may_change=lambda key: key in ("progress", "num_threads", "train.save_every"),
    owned=("checkpoint", "metrics.jsonl", "model", "report.json", "report.md"),
)


@dataclass
class ProcessRunConfig(RunConfig):
    data: str = ""
    """A JSONL (or JSON, CSV, Parquet) file of chains: prompt, steps, labels (``rewardlab data chains`` writes one)."""
    output_dir: str = "runs/prm"
    backbone: str = DEFAULT_BACKBONE
    """The encoder or decoder to start from: a packaged name (minilm) or a local folder."""
    max_length: int = 256
    """Tokens per scored text (the prompt is cut from the left)."""
    test_fraction: float = 0.2
    """Share of the chains held out for the report."""
    split_seed: int = 0
    max_chains: int | None = None
    """Read only the first this many chains (None: all)."""
    train: ProcessTrainConfig = field(default_factory=ProcessTrainConfig)
    progress: bool = True
    num_threads: int | None = None

    def problems(self) -> list[str]:
        found = [] if self.data else ["data: give the chains file to train on"]
        if not 0.0 < self.test_fraction < 1.0:
            found.append(f"test_fraction must be in (0, 1) (got {self.test_fraction})")
        if self.max_length < 8:
            found.append(f"max_length must be >= 8 (got {self.max_length})")
        return found + self.train.problems()


def split_chains(chains: list[StepChain], test_fraction: float, seed: int) -> tuple[list[StepChain], list[StepChain]]:
    """(train, test): a seeded permutation, ``test_fraction`` of the chains (at least one) held out."""
    if len(chains) < 2:
        raise ValueError(f"{len(chains)} chain: a run needs at least 2 (one to train on, one to test)")
    order = torch.randperm(len(chains), generator=torch.Generator().manual_seed(seed)).tolist()
    held = min(len(chains) - 1, max(1, round(test_fraction * len(chains))))
    return [chains[i] for i in order[held:]], [chains[i] for i in order[:held]]


def run_process_training(config: ProcessRunConfig, overwrite: bool = False, resume: bool = False) -> dict[str, Any]:
    """One run (``resume=True`` continues the run in ``config.output_dir`` from its checkpoint); the report."""
    tune_cpu()
    config.check()
    folder = claim_run_folder(config.output_dir, config, RULES, resume=resume, overwrite=overwrite)
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    chains = read_chains(config.data, config.max_chains)
    unlabelled = next((c for c in chains if c.labels is None), None)
    if unlabelled is not None:
        raise ValueError(f'{unlabelled.source}: field "labels" is missing (training needs a label per step)')
    train, test = split_chains(chains, config.test_fraction, config.split_seed)
    torch.manual_seed(config.train.seed)  # the score head's initial weights: two runs of one config agree
    model = RewardModel.from_backbone(config.backbone, max_length=config.max_length)
    model.info.objective = f"step_bce ({config.train.supervision} supervision)"
    folder.start()
    config.save(folder.config)
    started = time.perf_counter()
    steps = config.train.steps(len(train))
    done = checkpoint_step(folder.checkpoint) if folder.resuming else 0
    with (
        MetricLogger(folder.metrics, resume_step=done) as metrics,
        progress_bar(config.progress, f"training ({config.train.supervision})", steps) as advance,
    ):

        def log(step: int, values: dict[str, float]) -> None:
            metrics.log(step, values)
            advance(loss=f"{values['loss']:.4f}", acc=f"{values['step_accuracy']:.2f}")

        history = train_process_model(model, train, config.train, log, folder.checkpoint, folder.resuming)
    seconds = time.perf_counter() - started
    model.save_pretrained(folder.path / "model")
    logits = step_logits(model, test, progress=config.progress)
    found = localisation(test, [torch.sigmoid(t) for t in logits])
    report = {
        "data": config.data,
        "backbone": config.backbone,
        "supervision": config.train.supervision,
        "train_chains": len(train),
        "test_chains": len(test),
        "steps": len(history),
        "train_seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "first_loss": history[0]["loss"],
        "last_loss": history[-1]["loss"],
        "localisation": found.as_dict(),
    }
    write_text_atomic(folder.path / "report.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(folder.path / "report.md", render_report(report))
    return report


def render_report(report: dict[str, Any]) -> str:
    found = report["localisation"]
    low, high = found["interval"]
    return (
        f"# Process reward model ({report['supervision']} supervision)\n\n"
        f"{report['backbone']} trained on {report['train_chains']} chains of {report['data']} "
        f"({report['steps']} steps, {report['train_seconds']:.0f} s); {report['test_chains']} held out.\n\n"
        "| held-out chains | first wrong step found | with a wrong step | without | step accuracy |\n"
        "|---|---|---|---|---|\n"
        f"| {found['n']} | {found['accuracy']:.3f} ({low:.3f}–{high:.3f}) | "
        f"{share(found['accuracy_on_wrong'])} (n {found['wrong_chains']}) | "
        f"{share(found['accuracy_on_right'])} (n {found['right_chains']}) | {found['step_accuracy']:.3f} |\n"
    )


def share(value: float | None) -> str:
    """A share as the reports print it: three decimals, or a dash when there was nothing to count."""
    return "—" if value is None else f"{value:.3f}"
