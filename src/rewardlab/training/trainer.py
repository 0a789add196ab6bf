"""One thin training loop: batch → forward → objective → backward → step → log.

It does not know which objective runs (the registry says what the objective needs), and data
parallelism is plain: every process takes its share of each global batch, the loss is the sum
over its pairs divided by the global number of pairs, and gradients are summed across processes,
so the update is the same however the pairs are split or accumulated.
"""

from __future__ import annotations

import math
import random
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import load_file
from transformers import get_cosine_schedule_with_warmup

from rewardlab.data.length_balance import balance_length
from rewardlab.data.records import PreferencePair, Ranking
from rewardlab.data.split import Splits
from rewardlab.evaluate.calibration import fit_temperature
from rewardlab.evaluate.pairwise import PairwiseEval, evaluate_pairs, score_pairs
from rewardlab.evaluate.report import write_report
from rewardlab.models.backbones import set_activation_checkpointing
from rewardlab.models.model_card import EMBEDDED_DATA, HeldOutMetric, write_model_card
from rewardlab.models.reward_model import RewardModel, scalar_head
from rewardlab.models.users import UserTable
from rewardlab.objectives import Objective, get_objective
from rewardlab.precision import resolve_precision
from rewardlab.progress import progress_bar
from rewardlab.runs.checkpoint import TrainState, load_checkpoint, save_checkpoint
from rewardlab.runs.config import flat_options
from rewardlab.runs.data import load_split
from rewardlab.runs.folder import RunExists, RunRules, claim_run_folder, holds_anything
from rewardlab.runs.metrics import MetricLogger
from rewardlab.runs.recipes import recipe_estimate
from rewardlab.runs.trackers import start_trackers, tracker_names
from rewardlab.training.batching import (
    EncodedPairs,
    EncodedRankings,
    check_annotators,
    check_fields,
    encode_pairs,
    encode_rankings,
    micro_batches,
    plan_epoch,
    token_budget,
    trainable_pairs,
)
from rewardlab.training.compute import ComputeModel
from rewardlab.training.config import ConfigError, TrainConfig
from rewardlab.training.engines import ShardedRewardModel
from rewardlab.training.partial import train_top_blocks
from rewardlab.training.probe import probe_applies, probe_head
from rewardlab.training.reply_lengths import PairsWithLengths, keep_first_outputs
from rewardlab.training.sharding import equal_pass_count, launch_sharding
from rewardlab.tuning import tune_cpu


@dataclass
class TrainResult:
    output_dir: Path
    model_dir: Path
    steps: int
    best_step: int | None
    test: PairwiseEval | None
    report_dir: Path | None
    seconds: float
    """Wall time of the whole run: loading, training, evaluation."""
    loop_seconds: float
    """Wall time of the training loop alone (including periodic validation and checkpoints)."""
    peak_rss_mb: float
    main_process: bool = True
    """False on the other ranks of a multi-process run: the main process alone reports (and wrote the model)."""


Encoded = EncodedPairs | EncodedRankings | PairsWithLengths

__all__ = ["MetricLogger", "RunExists", "TrainResult", "build_optimizer", "train", "validation_metrics"]

RESUMABLE = {"output_dir", "progress", "num_threads", "report_to", "tensorboard", "log_every", "save_every"}
"""Options a resumed run may change: where and how it reports and saves, not what it trains."""
RULES = RunRules(
    occupied=holds_anything,
    may_change=RESUMABLE.__contains__,
    owned=("checkpoint", "model", "metrics.jsonl", "report/eval.*"),
)
"""A reward-model run's folder: taken once it holds anything; ``--overwrite`` clears what a run writes
(rewardlab's files only), once the new run has loaded its data and model."""


