"""Each pair scored for its own annotator by a pluralistic reward model (``rewardlab eval --by``).

A pluralistic model (``RewardModelInfo.users``: a user-model name) has a row of parameters per
annotator seen in training; its reward for that annotator is what its accuracy on the annotator's
pairs should be measured with, not the population's. An annotator the model does not know (and a
pair without one) is scored for the population, and the report says which.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from rewardlab.data.readers import read_json_file
from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.by_group import ByGroupOutput, accuracy_by
from rewardlab.evaluate.metrics import pairwise_correct
from rewardlab.evaluate.pairwise import PairwiseEval
from rewardlab.models.reward_model import RewardModel
from rewardlab.precision import Precision
from rewardlab.progress import progress_bar


def is_pluralistic(model: object) -> bool:
    """Whether ``model`` is a reward model with a per-user table (``info.users`` names its user model)."""
    return isinstance(model, RewardModel) and model.info.users is not None and model.users is not None


def scores_for_annotators(
    model: RewardModel, pairs: Sequence[PreferencePair], *, precision: Precision = "auto", progress: bool = False
) -> tuple[list[float], list[float], list[bool]]:
    """(chosen rewards, rejected rewards, scored for its annotator) per pair, in the input order.

    The pairs of each annotator are scored together with ``model.score(..., user=ID)``; the pairs of an
    id the model did not see in training (not in ``model.users.ids``), like the pairs without an
    annotator, are scored for the population (``user=None``).
    """
    by_annotator: dict[str | None, list[int]] = defaultdict(list)
    for index, pair in enumerate(pairs):
        by_annotator[pair.annotator].append(index)
    chosen, rejected, personal = [0.0] * len(pairs), [0.0] * len(pairs), [False] * len(pairs)
    with progress_bar(progress, "scoring per annotator", total=len(by_annotator)) as advance:
        for annotator, indices in by_annotator.items():
            prompts = [pairs[i].prompt for i in indices] + [pairs[i].prompt_of_rejected for i in indices]
            replies = [pairs[i].chosen for i in indices] + [pairs[i].rejected for i in indices]
            scores, known = _score(model, prompts, replies, annotator, precision)
            for k, i in enumerate(indices):
                chosen[i], rejected[i], personal[i] = scores[k], scores[len(indices) + k], known
            advance()
    return chosen, rejected, personal


def _score(
    model: RewardModel, prompts: list, replies: list[str], annotator: str | None, precision: Precision
) -> tuple[list[float], bool]:
    """The rewards for ``annotator`` and True, or the population's and False when the model does not know it."""
    known = annotator is not None and model.users is not None and annotator in model.users.ids
    return model.score(prompts, replies, precision=precision, user=annotator if known else None), known


def by_group_table(
    result: PairwiseEval,
    pairs: Sequence[PreferencePair],
    by: str,
    groups: str | Path | None = None,
    model: object = None,
    *,
    precision: Precision = "auto",
    progress: bool = False,
) -> ByGroupOutput:
    """``--by annotator|group`` of an evaluation: from its own scores, or, for a pluralistic ``model``,
    from each pair scored for its annotator (``scores_for_annotators``)."""
    ordered = result.ordered
    if is_pluralistic(model):
        chosen, rejected, personal = scores_for_annotators(model, pairs, precision=precision, progress=progress)  # type: ignore[arg-type]
    else:
        chosen, rejected, personal = result.chosen_scores, result.rejected_scores, None
    correct = pairwise_correct(chosen, rejected)
    mapping = read_groups(groups) if groups is not None else None
    return accuracy_by(pairs, correct, ordered, by, groups=mapping, personal=personal)


def read_groups(path: str | Path) -> dict[str, list[str]]:
    """A ``--groups`` file: a JSON object mapping each group's name to its annotator ids."""
    value = read_json_file(path)
    if not isinstance(value, dict) or not all(
        isinstance(v, list) and all(isinstance(m, str) for m in v) for v in value.values()
    ):
        raise ValueError(f'--groups {path}: expected a JSON object of group → annotator ids, e.g. {{"a": ["u1"]}}')
    empty = [name for name, members in value.items() if not members]
    if empty or not value:
        raise ValueError(f"--groups {path}: a group needs members (empty: {', '.join(empty) or 'no groups at all'})")
    return value
