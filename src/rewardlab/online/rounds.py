"""``rewardlab online``: rounds of generate → judge → pair → update, each saved as it finishes.

The run folder holds ``config.yaml``, ``round-0/evaluation.json`` (the starting policy measured),
and for each round n ≥ 1 ``round-n/``: ``generations.jsonl`` (K replies per prompt; ``sampling.json``
the time and tokens it took; with ``pairs.reference_reply`` each prompt's last reply is the reference
policy's greedy one, SELM's), ``judgements.jsonl`` (scores and the comparisons made), ``pairs.jsonl``
(with ``pairs.strategy=recorded``, offline DPO, the data's own pairs of the training prompts, and no
generations or judgements),
``metrics.jsonl`` (one line per update step),
``checkpoint/`` (the update's state, :func:`rewardlab.policy.trainer.train_policy`), ``policy/``
(the updated policy, merged when LoRA is on), ``evaluation.json`` and, last, ``done.json``. Every file
is written atomically. With ``trainer=trl_grpo`` the update is TRL's GRPO (``online/grpo.py``): it samples
and scores its own replies, so a round holds ``metrics.jsonl`` (TRL's log), ``policy/``, ``evaluation.json``
and ``done.json``.

``--resume`` continues after the last round with ``done.json``. A round killed mid-way keeps what it
had saved: its generations and judgements are read back, its pairs rebuilt from them, and its update
continues from its checkpoint; since the replies are seeded per prompt and round, and the update's
batches by its seed, the resumed round ends in the state an uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from rewardlab.atomic import atomic_directory, write_text_atomic
from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.models.backbones import resolve_backbone
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.formatting import choose_format
from rewardlab.models.reward_model import RewardModel, ensure_pad_token
from rewardlab.models.weight_files import require_safetensors
from rewardlab.online.config import OnlineConfig
from rewardlab.online.evaluation import eval_replies, evaluate_round, reply_tokens
from rewardlab.online.grpo import grpo_update
from rewardlab.online.judges import Judge, Judgement, load_judge
from rewardlab.online.pairs import best_random_pairs, best_worst_pairs, sigmoid, temporal_pairs
from rewardlab.online.prompts import balanced_prompts, recorded_pairs
from rewardlab.online.report import write_report
from rewardlab.policy.lora import add_lora, merged_and_base
from rewardlab.policy.online_losses import ranking_consistency
from rewardlab.policy.trainer import train_policy
from rewardlab.progress import progress_bar
from rewardlab.runs.checkpoint import checkpoint_step
from rewardlab.runs.data import load_split
from rewardlab.runs.folder import RunRules, claim_run_folder, holds_anything
from rewardlab.runs.metrics import MetricLogger
from rewardlab.sampling.batched import sample_replies_batched
from rewardlab.sampling.generation import SampleConfig, sample_replies
from rewardlab.tuning import tune_cpu

T = TypeVar("T")

RULES = RunRules(
    occupied=holds_anything,
    may_change=lambda key: key in ("rounds", "progress", "num_threads"),
    owned=("round-*", "report.json", "report.md"),
)
"""Taken once it holds anything; a resumed run keeps every option but the number of rounds (which may
grow), threads and progress bars; ``--overwrite`` removes the rounds and the report."""


@dataclass(frozen=True)
class OnlineOutput:
    output_dir: Path
    report: dict[str, Any]


@dataclass
class Context:
    """What every round reads: the config, folder, prompts, tokenizer and the fixed models."""

    config: OnlineConfig
    out: Path
    train_prompts: list[Prompt]
    eval_prompts: list[Prompt]
    tokenizer: PreTrainedTokenizerBase
    start_dir: Path
    start_lm: CausalLM
    evaluator: RewardModel | None
    recorded: list[PreferencePair]
    """The training split's pairs (``pairs.strategy=recorded`` trains on those of ``train_prompts``)."""

    @functools.cached_property
    def self_reference(self) -> CausalLM:
        """What the implicit reward (``judge.kind=self``, CREAM, SCIR) is measured against: ``judge.reference``,
        loaded once for the run, or the starting policy."""
        j = self.config.judge
        return _causal_lm(_load(_model_dir(j.reference)), self.tokenizer, self.config) if j.reference else self.start_lm


