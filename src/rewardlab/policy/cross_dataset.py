"""``rewardlab cross-dataset``: train a reward per source, test each on every source's test split.

For each source, the ``rewardlab train`` pipeline (``training.trainer.train``, with the user's
overrides and ``data.path`` set to the source) trains a reward model on that source's training split;
with ``dpo``, the ``rewardlab dpo`` pipeline (``policy.run.run_dpo``) also trains a policy on it, whose
implicit reward β·(log π − log π_ref) (``ImplicitRewardScorer``) is a row of its own. Every row is
then scored on every source's test split, split by ``runs.data.load_split`` with the run's own data
settings, so that a row's diagonal cell is exactly the test split its training run held out (Lin et al.
2024's DPORM vs EXRM study; ``evaluate/matrix_report.py`` summarises).

This lives in ``policy/`` because it drives both trainers, and ``policy`` is the one package above both.

The output folder holds ``study.json`` (the settings), ``reward-models/SOURCE/`` and ``dpo/SOURCE/``
(ordinary run folders), ``cells/ROW/COLUMN.json`` (one evaluated cell each) and
``cross_dataset.json`` / ``.md``. With ``resume`` a finished model (its saved ``model/`` or
``policy/``) is not retrained and a written cell is not re-evaluated; an unfinished run continues
from its checkpoint. ``--dpo --resume`` on a study run without ``--dpo`` adds the DPO rows beside the
kept reward models (the only change of settings a resume allows).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.atomic import write_text_atomic
from rewardlab.data.named import known_names, named_data
from rewardlab.data.records import PreferencePair
from rewardlab.destinations import check_folder_destination
from rewardlab.evaluate.likelihood_scorers import ImplicitRewardScorer
from rewardlab.evaluate.matrix_report import MatrixCell, MatrixRow, matrix_summary, render_report
from rewardlab.evaluate.pairwise import evaluate_pairs
from rewardlab.evaluate.scorers import Scorer
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel, saved_model_problem
from rewardlab.policy.registry import get_policy_loss
from rewardlab.policy.run import run_dpo
from rewardlab.policy.run_config import DPORunConfig, load_dpo_config
from rewardlab.precision import Precision
from rewardlab.progress import progress_bar
from rewardlab.runs.data import load_split
from rewardlab.runs.folder import RunExists
from rewardlab.runs.recipes import NOT_SETTINGS
from rewardlab.training.config import TrainConfig, load_config
from rewardlab.training.trainer import train

DEFAULT_SOURCES = "hh-harmless,ultrafeedback,tulu1,finegrained"
DPO_DEFAULTS = ("eval.kl_prompts=0",)
"""The DPO runs skip their sampled-KL estimate (generation, not needed for the matrix) unless told."""


@dataclass(frozen=True)
class Source:
    """A source of the matrix: its name (a row and column label) and the data it reads."""

    name: str
    data: str


@dataclass(frozen=True)
class Reward:
    """A row's reward: a reward model (scored in ``precision``) or a scorer (an implicit reward)."""

    model: RewardModel | Scorer
    precision: Precision = "auto"


@dataclass
class CrossDatasetConfig:
    sources: list[Source]
    output: Path
    overrides: list[str] = field(default_factory=list)
    """``rewardlab train`` overrides (``key.sub=value``) for every reward model."""
    config_file: Path | None = None
    """A ``rewardlab train`` YAML config, read before ``overrides``."""
    dpo: bool = False
    dpo_overrides: list[str] = field(default_factory=list)
    """``rewardlab dpo`` overrides for every DPO policy (e.g. ``policy=PATH``, ``train.steps=50``)."""

    def settings(self) -> dict[str, Any]:
        """What ``study.json`` records and a resumed study must repeat."""
        return {
            "sources": {s.name: s.data for s in self.sources},
            "overrides": list(self.overrides),
            "config_file": str(self.config_file) if self.config_file else None,
            "dpo": self.dpo,
            "dpo_overrides": list(self.dpo_overrides) if self.dpo else [],
        }


def parse_sources(text: str) -> list[Source]:
    """``hh-harmless,ultrafeedback`` (packaged names, ``data/named.py``) or ``name=path`` items."""
    sources = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, data = (s.strip() for s in item.partition("="))
        if equals and not (name and data):
            raise ValueError(f'--sources: "{item}" is not NAME or NAME=PATH')
        if not equals and named_data(name) is None:
            raise ValueError(f'--sources: unknown source "{name}" (known: {known_names()}; or give NAME=PATH)')
        sources.append(Source(name, data if equals else name))
    names = [s.name for s in sources]
    if len(sources) < 2:
        raise ValueError(f"--sources needs at least two sources (got {', '.join(names) or 'none'})")
    if len(set(names)) != len(names):
        raise ValueError(f"--sources names a source twice: {', '.join(names)}")
    if bad := [n for n in names if "/" in n or n.startswith(".")]:
        raise ValueError(f"--sources: a source name names its folders, so no '/' or leading '.': {', '.join(bad)}")
    return sources


