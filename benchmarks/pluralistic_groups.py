"""Issue 33's first two "must show" items on real pairs: two groups of users at 70/30 that disagree on
one aspect, Bradley-Terry against each pluralistic objective, and a few-shot study on users never seen
in training.

1. **Data** (``work/data``): ``rewardlab.data.user_groups`` builds the groups from real pairs (default:
   HH-RLHF harmless, aspect ``length``, minority 0.3, 20 users, seed 0: the minority prefers the longer
   reply wherever one is more than 20 % longer, ``--prefer longer``, and the majority the shorter,
   ``--opposed``: opposite preferences on the aspect, the human label deciding only where the lengths
   are close. Without ``--opposed`` the majority keeps the human label, and the group that follows a
   rule is the easier one to learn whatever its size: the first two real runs (``--prefer shorter``,
   then ``--prefer longer``; benchmarks/RESULTS.md) found Bradley-Terry more accurate on the minority
   both times).
   ``--held-out-majority`` (3) and ``--held-out-minority`` (1) users, drawn with the seed, are held out
   entirely (4 of 20, the 70/30 proportion kept); the other users' pairs are the training file, which the
   trainer splits by pairs as always (10 % validation, 20 % test, split seed 0).
2. **Training** (``work/models/NAME``): ``rewardlab.train`` with the defaults of ``rewardlab train``
   (MiniLM, 1 epoch, 8 pairs a step, lr 2e-5, max length 384, keep best by validation loss) for
   ``bradley_terry`` (the population baseline: its defaults exactly, probe-initialised head) and each
   of ``pal``, ``maxmin_em``, ``vpl``, ``micro`` (their default options: 2 prototypes, 2 clusters,
   8 features with β = 0.01, 2 routed heads; random head, as ``head_init=auto`` gives a ``users``
   head). The pluralistic runs add ``optim.head_lr`` (``--head-lr``, default 0.1), the learning rate
   of the head and of the user table: at the backbone's 2e-5 a user's row would move by about 1e-3 in
   an epoch and every user would stay the population. Measured (``benchmarks/RESULTS.md``, opposed
   groups): at 0.02 a user's weight on its own mixture component reached only 0.71, each prototype
   kept learning from both groups, and PAL, MaxMin-EM and MiCRo all ranked the minority's pairs the
   majority's way; at 0.1 the weights reach 0.98–0.99 and PAL and MaxMin-EM serve the minority. The
   recovery table reports each model's row spread, so a row that did not move shows. A model whose folder holds
   ``done.json`` is not retrained; an unfinished one is resumed from its checkpoint.
3. **Seen users** (the test split of the training file, each pair scored for its annotator with
   ``evaluate.user_scores.scores_for_annotators``; Bradley-Terry scores everybody with its one reward):
   accuracy per group and overall with 95 % Wilson intervals (``evaluate.by_group.accuracy_by``); the
   goal check (minority gains ≥ 15 points over Bradley-Terry, majority loses ≤ 2); and how well the
   learned rows recover the true groups: argmax of each user's row for ``mixture`` (PAL, MaxMin: the
   cluster with the largest weight) and ``routed`` (MiCRo: the largest router offset), and for
   ``latent`` (VPL) the side of the users' μ rows along their first principal direction (centred μ,
   SVD, sign of the projection), each with purity and the adjusted Rand index.
4. **Few-shot** (held-out users): for each held-out user, k = 1, 2, 4, 8 of their pairs drawn at random
   (``--draws`` draws per k, seeded by (seed, user, k, draw)) are the user's examples; PAL's and VPL's
   row is fitted to them (the user model's ``fit``, heads frozen: what ``RewardModel.score(...,
   user=UserExamples(...))`` does) and scores the user's other pairs, against the same model's
   population (``user=None``) and Bradley-Terry on the same pairs. The head's outputs for each user's
   replies are computed once and each fit reuses them (equal to ``score(user=UserExamples)``: tested).
   Mean over users × draws with a 95 % Student-t interval (draws of one user are not independent, so
   the interval is narrower than one over users alone would be), per group and for all held-out users.

Outputs in ``--work``: ``results.json``, ``results.md`` (the tables), ``few_shot.png`` (the curve).

With the defaults the data step (measured, 12 s) holds out user-00 (minority), user-13, user-14 and
user-16 (369 pairs); the training file has 1,481 pairs of 16 users, which the trainer splits into
1,037 training pairs (130 steps), 148 validation and 296 test pairs (208 majority, 88 minority: a
minority accuracy's 95 % interval is about ±10 points wide on each side, so a 15-point gain is at
the edge of what this test split resolves).

The real run (MiniLM; not run yet), estimated from ``benchmarks/RESULTS.md`` ("make run": the same
defaults took 261 s in all for 1,295 training pairs on this 2-core AMD EPYC, about 4 minutes): about
3.5 minutes per model for 1,037 pairs, 5 models about 17 minutes, plus scoring 296 test pairs per
model and 369 held-out pairs for three models, about 20 minutes in all; peak memory about 2.5 GB (one
model trains at a time):

    nice python benchmarks/pluralistic_groups.py --work /tmp/pluralistic-groups

Rerun the same command to resume. ``--tiny`` runs the whole pipeline on a 2-layer test encoder and a
dozen pairs per user in seconds (``tests/test_pluralistic_benchmark.py``).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rewardlab
from rewardlab.atomic import write_bytes_atomic, write_text_atomic
from rewardlab.data.loading import load_preferences
from rewardlab.data.records import PreferencePair
from rewardlab.data.user_groups import ASPECTS, MAJORITY, MINORITY, PREFERENCES, build_user_groups
from rewardlab.evaluate.by_group import accuracy_by, adjusted_rand_index, purity
from rewardlab.evaluate.cv_report import t_interval
from rewardlab.evaluate.metrics import pairwise_correct, wilson_interval
from rewardlab.evaluate.user_scores import scores_for_annotators
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.users import UserTable
from rewardlab.progress import progress_bar
from rewardlab.runs.data import load_split
from rewardlab.training.config import load_config

BASELINE = "bradley_terry"
PLURALISTIC = ("pal", "maxmin_em", "vpl", "micro")
FEW_SHOT = ("pal", "vpl")
SHOTS = (1, 2, 4, 8)
GOAL_GAIN, GOAL_LOSS = 0.15, 0.02
"""Issue 33: the minority gains at least 15 points over Bradley-Terry, the majority loses at most 2."""
ROUNDING = 1e-9
"""Slack on the goal's bounds: 0.78 − 0.80 is −0.0200000000000000018 in floating point, and exactly
2 points lost still meets the goal."""
TINY_TRAIN = {
    "precision": "fp32",
    "num_threads": 1,
    "max_steps": 12,
    "batch_size": 8,
    "eval_every": 12,
    "save_every": 12,
    "model.max_length": 48,
    "optim.lr": 3e-3,
    "model.head_init": "random",
}
"""``--tiny``: a few steps of a 2-layer encoder, seconds per model."""


@dataclass
class Settings:
    data: str = "hh-harmless"
    aspect: str = "length"
    minority: float = 0.3
    users: int = 20
    seed: int = 0
    threshold: float = 0.2
    prefer: str = "longer"
    opposed: bool = True
    """The majority prefers the other side where the lengths differ (``--no-opposed``: the human label)."""
    held_out_majority: int = 3
    held_out_minority: int = 1
    pairs_per_user: int | None = None
    """Keep at most this many pairs of each user (file order); all by default."""
    objectives: list[str] = field(default_factory=lambda: [BASELINE, *PLURALISTIC])
    head_lr: float = 0.1
    draws: int = 20
    shots: list[int] = field(default_factory=lambda: list(SHOTS))
    backbone: str = "minilm"
    precision: str = "auto"
    train: dict[str, Any] = field(default_factory=dict)
    """Extra ``rewardlab.train`` overrides for every model (``--tiny``'s short runs)."""

    def problems(self) -> list[str]:
        errors = []
        if self.aspect not in ASPECTS:
            errors.append(f"--aspect must be one of {', '.join(ASPECTS)} (got {self.aspect!r})")
        if BASELINE not in self.objectives:
            errors.append(f"--objectives must include {BASELINE} (the baseline every model is compared with)")
        unknown = [o for o in self.objectives if o not in (BASELINE, *PLURALISTIC)]
        if unknown:
            errors.append(f"--objectives: unknown {', '.join(unknown)} (known: {BASELINE}, {', '.join(PLURALISTIC)})")
        if min(self.held_out_majority, self.held_out_minority) < 0:
            errors.append("--held-out-majority and --held-out-minority must be ≥ 0")
        if self.draws < 1 or not self.shots or min(self.shots) < 1:
            errors.append("--draws and every --shots value must be at least 1")
        if self.head_lr <= 0:
            errors.append(f"--head-lr must be positive (got {self.head_lr})")
        return errors


# 1. data ------------------------------------------------------------------------------------------


def prepare_data(work: Path, settings: Settings) -> dict[str, Any]:
    """The groups file, the held-out users and the training file under ``work/data`` (made once)."""
    folder = work / "data"
    summary_path = folder / "users.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    groups = build_user_groups(
        settings.data,
        folder / "groups.jsonl",
        aspect=settings.aspect,
        minority=settings.minority,
        users=settings.users,
        seed=settings.seed,
        threshold=settings.threshold,
        prefer=settings.prefer,
        opposed=settings.opposed,
    )
    print(groups.summary(), file=sys.stderr)
    rows = [json.loads(line) for line in (folder / "groups.jsonl").read_text(encoding="utf-8").splitlines()]
    group_of = {row["annotator"]: row["annotator_group"] for row in rows}
    held_out = choose_held_out(group_of, settings)
    kept: dict[str, int] = defaultdict(int)
    train, other = [], []
    for row in rows:
        user = row["annotator"]
        if settings.pairs_per_user is not None and kept[user] >= settings.pairs_per_user:
            continue
        kept[user] += 1
        (other if user in held_out else train).append(json.dumps(row, ensure_ascii=False))
    write_text_atomic(folder / "train.jsonl", "\n".join(train) + "\n")
    write_text_atomic(folder / "held_out.jsonl", "\n".join(other) + "\n")
    summary = {
        "groups": {
            "pairs": groups.pairs,
            "minority_flipped": groups.minority_flipped,
            "majority_flipped": groups.majority_flipped,
            "skipped": groups.skipped,
        },
        "group_of": group_of,
        "held_out": held_out,
        "seen": sorted(u for u in group_of if u not in held_out),
        "pairs": {"train_file": len(train), "held_out_file": len(other)},
    }
    write_text_atomic(summary_path, json.dumps(summary, indent=1) + "\n")
    return summary


