"""Preference pairs synthesised by a policy and a tool-using judge, with a feedback loop on their quality.

Anyprefer (Zhou et al. 2024, "Anyprefer: An Agentic Framework for Preference Data Synthesis"; only
the abstract is known here) frames synthesis as a cooperative game of the target model, which
answers, and a judge model, which rewards the answers with the help of external tools so that the
rewards do not inherit the target's own biases (the flaw of self-rewarding); a feedback mechanism
tunes both players' prompts to raise the data's quality. From the abstract this module takes:

- the two players: the target policy samples ``k`` candidates a prompt (a ``Sampler``), a judge
  other than the policy ranks them;
- tools whose outputs the judge reads (``synthesis_tools``: a reward model, length, repetition and
  refusal checks, optionally an LM's pairwise verdict);
- a feedback step on the data's quality that makes the players try again.

This library's choices, where the abstract gives no detail: the judge is a rule, not an LM reading
the tools' text: each tool's scores are standardised over the prompt's candidates (z-scores, zero
when a tool cannot tell them apart) and summed with the tool's weight,

    s(y) = Σ_t w_t · (x_t(y) − mean_t) / std_t,

and the pair is (argmax s, argmin s). A pair's quality is its margin s(chosen) − s(rejected) and the
tools' agreement: of the tools that tell chosen from rejected, the share that prefer chosen. A
prompt whose pair falls below ``min_margin`` or ``min_agreement`` (or that has no pair: fewer than
two distinct non-empty replies) is low quality. The feedback adjusts the policy's side, not its
prompt: a low-quality prompt is sampled again, ``k`` new candidates at a higher temperature
(``temperature_step`` more a round) with another seed, pooled with its earlier candidates and
judged again; prompts that passed are left alone. After the last round a prompt still low goes to
its own file with its best pair, counted, never silently dropped. Tool weights are not re-learnt.
Standardising makes the judge blind to a tool's scale: a reward model that barely separates two
replies moves s as much as one that separates them widely; the agreement bar and, after the run, a
held-out reward model's accuracy on the pairs (:func:`held_out_accuracy`) check what that costs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rewardlab.data.records import Prompt
from rewardlab.evaluate.scorers import Comparer, Scorer, grouped_scores
from rewardlab.progress import progress_bar
from rewardlab.runs.config import Checked


@dataclass(frozen=True)
class Candidate:
    """One reply the policy wrote, and whether it ended on its own (not cut at the token limit)."""

    text: str
    finished: bool = True


class Sampler(Protocol):
    """``k`` replies for every prompt, drawn at ``temperature`` with ``seed`` (the target policy's move)."""

    def __call__(self, prompts: Sequence[Prompt], k: int, temperature: float, seed: int) -> list[list[Candidate]]: ...


@dataclass(frozen=True)
class SynthesisConfig(Checked):
    """How many candidates, rounds and what counts as a good pair."""

    k: int = 4
    rounds: int = 2
    temperature: float = 0.7
    temperature_step: float = 0.3
    seed: int = 0
    min_margin: float = 1.0
    min_agreement: float = 0.5
    weights: Mapping[str, float] = field(default_factory=dict)
    """A tool's weight in the judge's sum (a tool not named here: 1)."""

    def problems(self) -> list[str]:
        problems = []
        if not isinstance(self.k, int) or self.k < 2:
            problems.append(f"k must be an integer of at least 2: a pair needs two candidates (got {self.k!r})")
        if not isinstance(self.rounds, int) or self.rounds < 1:
            problems.append(f"rounds must be a positive integer (got {self.rounds!r})")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            problems.append(f"temperature must be positive (got {self.temperature})")
        if not (math.isfinite(self.temperature_step) and self.temperature_step >= 0):
            problems.append(f"temperature_step must be 0 or more (got {self.temperature_step})")
        if not 0 <= self.min_agreement <= 1:
            problems.append(f"min_agreement must lie in [0, 1] (got {self.min_agreement})")
        if not math.isfinite(self.min_margin):
            problems.append(f"min_margin must be a number (got {self.min_margin})")
        problems += [f"weight of {t} must be 0 or more (got {w})" for t, w in self.weights.items() if not w >= 0]
        return problems

    def weight(self, tool: str) -> float:
        return float(self.weights.get(tool, 1.0))

    def temperature_at(self, round_: int) -> float:
        return self.temperature + (round_ - 1) * self.temperature_step


def standardised(values: Sequence[float]) -> list[float]:
    """(x − mean) / std over one prompt's candidates (population std); all zero when they are all equal."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    return [0.0 if std < 1e-12 else (v - mean) / std for v in values]


def combined_scores(tool_scores: Mapping[str, Sequence[float]], weights: Mapping[str, float]) -> list[float]:
    """s(y) = Σ_t w_t · z_t(y): the judge's score of each candidate from its tools' standardised scores."""
    n = len(next(iter(tool_scores.values())))
    total = [0.0] * n
    for name, scores in tool_scores.items():
        for i, z in enumerate(standardised(scores)):
            total[i] += weights.get(name, 1.0) * z
    return total


def agreement(tool_scores: Mapping[str, Sequence[float]], chosen: int, rejected: int) -> tuple[float, int]:
    """(share of deciding tools that score ``chosen`` above ``rejected``, how many decide); a tool that
    scores the two equally abstains; (0, 0) when none decides."""
    votes = [(s[chosen] > s[rejected]) for s in tool_scores.values() if s[chosen] != s[rejected]]
    return (sum(votes) / len(votes) if votes else 0.0), len(votes)


@dataclass
class Judgement:
    """One prompt's candidates as the judge saw them, and the pair it made of them (if any)."""

    candidates: list[Candidate]
    tool_scores: dict[str, list[float]]
    combined: list[float]
    round: int
    chosen: int | None = None
    rejected: int | None = None
    margin: float = 0.0
    agreement: float = 0.0
    deciding_tools: int = 0
    ok: bool = False
    why: str = ""

    def provenance(self, config: SynthesisConfig) -> dict[str, Any]:
        """What made this pair: the round, the candidates, every tool's score of both sides, the margins."""
        c, r = self.chosen, self.rejected
        return {
            "round": self.round,
            "candidates": len(self.candidates),
            "temperature": config.temperature_at(self.round),
            "tools": {
                name: {
                    "weight": config.weight(name),
                    "chosen": None if c is None else scores[c],
                    "rejected": None if r is None else scores[r],
                }
                for name, scores in self.tool_scores.items()
            },
            "judge_score": {
                "chosen": None if c is None else self.combined[c],
                "rejected": None if r is None else self.combined[r],
            },
            "margin": self.margin,
            "agreement": self.agreement,
            "deciding_tools": self.deciding_tools,
            "quality": "ok" if self.ok else "low",
            **({"why_low": self.why} if not self.ok else {}),
        }


def judge(
    candidates: Sequence[Candidate], tool_scores: Mapping[str, Sequence[float]], config: SynthesisConfig, round_: int
) -> Judgement:
    """The pair the tools' weighted standardised scores make of one prompt's candidates, and its quality."""
    scores = {name: list(map(float, s)) for name, s in tool_scores.items()}
    weights = {name: config.weight(name) for name in scores}
    combined = combined_scores(scores, weights) if candidates else []
    out = Judgement(list(candidates), scores, combined, round_)
    if len(candidates) < 2:
        out.why = f"fewer than two distinct non-empty replies ({len(candidates)})"
        return out
    out.chosen = max(range(len(combined)), key=lambda i: (combined[i], -i))
    out.rejected = min((i for i in range(len(combined)) if i != out.chosen), key=lambda i: (combined[i], i))
    out.margin = combined[out.chosen] - combined[out.rejected]
    out.agreement, out.deciding_tools = agreement(scores, out.chosen, out.rejected)
    if out.margin < config.min_margin or out.margin <= 0:
        out.why = f"margin {out.margin:.3f} below {config.min_margin}"
    elif out.agreement < config.min_agreement:
        out.why = f"tools agree {out.agreement:.2f}, below {config.min_agreement}"
    out.ok = not out.why
    return out


def usable(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates a pair may use: non-empty, each text once (the first of equal ones)."""
    seen: set[str] = set()
    kept = []
    for c in candidates:
        if c.text.strip() and c.text not in seen:
            seen.add(c.text)
            kept.append(c)
    return kept


def tool_score_groups(
    tools: Mapping[str, Scorer | Comparer],
    prompts: Sequence[Prompt],
    groups: Sequence[Sequence[Candidate]],
    advance: Callable[[], None] = lambda: None,
) -> list[dict[str, list[float]]]:
    """Every tool's score of every candidate, one pass a tool over all prompts (empty groups skipped);
    ``advance()`` after each tool."""
    filled = [i for i, g in enumerate(groups) if g]
    per_group: list[dict[str, list[float]]] = [{} for _ in groups]
    for name, tool in tools.items():
        texts = [[c.text for c in groups[i]] for i in filled]
        scores = grouped_scores(tool, [prompts[i] for i in filled], texts)
        for i, s in zip(filled, scores, strict=True):
            per_group[i][name] = s
        advance()
    for i, g in enumerate(groups):
        if not g:
            per_group[i] = {name: [] for name in tools}
    return per_group


@dataclass
class SynthesisOutput:
    """The judgement of every prompt (in the prompts' order) and what each round did."""

    prompts: list[Prompt]
    judgements: list[Judgement]
    rounds: list[dict[str, Any]]

    def counts(self) -> dict[str, Any]:
        ok = sum(j.ok for j in self.judgements)
        paired = [j for j in self.judgements if j.ok]
        return {
            "prompts": len(self.prompts),
            "pairs": ok,
            "low_quality": len(self.judgements) - ok,
            "no_pair": sum(j.chosen is None for j in self.judgements),
            "retried": self.rounds[1]["prompts"] if len(self.rounds) > 1 else 0,
            "mean_margin": sum(j.margin for j in paired) / len(paired) if paired else None,
            "mean_agreement": sum(j.agreement for j in paired) / len(paired) if paired else None,
            "tool_agreement": tool_agreement(paired),
            "rounds": self.rounds,
        }


def tool_agreement(judgements: Sequence[Judgement]) -> dict[str, float | None]:
    """For each tool, the share of pairs whose chosen it scores above the rejected (ties count half):
    how far each tool went along with the judge's decisions."""
    if not judgements:
        return {}
    out: dict[str, float | None] = {}
    for name in judgements[0].tool_scores:
        votes = []
        for j in judgements:
            c, r = j.tool_scores[name][j.chosen], j.tool_scores[name][j.rejected]  # type: ignore[index]
            votes.append(1.0 if c > r else 0.5 if c == r else 0.0)
        out[name] = sum(votes) / len(votes)
    return out


def held_out_accuracy(check: Scorer | Comparer, result: SynthesisOutput) -> float | None:
    """The share of the good pairs whose chosen a held-out scorer (one the judge did not use) also
    scores higher: a check of the data's quality by a model outside the game; None with no pairs."""
    paired = [(p, j) for p, j in zip(result.prompts, result.judgements, strict=True) if j.ok]
    if not paired:
        return None
    groups = [[j.candidates[j.chosen].text, j.candidates[j.rejected].text] for _, j in paired]  # type: ignore[index]
    scores = grouped_scores(check, [p for p, _ in paired], groups)
    return sum(c > r for c, r in scores) / len(scores)


def synthesize(
    prompts: Sequence[Prompt],
    sampler: Sampler,
    tools: Mapping[str, Scorer | Comparer],
    config: SynthesisConfig,
    *,
    progress: bool = False,
) -> SynthesisOutput:
    """Sample, judge with the tools, and re-sample the low-quality prompts, for ``config.rounds`` rounds."""
    config.check()
    if not tools:
        raise ValueError("synthesis needs at least one tool")
    if not prompts:
        raise ValueError("no prompts to synthesise pairs for")
    pools: list[list[Candidate]] = [[] for _ in prompts]
    judgements: list[Judgement | None] = [None] * len(prompts)
    todo = list(range(len(prompts)))
    rounds = []
    for round_ in range(1, config.rounds + 1):
        temperature, seed = config.temperature_at(round_), config.seed + round_ - 1
        drawn = sampler([prompts[i] for i in todo], config.k, temperature, seed)
        if len(drawn) != len(todo):
            raise ValueError(f"the sampler gave replies for {len(drawn)} prompts, expected {len(todo)}")
        for i, new in zip(todo, drawn, strict=True):
            pools[i] = usable([*pools[i], *new])
        with progress_bar(progress, f"round {round_}: judging with {len(tools)} tools", len(tools)) as advance:
            scored = tool_score_groups(tools, [prompts[i] for i in todo], [pools[i] for i in todo], advance)
        for n, i in enumerate(todo):
            judgements[i] = judge(pools[i], scored[n], config, round_)
        low = [i for i in todo if not judgements[i].ok]  # type: ignore[union-attr]
        rounds.append(
            {"round": round_, "prompts": len(todo), "temperature": temperature, "seed": seed, "low_after": len(low)}
        )
        todo = low
        if not todo:
            break
    return SynthesisOutput(list(prompts), judgements, rounds)  # type: ignore[arg-type]
