"""Issue 33's calibration item: ECE on each of several mixed preference sources before (Bradley-Terry on
the mix) and after the Diversified-Preferences method (MORE, ``objective.name=more``; Zeng et al. 2023).

1. **Training** (``work/models/NAME``): ``rewardlab.train`` with the defaults of ``rewardlab train``
   (MiniLM, 1 epoch, keep best by validation loss) on the packaged sources mixed, each split on its own
   (``data.sources``: ``hh-harmless``, ``ultrafeedback``, ``tulu1``, ``finegrained``; 10 % validation,
   20 % test of each, split seed 0), once with ``bradley_terry`` ("before") and once with ``more``
   ("after"), nothing else changed. Both runs set ``micro_batch_tokens=null`` so one forward pass holds
   the whole step: MORE weighs the sources present in a pass (``objectives/diversified.py``), and for
   Bradley-Terry the setting changes speed and memory only, never the update. MORE costs one more
   forward pass without gradients a step (the head's input features). A model folder holding
   ``done.json`` is not retrained; an unfinished one resumes from its checkpoint.
2. **Scoring** (``work/scores/NAME.json``): each model scores the same test pairs (the split is a pure
   function of the seed). Tie-labelled pairs (Tulu 1's "equal") are left out of accuracy and ECE, as in
   ``rewardlab eval``.
3. **Per source and overall**: accuracy with a 95 % Wilson interval; ECE of σ(r_c − r_r) (10 equal-width
   confidence bins, ``evaluate/calibration.py``) raw and after the model's saved temperature (fitted on
   its validation split), each with a 95 % percentile bootstrap interval over the source's test pairs
   (``--bootstrap`` resamples, seeded); and the paired difference MORE − BT of the raw ECE, resampling the
   same pairs for both models. ECE is biased upwards on a resample (ties in a resample make bins noisier),
   so an interval can sit above a small point estimate; the paired change is what to read.

Outputs in ``--work``: ``results.json`` and ``results.md``. ``--tiny`` runs it all on the 2-layer test
encoder and three of the sources in seconds (``tests/test_more.py``).

The real run (MiniLM): the four sources give 4,895 training pairs (hh-harmless 1,295, ultrafeedback
696, tulu1 804, finegrained 2,100; 554 of them tie-labelled, kept by both objectives) and 1,399 test
pairs (121 ties left out). On a 2-core AMD EPYC with AVX2 only it took 4,770 s for Bradley-Terry and
6,170 s for MORE at one thread beside other work (``benchmarks/RESULTS.md``); each model is kept once
finished, so it can be run over several sittings:

    nice python benchmarks/diversified_calibration.py --work /tmp/diversified-calibration
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import rewardlab
from rewardlab.atomic import write_text_atomic
from rewardlab.data.records import PreferencePair
from rewardlab.data.source_names import source_name
from rewardlab.evaluate.calibration import expected_calibration_error, preference_probabilities
from rewardlab.evaluate.metrics import pairwise_correct, wilson_interval
from rewardlab.evaluate.pairwise import score_pairs
from rewardlab.models.reward_model import RewardModel
from rewardlab.runs.data import load_split
from rewardlab.training.config import load_config

BEFORE, AFTER = "bradley_terry", "more"
SOURCES = ("hh-harmless", "ultrafeedback", "tulu1", "finegrained")
TINY_TRAIN = {
    "precision": "fp32",
    "num_threads": 1,
    "max_steps": 8,
    "batch_size": 8,
    "eval_every": 8,
    "save_every": 8,
    "model.max_length": 48,
    "optim.lr": 3e-3,
    "progress": False,
}
"""``--tiny``: a few steps of a 2-layer encoder, seconds per model."""


@dataclass
class Settings:
    sources: list[str] = field(default_factory=lambda: list(SOURCES))
    backbone: str = "minilm"
    bootstrap: int = 1000
    seed: int = 0
    train: dict[str, Any] = field(default_factory=dict)
    """Extra ``rewardlab.train`` overrides for both models (``--tiny``'s short runs)."""

    def problems(self) -> list[str]:
        errors = []
        if len(self.sources) < 2:
            errors.append(f"--sources needs at least two sources to mix (got {len(self.sources)})")
        if self.bootstrap < 1:
            errors.append(f"--bootstrap must be at least 1 (got {self.bootstrap})")
        return errors


def train_options(settings: Settings, objective: str) -> dict[str, Any]:
    return {
        "model.backbone": settings.backbone,
        "objective.name": objective,
        "micro_batch_tokens": None,
        **settings.train,
    }


def train_models(work: Path, settings: Settings) -> dict[str, dict[str, Any]]:
    """Both models in ``work/models/NAME``; a folder with ``done.json`` is not retrained."""
    done = {}
    for objective in (BEFORE, AFTER):
        folder = work / "models" / objective
        marker = folder / "done.json"
        if not marker.is_file():
            result = rewardlab.train(
                data=settings.sources, output_dir=folder, resume=True, **train_options(settings, objective)
            )
            record = {
                "model_dir": str(result.model_dir),
                "steps": result.steps,
                "best_step": result.best_step,
                "seconds": round(result.seconds, 1),
                "peak_rss_mb": round(result.peak_rss_mb),
            }
            write_text_atomic(marker, json.dumps(record, indent=1) + "\n")
        done[objective] = json.loads(marker.read_text(encoding="utf-8"))
    return done


def held_out_pairs(work: Path) -> list[PreferencePair]:
    """The test split both runs held out (same sources, fractions and seed)."""
    config = load_config(work / "models" / BEFORE / "config.yaml")
    return [p for p in load_split(config.data, say=lambda _: None).splits.test if not p.tie]


def model_scores(work: Path, name: str, model_dir: str, pairs) -> dict[str, Any]:
    """The model's (chosen, rejected) rewards on ``pairs`` and its saved temperature, cached in ``work/scores``."""
    path = work / "scores" / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    model = RewardModel.from_pretrained(model_dir)
    chosen, rejected, _ = score_pairs(model, pairs)
    record = {"chosen": chosen, "rejected": rejected, "temperature": model.info.temperature or 1.0}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record) + "\n")
    return record