def train(
    config: TrainConfig, *, resume: bool = False, overwrite: bool = False, splits: Splits | None = None
) -> TrainResult:
    """Train a reward model as ``config`` says, then evaluate it on the held-out test split, with
    rewardlab's CPU settings for the run (:func:`rewardlab.tune_cpu`). ``splits`` replaces the split
    of ``config.data`` (a cross-validation fold, ``training/cv.py``); everything else runs the same."""
    tune_cpu()
    config.check()
    started = time.perf_counter()
    folder = claim_run_folder(config.output_dir, config, RULES, resume=resume, overwrite=overwrite)
    out = folder.path
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    set_seed(config.seed)
    main = accelerator.is_main_process
    show = config.progress and main

    splits = _load_splits(config, accelerator) if splits is None else splits
    if config.data.balance_length:
        splits.train = balance_length(splits.train)
    objective = get_objective(config.objective.name)
    model = _build_model(config, accelerator, objective)
    _add_user_table(model, objective, splits, config, accelerator)
    train_data, valid_data = _encode(model, splits, objective, config.objective.args, accelerator)
    if main and train_data.truncated:
        accelerator.print(
            f"{train_data.truncated} of {len(train_data)} training records were longer than "
            f"{config.model.max_length} tokens and were truncated from the left (none dropped)"
        )
    probe = config.model.head_init == "probe" or (config.model.head_init == "auto" and probe_applies(objective))
    if probe and not folder.resuming:
        fit = probe_head(model, train_data, valid_data, config.precision, accelerator)
        accelerator.print(f"reward head fitted on the frozen backbone's features (LP-FT): {fit}")
    steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
    total_steps = config.max_steps or math.ceil(config.epochs * steps_per_epoch)
    precision = resolve_precision(config.precision, accelerator.device)
    compute = _compute_model(model, precision, accelerator)
    optimizer, scheduler = build_optimizer(compute.trained, config, total_steps)
    if isinstance(compute, ShardedRewardModel):
        compute.start(optimizer, scheduler, config.optim.max_grad_norm)  # DeepSpeed takes them over here
    state = TrainState()
    if folder.resuming:
        state = _resume(compute, folder.checkpoint, optimizer, scheduler)
        accelerator.print(f"resuming from step {state.step} of {total_steps}")
    if main:
        folder.start()  # every check passed, data and model loaded: only now may a previous run go
        config.save(folder.config)

    # an objective that weighs sources against each other within a pass (MORE) sees whole batches
    max_tokens = None if "source" in objective.inputs else token_budget(config.micro_batch_tokens, precision)
    logger = _metric_logger(config, folder.metrics, state.step) if main else None
    sharded = isinstance(compute, ShardedRewardModel)
    plans: dict[int, list[list[int]]] = {}
    window = Window()
    loop_started = time.perf_counter()
    with progress_bar(show, "training", total_steps, every=config.log_every) as advance:
        advance(state.step)
        while state.step < total_steps:
            epoch, index = divmod(state.step, steps_per_epoch)
            if epoch not in plans:
                plans = {
                    epoch: plan_epoch(
                        train_data.lengths, config.batch_size, config.seed, epoch, bucketing=config.length_bucketing
                    )
                }
            batch = plans[epoch][index]
            _train_step(compute, train_data, batch, objective, config, max_tokens, accelerator, window, sharded)
            grad_norm = compute.step(optimizer, scheduler, config.optim.max_grad_norm)
            state.step += 1
            last = state.step == total_steps
            if state.step % config.log_every == 0 or last:
                record = window.flush(accelerator) | {
                    "epoch": round(state.step / steps_per_epoch, 3),
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": grad_norm,
                }
                if logger:
                    logger.log(state.step, record, "train")
                shown = {"loss": f"{record['loss']:.4f}", "acc": f"{record['accuracy']:.3f}"}
                advance(0, **shown, **{"pairs/s": f"{record['pairs_per_s']:.1f}"})
            evaluating = state.step % config.eval_every == 0 or last
            saving = state.step % config.save_every == 0 or last
            if evaluating or saving:
                compute.gather()  # a sharded model's weights into rank 0's whole copy (every rank takes part)
            if evaluating and main:
                _evaluate_and_keep_best(model, valid_data, objective, config, state, logger, out)
            if saving:
                if sharded:
                    compute.save(out / "checkpoint", optimizer, scheduler, state)
                elif main:
                    save_checkpoint(out / "checkpoint", _checkpointed(model), optimizer, scheduler, state)
                accelerator.wait_for_everyone()
            advance(1)

    loop_seconds = time.perf_counter() - loop_started
    if logger:
        logger.close()
    compute.release()
    test, report_dir = _finish(model, splits, config, state, out) if main else (None, None)
    accelerator.wait_for_everyone()
    return TrainResult(
        out,
        out / "model",
        state.step,
        state.best_step,
        test,
        report_dir,
        time.perf_counter() - started,
        loop_seconds,
        _peak_rss_mb(),
        main,
    )


def _metric_logger(config: TrainConfig, path: Path, step: int) -> MetricLogger:
    """``metrics.jsonl`` kept up to ``step`` (the checkpoint a resumed run starts from), mirrored to
    the trackers ``report_to`` names."""
    options = flat_options(config)
    trackers = start_trackers(tracker_names(config.trackers()), path.parent, "rewardlab-train", options)
    return MetricLogger(path, resume_step=step, trackers=trackers)