def run_online(config: OnlineConfig, overwrite: bool = False, resume: bool = False) -> OnlineOutput:
    """Run (or with ``resume=True`` continue) the rounds in ``config.output_dir``; applies rewardlab's
    CPU settings for the run (:func:`rewardlab.tune_cpu`)."""
    tune_cpu()
    config.check()
    folder = claim_run_folder(config.output_dir, config, RULES, resume=resume, overwrite=overwrite)
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    train_prompts, eval_prompts, recorded = _prompts(config)
    start_dir = require_safetensors(resolve_backbone(config.policy), config.policy)
    tokenizer = AutoTokenizer.from_pretrained(start_dir)
    ensure_pad_token(tokenizer)
    evaluator = _named_load("eval.evaluator", config.eval.evaluator, RewardModel.from_pretrained)
    start_lm = _causal_lm(_load(start_dir), tokenizer, config)
    j = config.judge
    # a wrong or missing judge model fails before anything is written (recorded pairs need none)
    if j.kind in ("rm", "gpm") and config.pairs.strategy != "recorded":
        _named_load("judge.model", j.model, lambda path: load_judge(j.kind, path, start_lm, None, j.beta, None))
        for member in j.members:
            _named_load("judge.members", member, lambda path: load_judge("rm", path, start_lm, None, j.beta, None))
    if j.kind == "self":
        _named_load("judge.reference", j.reference, _model_dir)
    folder.start()
    config.save(folder.config)
    ctx = Context(config, folder.path, train_prompts, eval_prompts, tokenizer, start_dir, start_lm, evaluator, recorded)
    rounds = [_round_zero(ctx)]
    for n in range(1, config.rounds + 1):
        rounds.append(_read_json(_done(ctx.out, n)) if _done(ctx.out, n).is_file() else _round(ctx, n))
    report = write_report(ctx.out, config, rounds)
    return OnlineOutput(ctx.out, report)


def _prompts(config: OnlineConfig) -> tuple[list[Prompt], list[Prompt], list[PreferencePair]]:
    data = load_split(config.data, say=lambda message: None)
    data.require_training_pairs()
    train = balanced_prompts(data.splits.train, config.data.train_prompts)
    held = balanced_prompts(data.splits.test, config.eval.prompts)
    if not held:
        raise ValueError(
            f"{data.loaded.path}: the test split holds no prompt to evaluate on (raise data.test_fraction)"
        )
    return train, held, data.splits.train


def _round_zero(ctx: Context) -> dict[str, Any]:
    """The starting policy measured on the held-out prompts (the baseline of every win rate)."""
    path = ctx.out / "round-0" / "evaluation.json"
    if not path.is_file():
        e = ctx.config.eval
        evaluation = evaluate_round(
            ctx.start_lm,
            ctx.start_lm,
            ctx.eval_prompts,
            None,
            ctx.evaluator,
            e.max_new_tokens,
            e.temperature,
            0,
            0,
            e.seed,
        )
        write_text_atomic(path, _dumps({"round": 0, "evaluation": evaluation}))
    return _read_json(path)


def _round(ctx: Context, n: int) -> dict[str, Any]:
    config, folder = ctx.config, ctx.out / f"round-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    policy_dir = ctx.start_dir if n == 1 else ctx.out / f"round-{n - 1}" / "policy"
    started = time.perf_counter()
    if config.trainer == "trl_grpo":
        policy = grpo_update(config, n, folder, policy_dir, ctx.train_prompts, ctx.tokenizer)
        seconds, counts = {"update": time.perf_counter() - started}, {"pairs": None, "generated_tokens": None}
    else:
        pairs, seconds, counts = _round_pairs(ctx, n, folder, policy_dir)
        started = time.perf_counter()
        policy = _update(ctx, n, folder, policy_dir, pairs)
        seconds["update"] = time.perf_counter() - started
    started = time.perf_counter()
    e = config.eval
    start = _read_json(ctx.out / "round-0" / "evaluation.json")["evaluation"]
    trained_lm = _causal_lm(policy, ctx.tokenizer, config)
    evaluation = evaluate_round(
        trained_lm, ctx.start_lm, ctx.eval_prompts, start, ctx.evaluator, e.max_new_tokens, e.temperature, e.kl_prompts,
        e.kl_samples, e.seed,
    )  # fmt: skip
    seconds["evaluate"] = time.perf_counter() - started
    write_text_atomic(folder / "evaluation.json", _dumps(evaluation))
    summary = {
        "round": n,
        **counts,
        "seconds": seconds,
        "last_loss": _last_loss(folder / "metrics.jsonl"),
        "evaluation": evaluation,
    }
    write_text_atomic(_done(ctx.out, n), _dumps(summary))
    return summary