def ece_of(gaps: np.ndarray, temperature: float = 1.0) -> float:
    return expected_calibration_error(preference_probabilities(gaps, np.zeros_like(gaps), temperature))


def percentile(values: Sequence[float]) -> tuple[float, float]:
    low, high = np.percentile(np.asarray(values), [2.5, 97.5])
    return float(low), float(high)


def source_row(gaps: dict[str, np.ndarray], temperatures: dict[str, float], rng, draws: int) -> dict[str, Any]:
    """Accuracy (Wilson), raw and temperature-scaled ECE (bootstrap) of each model on one source's pairs,
    and the paired bootstrap of the raw ECE's change."""
    n = len(next(iter(gaps.values())))
    resamples = [rng.integers(0, n, n) for _ in range(draws)]
    row: dict[str, Any] = {"n": n}
    for name, gap in gaps.items():
        correct = pairwise_correct(gap, np.zeros_like(gap))
        low, high = wilson_interval(float(np.sum(correct)), n)
        raw = [ece_of(gap[i]) for i in resamples]
        scaled = [ece_of(gap[i], temperatures[name]) for i in resamples]
        row[name] = {
            "accuracy": float(np.mean(correct)),
            "accuracy_ci": [low, high],
            "ece": ece_of(gap),
            "ece_ci": list(percentile(raw)),
            "ece_scaled": ece_of(gap, temperatures[name]),
            "ece_scaled_ci": list(percentile(scaled)),
        }
    change = [ece_of(gaps[AFTER][i]) - ece_of(gaps[BEFORE][i]) for i in resamples]
    row["ece_change"] = row[AFTER]["ece"] - row[BEFORE]["ece"]
    row["ece_change_ci"] = list(percentile(change))
    return row