def run_cross_dataset(
    config: CrossDatasetConfig, *, resume: bool = False, overwrite: bool = False, say: Callable[[str], None] = print
) -> tuple[dict[str, Any], str]:
    """Train, evaluate and summarise; returns the summary (``cross_dataset.json``) and its Markdown."""
    out = config.output
    rm_configs = {s.name: reward_model_config(config, s) for s in config.sources}
    dpo_configs = {s.name: _dpo_config(config, s, rm_configs[s.name]) for s in config.sources} if config.dpo else {}
    _claim(out, config.settings(), resume=resume, overwrite=overwrite)
    test_pairs = {s.name: held_out_pairs(rm_configs[s.name], say) for s in config.sources}
    show = rm_configs[config.sources[0].name].progress
    rows: list[MatrixRow] = []
    cells: list[MatrixCell] = []
    for source in config.sources:
        rows.append(MatrixRow(source.name, source.name))
        cells += _row_cells(
            out, rows[-1], test_pairs, fresh=overwrite, show=show,
            load=lambda s=source: _reward_model(rm_configs[s.name], resume, overwrite, say),
        )  # fmt: skip
        if config.dpo:
            rows.append(MatrixRow(f"dpo:{source.name}", source.name, kind="dpo-implicit"))
            cells += _row_cells(
                out, rows[-1], test_pairs, fresh=overwrite, show=show,
                load=lambda s=source: _implicit_reward(dpo_configs[s.name], resume, overwrite, say),
            )  # fmt: skip
    summary = matrix_summary(rows, [s.name for s in config.sources], cells)
    summary["settings"] = config.settings()
    markdown = render_report(summary, config.settings())
    write_text_atomic(out / "cross_dataset.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / "cross_dataset.md", markdown)
    return summary, markdown


def reward_model_config(config: CrossDatasetConfig, source: Source) -> TrainConfig:
    """The `rewardlab train` config of ``source``'s reward model: the user's, on that source, in the study."""
    folder = config.output / "reward-models" / source.name
    return load_config(config.config_file, [*config.overrides, f"data.path={source.data}", f"output_dir={folder}"])


def _dpo_config(config: CrossDatasetConfig, source: Source, rm: TrainConfig) -> DPORunConfig:
    """The DPO run of ``source``: the reward model's data settings (so the same pairs are held out),
    then the user's DPO overrides, which may not change them."""
    d = rm.data
    data = {
        "data.path": source.data,
        "data.validation_fraction": d.validation_fraction,
        "data.test_fraction": d.test_fraction,
        "data.split_seed": d.split_seed,
        "data.skip_bad_rows": str(d.skip_bad_rows).lower(),
        "data.max_pairs_per_row": d.max_pairs_per_row,
    }
    if d.columns:
        data["data.columns"] = d.columns
    clashing = [o for o in config.dpo_overrides if o.partition("=")[0].strip() in data]
    if clashing:
        raise ValueError(
            f"--dpo-set {', '.join(clashing)}: the DPO runs take their data settings from the reward-model "
            "overrides, so that both hold out the same test pairs"
        )
    items = [*DPO_DEFAULTS, *config.dpo_overrides, *(f"{k}={v}" for k, v in data.items())]
    return load_dpo_config(None, [*items, f"output_dir={config.output / 'dpo' / source.name}"])


def _claim(out: Path, settings: dict[str, Any], *, resume: bool, overwrite: bool) -> None:
    """Check the output folder before any work, as a run folder is: a study there needs ``resume``
    (with the same settings) or ``overwrite``."""
    check_folder_destination(out)
    study = out / "study.json"
    if study.is_file() and not overwrite:
        if not resume:
            raise RunExists(f"{out} already holds a cross-dataset study; pass --resume to continue it or --overwrite")
        saved = json.loads(study.read_text(encoding="utf-8"))
        adds_dpo = settings["dpo"] and not saved.get("dpo")  # new rows beside the kept ones: nothing else moves
        changed = [
            f"{k}: {saved.get(k)!r} → {v!r}"
            for k, v in settings.items()
            if _what_it_measures(saved.get(k)) != _what_it_measures(v)
            and not (adds_dpo and k in ("dpo", "dpo_overrides"))
        ]
        if changed:
            raise RunExists(f"{out} was run with other settings; --resume needs the same ones: " + "; ".join(changed))
    elif not study.is_file() and out.is_dir() and any(out.iterdir()) and not overwrite:
        raise RunExists(f"{out} is not empty and holds no cross-dataset study; choose another --output or --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(study, json.dumps(settings, indent=2) + "\n")


def _what_it_measures(value: Any) -> Any:
    """A list of overrides without those that say how a run reports or how many threads it uses
    (``NOT_SETTINGS``): a study resumes with other threads or without progress bars."""
    if not isinstance(value, list):
        return value
    return [o for o in value if not (isinstance(o, str) and o.partition("=")[0].strip() in NOT_SETTINGS)]


def held_out_pairs(config: TrainConfig, say: Callable[[str], None]) -> list[PreferencePair]:
    """The source's test split, as its training run splits it (augmentations touch only training pairs)."""
    data = dataclasses.replace(config.data, multi_level=False, convex_da=False)
    split = load_split(data, say=say)
    if not split.splits.test:
        raise ValueError(f"{split.loaded.path}: no test pairs (data.test_fraction={data.test_fraction})")
    return split.splits.test


def _row_cells(
    out: Path,
    row: MatrixRow,
    test_pairs: dict[str, list[PreferencePair]],
    *,
    fresh: bool,
    show: bool,
    load: Callable[[], Reward],
) -> list[MatrixCell]:
    """The row's cells: read where written (unless ``fresh``), else scored with the reward ``load``
    gives (trained or loaded only when a cell is missing) and written at once. Accuracy is
    ``evaluate_pairs``'s, over the pairs with a labelled order (tie-labelled pairs are left out)."""
    cells: list[MatrixCell] = []
    reward: Reward | None = None
    with progress_bar(show, f"cross-dataset {row.label}", len(test_pairs)) as advance:
        for column, pairs in test_pairs.items():
            path = out / "cells" / row.label.replace(":", "-") / f"{column}.json"
            if path.is_file() and not fresh:
                cells.append(MatrixCell(**json.loads(path.read_text(encoding="utf-8"))))
            else:
                reward = reward or load()
                result = evaluate_pairs(reward.model, pairs, precision=reward.precision)
                cell = MatrixCell(row.label, column, float(result.correct().sum()), result.overall.n)
                write_text_atomic(path, json.dumps(dataclasses.asdict(cell)) + "\n")
                cells.append(cell)
            advance(column=column)
    return cells


def _reward_model(config: TrainConfig, resume: bool, overwrite: bool, say: Callable[[str], None]) -> Reward:
    model_dir = Path(config.output_dir) / "model"
    if not (resume and saved_model_problem(model_dir) is None):
        say(f"training the reward model of {config.data.path} in {config.output_dir}")
        model_dir = train(config, resume=resume, overwrite=overwrite).model_dir
    return Reward(RewardModel.from_pretrained(model_dir), config.precision)  # type: ignore[arg-type]


def _implicit_reward(config: DPORunConfig, resume: bool, overwrite: bool, say: Callable[[str], None]) -> Reward:
    """β·(log π − log π_ref) of the source's DPO policy, β being the one it was trained with."""
    policy_dir = Path(config.output_dir) / "policy"
    if not (resume and (Path(config.output_dir) / "report.json").is_file()):
        say(f"training the DPO policy of {config.data.path} in {config.output_dir}")
        run_dpo(config, overwrite=overwrite, resume=resume)
    limits = {"max_prompt_tokens": config.train.max_prompt_tokens, "max_reply_tokens": config.train.max_reply_tokens}
    precision = config.train.precision
    policy = CausalLM.from_pretrained(policy_dir, text_format=config.train.text_format, precision=precision, **limits)
    reference = CausalLM.from_pretrained(
        config.policy, text_format=config.train.text_format, precision=precision, **limits
    )
    return Reward(ImplicitRewardScorer(policy, reference, dpo_beta(config), "dpo"))


def dpo_beta(config: DPORunConfig) -> float:
    """The β the run's loss was trained with: its ``beta`` option, or the loss's default."""
    loss = get_policy_loss(config.train.loss)
    beta = config.train.loss_args.get("beta", loss.options.get("beta"))
    if beta is None:
        raise ValueError(f"--dpo: policy loss {loss.name!r} has no beta, so no implicit reward β·log π/π_ref to score")
    return float(beta)


__all__ = [
    "DEFAULT_SOURCES",
    "CrossDatasetConfig",
    "Source",
    "dpo_beta",
    "held_out_pairs",
    "parse_sources",
    "reward_model_config",
    "run_cross_dataset",
]
