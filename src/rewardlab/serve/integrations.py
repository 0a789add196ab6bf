"""Rewards for other trainers: TRL's ``GRPOTrainer(reward_funcs=...)`` and verl's ``compute_score`` (per
sample and batched).

Both load a saved reward model once, score in the precision chosen once (bf16 where the hardware
has it), and can apply a named transform (``rewardlab.rewards.transforms``) on the way out. A
``direction`` weighs a multi-attribute model's attributes (DPA: the policy is trained toward that
user preference); it is refused for any other model, which would ignore it. For a policy
trained in another process or on another machine, serve the model instead
(``rewardlab serve``) and point the trainer at ``/score`` or OpenRLHF's ``/get_reward``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rewardlab.data.records import DataError, Prompt
from rewardlab.data.schema import parse_prompt
from rewardlab.models.reward_model import RewardModel, inference_copy
from rewardlab.precision import Precision
from rewardlab.rewards.direction import check_direction
from rewardlab.rewards.transforms import RewardStats, TransformError, apply_transform, get_transform


class _Scorer:
    """A loaded reward model, its precision and an optional transform, shared by both adapters."""

    def __init__(
        self,
        model: RewardModel | str | Path,
        transform: str | None,
        transform_args: Mapping[str, Any] | None,
        precision: Precision,
        direction: str | Sequence[float] | None = None,
    ) -> None:
        loaded = model if isinstance(model, RewardModel) else RewardModel.from_pretrained(model)
        self.direction = check_direction(loaded.info.head, loaded.model.config.num_labels, direction)
        self.model, self.precision = inference_copy(loaded, precision)
        self.transform = get_transform(transform) if transform else None
        if self.transform is not None and self.transform.steps:
            raise TransformError(f"{self.transform.name!r} reads rewards as the steps of one solution; not usable here")
        self.transform_args = dict(transform_args or {})
        self.stats = RewardStats(loaded.info.reward_mean, loaded.info.reward_std)

    @property
    def needs_reference(self) -> bool:
        return self.transform is not None and self.transform.reference is not None

    def rewards(
        self, prompts: Sequence[Prompt], replies: Sequence[str], references: Sequence[Sequence[str]] | None = None
    ) -> list[float]:
        """Rewards of replies (and of each reply's references, scored in the same call) after the transform."""
        flat = [(p, r) for p, refs in zip(prompts, references or [], strict=False) for r in refs]
        scored = self.model.score(
            [*prompts, *(p for p, _ in flat)],
            [*replies, *(r for _, r in flat)],
            precision=self.precision,
            direction=self.direction,
        )
        rewards, rest = scored[: len(replies)], iter(scored[len(replies) :])
        if self.transform is None:
            return rewards
        reference_rewards = [[next(rest) for _ in refs] for refs in references] if references is not None else None
        return apply_transform(
            self.transform.name, rewards, args=self.transform_args, references=reference_rewards, stats=self.stats
        )


class TRLRewardFunction:
    """``fn(prompts, completions, **kwargs) -> list[float]`` for ``trl.GRPOTrainer(reward_funcs=[fn])``.

    Prompts and completions are text, or conversations (lists of ``{role, content}`` messages) in
    TRL's conversational format, where the reply is the completion's message contents. With the
    ``lsc`` or ``par`` transform each row's reference replies come from the dataset column
    ``reference_column`` (TRL passes dataset columns as keyword arguments). An instance, not a
    closure, so that TRL and multiprocessing can pickle it; TRL logs it under ``__name__``.
    ``direction`` (``"1,0.5"`` or a list) weighs a multi-attribute model's attributes.
    """

    def __init__(
        self,
        model: RewardModel | str | Path,
        *,
        transform: str | None = None,
        transform_args: Mapping[str, Any] | None = None,
        reference_column: str = "reference",
        precision: Precision = "auto",
        name: str = "rewardlab",
        direction: str | Sequence[float] | None = None,
    ) -> None:
        self.scorer = _Scorer(model, transform, transform_args, precision, direction)
        self.reference_column = reference_column
        self.__name__ = name

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions (one completion per prompt)")
        parsed = [_prompt(p, f"prompts[{i}]") for i, p in enumerate(prompts)]
        replies = [_reply(c, f"completions[{i}]") for i, c in enumerate(completions)]
        references = None
        if self.scorer.needs_reference:
            if self.reference_column not in kwargs:
                raise ValueError(
                    f"transform {self.scorer.transform.name!r} needs reference replies: add a dataset column "
                    f"{self.reference_column!r} (or set reference_column=...); columns seen: {sorted(kwargs)}"
                )
            references = [[r] if isinstance(r, str) else list(r) for r in kwargs[self.reference_column]]
        return self.scorer.rewards(parsed, replies, references)


def trl_reward_function(model: RewardModel | str | Path, **options: Any) -> TRLRewardFunction:
    """A reward function for TRL's GRPO (and RLOO) trainers; options as in ``TRLRewardFunction``."""
    return TRLRewardFunction(model, **options)


def verl_compute_score(
    model: RewardModel | str | Path,
    *,
    prompt_key: str | None = "prompt",
    transform: str | None = None,
    transform_args: Mapping[str, Any] | None = None,
    precision: Precision = "auto",
    direction: str | Sequence[float] | None = None,
):
    """``compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float`` for
    verl's per-sample reward managers (``naive``, the reward loop).

    verl passes only the decoded response as ``solution_str``; the prompt is read from
    ``extra_info[prompt_key]`` (put it there when preparing the dataset), or, with
    ``prompt_key=None``, the response is scored without a prompt. ``ground_truth`` is not used: a
    reward model judges the reply itself. The keywords verl adds (``reward_router_address``,
    ``reward_model_tokenizer``, ``reward_model_path``, the config's ``reward_kwargs``) are accepted and
    unused: this function scores with its own model. Transforms needing references are not
    available here. ``direction`` weighs a multi-attribute model's attributes, as in ``TRLRewardFunction``.
    """
    scorer = _verl_scorer(model, transform, transform_args, precision, direction)

    def compute_score(
        data_source: Any,
        solution_str: str,
        ground_truth: Any,
        extra_info: Mapping[str, Any] | None = None,
        **verl_keywords: Any,
    ) -> float:
        return scorer.rewards([_verl_prompt(extra_info, prompt_key, "extra_info")], [solution_str])[0]

    return compute_score


def verl_batch_compute_score(
    model: RewardModel | str | Path,
    *,
    prompt_key: str | None = "prompt",
    transform: str | None = None,
    transform_args: Mapping[str, Any] | None = None,
    precision: Precision = "auto",
    direction: str | Sequence[float] | None = None,
):
    """``compute_score(data_sources, solution_strs, ground_truths, extra_infos, **kwargs) -> list[float]``
    for verl's ``BatchRewardManager`` (``reward_model.reward_manager=batch``), which passes the whole
    batch at once, as sequences (numpy arrays of objects), plus the config's ``reward_kwargs``.

    One model pass scores the batch; prompts and options as in :func:`verl_compute_score`.
    """
    scorer = _verl_scorer(model, transform, transform_args, precision, direction)

    def compute_score(
        data_sources: Sequence[Any],
        solution_strs: Sequence[str],
        ground_truths: Sequence[Any],
        extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
        **verl_keywords: Any,
    ) -> list[float]:
        replies = [str(s) for s in solution_strs]
        infos = list(extra_infos) if extra_infos is not None else [None] * len(replies)
        if len(infos) != len(replies):
            raise ValueError(f"{len(replies)} solution_strs but {len(infos)} extra_infos (one per response)")
        prompts = [_verl_prompt(info, prompt_key, f"extra_infos[{i}]") for i, info in enumerate(infos)]
        return scorer.rewards(prompts, replies)

    return compute_score


def _verl_scorer(
    model: RewardModel | str | Path,
    transform: str | None,
    transform_args: Mapping[str, Any] | None,
    precision: Precision,
    direction: str | Sequence[float] | None,
) -> _Scorer:
    scorer = _Scorer(model, transform, transform_args, precision, direction)
    if scorer.needs_reference:
        raise TransformError(f"{scorer.transform.name!r} needs reference replies, which verl does not pass")
    return scorer


def _verl_prompt(extra_info: Mapping[str, Any] | None, prompt_key: str | None, where: str) -> Prompt:
    """The prompt verl's ``extra_info`` carries under ``prompt_key`` ("" when ``prompt_key`` is None)."""
    if prompt_key is None:
        return ""
    if not extra_info or prompt_key not in extra_info:
        seen = sorted(extra_info or {})
        raise KeyError(
            f"{where} has no {prompt_key!r} (keys: {seen}); put the prompt there, "
            "pass prompt_key=<the key that holds it>, or prompt_key=None to score the response alone"
        )
    return _prompt(extra_info[prompt_key], f"{where}[{prompt_key!r}]")


def _prompt(value: Any, where: str) -> Prompt:
    try:
        return parse_prompt(value, where, "prompt")
    except DataError as error:
        raise ValueError(str(error)) from None


def _reply(value: Any, where: str) -> str:
    """A completion as text: a string, or the contents of its messages (TRL's conversational form)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
        return "\n".join(str(m["content"]) for m in value)
    raise ValueError(f"{where}: expected text or a list of {{role, content}} messages, got {type(value).__name__}")
