"""Pairs as token ids, and the order in which they are visited.

The order is a pure function of (seed, epoch): resuming at step k needs only k, and every
process of a data-parallel run agrees on it without talking.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import torch

from rewardlab.data.records import PreferencePair, Ranking, Rating
from rewardlab.data.source_names import source_name
from rewardlab.data.split import Splits
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.sequences import pad_batch
from rewardlab.models.shared_prefix import split_pair
from rewardlab.objectives import Objective


@dataclass
class EncodedPairs:
    """Token ids of each pair's two sides plus its label fields, ready to batch."""

    chosen: list[list[int]]
    rejected: list[list[int]]
    margin: list[float | None]
    weight: list[float]
    tie: list[bool]
    truncated: int
    strength: list[float | None] = field(default_factory=list)
    chosen_rating: list[Rating | None] = field(default_factory=list)
    rejected_rating: list[Rating | None] = field(default_factory=list)
    packed: bool = False
    """Each pair is one row, its prompt read once (``RewardModel.shares_prefix``), not two padded rows."""
    user_rows: list[int] = field(default_factory=list)
    """For a pluralistic model: each pair's annotator's row in ``RewardModel.users`` (``POPULATION`` for an
    annotator the table does not know); empty for every other model."""
    source_ids: list[int] = field(default_factory=list)
    """Each pair's data source as an index into the sorted source names (``data/source_names.py``); a pair
    read on its own counts as one more source. Empty when not encoded by ``encode_pairs``."""
    head_features: bool = False
    """Whether a training batch carries ``feature_gap``, the head's input features φ(chosen) − φ(rejected),
    for an objective that reads them (MORE): one extra forward pass without gradients per batch."""

    def __len__(self) -> int:
        return len(self.chosen)

    @cached_property
    def lengths(self) -> list[int]:
        """The width of each pair's rows, which batches of similar pairs are grouped by: the longer side
        (a padded batch is as wide as its longest reply), or the packed row (prompt once, both replies)."""
        if self.packed:
            return [sum(map(len, split_pair(c, r))) for c, r in zip(self.chosen, self.rejected, strict=True)]
        return [max(len(c), len(r)) for c, r in zip(self.chosen, self.rejected, strict=True)]

    @property
    def reply_counts(self) -> list[int]:
        """Rows a pair takes in a forward pass."""
        return [1 if self.packed else 2] * len(self)

    def labels(self, indices: Sequence[int]) -> dict[str, torch.Tensor | None]:
        """The per-pair fields an objective may ask for (a field no pair has is ``None``).

        A pair without a ``margin`` counts as margin 0 and one without a ``strength`` as a plain
        preference (1); ratings are all there or absent (``check_fields`` makes sure).
        """

        def column(values: list, missing: float) -> torch.Tensor | None:
            picked = [values[i] for i in indices] if values else []
            if not picked or all(v is None for v in picked):
                return None
            return torch.tensor([missing if v is None else v for v in picked], dtype=torch.float32)

        return {
            "margin": column(self.margin, 0.0),
            "strength": column(self.strength, 1.0),
            "chosen_rating": column(self.chosen_rating, math.nan),
            "rejected_rating": column(self.rejected_rating, math.nan),
            "weight": torch.tensor([self.weight[i] for i in indices]),
            "tie": torch.tensor([self.tie[i] for i in indices]),
            "source": torch.tensor([self.source_ids[i] for i in indices]) if self.source_ids else None,
        }

    def forward(self, model: RewardModel, indices: Sequence[int]) -> tuple[dict[str, torch.Tensor | None], int]:
        """The objective's batch for these pairs (head outputs and labels), and the real tokens computed."""
        chosen, rejected, tokens = model.pair_rewards(
            [self.chosen[i] for i in indices], [self.rejected[i] for i in indices]
        )
        device = chosen.device
        fields = {k: (v.to(device) if v is not None else None) for k, v in self.labels(indices).items()}
        if self.head_features:
            fields["feature_gap"] = self.feature_gap(model, indices).to(device)
        return {**fields, **self.users(model, indices), "chosen": chosen, "rejected": rejected}, tokens

    def feature_gap(self, model: RewardModel, indices: Sequence[int]) -> torch.Tensor:
        """φ(chosen) − φ(rejected) of these pairs, read without gradients and in the compute model's own
        precision, the model left in training mode."""
        training = model.model.training
        precision = "bf16" if model.model.dtype == torch.bfloat16 else "fp32"
        ids = [self.chosen[i] for i in indices] + [self.rejected[i] for i in indices]
        features = model.outputs_ids(ids, precision=precision, head_inputs=True)
        model.model.train(training)
        return features[: len(indices)] - features[len(indices) :]

    def users(self, model: RewardModel, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """``user``: the table rows of the pairs' annotators (trainable), for a pluralistic model only."""
        if model.users is None:
            return {}
        return {"user": model.users.gather([self.user_rows[i] for i in indices])}

    @torch.no_grad()
    def outputs(self, model: RewardModel, precision: str) -> dict[str, torch.Tensor | None]:
        """The objective's batch for all pairs at once, for validation (scored like ``score``)."""
        n = len(self)
        outputs = model.outputs_ids(self.chosen + self.rejected, precision=precision)
        return {**self.labels(range(n)), **self.users(model, range(n)), "chosen": outputs[:n], "rejected": outputs[n:]}


@dataclass
class EncodedRankings:
    """Token ids of the replies of each ranking (best first), ready to batch as groups."""

    replies: list[list[list[int]]]
    truncated: int

    def __len__(self) -> int:
        return len(self.replies)

    @cached_property
    def lengths(self) -> list[int]:
        """Padded tokens per reply of a group: its longest reply (used to group similar sizes)."""
        return [max(map(len, group)) for group in self.replies]

    @property
    def reply_counts(self) -> list[int]:
        return [len(group) for group in self.replies]

    def _batch(self, indices: Sequence[int], rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        sizes = [len(self.replies[i]) for i in indices]
        k = max(sizes)
        mask = torch.tensor([[j < n for j in range(k)] for n in sizes])
        ranked = rewards.new_zeros((len(indices), k, *rewards.shape[1:]))
        ranked[mask.to(rewards.device)] = rewards
        weight = torch.ones(len(indices))
        return {"ranked": ranked, "ranked_mask": mask.to(rewards.device), "weight": weight.to(rewards.device)}

    def forward(self, model: RewardModel, indices: Sequence[int]) -> tuple[dict[str, torch.Tensor | None], int]:
        flat = [reply for i in indices for reply in self.replies[i]]
        input_ids, mask = pad_batch(flat, model.tokenizer.pad_token_id)
        device = model.model.device
        rewards = model.rewards(input_ids.to(device), mask.to(device))
        return self._batch(indices, rewards), int(mask.sum())

    @torch.no_grad()
    def outputs(self, model: RewardModel, precision: str) -> dict[str, torch.Tensor | None]:
        flat = [reply for group in self.replies for reply in group]
        return self._batch(range(len(self)), model.outputs_ids(flat, precision=precision))


def encode_pairs(model: RewardModel, pairs: Sequence[PreferencePair], *, head_features: bool = False) -> EncodedPairs:
    """Each side as (its prompt, its reply): the rejected side after ``rejected_prompt`` where a pair has one.

    Packing stays exact for such pairs: the prefix a packed row reads once is found on the two token
    sequences (``models/shared_prefix.py``), so it is whatever the two prompts share, possibly nothing.
    """
    chosen = model.encode([p.prompt for p in pairs], [p.chosen for p in pairs])
    rejected = model.encode([p.prompt_of_rejected for p in pairs], [p.rejected for p in pairs])
    return EncodedPairs(
        chosen=chosen.ids,
        rejected=rejected.ids,
        margin=[p.margin for p in pairs],
        weight=[p.weight for p in pairs],
        tie=[p.tie for p in pairs],
        truncated=sum(c or r for c, r in zip(chosen.truncated, rejected.truncated, strict=True)),
        strength=[p.strength for p in pairs],
        chosen_rating=[p.chosen_rating for p in pairs],
        rejected_rating=[p.rejected_rating for p in pairs],
        packed=model.shares_prefix,
        user_rows=[model.users.index_of(p.annotator) for p in pairs] if model.users is not None else [],
        source_ids=source_indices(pairs),
        head_features=head_features,
    )


def source_indices(pairs: Sequence[PreferencePair]) -> list[int]:
    """Each pair's source as an index into its sources' names sorted (untagged pairs last)."""
    names = [source_name(p) or "" for p in pairs]
    order = {name: i for i, name in enumerate(sorted(set(names), key=lambda n: (n == "", n)))}
    return [order[n] for n in names]


def encode_rankings(model: RewardModel, rankings: Sequence[Ranking]) -> EncodedRankings:
    groups, truncated = [], 0
    for ranking in rankings:
        encoded = model.encode([ranking.prompt] * len(ranking.responses), list(ranking.responses))
        groups.append(encoded.ids)
        truncated += any(encoded.truncated)
    return EncodedRankings(groups, truncated)


def check_fields(objective: Objective, options: dict, pairs: Sequence[PreferencePair], what: str) -> None:
    """Refuse data that cannot train the objective: a required field missing on some pair, ratings
    the objective reads but no pair has, or ratings of another shape than the head's outputs.

    Only a training run reaches here, so the fix named is the run's key ``data.columns=`` (``train``
    has no ``--columns`` option; ``eval`` and ``data check`` do)."""
    for name in objective.required:
        if name in ("chosen", "rejected", "ranked", "ranked_mask", "tie", "user"):
            continue  # ``user`` rows come from the annotators: check_annotators
        missing = [p for p in pairs if getattr(p, name) is None]
        if missing:
            raise ValueError(
                f"objective {objective.name!r} needs {name!r} on every pair, but {len(missing)} of {len(pairs)} "
                f"{what} pairs lack it (first: {missing[0].source or 'a pair without a source'}); "
                f"map the field that holds it with data.columns={name}=FIELD"
            )
    if "chosen_rating" not in objective.inputs or not pairs:
        return
    ratings = [r for p in pairs for r in (p.chosen_rating, p.rejected_rating) if r is not None]
    if not ratings:
        raise ValueError(
            f"objective {objective.name!r} learns from ratings, but none of the {len(pairs)} {what} pairs has one; "
            "map the fields that hold them with data.columns=chosen_rating=FIELD,rejected_rating=FIELD"
        )
    sizes = {len(r) if isinstance(r, tuple) else 1 for r in ratings}
    wanted = objective.outputs(options) if objective.head == "attributes" else 1
    if sizes != {wanted}:
        raise ValueError(
            f"objective {objective.name!r} needs {'one rating' if wanted == 1 else f'{wanted} ratings'} per reply, "
            f"but the {what} pairs have ratings of size {', '.join(map(str, sorted(sizes)))}"
        )


def check_annotators(objective: Objective, pairs: Sequence[PreferencePair], what: str) -> None:
    """Refuse a pair without an annotator when the objective learns one row per user (``Objective.users``):
    the pair would belong to no one's row."""
    if objective.users is None:
        return
    missing = [p for p in pairs if not p.annotator]
    if missing:
        raise ValueError(
            f"{missing[0].source or 'a pair without a source'}: field 'annotator' is missing ({len(missing)} of "
            f"{len(pairs)} {what} pairs lack it); objective {objective.name!r} learns one reward per annotator, "
            "so every pair needs one: map the field that names who judged with data.columns=annotator=FIELD"
        )


def trainable_pairs(objective: Objective, splits: Splits, report: Callable[[str], object] = print) -> Splits:
    """The splits with the tie-labelled training and validation pairs left out, with a count reported,
    when the objective cannot learn from ties (``Objective.uses_ties``): it would read each as a
    preference for whichever reply happens to be listed first. Refuses data left with no training pair."""
    if objective.uses_ties:
        return splits
    train = [p for p in splits.train if not p.tie]
    validation = [p for p in splits.validation if not p.tie]
    ties = len(splits.train) - len(train) + len(splits.validation) - len(validation)
    if not ties:
        return splits
    if not train:
        raise ValueError(
            f"objective {objective.name!r} cannot learn from ties, and all {len(splits.train)} training pairs are "
            "tie-labelled; use an objective that takes ties (e.g. bradley_terry or davidson)"
        )
    report(f"{ties} tie-labelled pairs left out: objective {objective.name!r} cannot learn from ties")
    return replace(splits, train=train, validation=validation)


def plan_epoch(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, window: int = 50, bucketing: bool = True
) -> list[list[int]]:
    """Shuffled batches of pairs of similar length.

    Pairs are shuffled, then sorted by length inside windows of ``window`` batches and cut into
    batches, and the batches are shuffled again: batches stay random in content and order, but
    each one pads only to a length close to its own pairs' (bucketing).
    """
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not bucketing:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    span = batch_size * window
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def token_budget(setting: int | str | None, precision: str) -> int | None:
    """The padded tokens a forward pass may hold: ``micro_batch_tokens`` with ``auto`` resolved for the
    precision the passes run in, 2,048 in bf16 and 1,024 in fp32 (activations of twice the size)."""
    if setting == "auto":
        return 2048 if precision == "bf16" else 1024
    return setting  # type: ignore[return-value]  # TrainConfig.problems() allows only auto among strings


def micro_batches(
    indices: Sequence[int],
    lengths: Sequence[int],
    reply_counts: Sequence[int],
    max_pairs: int | None,
    max_tokens: int | None,
):
    """Split one process's share of a step into forward passes by record count and padded-token budget.

    Records (pairs, or rankings, of ``reply_counts[i]`` rows each) are grouped by length so each pass pads
    little; the loss is normalised by the records of the whole step, so the grouping changes speed
    and memory, never the update.
    """
    ordered = sorted(indices, key=lambda i: lengths[i])
    groups: list[list[int]] = []
    rows = 0  # rows in the current group
    for i in ordered:
        current = groups[-1] if groups else None
        fits = current is not None and (max_pairs is None or len(current) < max_pairs)
        if fits and max_tokens is not None:  # every row of the group, padded to the longest
            fits = lengths[i] * (rows + reply_counts[i]) <= max_tokens
        if fits:
            current.append(i)
            rows += reply_counts[i]
        else:
            groups.append([i])
            rows = reply_counts[i]
    return groups