def choose_held_out(group_of: dict[str, str], settings: Settings) -> list[str]:
    """``held_out_majority`` and ``held_out_minority`` users drawn with the seed; each group keeps a seen user."""
    rng = np.random.default_rng(settings.seed)
    chosen = []
    for group, count in ((MAJORITY, settings.held_out_majority), (MINORITY, settings.held_out_minority)):
        members = sorted(u for u, g in group_of.items() if g == group)
        if count >= len(members):
            raise ValueError(
                f"--held-out-{group} {count}: the {group} has {len(members)} users and must keep one for training"
            )
        chosen += [members[i] for i in sorted(rng.choice(len(members), size=count, replace=False).tolist())]
    return sorted(chosen)


# 2. training --------------------------------------------------------------------------------------


def train_options(settings: Settings, objective: str) -> dict[str, Any]:
    """``rewardlab.train`` overrides of one model: the defaults, plus ``head_lr`` for a user table."""
    options: dict[str, Any] = {"model.backbone": settings.backbone, "objective.name": objective}
    if objective != BASELINE:
        options["optim.head_lr"] = settings.head_lr
    return options | settings.train


def train_models(work: Path, settings: Settings) -> dict[str, dict[str, Any]]:
    """Each objective's model in ``work/models/NAME``; a folder with ``done.json`` is not retrained."""
    done = {}
    for objective in settings.objectives:
        folder = work / "models" / objective
        marker = folder / "done.json"
        if not marker.is_file():
            result = rewardlab.train(
                data=str(work / "data" / "train.jsonl"),
                output_dir=folder,
                resume=True,
                **train_options(settings, objective),
            )
            record = {
                "model_dir": str(result.model_dir),
                "steps": result.steps,
                "best_step": result.best_step,
                "seconds": round(result.seconds, 1),
                "peak_rss_mb": round(result.peak_rss_mb),
                "population_test_accuracy": result.test.overall.accuracy if result.test else None,
            }
            write_text_atomic(marker, json.dumps(record, indent=1) + "\n")
        done[objective] = json.loads(marker.read_text(encoding="utf-8"))
    return done


