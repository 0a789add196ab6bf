"""The judge's tools for preference synthesis: checks whose outputs the judge reads, one number per reply.

Every tool is a scorer (``evaluate.scorers``: ``score(prompts, replies)``, or ``compare(prompts, a, b)``
for a pairwise judge), higher meaning better, so a saved reward model, an LM judge and the rule-based
checks below are used alike. The rule-based checks stand for Anyprefer's external tools (Zhou et al.
2024; only the abstract is known here): they look for what a reward model is known to be fooled by or
blind to (length, repetition, refusals) and give the judge evidence that does not share the reward
model's biases. Their exact rules are this library's choices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rewardlab.data.records import Prompt
from rewardlab.data.refusals import refuses
from rewardlab.evaluate.scorers import Comparer, Scorer, reward_model_scorer
from rewardlab.precision import Precision
from rewardlab.tools.lookup import words

TOOL_NAMES = ("reward", "length", "repetition", "refusal", "judge")
"""Tools by name: ``reward`` (a saved reward model), ``length``, ``repetition``, ``refusal`` (rules
below) and ``judge`` (a local LM as a pairwise judge, ``evaluate.judge.JudgeScorer``)."""

ToolScorer = Scorer | Comparer


@dataclass(frozen=True)
class LengthTool:
    """0 for a reply of ``low`` to ``high`` words; outside, −|log(words / nearest bound)| (an empty reply −log(2·low)).

    Reward models prefer longer replies whatever they say (length bias, ``evaluate.bias``); a band
    in place of "longer is better" keeps the judge from passing that bias on to the synthesised pairs.
    """

    low: int = 5
    high: int = 200

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high:
            raise ValueError(f"the length band needs 1 <= low <= high (got {self.low}, {self.high})")

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        return [self.one(len(words(r))) for r in replies]

    def one(self, count: int) -> float:
        if count < self.low:
            return -math.log(self.low / max(count, 0.5))
        if count > self.high:
            return -math.log(count / self.high)
        return 0.0


@dataclass(frozen=True)
class RepetitionTool:
    """−(share of the reply's word n-grams that repeat an earlier one): 0 for no repetition, near −1
    for a reply that loops (small LMs sampled at low temperature do)."""

    n: int = 3

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"the repetition n-gram size must be at least 1 (got {self.n})")

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        return [-self.repeated(words(r)) for r in replies]

    def repeated(self, tokens: Sequence[str]) -> float:
        grams = [tuple(tokens[i : i + self.n]) for i in range(len(tokens) - self.n + 1)]
        if not grams:
            return 0.0
        return 1.0 - len(set(grams)) / len(grams)


@dataclass(frozen=True)
class RefusalTool:
    """−1 for a reply that refuses or deflects (``data.refusals``) or is empty, else 0.

    A refusal is sometimes right (a harmful request); the tool is evidence for the judge, weighed
    against the others, not a veto.
    """

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        return [-1.0 if not r.strip() or refuses(r) else 0.0 for r in replies]


def rule_tool(name: str) -> Scorer:
    """A rule-based tool by name (``length``, ``repetition``, ``refusal``) with its default settings."""
    tools: dict[str, Scorer] = {"length": LengthTool(), "repetition": RepetitionTool(), "refusal": RefusalTool()}
    if name not in tools:
        raise ValueError(f'"{name}" is not a rule-based tool (known: {", ".join(tools)})')
    return tools[name]


def parse_tools(text: str) -> list[str]:
    """``"reward,length"`` as tool names, checked: known, none twice, at least one."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in TOOL_NAMES]
    if unknown:
        raise ValueError(f"--tools: unknown tool {', '.join(unknown)} (known: {', '.join(TOOL_NAMES)})")
    if not names:
        raise ValueError(f"--tools: give at least one tool (known: {', '.join(TOOL_NAMES)})")
    if len(set(names)) != len(names):
        raise ValueError(f"--tools: a tool is named twice in {text!r}")
    return names


def build_tools(
    names: Sequence[str],
    *,
    reward_model: str | Path | None = None,
    lm_judge: str | Path | None = None,
    precision: Precision = "auto",
) -> dict[str, ToolScorer]:
    """The named tools, loaded: ``reward`` from the saved reward model folder, ``judge`` from a causal LM
    (a folder or ``smollm2``); the rule-based ones with their defaults."""
    tools: dict[str, ToolScorer] = {}
    for name in names:
        if name == "reward":
            if reward_model is None:
                raise ValueError("the reward tool needs --judge-model, a saved reward model folder")
            if not (Path(reward_model) / "config.json").is_file():
                raise FileNotFoundError(
                    f"--judge-model {reward_model}: not a saved reward model folder (no config.json)"
                )
            from rewardlab.models.reward_model import RewardModel

            tools[name] = reward_model_scorer(RewardModel.from_pretrained(reward_model), precision)
        elif name == "judge":
            if lm_judge is None:
                raise ValueError("the judge tool needs --lm-judge, a causal LM folder or smollm2")
            from rewardlab.evaluate.judge import JudgeScorer
            from rewardlab.models.causal_lm import CausalLM

            tools[name] = JudgeScorer(CausalLM.from_pretrained(lm_judge, precision=precision))
        else:
            tools[name] = rule_tool(name)
    return tools
