"""MaxMin vs average-reward DPO on two groups of annotators (issue 33): each group's win rate under
its own reward, against the starting policy.

1. Train the policy twice from the same start with the same settings on a groups file written by
   ``rewardlab data groups`` (``annotator``, ``annotator_group`` = majority / minority): ``--loss dpo``
   (every pair weighted alike, so the majority dominates) and ``--loss maxmin_dpo`` (a smooth maximum
   of the groups' DPO losses, MaxMin-RLHF's policy step; ``policy/group_losses.py``).
2. Generate greedily from the start and from both trained policies on the distinct prompts of the
   groups file's held-out test split (the split ``rewardlab dpo`` did not train on).
3. For each group and trained policy, the share of prompts where the group prefers the trained reply
   to the start's (ties count 1/2), with a 95 % Wilson interval. MaxMin-RLHF's claim, in this form:
   the worst group's win rate is higher with maxmin_dpo than with dpo.

Each group's reward. ``rewardlab data groups`` builds the groups by a rule: a majority user keeps the
human label; a minority user keeps it too except where the two replies differ in the aspect, where it
prefers the shorter reply (``length``; the longer with ``--prefer longer``) or the one that does not
refuse (``refusal``); with ``--opposed`` the majority follows the opposite length rule the same way.
So, exactly for this construction (without ``--opposed``), the majority prefers what the human labels
prefer, and the minority the same except where the replies differ in the aspect, where the rule
decides (``data.user_groups.prefers_other``, with the same ``--aspect``, ``--threshold`` and
``--prefer``). The human labels' preference between two new replies is read from ``--judge``, a
reward model trained on the human labels (for example ``rewardlab train
--data hh-harmless``), the same one for both groups. This is used rather than a pluralistic reward
model's user rows because the rule is the minority's reward by construction, not an estimate of it.

    rewardlab data groups hh-harmless --aspect length --minority 0.3 --users 20 --seed 0 \\
        --output /tmp/groups-hh.jsonl
    rewardlab train --data hh-harmless --output /tmp/hh-rm
    nice python benchmarks/maxmin_dpo.py --groups /tmp/groups-hh.jsonl --judge /tmp/hh-rm/model \\
        --policy smollm2 --output /tmp/maxmin-dpo
    python benchmarks/maxmin_dpo.py --tiny --output /tmp/maxmin-dpo-tiny   # tiny models, a smoke test

Resumable: a killed run continues where it stopped (training from its checkpoint, generation from the
last saved prompt); a finished step is not redone. Writes ``results.json`` in ``--output``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

LOSSES = ("dpo", "maxmin_dpo")
POLICIES = ("start", *LOSSES)
SAVE_EVERY = 10
"""Generations are saved every this many prompts."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--groups", help="a groups file from `rewardlab data groups`")
    parser.add_argument("--judge", help="a reward model trained on the human labels (a saved rewardlab model)")
    parser.add_argument("--policy", default="smollm2", help="smollm2, or a causal LM folder")
    parser.add_argument("--aspect", default="length", choices=("length", "refusal"), help="as for the groups file")
    parser.add_argument("--threshold", type=float, default=0.2, help="as for the groups file (length aspect)")
    parser.add_argument("--prefer", default="shorter", choices=("shorter", "longer"), help="as for the groups file")
    parser.add_argument("--opposed", action="store_true", help="as for the groups file (the majority's rule)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-pairs", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--temperature", type=float, default=0.1, help="maxmin_dpo's τ (small: the worst group)")
    parser.add_argument("--max-train-pairs", type=int, default=None)
    parser.add_argument("--eval-pairs", type=int, default=None, help="held-out pairs of each run's own report")
    parser.add_argument("--prompts", type=int, default=100, help="distinct held-out prompts generated from")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--max-prompt-tokens", type=int, default=512, help="in training and generation")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default="/tmp/maxmin-dpo")
    parser.add_argument("--tiny", action="store_true", help="tiny models and data: a smoke test (tests run it)")
    args = parser.parse_args(argv)
    if not args.tiny and not (args.groups and args.judge):
        parser.error("--groups and --judge are needed (or --tiny)")
    return args


def tiny_setup(args: argparse.Namespace, out: Path) -> None:
    """Tiny models from ``tests/tiny_models.py`` (an untrained judge: the numbers mean nothing) and a
    groups file from the packaged hh-harmless, with a few steps and prompts."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from tiny_models import build_tiny_decoder, build_tiny_encoder, built_once

    from rewardlab.data.user_groups import build_user_groups
    from rewardlab.models.reward_model import RewardModel

    models = out / "tiny"
    if not (models / "judge" / "config.json").is_file():
        RewardModel.from_backbone(str(build_tiny_encoder(models / "encoder")), max_length=64).save_pretrained(
            models / "judge"
        )
    built_once(build_tiny_decoder, models / "decoder")
    if not (models / "groups.jsonl").is_file():
        groups = models / "groups.jsonl"
        build_user_groups(
            "hh-harmless", groups, aspect=args.aspect, users=10, seed=0, prefer=args.prefer, opposed=args.opposed
        )
    args.groups, args.judge, args.policy = str(models / "groups.jsonl"), str(models / "judge"), str(models / "decoder")
    args.steps, args.batch_pairs, args.lr, args.max_train_pairs, args.eval_pairs = 2, 8, 1e-3, 16, 8
    args.prompts, args.max_new_tokens, args.max_prompt_tokens, args.threads = 3, 4, 128, 1


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("groups", "judge", "policy", "aspect", "threshold", "prefer", "opposed")
    keys += ("steps", "batch_pairs", "lr", "beta", "temperature")
    more = ("max_train_pairs", "eval_pairs", "prompts", "max_new_tokens", "max_prompt_tokens")
    return {key: getattr(args, key) for key in (*keys, *more)}


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """A resumed run must have the settings it started with; other settings need another ``--output``."""
    from rewardlab.atomic import write_text_atomic

    path = out / "settings.json"
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(key for key in settings if before.get(key) != settings[key])
        if changed:
            raise SystemExit(f"{out} holds a run with other settings ({', '.join(changed)}); use another --output")
    else:
        write_text_atomic(path, json.dumps(settings, indent=2) + "\n")


def run_config(args: argparse.Namespace, loss: str, out: Path) -> Any:
    from rewardlab.policy.run_config import load_dpo_config

    options = {"beta": args.beta} | ({"temperature": args.temperature} if loss == "maxmin_dpo" else {})
    overrides = {
        "policy": args.policy,
        "output_dir": str(out / loss),
        "data.path": args.groups,
        "data.max_train_pairs": args.max_train_pairs,
        "train.loss": loss,
        "train.loss_args": options,
        "train.steps": args.steps,
        "train.batch_pairs": args.batch_pairs,
        "train.lr": args.lr,
        "train.max_prompt_tokens": args.max_prompt_tokens,
        "eval.max_pairs": args.eval_pairs,
        "eval.kl_prompts": 0,
        "num_threads": args.threads,
    }
    return load_dpo_config(None, overrides)


def train(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Both runs (skipped when finished, resumed when interrupted); their configurations differ only in the loss."""
    from rewardlab.policy.run import run_dpo

    reports = {}
    for loss in LOSSES:
        report = out / loss / "report.json"
        if not report.is_file():
            run_dpo(run_config(args, loss, out), resume=True)
        reports[loss] = json.loads(report.read_text(encoding="utf-8"))
    return reports


def held_out_prompts(args: argparse.Namespace, out: Path) -> list[Any]:
    """The first ``--prompts`` distinct prompts of the test split the runs were evaluated on (not trained on)."""
    from rewardlab.policy.evaluation import distinct_prompts
    from rewardlab.runs.data import load_split

    data = load_split(run_config(args, "dpo", out).data, say=lambda message: None)
    return distinct_prompts(data.part("test"), args.prompts)


def generations(name: str, folder: str, prompts: list[Any], args: argparse.Namespace, out: Path) -> list[str]:
    """Greedy replies of one policy, saved every ``SAVE_EVERY`` prompts so a killed run goes on from there."""
    from rewardlab.atomic import write_text_atomic
    from rewardlab.models.causal_lm import CausalLM
    from rewardlab.models.pair_encoding import prompt_and_reply_texts
    from rewardlab.progress import progress_bar

    path = out / f"replies-{name}.json"
    replies: list[str] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    if len(replies) >= len(prompts):
        return replies[: len(prompts)]
    lm = CausalLM.from_pretrained(folder, max_prompt_tokens=args.max_prompt_tokens)
    with progress_bar(True, f"generating ({name})", len(prompts) - len(replies)) as advance:
        for index in range(len(replies), len(prompts)):
            prefix_text, _ = prompt_and_reply_texts(prompts[index], "", lm.text_format, lm.tokenizer)
            prefix = lm.tokens(prefix_text)[-lm.max_prompt_tokens :]
            replies.append(lm.generate(prefix, max_new_tokens=args.max_new_tokens).strip())
            advance()
            if len(replies) % SAVE_EVERY == 0 or len(replies) == len(prompts):
                write_text_atomic(path, json.dumps(replies, ensure_ascii=False) + "\n")
    return replies


def group_prefers(group: str, prompt: Any, reply: str, start: str, rewards: tuple[float, float], args: Any) -> float:
    """1 if ``group`` prefers ``reply`` to ``start``, 0 if it prefers ``start``, 1/2 if neither (the module's
    docstring: the human label's reward for both groups, the aspect's rule first for the minority, and for
    the majority with ``--opposed``)."""
    from rewardlab.data.records import PreferencePair
    from rewardlab.data.user_groups import group_rule, prefers_other

    if reply == start:
        return 0.5
    rule = group_rule(group, args.prefer, args.opposed)
    if rule is not None:
        if prefers_other(PreferencePair(prompt, reply, start), args.aspect, args.threshold, rule):
            return 0.0
        if prefers_other(PreferencePair(prompt, start, reply), args.aspect, args.threshold, rule):
            return 1.0
    return 1.0 if rewards[0] > rewards[1] else 0.0 if rewards[0] < rewards[1] else 0.5


def compare(prompts: list[Any], replies: dict[str, list[str]], args: argparse.Namespace) -> list[dict[str, Any]]:
    from rewardlab.data.user_groups import MAJORITY, MINORITY
    from rewardlab.evaluate.metrics import estimate
    from rewardlab.models.reward_model import RewardModel

    judge = RewardModel.from_pretrained(args.judge)
    rewards = {name: judge.score(prompts, replies[name], precision="fp32") for name in POLICIES}
    rows = []
    for loss in LOSSES:
        for group in (MAJORITY, MINORITY):
            wins = [
                group_prefers(group, p, r, s, (float(rr), float(sr)), args)
                for p, r, s, rr, sr in zip(
                    prompts, replies[loss], replies["start"], rewards[loss], rewards["start"], strict=True
                )
            ]
            est = estimate(wins)
            row = {"policy": loss, "group": group, "win_rate": est.accuracy, "low": est.ci_low, "high": est.ci_high}
            rows.append(row | {"prompts": len(wins), "ties": sum(w == 0.5 for w in wins)})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| policy | group | win rate vs start | 95 % Wilson | ties |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['policy']} | {r['group']} | {r['win_rate']:.3f} | [{r['low']:.3f}, {r['high']:.3f}] | {r['ties']} |"
        )
    for loss in LOSSES:
        worst = min((r for r in rows if r["policy"] == loss), key=lambda r: r["win_rate"])
        lines.append(f"worst group under {loss}: {worst['group']} ({worst['win_rate']:.3f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from rewardlab.atomic import write_text_atomic

    args = parse(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        tiny_setup(args, out)
    settings = settings_of(args)
    check_settings(out, settings)
    results_path = out / "results.json"
    if results_path.is_file():
        results = json.loads(results_path.read_text(encoding="utf-8"))
        print(table(results["rows"]))
        return results
    reports = train(args, out)
    prompts = held_out_prompts(args, out)
    folders = {"start": args.policy} | {loss: str(out / loss / "policy") for loss in LOSSES}
    replies = {name: generations(name, folders[name], prompts, args, out) for name in POLICIES}
    rows = compare(prompts, replies, args)
    results = {
        "settings": settings,
        "prompts": len(prompts),
        "rows": rows,
        "train_seconds": {loss: reports[loss]["train_seconds"] for loss in LOSSES},
        "held_out_implicit_accuracy": {loss: reports[loss]["held_out"]["implicit_accuracy"] for loss in LOSSES},
    }
    write_text_atomic(results_path, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(table(rows))
    return results


if __name__ == "__main__":
    main()