# 3. seen users ------------------------------------------------------------------------------------


def accuracy_row(values: Sequence[float]) -> dict[str, float]:
    low, high = wilson_interval(float(np.sum(values)), len(values))
    accuracy = float(np.mean(values)) if len(values) else float("nan")
    return {"accuracy": accuracy, "ci_low": low, "ci_high": high, "n": len(values)}


def seen_accuracy(model: RewardModel, pairs: Sequence[PreferencePair], precision: str) -> dict[str, Any]:
    """Per group, per annotator and overall accuracy on ``pairs``, each scored for its annotator (the
    population for Bradley-Terry), and the population's overall accuracy."""
    chosen, rejected, personal = scores_for_annotators(model, pairs, precision=precision)  # type: ignore[arg-type]
    correct = pairwise_correct(chosen, rejected)
    ordered = [not p.tie for p in pairs]
    by_group = accuracy_by(pairs, correct, ordered, "group", personal=personal)
    by_annotator = accuracy_by(pairs, correct, ordered, "annotator", personal=personal)
    population = model.score(
        [p.prompt for p in pairs] + [p.prompt_of_rejected for p in pairs],
        [p.chosen for p in pairs] + [p.rejected for p in pairs],
        precision=precision,  # type: ignore[arg-type]
    )
    population_correct = pairwise_correct(population[: len(pairs)], population[len(pairs) :])
    keep = np.asarray(ordered)
    return {
        "overall": accuracy_row(correct[keep]),
        "overall_population": accuracy_row(population_correct[keep]),
        "by_group": {r.name: asdict(r) for r in by_group.rows},
        "by_annotator": {r.name: asdict(r) for r in by_annotator.rows},
    }


