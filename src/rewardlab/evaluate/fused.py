"""``rewardlab eval --fusion MEMORY_DATA``: wrap a scorer in RewardFusion (``rewards.fusion``).

The memory is every distinct (prompt, reply) of MEMORY_DATA's ``split`` (default ``train``: the
pairs the model was trained on, by the same seeded split as ``rewardlab train``), both replies of
each pair, scored by the scorer under evaluation and embedded by the sentence encoder of
``models.embeddings``; an evaluated reply's reward is then fused with its nearest memory rewards.
Settings are checked by ``rewards.fusion.fusion_problems``, the one place that checks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rewardlab.evaluate.data_split import Log, load_pairs
from rewardlab.evaluate.scorers import reward_model_scorer
from rewardlab.models.embeddings import DEFAULT_ENCODER, load_embedder
from rewardlab.models.reward_model import RewardModel
from rewardlab.rewards.fusion import FusedScorer, fusion_problems
from rewardlab.runs.data import SPLIT_NAMES


@dataclass
class FusionOptions:
    """``--fusion`` and its settings; ``memory`` None means no fusion."""

    memory: str | None = None
    alpha: float = 0.5
    top_k: int | None = None
    temperature: float = 0.1
    split: str = "train"
    encoder: str = DEFAULT_ENCODER
    replies: int = 0
    """How many memory replies were scored (set by ``wrap``)."""

    def problems(self) -> list[str]:
        if self.memory is None:
            return []
        checked = fusion_problems(self.alpha, self.temperature, self.top_k)
        problems = [f"--fusion-{p.replace('_', '-')}" for p in checked]
        if self.split not in SPLIT_NAMES:
            problems.append(f"--fusion-split must be all, train, validation or test (got {self.split!r})")
        return problems

    def apply(
        self, scorer: Any, name: str, precision: str = "auto", *, progress: bool = False, log: Log | None = None
    ) -> tuple[Any, str]:
        """(``scorer`` fused, its name with the settings), or both unchanged without ``--fusion``; a
        reward model is first made a scorer at ``precision``."""
        if self.memory is None:
            return scorer, name
        if isinstance(scorer, RewardModel):
            scorer = reward_model_scorer(scorer, precision)  # type: ignore[arg-type]
        return self.wrap(scorer, progress=progress, log=log), self.describe(name)

    def wrap(self, scorer: object, *, progress: bool = False, log: Log | None = None) -> FusedScorer:
        """``scorer`` fused with the memory of MEMORY_DATA's replies (it needs ``score``, a reward per reply)."""
        if not hasattr(scorer, "score"):
            raise ValueError(
                f"--fusion needs a reward per reply; {type(scorer).__name__} only compares pairs of replies"
            )
        pairs = load_pairs(str(self.memory), split=self.split, log=log)
        sides = [side for p in pairs for side in ((p.prompt, p.chosen), (p.prompt_of_rejected, p.rejected))]
        memory = list(dict.fromkeys(sides))
        if not memory:
            raise ValueError(f"--fusion {self.memory}: no pairs in split {self.split!r} to remember")
        self.replies = len(memory)
        embed = load_embedder(self.encoder, progress=progress)
        prompts, replies = [m[0] for m in memory], [m[1] for m in memory]
        return FusedScorer.from_examples(
            scorer, embed, prompts, replies, alpha=self.alpha, temperature=self.temperature, top_k=self.top_k
        )

    def describe(self, name: str) -> str:
        """The evaluated scorer's name with the fusion and its settings, as the report shows it."""
        top_k = "all" if self.top_k is None else str(self.top_k)
        return (
            f"{name} + RewardFusion (α = {self.alpha:g}, top-k {top_k}, τ = {self.temperature:g}; memory: "
            f"{self.replies} replies of {self.memory}, split {self.split}; encoder {self.encoder})"
        )