def _round_pairs(
    ctx: Context, n: int, folder: Path, policy_dir: Path
) -> tuple[list[PreferencePair], dict[str, float], dict[str, Any]]:
    """Round n's pairs (saved in ``pairs.jsonl``), the seconds spent making them, and how many there are."""
    config = ctx.config
    if config.pairs.strategy == "recorded":  # offline DPO: the data's pairs, nothing generated or judged
        pairs = recorded_pairs(ctx.recorded, ctx.train_prompts, n)
        write_text_atomic(folder / "pairs.jsonl", "".join(_dumps(_pair_row(p)) for p in pairs))
        return pairs, {}, {"pairs": len(pairs), "generated_tokens": 0}
    lm = _causal_lm(_load(policy_dir), ctx.tokenizer, config)
    replies = _generations(ctx, lm, folder, n)
    sampling = _read_json(folder / "sampling.json")
    seconds: dict[str, float] = {"generate": sampling["seconds"]}
    started = time.perf_counter()
    judgements = _judgements(ctx, lm, folder, replies)
    seconds["judge"] = time.perf_counter() - started
    pairs = _agreeing(ctx, lm, _pairs(ctx, n, replies, judgements, _consistencies(ctx, n, judgements, replies)))
    if not pairs:
        hint = (
            "; judge.kind=self scores 0 for a policy equal to its reference: set judge.reference to the model "
            "the starting policy was DPO-trained from"
            if config.judge.kind == "self"
            else ""
        )
        raise ValueError(
            f"round {n}: the judge left no pair (every prompt's replies tie, or are within pairs.min_gap); "
            f"raise generate.k or generate.temperature, or lower pairs.min_gap{hint}"
        )
    write_text_atomic(folder / "pairs.jsonl", "".join(_dumps(_pair_row(p)) for p in pairs))
    return pairs, seconds, {"pairs": len(pairs), "generated_tokens": sampling["tokens"]}


def _generations(ctx: Context, lm: CausalLM, folder: Path, n: int) -> list[list[str]]:
    path = folder / "generations.jsonl"
    if path.is_file():
        return [json.loads(line)["replies"] for line in path.read_text(encoding="utf-8").splitlines()]
    g = ctx.config.generate
    sample = SampleConfig(n=g.k, max_new_tokens=g.max_new_tokens, temperature=g.temperature, seed=g.seed + n - 1)
    started = time.perf_counter()
    if g.batch_rows is None:
        drawn = sample_replies(lm, ctx.train_prompts, sample, progress=ctx.config.progress)
    else:
        drawn = sample_replies_batched(
            lm, ctx.train_prompts, sample, batch_rows=g.batch_rows, progress=ctx.config.progress
        )
    rows = [
        {"prompt": p, "replies": [s.text for s in samples], "tokens": [s.tokens for s in samples]}
        for p, samples in zip(ctx.train_prompts, drawn, strict=True)
    ]
    tokens = sum(s.tokens for samples in drawn for s in samples)
    if ctx.config.pairs.reference_reply:
        _add_reference_replies(ctx, lm, rows, n)
    write_text_atomic(folder / "sampling.json", _dumps({"seconds": time.perf_counter() - started, "tokens": tokens}))
    write_text_atomic(path, "".join(_dumps(row) for row in rows))  # last: its presence says sampling is done
    return [row["replies"] for row in rows]


