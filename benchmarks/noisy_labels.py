"""Noisy preferences (issue 32's benchmark): inject label flips, curate, and measure what it bought.

Per dataset (the embedded HH-RLHF harmless pairs and the packaged UltraFeedback pairs, the same
files as ``../shared/data``), the pairs are split as ``rewardlab train`` splits them
(``runs.data.load_split``: 10 % validation, 20 % test, split seed 0). Per seed, ``inject_flips``
reverses a seeded ``rate`` of the **training** split (symmetric noise; validation and test labels
are untouched); rate 0 is the untouched real data. On that training split:

- ``clean``: trained on the unflipped training split (the ceiling); ``noisy``: on the flipped one;
- ``flip`` / ``drop`` / ``soft``: an ensemble of ``--members`` models trained on the noisy split
  judges each pair (``curation.strength.preference_strength``), ``curation.curate.decide`` flips,
  drops or softens (Secrets of RLHF Part II), and one model is trained on the result (``soft``:
  ``soft_bradley_terry`` on the soft labels);
- ``peer-review`` / ``self-filter``: two models trained on the halves of ``curation.peer.peer_halves``
  judge the pairs (``judge_margins``: the peer, or the model that trained on the pair, Two Minds
  Better Than One's comparison); flagged pairs are dropped and one model is trained on the rest.

Two learners (``--learner``):

- ``finetune``: the default ``rewardlab train`` recipe (``training.trainer.train`` with the default
  config, ``--set key=value`` overrides on top) on the given splits (the validation split, clean, picks
  the checkpoint as in ``rewardlab train``); margins by ``curation.strength.score_members``; ensemble
  member 0 is the noisy model, member k the same run with seed 1000·seed + k. Each run's folder is
  removed once measured. About 10 models per (dataset, rate) and seed;
- ``probe``: linear Bradley-Terry heads on frozen ``--encoder`` features (``collect.features.FeatureCache``,
  cached under ``--output``), fitted by ``training.probe.fit_linear_bt``; the ensemble is
  ``collect.ensemble.FeatureEnsemble`` (bootstrap members). Seconds per model: many seeds.

Reported per dataset × rate: held-out accuracy (Wilson interval for one seed; mean and 95 % t
interval across seeds), the recovered share (method − noisy) / (clean − noisy) of mean accuracies,
the precision, recall and F1 of the flagged pairs against the injected flips (``noise.flag_quality``),
and on the real data the pairs each method flags with 20 readable examples. Results go to
``--output`` (``noisy_labels.json``, ``noisy_labels.md``); each (dataset, seed, rate) cell is written
as it finishes and read back on a rerun, so a killed run resumes.

``--threshold`` is ``curate.py``'s (a judge margin below −threshold flags a pair); a linear probe's
margins are small (|μ| < 1), so its default 0.5 flags almost nothing there: use 0 (the judge reverses the pair).

    taskset -c 1 nice -n 19 python benchmarks/noisy_labels.py --learner probe --threshold 0 --output /tmp/noisy-probe
    nice python benchmarks/noisy_labels.py --learner finetune --threshold 0 --output /tmp/noisy-finetune
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from rewardlab.atomic import write_text_atomic
from rewardlab.collect.items import prompt_text
from rewardlab.curation import (
    decide,
    flag_quality,
    flip_pair,
    inject_flips,
    judge_margins,
    peer_halves,
    preference_strength,
    soft_label,
)
from rewardlab.curation.curate import Decision
from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.metrics import estimate, wilson_interval
from rewardlab.progress import progress_bar
from rewardlab.runs.data import SplitDataConfig, load_split

DATASETS = ("hh-harmless", "ultrafeedback")
METHODS = ("clean", "noisy", "flip", "drop", "soft", "peer-review", "self-filter")
CURATED = ("flip", "drop", "soft", "peer-review", "self-filter")
EXAMPLES = 20


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for the cells, the cache and the report")
    parser.add_argument("--learner", choices=("probe", "finetune"), default="probe")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="packaged dataset names or files")
    parser.add_argument("--rates", default="0.2,0.4", help="flip rates of the training split (0 is always run)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 5 probe, 1 finetune)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--members", type=int, default=3, help="ensemble members judging the strength")
    parser.add_argument("--threshold", type=float, default=0.5, help="flag a pair whose judge margin is below −this")
    parser.add_argument("--ensemble-weight", type=float, default=0.5, help="w of the soft labels (curate.py)")
    parser.add_argument("--limit", type=int, default=None, help="first N train, N/4 test pairs (quick runs)")
    parser.add_argument("--encoder", default="minilm", help="probe: frozen encoder, minilm, smollm2 or a folder")
    parser.add_argument("--max-length", type=int, default=None, help="probe: tokens the encoder reads")
    parser.add_argument("--l2", type=float, default=1.0, help="probe: prior weight λ on the summed loss")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="finetune: key=value config")
    args = parser.parse_args(argv)
    args.rates = sorted({0.0, *(float(r) for r in args.rates.split(",") if r.strip())})
    if not all(0 <= r < 1 for r in args.rates):
        parser.error(f"--rates must be in [0, 1) (got {args.rates})")
    args.seeds = args.seeds or (5 if args.learner == "probe" else 1)
    if args.members < 2:
        parser.error("--members must be at least 2 (an ensemble)")
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    return args


# -- the learners: train on pairs, score pairs ---------------------------------------------------------


@dataclasses.dataclass
class Trained:
    """A trained reward: its held-out correctness per test pair and whatever scores pairs later."""

    correct: np.ndarray
    handle: Any


class ProbeLearner:
    """Linear Bradley-Terry heads on frozen features: r(x) = w·φ(x)."""

    def __init__(self, args: argparse.Namespace, pairs: Sequence[PreferencePair]) -> None:
        from rewardlab.collect.features import FeatureCache
        from rewardlab.collect.items import item_key
        from rewardlab.models.embeddings import MAX_LENGTH

        self.l2 = args.l2
        length = args.max_length or MAX_LENGTH
        slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{Path(args.encoder).name}-{length}").strip("-")
        cache = FeatureCache(
            args.output / f"features-{slug}.safetensors", args.encoder, max_length=length, progress=True
        )
        items = {}
        for p in pairs:
            text = prompt_text(p.prompt)
            items[item_key(text, (p.chosen, p.rejected))] = _Item(item_key(text, (p.chosen, p.rejected)), text, p)
        features = cache.features(list(items.values()))
        self.vectors: dict[tuple[str, str], np.ndarray] = {}
        for key, item in items.items():
            self.vectors[(item.text, item.pair.chosen)] = features[key][0].astype(np.float64)
            self.vectors[(item.text, item.pair.rejected)] = features[key][1].astype(np.float64)

    def diffs(self, pairs: Sequence[PreferencePair]) -> np.ndarray:
        """φ(chosen) − φ(rejected) per pair (a flipped pair's is the original's, negated)."""
        texts = [prompt_text(p.prompt) for p in pairs]
        return np.stack(
            [self.vectors[(t, p.chosen)] - self.vectors[(t, p.rejected)] for t, p in zip(texts, pairs, strict=True)]
        )

    def train(
        self, name: str, pairs: list[PreferencePair], seed: int, test: list[PreferencePair], soft: bool = False
    ) -> Trained:
        import torch

        from rewardlab.training.probe import fit_linear_bt

        d = self.diffs(pairs)
        t = np.array([p.strength if soft and p.strength is not None else 1.0 for p in pairs])
        weights = torch.from_numpy(np.concatenate([t, 1 - t]))
        w = fit_linear_bt(torch.from_numpy(np.concatenate([d, -d])), weights, self.l2 / len(pairs)).double().numpy()
        return Trained(_correct(self.diffs(test) @ w), w)

    def margins(self, models: Sequence[Trained], pairs: list[PreferencePair]) -> np.ndarray:
        return np.stack([self.diffs(pairs) @ m.handle for m in models])

    def ensemble_margins(
        self, name: str, pairs: list[PreferencePair], seed: int, members: int, first: Trained | None = None
    ) -> np.ndarray:
        """Margins of ``members`` bootstrap heads (``first``, a head fitted on every pair, is not one)."""
        from rewardlab.collect.ensemble import FeatureEnsemble

        d = self.diffs(pairs)
        return FeatureEnsemble(members, self.l2, seed=seed).fit(d, np.ones(len(d))).rewards(d)


@dataclasses.dataclass(frozen=True)
class _Item:
    key: str
    text: str
    pair: PreferencePair

    @property
    def prompt(self) -> str:
        return self.text

    @property
    def replies(self) -> tuple[str, str]:
        return (self.pair.chosen, self.pair.rejected)


class FinetuneLearner:
    """``rewardlab train``'s default recipe on the given splits; a run's folder is removed once measured."""

    def __init__(self, args: argparse.Namespace, validation: dict[str, list[PreferencePair]]) -> None:
        self.args, self.validation = args, validation
        self.dataset = ""

    def _run(self, name: str, pairs: list[PreferencePair], seed: int, test: list[PreferencePair], objective: str):
        from rewardlab.data.split import Splits
        from rewardlab.training.config import load_config
        from rewardlab.training.trainer import train

        folder = self.args.output / "runs" / name
        overrides = [*self.args.overrides, f"seed={seed}", f"output_dir={folder}", f"objective.name={objective}"]
        splits = Splits(train=pairs, validation=self.validation[self.dataset], test=test)
        return train(load_config(None, overrides), overwrite=True, splits=splits)

    def train(
        self, name: str, pairs: list[PreferencePair], seed: int, test: list[PreferencePair], soft: bool = False
    ) -> Trained:
        result = self._run(name, pairs, seed, test, "soft_bradley_terry" if soft else "bradley_terry")
        assert result.test is not None
        chosen, rejected = np.array(result.test.chosen_scores), np.array(result.test.rejected_scores)
        ordered = np.array(result.test.ordered, dtype=bool)
        return Trained(_correct((chosen - rejected)[ordered]), result.output_dir)

    def margins(self, models: Sequence[Trained], pairs: list[PreferencePair]) -> np.ndarray:
        from rewardlab.curation import score_members

        return score_members(pairs, [Path(m.handle) / "model" for m in models], progress=True)

    def ensemble_margins(
        self, name: str, pairs: list[PreferencePair], seed: int, members: int, first: Trained | None = None
    ) -> np.ndarray:
        """Margins of ``members`` runs on ``pairs``: member 0 has ``seed`` (it is the noisy model,
        ``first``, when that is still on disk), member k the seed 1000·seed + k."""
        runs = [first or self.train(f"{name}-member-0", pairs, seed, pairs[:1])]
        runs += [self.train(f"{name}-member-{k}", pairs, seed * 1000 + k, pairs[:1]) for k in range(1, members)]
        out = self.margins(runs, pairs)
        self.release(runs[1:] if first else runs)
        return out

    def release(self, models: Sequence[Trained]) -> None:
        for m in models:
            shutil.rmtree(m.handle, ignore_errors=True)


def _correct(margins: np.ndarray) -> np.ndarray:
    """1 for a positive margin, ½ for a tie in score, 0 otherwise (``evaluate``'s rule)."""
    return np.where(margins > 0, 1.0, np.where(margins == 0, 0.5, 0.0))


# -- one cell: a dataset, a seed, a rate ------------------------------------------------------------------


def apply_decisions(pairs: list[PreferencePair], decisions: Sequence[Decision], soft: bool) -> list[PreferencePair]:
    """The training pairs as curated: dropped ones removed, reversed ones flipped, soft labels set."""
    out = []
    for p, d in zip(pairs, decisions, strict=True):
        if d.action == "dropped":
            continue
        q = flip_pair(p) if d.reversed else p
        out.append(dataclasses.replace(q, strength=d.strength) if soft and d.strength is not None else q)
    return out


def run_cell(
    learner: Any,
    name: str,
    train: list[PreferencePair],
    test: list[PreferencePair],
    rate: float,
    seed: int,
    args: argparse.Namespace,
    saved: dict[str, Any],
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Every method's held-out correctness and flags on one noisy training split; ``saved`` pieces are kept."""
    noisy, flipped = inject_flips(train, rate, seed) if rate > 0 else (list(train), [])
    cell = {"dataset": name.split("/")[0], "rate": rate, "seed": seed, "flipped": flipped, **saved}
    cell.setdefault("correct", {})
    ties = [p.tie for p in noisy]

    def measure(method: str, pairs: list[PreferencePair]) -> None:
        if method not in cell["correct"]:
            model = learner.train(f"{name}/{method}", pairs, seed, test, soft=method == "soft")
            cell["correct"][method] = model.correct.tolist()
            if hasattr(learner, "release"):
                learner.release([model])
            save(cell)

    noisy_model = None  # at rate 0 the clean model, the ceiling of every other rate; kept as a member
    if "noisy" not in cell["correct"]:
        noisy_model = learner.train(f"{name}/noisy", noisy, seed, test)
        cell["correct"]["noisy"] = noisy_model.correct.tolist()
        save(cell)
    if "ensemble" not in cell:
        margins = learner.ensemble_margins(f"{name}/ensemble", noisy, seed, args.members, noisy_model)
        cell["ensemble"] = margins.tolist()
        save(cell)
    if noisy_model is not None and hasattr(learner, "release"):
        learner.release([noisy_model])
    if "halves" not in cell:
        halves = peer_halves(noisy, seed)
        models = [
            learner.train(f"{name}/half-{h}", [p for p, k in zip(noisy, halves, strict=True) if k == h], seed, test)
            for h in (0, 1)
        ]
        cell["halves"] = learner.margins(models, noisy).tolist()
        if hasattr(learner, "release"):
            learner.release(models)
        save(cell)
    s = preference_strength(np.array(cell["ensemble"]))
    decisions: dict[str, list[Decision]] = {}
    for method in ("flip", "drop", "soft"):
        decisions[method] = decide(
            method,
            s.mean,
            s.probability,
            ties,
            std=s.std,
            threshold=args.threshold,
            ensemble_weight=args.ensemble_weight,
        )
    halves = peer_halves(noisy, seed)
    for method, judge in (("peer-review", "peer"), ("self-filter", "self")):
        judged = judge_margins(np.array(cell["halves"]), halves, judge)
        decisions[method] = decide("peer-review", judged, soft_label(judged[None, :]), ties, threshold=args.threshold)
    for method in CURATED:
        measure(method, apply_decisions(noisy, decisions[method], soft=method == "soft"))
    cell["flagged"] = {m: [i for i, d in enumerate(decisions[m]) if d.flagged] for m in CURATED}
    cell["flags"] = {
        m: dataclasses.asdict(flag_quality(cell["flagged"][m], flipped)) for m in CURATED if rate > 0 and m != "soft"
    }
    if rate == 0:
        cell["examples"] = examples(noisy, s.mean, cell["flagged"])
    cell["done"] = True
    save(cell)
    return cell


def examples(pairs: list[PreferencePair], mean: np.ndarray, flagged: dict[str, list[int]]) -> list[dict[str, Any]]:
    """The ``EXAMPLES`` flagged pairs the ensemble doubts most, readable: text cut to 300 characters."""
    by = {i: [m for m, f in flagged.items() if i in set(f)] for f in flagged.values() for i in f}
    order = sorted(by, key=lambda i: float(mean[i]))[:EXAMPLES]

    def cut(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= 300 else text[:297] + "..."

    return [
        {
            "index": i,
            "id": pairs[i].id,
            "prompt": cut(prompt_text(pairs[i].prompt)[-300:]),
            "chosen": cut(pairs[i].chosen),
            "rejected": cut(pairs[i].rejected),
            "strength_mean": round(float(mean[i]), 3),
            "flagged_by": by[i],
        }
        for i in order
    ]


# -- summary and report -----------------------------------------------------------------------------------


def accuracy_summary(runs: list[list[float]]) -> dict[str, Any]:
    """Mean accuracy; one seed: its Wilson interval, several: the 95 % t interval across seeds."""
    per_seed = np.array([np.mean(r) for r in runs])
    if len(runs) == 1:
        e = estimate(runs[0])
        return {"mean": e.accuracy, "low": e.ci_low, "high": e.ci_high, "interval": "wilson", "n": e.n, "seeds": 1}
    half = float(stats.t.ppf(0.975, len(runs) - 1) * per_seed.std(ddof=1) / np.sqrt(len(runs)))
    mean = float(per_seed.mean())
    n = len(runs[0])
    return {
        "mean": mean, "low": mean - half, "high": mean + half, "interval": "t", "n": n, "seeds": len(runs),
        "per_seed": per_seed.tolist(), "wilson": list(wilson_interval(mean * n, n)),
    }  # fmt: skip


def summarise(cells: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    summary: dict[str, Any] = {"datasets": {}}
    clean_by = {(c["dataset"], c["seed"]): c["correct"]["noisy"] for c in cells if c["rate"] == 0}
    for dataset in args.datasets:
        entry: dict[str, Any] = {}
        for rate in args.rates:
            group = [c for c in cells if c["dataset"] == dataset and c["rate"] == rate]
            acc = {}
            for m in METHODS:
                runs = [clean_by[(dataset, c["seed"])] if m == "clean" else c["correct"][m] for c in group]
                acc[m] = accuracy_summary(runs)
            lost = acc["clean"]["mean"] - acc["noisy"]["mean"]
            recovered = {m: (acc[m]["mean"] - acc["noisy"]["mean"]) / lost if lost > 0 else None for m in CURATED}
            row: dict[str, Any] = {"accuracy": acc, "recovered": recovered, "lost": lost}
            row["flagged"] = {m: float(np.mean([len(c["flagged"][m]) for c in group])) for m in CURATED}
            if rate > 0:
                best = max(CURATED, key=lambda m: acc[m]["mean"]) if lost > 0 else None
                goal = 0.7 if rate <= 0.2 else 0.5
                row["best"] = {"method": best, "recovered": recovered.get(best) if best else None, "goal": goal}
                share = recovered[best] if best else None
                row["best"]["met"] = share is not None and (share >= goal if rate <= 0.2 else share > goal)
                row["flags"] = {m: _mean_flags([c["flags"][m] for c in group]) for m in group[0]["flags"]}
            else:
                row["examples"] = group[0].get("examples", [])
            entry[f"{rate:g}"] = row
        summary["datasets"][dataset] = entry
    return summary


def _mean_flags(flags: list[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in ("flagged", "found", "precision", "recall"):
        values = [f[key] for f in flags if f[key] is not None]
        out[key] = float(np.mean(values)) if values else None
    p, r = out["precision"], out["recall"]
    out["f1"] = 2 * p * r / (p + r) if p and r else None
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown(summary: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [f"# Noisy labels: {args.learner} learner", ""]
    seeds = f"{args.seeds} seed(s) from {args.first_seed}"
    lines.append(f"Learner `{args.learner}`, {seeds}, {args.members} ensemble members, threshold {args.threshold}.")
    lines.append(
        "Accuracy in % on the untouched test split: [95 % interval: Wilson for one seed; across seeds the t "
        "interval, then W: the Wilson interval of the mean on the test pairs]. Recovered: (method − noisy) / "
        "(clean − noisy)."
    )
    for dataset, entry in summary["datasets"].items():
        lines += ["", f"## {dataset}", "", "| method | " + " | ".join(f"rate {r}" for r in entry) + " |"]
        lines.append("|---|" + "---|" * len(entry))
        for m in METHODS:
            cells = []
            for row in entry.values():
                a = row["accuracy"][m]
                rec = row["recovered"].get(m)
                extra = f" (recovered {_pct(rec)} %)" if rec is not None and m in CURATED else ""
                wilson = f"; W {_pct(a['wilson'][0])}, {_pct(a['wilson'][1])}" if "wilson" in a else ""
                cells.append(f"{_pct(a['mean'])} [{_pct(a['low'])}, {_pct(a['high'])}{wilson}]{extra}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines += ["", "| rate | method | flagged | precision | recall | F1 |", "|---|---|---|---|---|---|"]
        for rate, row in entry.items():
            for m, f in row.get("flags", {}).items():
                flagged = f"{f['flagged']:.0f}" if f["flagged"] is not None else "0"
                quality = " | ".join(_pct(f[k]) for k in ("precision", "recall", "f1"))
                lines.append(f"| {rate} | {m} | {flagged} | {quality} |")
        for rate, row in entry.items():
            if "best" in row and row["best"]["method"] is None:
                lines.append(
                    f"\nGoal at rate {rate}: noisy is not below clean (lost {_pct(row['lost'])} points): "
                    "nothing to recover."
                )
            elif "best" in row:
                b = row["best"]
                verdict = "met" if b["met"] else "not met"
                sign = "≥" if float(rate) <= 0.2 else ">"
                lines.append(
                    f"\nGoal at rate {rate}: best method {b['method']} recovers {_pct(b['recovered'])} % of the "
                    f"{_pct(row['lost'])} points lost (goal {sign} {_pct(b['goal'])} %): {verdict}."
                )
            else:
                counts = ", ".join(f"{m} {row['flagged'][m]:.0f}" for m in CURATED if m != "soft")
                lines.append(f"\nUntouched real data: pairs flagged per method (mean over seeds): {counts}.")
        examples = entry.get("0", {}).get("examples", [])
        if examples:
            lines += ["", f"### {len(examples)} flagged pairs of the real data (seed {args.first_seed})", ""]
            for k, e in enumerate(examples, 1):
                lines.append(f"{k}. μ = {e['strength_mean']}, flagged by {', '.join(e['flagged_by'])}")
                lines.append(f"   - prompt: {e['prompt']}")
                lines.append(f"   - chosen: {e['chosen']}")
                lines.append(f"   - rejected: {e['rejected']}")
    return "\n".join(lines) + "\n"


# -- main -------------------------------------------------------------------------------------------------


Pairs = list[PreferencePair]


def load_dataset(name: str, limit: int | None) -> tuple[Pairs, Pairs, Pairs]:
    """Train, validation and test pairs as ``rewardlab train`` splits them (ties left out)."""
    split = load_split(SplitDataConfig(path=name), say=lambda line: print(line, file=sys.stderr))
    parts = (split.splits.train, split.splits.validation, split.splits.test)
    train, validation, test = ([p for p in part if not p.tie] for part in parts)
    if limit:
        train, validation, test = train[:limit], validation[: max(limit // 4, 4)], test[: max(limit // 4, 4)]
    return train, validation, test


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    args.output.mkdir(parents=True, exist_ok=True)
    data = {name: load_dataset(name, args.limit) for name in args.datasets}
    if args.learner == "probe":
        learner: Any = ProbeLearner(args, [p for tr, va, te in data.values() for p in tr + te])
    else:
        learner = FinetuneLearner(args, {name: va for name, (tr, va, te) in data.items()})
    cells_dir = args.output / "cells"
    cells_dir.mkdir(exist_ok=True)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(d, s, r) for d in args.datasets for s in seeds for r in args.rates]
    cells = []
    with progress_bar(True, "cells", len(jobs), every=1) as advance:
        for dataset, seed, rate in jobs:
            slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(dataset).name)
            path = cells_dir / f"{slug}-seed{seed}-rate{rate:g}.json"
            saved = json.loads(path.read_text()) if path.is_file() else {"dataset": dataset}
            if not saved.get("done"):
                learner.dataset = dataset
                train, _, test = data[dataset]
                save = lambda cell, path=path: write_text_atomic(path, json.dumps(cell) + "\n")  # noqa: E731
                saved = run_cell(learner, f"{slug}/seed{seed}/rate{rate:g}", train, test, rate, seed, args, saved, save)
            cells.append(saved)
            advance(1, cell=f"{dataset} seed {seed} rate {rate:g}")
    summary = summarise(cells, args)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    summary["settings"] = settings
    summary["pairs"] = {n: {"train": len(tr), "test": len(te)} for n, (tr, va, te) in data.items()}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    table = markdown(summary, args)
    write_text_atomic(args.output / "noisy_labels.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(args.output / "noisy_labels.md", table)
    print(table)
    return summary


if __name__ == "__main__":
    main()
