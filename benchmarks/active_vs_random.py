"""Active vs random selection of the items people are asked to label (issue 30's benchmark).

A simulated annotator answers from real labels: the pool is the packaged HH-RLHF harmless pairs and
UltraFeedback pairs (``rewardlab.data.named``), each asked as "which reply is better?" and answered
with its recorded preference. Per seed a fixed test set (``--test-share`` of the pairs, by
``split_pairs``) is put aside, never in the pool. Each run starts from ``--start`` uniformly drawn
labels and asks ``--step`` more per round up to ``--max-labels``:

- active (``disagreement`` or ``bald``): a ``--random-share`` of each round uniformly at random, the
  rest the most informative unlabelled pairs under the ensemble of the previous round
  (``collect/active.py``), as the collect app picks;
- random: every pick uniform.

After each round the ensemble (``collect/ensemble.py``: ``--members`` linear Bradley-Terry heads on
frozen-encoder features, bootstrap resamples) is refitted on every label collected so far (the random
share too: the export holds them all) and its mean prediction scored on the test set. The same
seed gives every strategy the same test set and the same first labels. ``--selection-posterior laplace``
(with ``--selection-members`` draws) has the active rules pick by the Laplace posterior of
``ensemble.py`` instead; the accuracy is still that of the bootstrap ensemble, so random's curve is the
same as without it. ``--acquisition power`` draws the active picks with probability ∝ score^β
(``--power`` β, ``--floor`` a uniform share mixed in) instead of taking the top ones, and
``--importance-weights`` then weights every label of the fit by Farquhar et al. 2021's R_LURE weights
(``collect/acquisition.py``), so the fitted reward targets the pool's distribution, not the rule's:
the fix for the sampling bias of actively chosen labels. Features are computed once
with the frozen ``--encoder`` (default ``minilm``) and cached under ``--work``.

Reported: mean held-out accuracy and a 95 % t interval across seeds per label count for each
strategy, and the labels each active strategy needs for its mean to reach random's mean accuracy at
``--target`` labels and stay there at every later count (the saving in %; the first count where the
mean touches it is reported too, but one noisy round proves nothing). Random order's own count is
reported beside them: where the curve is flat before ``--target``, random order "saves" labels on
itself, and an active strategy's saving means something only beyond that.

Paired by seed (each seed gives both orders the same test set and first labels), the report also
gives, for each active strategy, the difference active(c) − random(``--target``) at the count c =
``--target`` × (1 − ``--goal-saving``) (280 for 400 and 30 %), its 95 % t interval and the one-sample
t-test's p: the goal "random's accuracy at 400 labels with 30 % fewer" seed by seed. Beside it, the
same-count difference at ``--target`` and averaged over the counts from 100 on. ``--first-seed`` moves
the seed range, so settings chosen on one range can be confirmed on fresh seeds.

    nice python benchmarks/active_vs_random.py --work /tmp/active-vs-random
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from rewardlab.atomic import write_text_atomic
from rewardlab.collect.acquisition import draw, lure_weights
from rewardlab.collect.active import STRATEGIES, strategy_function
from rewardlab.collect.ensemble import POSTERIORS, FeatureEnsemble
from rewardlab.collect.features import FeatureCache
from rewardlab.collect.items import item_key, prompt_text
from rewardlab.data import load_preferences, split_pairs
from rewardlab.data.records import PreferencePair
from rewardlab.models.embeddings import MAX_LENGTH, load_embedder
from rewardlab.tuning import tune_cpu

DATASETS = ("hh-harmless", "ultrafeedback")
RANDOM = "random"


@dataclass(frozen=True)
class PoolItem:
    key: str
    prompt: str
    replies: tuple[str, str]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the feature cache and the results")
    parser.add_argument("--encoder", default="minilm", help="frozen encoder: minilm or a local encoder folder")
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH, help="tokens read (cut from the left)")
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds (runs) per strategy")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from here (fresh seeds to confirm on)")
    parser.add_argument("--goal-saving", type=float, default=0.3, help="the share of labels active has to save")
    parser.add_argument("--start", type=int, default=20, help="uniformly drawn labels to start from")
    parser.add_argument("--step", type=int, default=20, help="labels asked per round")
    parser.add_argument("--max-labels", type=int, default=800)
    parser.add_argument("--target", type=int, default=400, help="random's label count active has to match")
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--random-share", type=float, default=0.2, help="share of each active round picked uniformly")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--selection-posterior", choices=POSTERIORS, default="bootstrap", help="what active picks by")
    parser.add_argument("--selection-members", type=int, default=None, help="its members (default: --members)")
    parser.add_argument("--l2", type=float, default=1.0, help="the ensemble's prior weight λ (ensemble.py)")
    parser.add_argument("--limit", type=int, default=None, help="pairs read from each dataset (quick runs)")
    parser.add_argument("--strategies", default="disagreement,bald,random")
    parser.add_argument("--acquisition", choices=("top", "power"), default="top", help="top-scored or ∝ score^β")
    parser.add_argument("--power", type=float, default=1.0, help="β of --acquisition power (0: uniform)")
    parser.add_argument("--floor", type=float, default=0.0, help="uniform share mixed into --acquisition power")
    parser.add_argument(
        "--importance-weights", action="store_true", help="weight active labels by R_LURE (needs --acquisition power)"
    )
    parser.add_argument("--length-feature", action="store_true", help="add log(1 + characters) of each reply")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="packaged datasets of the pool and test set")
    args = parser.parse_args(argv)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    for name in strategies:
        if name != RANDOM:
            strategy_function(name)  # a ValueError naming the known ones
    if RANDOM not in strategies:
        parser.error(f"--strategies must include {RANDOM} (the baseline); known: {', '.join(STRATEGIES)}, random")
    if not 0 <= args.goal_saving < 1:
        parser.error(f"--goal-saving must be in [0, 1), got {args.goal_saving}")
    if args.importance_weights and args.acquisition != "power":
        parser.error("--importance-weights needs --acquisition power: a top-scored pick has no draw probability")
    if not 0 < args.start <= args.max_labels or args.step < 1 or args.seeds < 2:
        parser.error("need 0 < --start <= --max-labels, --step >= 1 and --seeds >= 2 (for an interval)")
    args.strategies = strategies
    return args


def load_pool(limit: int | None, datasets: Sequence[str] = DATASETS) -> list[PreferencePair]:
    pairs: list[PreferencePair] = []
    for name in datasets:
        pairs += [p for p in load_preferences(name, limit=limit).pairs if not p.tie]
    return pairs


def pair_differences(pairs: list[PreferencePair], work: Path, encoder: str, max_length: int) -> np.ndarray:
    """φ(chosen) − φ(rejected) per pair, from the cache under ``work`` (embedded once per encoder and
    length). The prompt is the text the app shows (a conversation as ``role: content`` paragraphs)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{encoder}-{max_length}").strip("-")[-60:] or "encoder"
    embedder = load_embedder(encoder, max_length=max_length, progress=True)
    cache = FeatureCache(
        work / f"features-{slug}.safetensors", encoder, max_length=max_length, progress=True, embedder=embedder
    )
    items = [
        PoolItem(item_key(prompt_text(p.prompt), (p.chosen, p.rejected)), prompt_text(p.prompt), (p.chosen, p.rejected))
        for p in pairs
    ]
    features = cache.features(items)
    return np.stack([features[item.key][0] - features[item.key][1] for item in items]).astype(np.float64)