def _add_reference_replies(ctx: Context, lm: CausalLM, rows: list[dict[str, Any]], n: int) -> None:
    """SELM's third reply (Zhang et al. 2024, released ``online_feedback.py``): the reference policy's greedy
    reply to each prompt joins the candidates the judge ranks, so the pair's best or worst may be it; the
    reference is the update's (``reference``: the round's starting policy, or the start). Appended last,
    ``reference_index`` naming it."""
    reference = lm if ctx.config.reference == "previous" else ctx.start_lm
    g = ctx.config.generate
    greedy = eval_replies(reference, ctx.train_prompts, g.max_new_tokens, 0.0, g.seed + n - 1)
    for row, reply, tokens in zip(rows, greedy, reply_tokens(reference, greedy), strict=True):
        row["reference_index"] = len(row["replies"])
        row["replies"].append(reply)
        row["tokens"].append(tokens)


def _judgements(ctx: Context, lm: CausalLM, folder: Path, replies: list[list[str]]) -> list[Judgement]:
    path = folder / "judgements.jsonl"
    if path.is_file():
        return [_judgement(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]
    j = ctx.config.judge
    reference = ctx.self_reference if j.kind == "self" else None
    judge: Judge = load_judge(
        j.kind, j.model, lm, reference, j.beta, j.principle, j.members, j.aggregation, j.uncertainty_weight
    )
    with progress_bar(ctx.config.progress, f"judging ({j.kind})", 1) as advance:
        judged = judge.judge(ctx.train_prompts, replies)
        advance()
    write_text_atomic(
        path, "".join(_dumps({"prompt": p, **x.as_dict()}) for p, x in zip(ctx.train_prompts, judged, strict=True))
    )
    return judged


def _consistencies(ctx: Context, n: int, judgements: list[Judgement], replies: list[list[str]]) -> list[float] | None:
    """CREAM's per-prompt consistency of this round's implicit-reward ranking with the previous round's
    policy's (``pairs.consistency``; from round 2, when there is a previous iteration)."""
    if not ctx.config.pairs.consistency or n < 2:
        return None
    j = ctx.config.judge
    previous = _causal_lm(
        _load(ctx.start_dir if n == 2 else ctx.out / f"round-{n - 2}" / "policy"), ctx.tokenizer, ctx.config
    )
    reference = ctx.self_reference
    earlier = load_judge("self", None, previous, reference, j.beta, None).judge(ctx.train_prompts, replies)
    return [
        ranking_consistency(torch.tensor(now.scores), torch.tensor(before.scores))
        for now, before in zip(judgements, earlier, strict=True)
    ]


def _agreeing(ctx: Context, lm: CausalLM, pairs: list[PreferencePair]) -> list[PreferencePair]:
    """SCIR's selection (``pairs.agree_with``): the pairs a second internal judge of the policy also ranks
    chosen over rejected (Zhou et al. 2025, "Self-Consistency of the Internal Reward Models Improves
    Self-Rewarding Language Models", from the abstract: preference data is kept where the internal
    reward models agree; its consistency penalty during training is the ``scir`` policy loss, which reads
    the judge's probability set here, or by the pairs step when ``judge.kind=judge``)."""
    other = ctx.config.pairs.agree_with
    if other is None or not pairs:
        return pairs
    j = ctx.config.judge
    reference = ctx.self_reference if other == "self" else None
    second = load_judge(other, None, lm, reference, j.beta, j.principle)
    judged = second.judge([p.prompt for p in pairs], [[p.chosen, p.rejected] for p in pairs])
    kept = [(p, x) for p, x in zip(pairs, judged, strict=True) if x.scores[0] > x.scores[1]]
    if other != "judge":
        return [p for p, _ in kept]
    # the policy as a judge compared chosen (0) with rejected (1): σ(ℓ) is SCIR's judge probability
    return [dataclasses.replace(p, judge_probability=_probability(x.logodds(0, 1))) for p, x in kept]


def _probability(logodds: float | None) -> float | None:
    return None if logodds is None else sigmoid(logodds)


def _pairs(
    ctx: Context, n: int, replies: list[list[str]], judgements: list[Judgement], consistencies: list[float] | None
) -> list[PreferencePair]:
    p = ctx.config.pairs
    if p.strategy == "temporal" and n > 1:
        anchor = ctx.out / "round-1"
        anchor_replies = [json.loads(x)["replies"] for x in (anchor / "generations.jsonl").read_text().splitlines()]
        anchor_judged = [_judgement(json.loads(x)) for x in (anchor / "judgements.jsonl").read_text().splitlines()]
        return temporal_pairs(
            ctx.train_prompts, replies, judgements, anchor_replies, anchor_judged, p.min_gap, n, consistencies
        )
    judged_by_policy = ctx.config.judge.kind == "judge"
    if p.strategy == "best_random":
        return best_random_pairs(
            ctx.train_prompts, replies, judgements, p.min_gap, n, ctx.config.generate.seed, consistencies, p.strength,
            p.max_uncertainty, judged_by_policy,
        )  # fmt: skip
    return best_worst_pairs(
        ctx.train_prompts, replies, judgements, p.min_gap, n, consistencies, p.strength, p.max_uncertainty,
        judged_by_policy,
    )  # fmt: skip


def _update(ctx: Context, n: int, folder: Path, policy_dir: Path, pairs: list[PreferencePair]) -> torch.nn.Module:
    """One round's update with the configured policy loss; the updated policy saved to ``folder/policy``."""
    config = ctx.config
    train = dataclasses.replace(config.train, seed=config.train.seed + n - 1, cache_dir=str(folder / "cache"))
    model = _load(policy_dir)
    reference = ctx.start_lm.model if config.reference == "start" else None  # read only, never trained
    if config.lora.enabled:
        torch.manual_seed(train.seed)  # the adapters start from seeded random A (and B = 0)
        model = add_lora(model, config.lora)
    checkpoint = folder / "checkpoint"
    step = checkpoint_step(checkpoint) if (checkpoint / "state.json").is_file() else 0
    with (
        MetricLogger(folder / "metrics.jsonl", resume_step=step) as metrics,
        progress_bar(config.progress, f"round {n} update", train.steps) as advance,
    ):

        def log(step: int, values: dict[str, float]) -> None:
            metrics.log(step, values)
            advance(loss=f"{values['loss']:.4f}")

        train_policy(
            model,
            ctx.tokenizer,
            pairs,
            train,
            reference_model=reference,
            log=log,
            checkpoint_dir=checkpoint,
            resume=True,
        )
    if config.lora.enabled:
        model, _ = merged_and_base(model)
    model.eval()
    with atomic_directory(folder / "policy") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        ctx.tokenizer.save_pretrained(tmp)
    return model


def _named_load(key: str, path: str | None, load: Callable[[str], T]) -> T | None:
    """``load(path)`` (None without a path), a missing or wrong model reported under its config key."""
    if not path:
        return None
    try:
        return load(path)
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(str(e) if key in str(e) else f"{key}: {e}") from None


def _load(path: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def _model_dir(name: str) -> Path:
    return require_safetensors(resolve_backbone(name), name)


def _causal_lm(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, config: OnlineConfig) -> CausalLM:
    fmt = choose_format(tokenizer, config.train.text_format)
    t = config.train
    return CausalLM(model, tokenizer, fmt, max_prompt_tokens=t.max_prompt_tokens, max_reply_tokens=t.max_reply_tokens)


def _judgement(row: dict[str, Any]) -> Judgement:
    return Judgement(row["scores"], [tuple(c) for c in row["comparisons"]], row.get("uncertainties"))


def _pair_row(pair: PreferencePair) -> dict[str, Any]:
    fields = ("id", "prompt", "chosen", "rejected", "strength", "chosen_rating", "rejected_rating", "consistency")
    row = {name: getattr(pair, name) for name in fields}
    return row | ({"judge_probability": pair.judge_probability} if pair.judge_probability is not None else {})


def _last_loss(path: Path) -> float | None:
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return json.loads(lines[-1])["loss"] if lines else None


def _done(out: Path, n: int) -> Path:
    return out / f"round-{n}" / "done.json"


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"