def _build_model(config: TrainConfig, accelerator: Accelerator, objective: Objective) -> RewardModel:
    model = RewardModel.from_backbone(
        config.model.backbone,
        max_length=config.model.max_length,
        text_format=config.model.text_format,
        dropout=config.model.dropout,
        outputs=objective.outputs(config.objective.args),
        head=objective.head,
    )
    model.info.objective = objective.name
    model.info.objective_args = {**objective.options, **config.objective.args}
    model.info.status = "unfinished"  # until _finish: what a kill leaves must not pass for a finished model
    if config.model.train_layers is not None:
        try:
            trained = train_top_blocks(model.model, config.model.train_layers)
        except ValueError as e:
            raise ConfigError([f"{e} (backbone {config.model.backbone!r})"]) from None
        total = sum(w.numel() for w in model.model.parameters())
        accelerator.print(f"training the top {config.model.train_layers} blocks and the head: {trained:,} of {total:,}")
    if config.model.gradient_checkpointing:
        set_activation_checkpointing(model.model, enable=True)
    model.model.to(accelerator.device)
    return model


def _add_user_table(
    model: RewardModel, objective: Objective, splits: Splits, config: TrainConfig, accelerator: Accelerator
) -> None:
    """A pluralistic objective's (``Objective.users``) table: one row per annotator of the training pairs,
    ids sorted and rows initialised from the run's seed, so a resumed run rebuilds the same table."""
    if objective.users is None:
        return
    check_annotators(objective, splits.train, "training")
    outputs = objective.outputs(config.objective.args)
    model.users = UserTable.new([p.annotator for p in splits.train], outputs, objective.users, config.seed)
    model.users.to(accelerator.device)
    model.info.users = objective.users
    accelerator.print(
        f"pluralistic objective {objective.name!r}: one row of parameters for each of {len(model.users)} annotators"
    )


def _compute_model(model: RewardModel, precision: str, accelerator: Accelerator) -> ComputeModel | ShardedRewardModel:
    """Where the training passes run: the model (or its bf16 copy), or its slices when the launch shards."""
    sharding = launch_sharding()
    if sharding is None:
        compute = ComputeModel(model, precision, accelerator.device)
        compute.model.users = model.users  # the fp32 table, shared: rows are gathered from it, not from a copy
        return compute
    if accelerator.num_processes == 1:
        raise ValueError(f"{sharding.name} shards across processes, and this launch started one")
    accelerator.print(f"sharding the model across {accelerator.num_processes} processes: {sharding.name}")
    return ShardedRewardModel(model, sharding, precision, accelerator.device)


def _resume(compute: ComputeModel | ShardedRewardModel, checkpoint: Path, optimizer, scheduler) -> TrainState:
    """Load a checkpoint (written by a sharded run or not) into the weights the run trains."""
    if isinstance(compute, ShardedRewardModel):
        return compute.load(checkpoint, optimizer, scheduler)
    state = load_checkpoint(checkpoint, _checkpointed(compute.master), optimizer, scheduler)
    compute.refresh()
    return state


def _checkpointed(model: RewardModel) -> torch.nn.Module:
    """What the checkpoint holds: the model's weights, with the user table beside them when there is one."""
    if model.users is None:
        return model.model
    return torch.nn.ModuleDict({"model": model.model, "users": model.users})


def build_optimizer(model: RewardModel, config: TrainConfig, total_steps: int):
    """AdamW (fused: one kernel for all weights rather than a loop over tensors) with linear
    warmup then cosine decay to zero. The head and a pluralistic model's user table learn at ``head_lr``."""
    module = scalar_head(model.model)
    head = set(module.parameters()) if module is not None else set()
    params = [p for p in model.model.parameters() if p.requires_grad]
    users = list(model.users.parameters()) if model.users is not None else []
    groups = [
        {"params": [p for p in params if p not in head]},
        {"params": [p for p in params if p in head] + users, "lr": config.optim.head_lr or config.optim.lr},
    ]
    optimizer = torch.optim.AdamW(
        groups,
        lr=config.optim.lr,
        weight_decay=config.optim.weight_decay,
        betas=(config.optim.adam_beta1, config.optim.adam_beta2),
        fused=model.model.device.type in ("cpu", "cuda"),
    )
    warmup = round(config.optim.warmup_ratio * total_steps)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)