def run_curve(
    strategy: str,
    diffs: np.ndarray,
    pool: np.ndarray,
    test: np.ndarray,
    seed: int,
    args: argparse.Namespace,
) -> list[float]:
    """Held-out accuracy after each round, at ``start``, ``start + step``, ... labels."""
    rng = np.random.default_rng(seed)
    labelled = list(rng.choice(pool, size=args.start, replace=False))  # the same first labels for every strategy
    drawn = [1 / (len(pool) - m) for m in range(args.start)]  # q_m of each label: uniform for the first ones
    weighted = args.importance_weights and strategy != RANDOM
    curve = []
    round_index = 0
    while True:
        train = diffs[labelled]
        weights = lure_weights(drawn, len(pool)) if weighted else None
        ensemble = FeatureEnsemble(args.members, args.l2, seed=seed * 1000 + round_index).fit(
            train, np.ones(len(train)), weights
        )
        curve.append(float(np.mean(ensemble.predict(diffs[test]).mean(axis=0) > 0.5)))
        if len(labelled) >= args.max_labels:
            return curve
        round_index += 1
        taken = set(labelled)
        unlabelled = np.array([i for i in pool if i not in taken])
        size = min(args.step, args.max_labels - len(labelled), len(unlabelled))
        if size <= 0:
            return curve
        selector = ensemble
        members = args.selection_members or args.members
        if strategy != RANDOM and (args.selection_posterior != "bootstrap" or members != args.members):
            posterior = args.selection_posterior
            selector = FeatureEnsemble(members, args.l2, seed=seed * 1000 + round_index, posterior=posterior)
            selector.fit(train, np.ones(len(train)), weights)
        picks, probabilities = pick(strategy, selector, diffs, unlabelled, size, rng, args)
        labelled += picks
        drawn += probabilities


