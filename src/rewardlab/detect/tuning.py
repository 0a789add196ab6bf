"""Continual preference tuning of a saved reward model into a detector (ReMoDetect, Lee et al. 2024).

The pairs say LM text ≻ human text for the same prompt and, with mixed text, LM ≻ mixed ≻ human (the
partly rewritten text is the median the decision boundary is learned around). Each reply carries the
starting model's reward as its rating, and the ``anchored_bradley_terry`` objective keeps the tuned
rewards near those (the paper's regulariser), so the ordinary reward-model trainer does the tuning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rewardlab.data.records import PreferencePair
from rewardlab.data.split import Splits
from rewardlab.detect.records import DetectionRecord, by_prompt
from rewardlab.detect.texts import split_prompts
from rewardlab.models.reward_model import RewardModel
from rewardlab.runs.folder import claim_run_folder
from rewardlab.training.config import load_config
from rewardlab.training.trainer import RULES, TrainResult, train

ORDER = ("lm", "mixed", "human")
"""Most to least LM-written: a text earlier in this order is the chosen side of a pair."""


@dataclass
class TuneConfig:
    output_dir: str = "runs/detector"
    anchor_coef: float = 1.0
    """λ of the pull towards the starting model's rewards (0: plain Bradley-Terry)."""
    mixed: bool = True
    """Use mixed texts (LM ≻ mixed ≻ human); false trains on LM ≻ human only."""
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    lr: float = 2e-5
    validation_fraction: float = 0.1
    """Share of the prompts whose pairs choose the best checkpoint instead of training (0: none held out)."""
    seed: int = 0
    precision: str = "auto"
    progress: bool = True
    extra: dict = field(default_factory=dict)
    """Further ``TrainConfig`` overrides by dotted name (``{"micro_batch_size": 4}``)."""


def detection_pairs(
    records: Sequence[DetectionRecord], anchors: Sequence[float] | None = None, *, mixed: bool = True
) -> list[PreferencePair]:
    """Every ordered pair of one prompt's texts from different sources, the more LM-written side chosen;
    ``anchors`` (one per record, the starting model's rewards) become the replies' ratings."""
    anchor_of = {}
    if anchors is not None:
        if len(anchors) != len(records):
            raise ValueError(f"{len(anchors)} anchors for {len(records)} records")
        anchor_of = {(r.prompt, r.source, r.text): float(a) for r, a in zip(records, anchors, strict=True)}
    order = ORDER if mixed else ("lm", "human")
    pairs = []
    for prompt, texts in by_prompt(records).items():
        for high, chosen_source in enumerate(order):
            for rejected_source in order[high + 1 :]:
                for chosen in texts[chosen_source]:
                    for rejected in texts[rejected_source]:
                        pairs.append(
                            PreferencePair(
                                prompt,
                                chosen,
                                rejected,
                                chosen_rating=anchor_of.get((prompt, chosen_source, chosen)),
                                rejected_rating=anchor_of.get((prompt, rejected_source, rejected)),
                                group=prompt,
                                subset=f"{chosen_source}>{rejected_source}",
                            )
                        )
    return pairs


def tune_detector(
    model_dir: str | Path,
    records: Sequence[DetectionRecord],
    config: TuneConfig,
    *,
    data_name: str = "detection records",
    overwrite: bool = False,
) -> TrainResult:
    """Tune a copy of the reward model in ``model_dir`` on ``records`` (the training side only; hold the
    test prompts out before) into ``config.output_dir``; the starting model is only read."""
    prompts = {p.prompt for p in detection_pairs(records, mixed=config.mixed)}
    if not prompts:
        raise ValueError(f"{data_name}: no prompt has both an LM text and a human text to pair")
    if config.validation_fraction > 0 and len(prompts) < 2:
        raise ValueError(f"{data_name}: one prompt cannot be split for validation; use validation_fraction=0")
    start = RewardModel.from_pretrained(model_dir)
    run = load_config(
        None,
        {
            "output_dir": str(config.output_dir),
            "data.path": data_name,
            "model.backbone": str(model_dir),
            "model.max_length": start.info.max_length,
            "model.head_init": "random",  # keep the saved head: a probe would refit it and forget the start
            "objective.name": "anchored_bradley_terry",
            "objective.args": {"anchor_coef": config.anchor_coef},
            "epochs": config.epochs,
            "max_steps": config.max_steps,
            "batch_size": config.batch_size,
            "optim.lr": config.lr,
            "seed": config.seed,
            "precision": config.precision,
            "progress": config.progress,
            **config.extra,
        },
    )
    claim_run_folder(run.output_dir, run, RULES, resume=False, overwrite=overwrite)  # a taken folder: said now
    anchors = start.score([r.prompt for r in records], [r.text for r in records], precision=config.precision)
    pairs = detection_pairs(records, anchors, mixed=config.mixed)
    splits = Splits(train=pairs)
    if config.validation_fraction > 0:
        train_prompts, valid_prompts = split_prompts([p.prompt for p in pairs], config.validation_fraction, config.seed)
        splits = Splits(
            train=[p for p in pairs if p.prompt in train_prompts],
            validation=[p for p in pairs if p.prompt in valid_prompts],
        )
    del start
    return train(run, splits=splits, overwrite=overwrite)