class Window:
    """Sums of per-pair training metrics since the last log line, and the throughput behind them."""

    def __init__(self) -> None:
        self.sums = torch.zeros(4, dtype=torch.float64)  # loss, accuracy, pairs, real tokens
        self.started = time.perf_counter()

    def add(self, losses: torch.Tensor, accuracy: torch.Tensor, tokens: int) -> None:
        self.sums += torch.tensor([losses.sum().item(), accuracy.sum().item(), losses.numel(), tokens])

    def flush(self, accelerator: Accelerator) -> dict[str, float]:
        sums = accelerator.reduce(self.sums.to(accelerator.device), reduction="sum").cpu()
        elapsed = time.perf_counter() - self.started
        self.sums.zero_()
        self.started = time.perf_counter()
        loss, accuracy, pairs, tokens = sums.tolist()
        return {
            "loss": loss / max(pairs, 1),
            "accuracy": accuracy / max(pairs, 1),
            "pairs_per_s": pairs / elapsed,
            "tokens_per_s": tokens / elapsed,
        }


def _train_step(
    compute: ComputeModel,
    data: Encoded,
    global_batch: list[int],
    objective: Objective,
    config: TrainConfig,
    max_tokens: int | None,
    accelerator: Accelerator,
    window: Window,
    sharded: bool = False,
) -> None:
    """Accumulate this process's gradient of (sum of weighted pair losses) / (pairs in the global batch)
    into the fp32 weights' gradients. Sharded, every forward pass is a collective: a process with fewer
    passes than the busiest one repeats a pass with weight 0 (its gradient adds nothing)."""
    local = global_batch[accelerator.process_index :: accelerator.num_processes]
    model = compute.model
    model.model.train()
    passes = [
        (indices, 1.0)
        for indices in micro_batches(local, data.lengths, data.reply_counts, config.micro_batch_size, max_tokens)
    ]
    if sharded:
        filler = passes[0][0] if passes else global_batch[:1]
        passes += [(filler, 0.0)] * (equal_pass_count(len(passes)) - len(passes))
    for i, (indices, scale) in enumerate(passes):
        batch, tokens = data.forward(model, indices)
        output = objective(batch, **config.objective.args)
        loss = scale * (output.losses * batch["weight"]).sum() / len(global_batch)
        compute.backward(loss, last=i == len(passes) - 1)
        if scale:
            window.add(output.losses.detach(), output.metrics["accuracy"], tokens)


@torch.no_grad()
def validation_metrics(
    model: RewardModel, data: Encoded, objective: Objective, args: dict, precision: str = "auto"
) -> dict[str, float]:
    """Objective loss and accuracy on held-out records, scored as ``score`` scores."""
    output = objective(data.outputs(model, precision), **args)
    return {"loss": float(output.losses.mean()), "accuracy": float(output.metrics["accuracy"].float().mean())}


def _encode(
    model: RewardModel, splits: Splits, objective: Objective, args: dict, accelerator: Accelerator
) -> tuple[Encoded, Encoded | None]:
    """Training and validation records in the shape the objective reads: pairs, or rankings.

    An objective over rankings reads the full rankings and every other labelled pair as a ranking
    of two; pairs labelled as ties have no order to rank and are left out, with a count printed.
    """
    if "ranked" not in objective.inputs:
        splits = trainable_pairs(objective, splits, accelerator.print)  # ties left out where not learnable
        check_fields(objective, args, splits.train, "training")
        check_fields(objective, args, splits.validation, "validation")
        valid = encode_pairs(model, splits.validation) if splits.validation else None
        train = encode_pairs(model, splits.train, head_features="feature_gap" in objective.inputs)
        if "chosen_length" in objective.inputs:  # the objective reads reply lengths
            valid = PairsWithLengths.of(valid, splits.validation) if valid is not None else None
            return PairsWithLengths.of(train, splits.train), valid
        return train, valid

    def as_rankings(pairs: list[PreferencePair], rankings: list[Ranking]) -> list[Ranking]:
        ranked_groups = {r.group for r in rankings}
        rest = [p for p in pairs if p.group is None or p.group not in ranked_groups]
        ties = sum(p.tie for p in rest)
        if ties:
            accelerator.print(f"{ties} tie-labelled pairs left out: a ranking objective needs an order")
        two_prompts = sum(p.rejected_prompt is not None for p in rest)
        if two_prompts:
            accelerator.print(f"{two_prompts} pairs with a rejected_prompt left out: a ranking shares one prompt")
        rest = [p for p in rest if p.rejected_prompt is None]
        return rankings + [Ranking(p.prompt, (p.chosen, p.rejected), source=p.source) for p in rest if not p.tie]

    train = as_rankings(splits.train, splits.train_rankings)
    valid = as_rankings(splits.validation, splits.validation_rankings)
    if not train:
        raise ValueError(f"objective {objective.name!r} has no rankings to train on")
    return encode_rankings(model, train), (encode_rankings(model, valid) if valid else None)