def goal_check(seen: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each pluralistic model's minority gain and majority change over Bradley-Terry, and the goal."""
    base = seen[BASELINE]["by_group"]
    checks = {}
    for name, result in seen.items():
        if name == BASELINE:
            continue
        groups = result["by_group"]
        gain = groups[MINORITY]["accuracy"] - base[MINORITY]["accuracy"]
        change = groups[MAJORITY]["accuracy"] - base[MAJORITY]["accuracy"]
        checks[name] = {
            "minority_gain": gain,
            "majority_change": change,
            "met": bool(gain >= GOAL_GAIN - ROUNDING and change >= -GOAL_LOSS - ROUNDING),
        }
    return checks


def recovered_groups(table: UserTable, group_of: dict[str, str]) -> dict[str, Any]:
    """Each seen user's cluster read from its row (see the module docstring), with purity and ARI."""
    rows = table.rows.detach().float()
    if table.user_model_name == "latent":
        mean = rows[:, : rows.shape[1] // 2]
        centred = mean - mean.mean(dim=0)
        direction = torch.linalg.svd(centred, full_matrices=False).Vh[0]
        projection = centred @ direction
        clusters = (projection > 0).long().tolist()
        spread = float(projection.std()) if len(projection) > 1 else 0.0
        method = "sign of the centred μ along their first principal direction"
    else:
        clusters = rows.argmax(dim=-1).tolist()
        if table.user_model_name == "mixture":
            top = torch.softmax(rows, dim=-1).max(dim=-1).values
            spread, method = float(top.mean()), "argmax of the mixture weights"
        else:
            spread, method = (
                float((rows.max(dim=-1).values - rows.min(dim=-1).values).mean()),
                "argmax of the router offsets",
            )
    truth = [group_of[u] for u in table.ids]
    return {
        "method": method,
        "clusters": {u: int(c) for u, c in zip(table.ids, clusters, strict=True)},
        "purity": purity(truth, clusters),
        "adjusted_rand_index": adjusted_rand_index(truth, clusters),
        "spread": spread,
        "spread_means": {
            "mixture": "mean largest mixture weight (0.5: rows did not move)",
            "latent": "standard deviation of the users' projections",
            "routed": "mean range of a row's offsets (0: rows did not move)",
        }[table.user_model_name],
    }


# 4. few-shot --------------------------------------------------------------------------------------


def pair_outputs(
    model: RewardModel, pairs: Sequence[PreferencePair], precision: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) head outputs, (n, D), computed once: a text's outputs do not depend on what
    else is scored with it (``RewardModel.outputs_ids``), so each fit can reuse them."""
    n = len(pairs)
    ids = model.encode([p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs]).ids
    outputs = model.outputs_ids(ids, precision=precision).clone().reshape(2 * n, -1)  # type: ignore[arg-type]
    return outputs[:n], outputs[n:]


def fitted_rewards(
    model: RewardModel, chosen: torch.Tensor, rejected: torch.Tensor, examples: Sequence[int], rest: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rewards of the ``rest`` pairs for a new user fitted to the ``examples`` pairs (heads frozen)."""
    assert model.users is not None
    row = model.users.user_model.fit(chosen[list(examples)], rejected[list(examples)], model.users.rows.detach())
    return model.reduce(chosen[list(rest)], user_row=row)[0], model.reduce(rejected[list(rest)], user_row=row)[0]


def draw_examples(n: int, k: int, seed: int, user: int, draw: int) -> tuple[list[int], list[int]]:
    """k example pairs of n and the rest, drawn from a generator seeded by (seed, user, k, draw)."""
    order = np.random.default_rng([seed, user, k, draw]).permutation(n).tolist()
    return sorted(order[:k]), sorted(order[k:])


def few_shot(
    models: dict[str, RewardModel], pairs: Sequence[PreferencePair], summary: dict[str, Any], settings: Settings
) -> list[dict[str, Any]]:
    """One record per (model, held-out user, k, draw): accuracy fitted from k pairs, population, Bradley-Terry."""
    by_user: dict[str, list[PreferencePair]] = defaultdict(list)
    for pair in pairs:
        if not pair.tie:
            by_user[pair.annotator or ""].append(pair)
    records = []
    users = sorted(by_user)
    with progress_bar(True, "few-shot users", len(users) * len(models)) as advance:
        baseline = {u: pair_outputs(models[BASELINE], by_user[u], settings.precision) for u in users}
        for name, model in models.items():
            if name == BASELINE:
                continue
            for index, user in enumerate(users):
                chosen, rejected = pair_outputs(model, by_user[user], settings.precision)
                population = model.reduce(chosen)[0] > model.reduce(rejected)[0]
                base = models[BASELINE].reduce(baseline[user][0])[0] > models[BASELINE].reduce(baseline[user][1])[0]
                for k in settings.shots:
                    if k >= len(by_user[user]):
                        continue
                    for draw in range(settings.draws):
                        examples, rest = draw_examples(len(by_user[user]), k, settings.seed, index, draw)
                        fit_c, fit_r = fitted_rewards(model, chosen, rejected, examples, rest)
                        records.append(
                            {
                                "model": name,
                                "user": user,
                                "group": summary["group_of"][user],
                                "k": k,
                                "draw": draw,
                                "fitted": float(pairwise_correct(fit_c, fit_r).mean()),
                                "population": float(population[rest].float().mean()),
                                "bradley_terry": float(base[rest].float().mean()),
                            }
                        )
                advance(1, model=name, user=user)
    return records


def few_shot_table(records: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """Mean and 95 % t interval over users × draws, per model, k and group (``all`` included)."""
    rows = []
    models = sorted({r["model"] for r in records}, key=lambda m: PLURALISTIC.index(m))
    for model in models:
        for group in ("all", MAJORITY, MINORITY):
            for k in settings.shots:
                chosen = [r for r in records if r["model"] == model and r["k"] == k and group in ("all", r["group"])]
                if not chosen:
                    continue
                row: dict[str, Any] = {"model": model, "group": group, "k": k, "n": len(chosen)}
                row["users"] = len({r["user"] for r in chosen})
                for key in ("fitted", "population", "bradley_terry"):
                    interval = t_interval([r[key] for r in chosen])  # an accuracy's interval, clipped to [0, 1]
                    low, high = (float(np.clip(v, 0, 1)) for v in (interval.low, interval.high))
                    row[key] = {"mean": interval.mean, "low": low, "high": high}
                rows.append(row)
    return rows


# outputs ------------------------------------------------------------------------------------------


def cell(row: dict[str, Any]) -> str:
    return f"{row['accuracy']:.3f} ({row['ci_low']:.3f}–{row['ci_high']:.3f}, n {row['n']})"


def mean_cell(value: dict[str, float]) -> str:
    if np.isnan(value["low"]):
        return f"{value['mean']:.3f}"
    return f"{value['mean']:.3f} ({value['low']:.3f}–{value['high']:.3f})"


def render_markdown(result: dict[str, Any]) -> str:
    s, data = result["settings"], result["data"]
    held_out = ", ".join(f"{u} ({data['group_of'][u]})" for u in data["held_out"])
    lines = [
        "# Pluralistic reward models on two groups of users (issue 33)",
        "",
        f"Data: `{s['data']}`, aspect `{s['aspect']}` (the minority prefers the {s.get('prefer', 'shorter')} reply, "
        f"the majority {'the other' if s.get('opposed') else 'the human label'}), "
        f"minority {s['minority']}, {s['users']} users, seed {s['seed']} "
        f"({data['groups']['pairs']} pairs, {data['groups']['minority_flipped']} minority and "
        f"{data['groups'].get('majority_flipped', 0)} majority labels reversed). "
        f"Held out for the few-shot study: {held_out}; "
        f"training file {data['pairs']['train_file']} pairs of {len(data['seen'])} users, "
        f"{result['test_pairs']} of them in the test split. Backbone `{s['backbone']}`, head/user-table lr "
        f"{s['head_lr']:g} for the pluralistic models.",
        "",
        "## Models",
        "",
        "| model | steps | seconds | peak RSS (MB) | test accuracy, population |",
        "|---|---|---|---|---|",
    ]
    for name, t in result["training"].items():
        accuracy = "–" if t["population_test_accuracy"] is None else f"{t['population_test_accuracy']:.3f}"
        lines.append(f"| {name} | {t['steps']} | {t['seconds']} | {t['peak_rss_mb']} | {accuracy} |")
    lines += [
        "",
        "## Seen users: test pairs, each scored for its annotator (95 % Wilson intervals)",
        "",
        "| model | majority | minority | overall | overall, population row | minority gain | majority change | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, seen in result["seen"].items():
        g = seen["by_group"]
        check = result["goal"].get(name)
        tail = (
            f"{check['minority_gain'] * 100:+.1f} | {check['majority_change'] * 100:+.1f} | "
            f"{'met' if check['met'] else 'not met'}"
            if check
            else "– | – | baseline"
        )
        lines.append(
            f"| {name} | {cell(g[MAJORITY])} | {cell(g[MINORITY])} | {cell(seen['overall'])} | "
            f"{cell(seen['overall_population'])} | {tail} |"
        )
    lines += [
        "",
        f"Goal (issue 33): minority gain ≥ {GOAL_GAIN * 100:.0f} points, "
        f"majority change ≥ −{GOAL_LOSS * 100:.0f} points.",
        "",
        "## Recovered groups of the seen users",
        "",
        "| model | read as | users per cluster | purity | adjusted Rand index | row spread |",
        "|---|---|---|---|---|---|",
    ]
    for name, rec in result["recovery"].items():
        sizes = defaultdict(int)
        for c in rec["clusters"].values():
            sizes[c] += 1
        shown = ", ".join(f"{c}: {n}" for c, n in sorted(sizes.items()))
        lines.append(
            f"| {name} | {rec['method']} | {shown} | {rec['purity']:.3f} | {rec['adjusted_rand_index']:.3f} | "
            f"{rec['spread']:.3f} ({rec['spread_means']}) |"
        )
    lines += [
        "",
        "## Few-shot: held-out users, k labelled pairs (mean over users × draws, 95 % t interval)",
        "",
        "| model | group | k | users | users × draws | fitted from k pairs | population | Bradley-Terry |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["few_shot"]:
        lines.append(
            f"| {row['model']} | {row['group']} | {row['k']} | {row['users']} | {row['n']} | "
            f"{mean_cell(row['fitted'])} | "
            f"{mean_cell(row['population'])} | {mean_cell(row['bradley_terry'])} |"
        )
    return "\n".join(lines) + "\n"


def few_shot_png(rows: list[dict[str, Any]]) -> bytes:
    """One panel per model: accuracy against k, fitted and population, all held-out users and the minority."""
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(r["model"] for r in rows))
    figure = Figure(figsize=(5.5 * max(1, len(models)), 4.2), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, max(1, len(models))))
    for ax, model in zip(axes, models, strict=False):
        for index, group in enumerate(("all", MINORITY)):
            mine = [r for r in rows if r["model"] == model and r["group"] == group]
            if not mine:
                continue
            ks = [r["k"] for r in mine]
            for key, style in (("fitted", "-o"), ("population", "--")):
                mean = [r[key]["mean"] for r in mine]
                ax.plot(ks, mean, style, color=f"C{index}", markersize=3, label=f"{group}: {key}")
                low = [r[key]["low"] for r in mine]
                high = [r[key]["high"] for r in mine]
                if key == "fitted" and not any(np.isnan(low)):
                    ax.fill_between(ks, low, high, color=f"C{index}", alpha=0.15, linewidth=0)
        ax.set(title=f"{model}: held-out users", xlabel="k labelled pairs of the user", ylabel="accuracy on the rest")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["k"] for r in rows}), [str(k) for k in sorted({r["k"] for r in rows})])
        ax.axhline(0.5, color="grey", linewidth=0.6)
        ax.legend(fontsize=8, title="solid: row fitted (95 % CI)\ndashed: population", title_fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


# the run ------------------------------------------------------------------------------------------


def run(work: Path, settings: Settings) -> dict[str, Any]:
    errors = settings.problems()
    if errors:
        raise ValueError("; ".join(errors))
    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    summary = prepare_data(work, settings)
    training = train_models(work, settings)
    config = load_config(None, {"data.path": str(work / "data" / "train.jsonl"), **train_options(settings, BASELINE)})
    test = load_split(config.data, say=lambda _: None).splits.test
    held_out = load_preferences(work / "data" / "held_out.jsonl").pairs
    models = {name: RewardModel.from_pretrained(t["model_dir"]) for name, t in training.items()}
    seen, recovery = {}, {}
    with progress_bar(True, "seen users", len(models)) as advance:
        for name, model in models.items():
            seen[name] = seen_accuracy(model, test, settings.precision)
            if model.users is not None:
                recovery[name] = recovered_groups(model.users, summary["group_of"])
            advance(1, model=name)
    few = {name: m for name, m in models.items() if name in (BASELINE, *FEW_SHOT)}
    records = few_shot(few, held_out, summary, settings) if len(few) > 1 else []
    result = {
        "settings": asdict(settings),
        "data": summary,
        "test_pairs": len(test),
        "training": training,
        "seen": seen,
        "goal": goal_check(seen),
        "recovery": recovery,
        "few_shot": few_shot_table(records, settings),
        "few_shot_records": records,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_text_atomic(work / "results.json", json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    write_text_atomic(work / "results.md", render_markdown(result))
    if result["few_shot"]:
        write_bytes_atomic(work / "few_shot.png", few_shot_png(result["few_shot"]))
    return result


def tiny_settings(work: Path) -> Settings:
    """A 2-layer test encoder (``tests/tiny_models.py``), 10 users of 12 pairs each, a few steps per model."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_models import build_tiny_encoder, built_once

    encoder = built_once(build_tiny_encoder, work / "tiny-encoder")
    return Settings(
        users=10,
        pairs_per_user=12,
        draws=2,
        backbone=str(encoder),
        precision="fp32",
        head_lr=0.1,
        train=dict(TINY_TRAIN) | {"progress": False},
    )


def parse_args(argv: Sequence[str] | None) -> tuple[Path, Settings]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    defaults = Settings()
    parser.add_argument("--work", type=Path, required=True, help="folder of the data, models and results (resumable)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer test encoder and 12 pairs per user (smoke run)")
    parser.add_argument(
        "--data", default=defaults.data, help="a packaged dataset (hh-harmless, ultrafeedback) or a file"
    )
    parser.add_argument("--aspect", default=defaults.aspect, choices=ASPECTS)
    parser.add_argument("--minority", type=float, default=defaults.minority)
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--threshold", type=float, default=defaults.threshold, help="length aspect: relative difference"
    )
    parser.add_argument("--prefer", default=defaults.prefer, choices=PREFERENCES, help="length: the minority's side")
    parser.add_argument(
        "--opposed",
        action=argparse.BooleanOptionalAction,
        default=defaults.opposed,
        help="the majority: the other side",
    )
    parser.add_argument("--held-out-majority", type=int, default=defaults.held_out_majority)
    parser.add_argument("--held-out-minority", type=int, default=defaults.held_out_minority)
    parser.add_argument(
        "--objectives", default=",".join(defaults.objectives), help="comma-separated, bradley_terry included"
    )
    parser.add_argument(
        "--head-lr", type=float, default=defaults.head_lr, help="head and user-table lr of pluralistic models"
    )
    parser.add_argument("--draws", type=int, default=defaults.draws, help="few-shot draws per user and k")
    args = parser.parse_args(argv)
    settings = tiny_settings(args.work) if args.tiny else Settings()
    settings.data, settings.aspect, settings.minority = args.data, args.aspect, args.minority
    settings.seed, settings.threshold, settings.prefer = args.seed, args.threshold, args.prefer
    settings.opposed = args.opposed
    settings.held_out_majority, settings.held_out_minority = args.held_out_majority, args.held_out_minority
    settings.objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    if not args.tiny:
        settings.users, settings.head_lr, settings.draws = args.users, args.head_lr, args.draws
    return args.work, settings


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    work, settings = parse_args(argv)
    result = run(work, settings)
    print((work / "results.md").read_text(encoding="utf-8"))
    return result


if __name__ == "__main__":
    main()