def pick(
    strategy: str,
    ensemble: FeatureEnsemble,
    diffs: np.ndarray,
    unlabelled: np.ndarray,
    size: int,
    rng: np.random.Generator,
    args: argparse.Namespace,
) -> tuple[list[int], list[float]]:
    """A round's picks and the probability each had among the pairs then open (the q_m of
    ``collect/acquisition.py``; 1 for a top-scored pick, which has none): ``args.random_share``
    uniform, the rest by ``strategy``'s scores, either the top-scored (``top``) or drawn with
    probability ∝ score^β (``power``: stochastic batch acquisition, Kirsch et al. 2023, "Stochastic
    Batch Acquisition: A Simple Baseline for Deep Active Learning", and Farquhar et al. 2021's
    proposal, by the Gumbel-top-k trick of ``acquisition.draw``), so a batch is not filled with
    near-copies of one item and the labels can be reweighted to the pool's distribution."""
    open_count = len(unlabelled)
    if strategy == RANDOM:
        return list(rng.choice(unlabelled, size=size, replace=False)), [1 / (open_count - j) for j in range(size)]
    uniform = list(rng.choice(unlabelled, size=round(size * args.random_share), replace=False))
    chosen = set(uniform)
    rest = np.array([i for i in unlabelled if i not in chosen])
    scores = strategy_function(strategy)(ensemble.predict(diffs[rest]))
    probabilities = [1 / (open_count - j) for j in range(len(uniform))]
    if args.acquisition == "power":
        order, drawn = draw(scores, size - len(uniform), rng, args.power, args.floor)
        return uniform + list(rest[order]), probabilities + drawn.tolist()
    order = np.lexsort((rng.random(len(rest)), -scores))  # best first, ties broken at random
    active = list(rest[order[: size - len(uniform)]])
    return uniform + active, probabilities + [1.0] * len(active)


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % t interval across seeds."""
    mean = float(values.mean())
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def labels_to_stay_above(counts: list[int], means: list[float], goal: float) -> int | None:
    """The fewest labels from which the mean accuracy stays at or above ``goal`` at every later count: a
    single noisy round above it does not count as reaching it."""
    needed = None
    for count, mean in zip(counts, means, strict=True):
        if mean < goal:
            needed = None
        elif needed is None:
            needed = count
    return needed


def paired(differences: np.ndarray) -> dict[str, float | int]:
    """Mean, 95 % t interval and two-sided one-sample t-test p of per-seed differences, and on how
    many seeds the difference is positive."""
    mean, low, high = interval(differences)
    p = 1.0 if mean == 0 else 0.0  # every seed the same difference: the t-test is undefined
    if differences.std() > 0:
        p = float(stats.ttest_1samp(differences, 0.0).pvalue)
    return {"mean": mean, "low": low, "high": high, "p": p, "ahead": int(np.sum(differences > 0))}


def paired_margins(curves: dict[str, np.ndarray], counts: list[int], target: int, check: int) -> dict:
    """Per active strategy, paired by seed against random: active(check) − random(target) (the goal,
    seed by seed), active(target) − random(target), and the difference averaged over counts ≥ 100."""
    base = curves[RANDOM]
    later = [i for i, c in enumerate(counts) if c >= 100] or list(range(len(counts)))
    margins: dict = {}
    for name, runs in curves.items():
        if name == RANDOM:
            continue
        margins[name] = {"over_100_on": paired((runs[:, later] - base[:, later]).mean(axis=1))}
        if target in counts:
            at = counts.index(target)
            margins[name]["at_target"] = paired(runs[:, at] - base[:, at])
            if check in counts:
                margins[name]["goal"] = paired(runs[:, counts.index(check)] - base[:, at])
    return margins


def summarise(curves: dict[str, np.ndarray], counts: list[int], target: int, check: int | None = None) -> dict:
    summary: dict = {"counts": counts, "strategies": {}}
    for name, runs in curves.items():
        rows = [interval(runs[:, i]) for i in range(len(counts))]
        summary["strategies"][name] = {
            "mean": [r[0] for r in rows],
            "low": [r[1] for r in rows],
            "high": [r[2] for r in rows],
        }
    if target in counts:
        goal = summary["strategies"][RANDOM]["mean"][counts.index(target)]
        summary["random_at_target"] = {"labels": target, "accuracy": goal}
        for name in curves:
            means = summary["strategies"][name]["mean"]
            first = next((c for c, m in zip(counts, means, strict=True) if m >= goal), None)
            needed = labels_to_stay_above(counts, means, goal)
            summary["strategies"][name]["first_reaches_random"] = first
            summary["strategies"][name]["labels_to_match_random"] = needed
            summary["strategies"][name]["saving"] = None if needed is None else 1 - needed / target
    if check is not None and len(next(iter(curves.values()))) > 1:
        summary["goal_labels"] = check
        summary["paired"] = paired_margins(curves, counts, target, check)
    return summary


def markdown(summary: dict, target: int) -> str:
    counts = summary["counts"]
    names = list(summary["strategies"])
    marked = (40, 60, summary.get("goal_labels"))
    shown = [i for i, c in enumerate(counts) if i == 0 or c % 100 == 0 or c in marked or i == len(counts) - 1]
    lines = ["| labels | " + " | ".join(names) + " |", "|---:|" + "---|" * len(names)]
    for i in shown:
        cells = []
        for name in names:
            s = summary["strategies"][name]
            cells.append(f"{s['mean'][i]:.3f} ({s['low'][i]:.3f}–{s['high'][i]:.3f})")
        lines.append(f"| {counts[i]} | " + " | ".join(cells) + " |")
    if "random_at_target" in summary:
        goal = summary["random_at_target"]["accuracy"]
        lines.append("")
        lines.append(f"Random's mean accuracy at {target} labels: {goal:.3f}.")
        for name in names:
            s = summary["strategies"][name]
            if name == RANDOM:  # where the curve is flat, random order itself "saves" labels: the yardstick
                lines.append(f"- random itself: at or above it from {s['labels_to_match_random']} labels on")
                continue
            if s["labels_to_match_random"] is None:
                lines.append(f"- {name}: does not stay at or above it within {counts[-1]} labels")
            else:
                fewer = f"{100 * s['saving']:.0f} % fewer" if s["saving"] >= 0 else f"{-100 * s['saving']:.0f} % more"
                lines.append(
                    f"- {name}: at or above it from {s['labels_to_match_random']} labels on"
                    f" ({fewer}; first reached at {s['first_reaches_random']})"
                )
    for name, margin in summary.get("paired", {}).items():
        lines.append("")
        lines.append(f"Paired by seed, {name} − random:")
        rows = [("over_100_on", "averaged over counts ≥ 100")]
        if "at_target" in margin:
            rows.append(("at_target", f"at {target} labels"))
        if "goal" in margin:
            rows.append(("goal", f"{name} at {summary['goal_labels']} − random at {target} (the goal)"))
        for key, text in rows:
            m = margin[key]
            lines.append(
                f"- {text}: {m['mean']:+.4f} (95 % {m['low']:+.4f} to {m['high']:+.4f}), p = {m['p']:.3f},"
                f" ahead on {m['ahead']} of {len(summary['curves'][RANDOM])} seeds"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    tune_cpu()  # rewardlab's CPU settings, as its own runs have them
    args.work.mkdir(parents=True, exist_ok=True)
    pairs = load_pool(args.limit, args.datasets.split(","))
    diffs = pair_differences(pairs, args.work, args.encoder, args.max_length)
    if args.length_feature:  # the replies' log-length difference as one more feature
        lengths = np.array([[len(p.chosen), len(p.rejected)] for p in pairs], dtype=np.float64)
        diffs = np.column_stack([diffs, np.log1p(lengths[:, 0]) - np.log1p(lengths[:, 1])])
    where = {id(p): i for i, p in enumerate(pairs)}
    counts: list[int] | None = None
    curves: dict[str, list[list[float]]] = {name: [] for name in args.strategies}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        split = split_pairs(pairs, validation=0.0, test=args.test_share, seed=seed)
        test = np.array([where[id(p)] for p in split.test])
        pool = np.array([where[id(p)] for p in split.train])
        if len(pool) < args.max_labels:
            raise ValueError(f"--max-labels {args.max_labels} exceeds the pool of {len(pool)} pairs")
        for name in args.strategies:
            curves[name].append(run_curve(name, diffs, pool, test, seed, args))
            print(f"seed {seed} {name}: final accuracy {curves[name][-1][-1]:.3f}", file=sys.stderr, flush=True)
        if counts is None:
            counts = [min(args.start + i * args.step, args.max_labels) for i in range(len(curves[RANDOM][-1]))]
    check = round(args.target * (1 - args.goal_saving))
    summary = summarise({n: np.array(c) for n, c in curves.items()}, counts or [], args.target, check)
    summary["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    summary["pairs"] = {"total": len(pairs), "test": len(test), "pool": len(pool)}
    summary["curves"] = curves
    table = markdown(summary, args.target)
    write_text_atomic(args.work / "active_vs_random.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(args.work / "active_vs_random.md", table)
    print(table)
    return summary


if __name__ == "__main__":
    main()