def _evaluate_and_keep_best(
    model: RewardModel,
    data: Encoded | None,
    objective: Objective,
    config: TrainConfig,
    state: TrainState,
    logger: MetricLogger | None,
    out: Path,
) -> None:
    if data is None or not config.keep_best:
        return
    metrics = validation_metrics(model, data, objective, config.objective.args, config.precision)
    if logger:
        logger.log(state.step, metrics, "validation")
    value = metrics[config.best_metric]
    sign = 1 if config.best_metric == "loss" else -1
    if state.best_value is None or sign * value < sign * state.best_value:
        state.best_value, state.best_step = value, state.step
        model.save_pretrained(out / "model")


def _finish(
    model: RewardModel,
    splits: Splits,
    config: TrainConfig,
    state: TrainState,
    out: Path,
) -> tuple[PairwiseEval | None, Path | None]:
    """Restore the best weights, record reward statistics and the calibration temperature (fitted on
    the validation pairs), save, and evaluate on the test pairs."""
    if state.best_step is not None and (out / "model" / "model.safetensors").exists():
        model.model.load_state_dict(load_file(out / "model" / "model.safetensors"))
        if model.users is not None:
            model.users.load_state_dict(UserTable.load(out / "model").state_dict())
    if kept := get_objective(model.info.objective).kept_outputs:  # training-only heads go
        keep_first_outputs(model, kept)
    if not model.info.scores_pairs:
        sample = splits.train[:500]
        if model.info.head == "ensemble":  # each member's own scale first: the reward below is standardised
            ids = model.encode(
                [p.prompt for p in sample] + [p.prompt_of_rejected for p in sample],
                [p.chosen for p in sample] + [p.rejected for p in sample],
            )
            outputs = model.outputs_ids(ids.ids, precision=config.precision).double()
            model.info.member_means, model.info.member_stds = outputs.mean(0).tolist(), outputs.std(0).tolist()
        scores = torch.tensor(
            model.score(
                [p.prompt for p in sample] + [p.prompt_of_rejected for p in sample],
                [p.chosen for p in sample] + [p.rejected for p in sample],
                precision=config.precision,
            )
        )
        model.info.reward_mean, model.info.reward_std = float(scores.mean()), float(scores.std())
    validation_scores = None
    if splits.validation:
        validation_scores = score_pairs(model, splits.validation, precision=config.precision)[:2]
        model.info.temperature = fit_temperature(*validation_scores)
    model.info.status = "complete"
    model.save_pretrained(out / "model")
    test, report_dir = None, None
    if splits.test:
        test = evaluate_pairs(
            model,
            splits.test,
            precision=config.precision,
            progress=config.progress,
            validation_scores=validation_scores,
        )
        if (estimate := recipe_estimate(config)) is not None:  # the recipe's k-fold estimate, beside this split
            test.extras["cross_validated"] = estimate
        report_dir = out / "report"
        data = config.data.describe()
        write_report(test, report_dir, model=str(out / "model"), data=data, pairs=splits.test)
    accuracy = test.overall if test is not None else None  # the card, now with the held-out accuracy
    held_out = (
        [HeldOutMetric("accuracy", accuracy.accuracy, accuracy.ci_low, accuracy.ci_high, accuracy.n)]
        if accuracy
        else []
    )
    write_model_card(
        out / "model",
        model.info,
        data=config.data.describe() if config.data.sources else (config.data.path or EMBEDDED_DATA),
        metrics=held_out,
    )
    return test, report_dir


def _load_splits(config: TrainConfig, accelerator: Accelerator) -> Splits:
    data = load_split(config.data, accelerator.print)
    data.require_training_pairs()
    splits = data.splits
    if config.data.bootstrap_seed is not None:
        rng = random.Random(f"bootstrap:{config.data.bootstrap_seed}")
        splits.train = [rng.choice(splits.train) for _ in splits.train]
        splits.train_rankings = [rng.choice(splits.train_rankings) for _ in splits.train_rankings]
    accelerator.print(
        f"{len(data.loaded.pairs)} pairs: {len(splits.train)} train, "
        f"{len(splits.validation)} validation, {len(splits.test)} test"
    )
    return splits


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