def compare(work: Path, settings: Settings, training: dict[str, dict[str, Any]]) -> dict[str, Any]:
    pairs = held_out_pairs(work)
    scores = {name: model_scores(work, name, t["model_dir"], pairs) for name, t in training.items()}
    gaps = {name: np.asarray(s["chosen"]) - np.asarray(s["rejected"]) for name, s in scores.items()}
    temperatures = {name: float(s["temperature"]) for name, s in scores.items()}
    names = [source_name(p) or "" for p in pairs]
    rng = np.random.default_rng(settings.seed)
    rows = {}
    for source in dict.fromkeys(names):
        keep = np.array([n == source for n in names])
        rows[source] = source_row({k: g[keep] for k, g in gaps.items()}, temperatures, rng, settings.bootstrap)
    rows["all"] = source_row(gaps, temperatures, rng, settings.bootstrap)
    return {"per_source": rows, "temperatures": temperatures}


def interval(values: Sequence[float]) -> str:
    return f"{values[0]:.3f} – {values[1]:.3f}"


def markdown(result: dict[str, Any]) -> str:
    lines = ["# ECE per source before (Bradley-Terry) and after MORE", "", "## Models", ""]
    lines += ["| model | steps | best step | seconds | peak RSS MB |", "|---|---|---|---|---|"]
    for name, t in result["training"].items():
        lines.append(f"| {name} | {t['steps']} | {t['best_step']} | {t['seconds']} | {t['peak_rss_mb']} |")
    lines += ["", "## Test pairs per source", ""]
    lines += ["| source | n | model | accuracy (95 % CI) | ECE (95 % CI) | ECE after T (95 % CI) |"]
    lines += ["|---|---|---|---|---|---|"]
    for source, row in result["comparison"]["per_source"].items():
        for name in (BEFORE, AFTER):
            m = row[name]
            lines.append(
                f"| {source} | {row['n']} | {name} | {m['accuracy']:.3f} ({interval(m['accuracy_ci'])}) "
                f"| {m['ece']:.3f} ({interval(m['ece_ci'])}) | {m['ece_scaled']:.3f} ({interval(m['ece_scaled_ci'])}) |"
            )
    lines += ["", "## ECE change, MORE − Bradley-Terry (paired bootstrap)", ""]
    lines += ["| source | n | change | 95 % CI |", "|---|---|---|---|"]
    for source, row in result["comparison"]["per_source"].items():
        lines.append(f"| {source} | {row['n']} | {row['ece_change']:+.3f} | {interval(row['ece_change_ci'])} |")
    return "\n".join(lines) + "\n"


def run(work: Path, settings: Settings) -> dict[str, Any]:
    if problems := settings.problems():
        raise SystemExit("; ".join(problems))
    work.mkdir(parents=True, exist_ok=True)
    training = train_models(work, settings)
    result = {"settings": settings.__dict__, "training": training, "comparison": compare(work, settings, training)}
    write_text_atomic(work / "results.json", json.dumps(result, indent=1) + "\n")
    write_text_atomic(work / "results.md", markdown(result))
    return result


def tiny_settings(work: Path) -> Settings:
    """A 2-layer test encoder (``tests/tiny_models.py``), a few steps on three packaged sources."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_models import build_tiny_encoder, built_once

    encoder = built_once(build_tiny_encoder, work / "tiny-encoder")
    return Settings(
        sources=["hh-harmless", "ultrafeedback", "tulu1"],
        backbone=str(encoder),
        bootstrap=50,
        train=dict(TINY_TRAIN),
    )


def parse_args(argv: Sequence[str] | None) -> tuple[Path, Settings]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    defaults = Settings()
    parser.add_argument("--work", type=Path, required=True, help="folder of the models, scores and results (resumable)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer test encoder and a few pairs (smoke run)")
    parser.add_argument("--sources", default=",".join(defaults.sources), help="comma-separated packaged names or files")
    parser.add_argument("--bootstrap", type=int, default=defaults.bootstrap, help="bootstrap resamples per interval")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the bootstrap")
    args = parser.parse_args(argv)
    settings = tiny_settings(args.work) if args.tiny else Settings()
    if not args.tiny:
        settings.sources = [s.strip() for s in args.sources.split(",") if s.strip()]
        settings.bootstrap = args.bootstrap
    settings.seed = args.seed
    return args.work, settings


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    work, settings = parse_args(argv)
    result = run(work, settings)
    print((work / "results.md").read_text(encoding="utf-8"))
    return result


if __name__ == "__main__":
    main()
