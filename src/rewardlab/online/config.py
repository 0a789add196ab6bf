"""Configuration of a ``rewardlab online`` run: nested dataclasses, YAML, ``key.sub=value`` overrides.

A run is ``rounds`` rounds of generate → judge → pair → update. The update's options are
:class:`rewardlab.policy.trainer.PolicyTrainConfig` itself (under ``train.``, ``train.steps`` per
round), so any registered policy loss runs by name. Every problem is reported at once, each naming
its key (:class:`rewardlab.runs.config.ConfigError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.policy.lora import LoraSettings
from rewardlab.policy.registry import get_policy_loss
from rewardlab.policy.trainer import PolicyTrainConfig
from rewardlab.rewards.aggregate import AGGREGATIONS
from rewardlab.runs.config import RunConfig, load_run_config
from rewardlab.runs.data import SplitDataConfig
from rewardlab.sampling.generation import SampleConfig

JUDGE_KINDS = ("rm", "gpm", "self", "judge")
PAIR_STRATEGIES = ("best_worst", "best_random", "temporal", "recorded")
TRAINERS = ("rewardlab", "trl_grpo")
REFERENCES = ("previous", "start")
STRENGTHS = ("oracle", "scores")


@dataclass
class OnlineDataConfig(SplitDataConfig):
    train_prompts: int = 64
    """Distinct prompts of the training split the policy answers each round (the first N)."""


@dataclass
class OnlineTrainConfig(PolicyTrainConfig):
    """Each round's update: ``train_policy``'s options (``policy/trainer.py``); what a round changes is here."""

    steps: int = 100
    """Optimiser steps per round."""
    seed: int = 0
    """Seed of round 1's batch order and adapters; round n uses seed + n − 1."""
    max_prompt_tokens: int = 512
    """Prompts are cut from the left to this many tokens, in generation and in the update."""


@dataclass
class GenerateSettings:
    """How the policy's replies are drawn each round (``sampling/generation.py``, seeded per prompt)."""

    k: int = 4
    """Replies sampled per prompt per round (at least 2: a pair needs two)."""
    max_new_tokens: int = 64
    """Longest reply, in tokens."""
    temperature: float = 1.0
    """Sampling temperature (> 0: the replies must differ)."""
    seed: int = 0
    """Seed of round 1's replies; round n samples with seed + n − 1."""
    batch_rows: int | None = 64
    """Replies written at once across prompts (``sampling/batched.py``: prompts read once, finished rows
    dropped); null: one prompt at a time through ``generate`` (``sampling/generation.py``)."""


@dataclass
class JudgeSettings:
    """Who ranks each prompt's replies."""

    kind: str = "rm"
    """rm: a saved reward model scores each reply; gpm: a saved preference model compares every two
    replies; self: the policy's implicit DPO reward β·log π/π_ref; judge: the policy asked which of two
    replies is better (``evaluate/judge.py``)."""
    model: str | None = None
    """The reward model (rm) or preference model (gpm) folder; unused by self and judge."""
    beta: float = 0.1
    """β of the implicit reward (self): only scales the scores, not the ranking."""
    reference: str | None = None
    """self: the causal LM the implicit reward is measured against, the one the starting policy was
    DPO-trained from (smollm2 or a folder)."""
    principle: str | None = None
    """judge: a principle or rubric the policy is told to judge by."""
    members: list[str] = field(default_factory=list)
    """rm: further reward model folders scored with judge.model as one ensemble (each standardised by its saved
    statistics); their disagreement is each reply's uncertainty (pairs.max_uncertainty)."""
    aggregation: str = "mean"
    """With members: mean, wco (the lowest member) or uwo (mean − uncertainty_weight·variance), Coste et al. 2024."""
    uncertainty_weight: float = 1.0
    """With members and aggregation=uwo: λ of mean − λ·variance."""


@dataclass
class PairSettings:
    """How a round's judged replies become preference pairs."""

    strategy: str = "best_worst"
    """best_worst: the best reply of a prompt over its worst (PF-PPO's BW filter); best_random: the best over a
    seeded random other (PF-PPO's BR); temporal: the best of this round over the worst of round 1's replies
    (Temporal Self-Rewarding: rejected anchored in the past); recorded: offline DPO as a round, nothing generated
    or judged, the data's own recorded pairs of the data.train_prompts prompts (the same prompt budget)."""
    max_uncertainty: float | None = None
    """PF-PPO's reliability filter (best_worst, best_random): only replies whose reward the judge.members ensemble
    agrees on, variance of the standardised member scores at most this, can be chosen or rejected (null: all)."""
    reference_reply: bool = False
    """SELM: the reference policy's greedy reply (the round's starting policy, or the start with reference=start)
    joins each prompt's sampled replies before judging, so the pair may include it (saved last in generations)."""
    min_gap: float = 0.0
    """Skip a prompt whose chosen reply's score exceeds the rejected one's by no more than this."""
    strength: str = "oracle"
    """Each pair's strength (DNO's target): oracle, the judge's P(chosen ≻ rejected); or scores, σ(s_w − s_l)
    of the two scores (for gpm and judge, σ of the win-rate gap: ``policy.online_losses.dno_target``)."""
    consistency: bool = False
    """CREAM (judge.kind=self): each pair's consistency is (τ + 1)/2, Kendall's τ between the prompt's
    replies ranked by this round's implicit reward and by the previous round's policy's (from round 2)."""
    agree_with: str | None = None
    """SCIR (Self-Consistent Internal Rewards): a second internal judge of the policy, self or judge (the
    other one than judge.kind); a pair is kept only when it too ranks the chosen reply above the rejected."""


@dataclass
class OnlineEvalConfig:
    """The per-round measurements, by a judge the loop never trains on."""

    evaluator: str | None = None
    """A saved rewardlab reward model, held out from the loop: mean reward and win rates (None: skipped)."""
    prompts: int = 32
    """Distinct held-out prompts (test split) answered each round."""
    max_new_tokens: int = 64
    """Longest evaluated reply, in tokens."""
    temperature: float = 0.0
    """0: greedy replies; otherwise sampled, seeded by ``seed`` and the prompt (the same for every round)."""
    kl_prompts: int = 4
    """Held-out prompts for the sampled KL(π‖π_start) (0: none)."""
    kl_samples: int = 4
    """Replies sampled per prompt for that estimate (0: none)."""
    seed: int = 0
    """Seed of the sampled replies and of the KL samples."""


@dataclass
class OnlineConfig(RunConfig):
    output_dir: str = "runs/online"
    """The run folder: config.yaml, round-N/ per round, report.md and report.json."""
    policy: str = "smollm2"
    """The starting policy: smollm2, or a local causal LM folder."""
    rounds: int = 3
    """Rounds of generate → judge → pair → update; may grow when a finished run is resumed."""
    reference: str = "previous"
    """The update's reference policy: previous (the round's starting policy, as iterative DPO, DNO and
    self-rewarding do) or start (the starting policy every round)."""
    data: OnlineDataConfig = field(default_factory=OnlineDataConfig)
    generate: GenerateSettings = field(default_factory=GenerateSettings)
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    pairs: PairSettings = field(default_factory=PairSettings)
    train: OnlineTrainConfig = field(default_factory=OnlineTrainConfig)
    trainer: str = "rewardlab"
    """Each round's update: rewardlab (generate → judge → pair → train.loss) or trl_grpo (TRL's GRPOTrainer on the
    round's prompts, the judge.kind=rm reward model as its reward: online/grpo.py)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA adapters each round (lora.enabled=true), merged into the policy the round saves."""
    eval: OnlineEvalConfig = field(default_factory=OnlineEvalConfig)
    num_threads: int | None = None
    """torch threads (None: rewardlab's CPU settings)."""
    progress: bool = True
    """Progress bars for sampling and training."""

    def problems(self) -> list[str]:
        problems: list[str] = []
        try:
            loss = get_policy_loss(self.train.loss)
        except ValueError as e:
            loss = None
            problems.append(f"train.loss: {e}")
        if loss is not None and loss.needs_token_rewards:
            problems.append(f"train.loss: {loss.name!r} needs a guide model, which the online loop does not load")
        problems += [f"train.{p}" for p in self.train.problems(loss)]
        problems += [f"lora.{p}" for p in self.lora.problems()]
        problems += self.data.problems()
        problems += self._choice_problems()
        problems += self._count_problems()
        g = self.generate
        sample = SampleConfig(n=g.k, max_new_tokens=g.max_new_tokens, temperature=g.temperature, seed=g.seed)
        problems += [f"generate.{p}" for p in sample.problems() if not p.startswith(("n ", "chunk "))]
        if self.eval.temperature < 0:
            problems.append(f"eval.temperature must be >= 0 (got {self.eval.temperature})")
        if self.data.test_fraction <= 0:
            problems.append("data.test_fraction must be > 0: each round is measured on held-out prompts")
        return problems

    def _choice_problems(self) -> list[str]:
        problems = []
        for key, value, allowed in (
            ("judge.kind", self.judge.kind, JUDGE_KINDS),
            ("pairs.strategy", self.pairs.strategy, PAIR_STRATEGIES),
            ("pairs.strength", self.pairs.strength, STRENGTHS),
            ("reference", self.reference, REFERENCES),
            ("trainer", self.trainer, TRAINERS),
        ):
            if value not in allowed:
                problems.append(f"{key} must be one of {', '.join(allowed)} (got {value!r})")
        if self.judge.kind in ("rm", "gpm") and not self.judge.model and self.pairs.strategy != "recorded":
            problems.append(f"judge.model: judge.kind={self.judge.kind} needs a saved model folder")
        if self.judge.kind == "self" and not self.judge.beta > 0:
            problems.append(f"judge.beta must be > 0 (got {self.judge.beta})")
        if self.judge.kind == "self" and not self.judge.reference:
            problems.append(
                "judge.reference: judge.kind=self needs the model the starting policy was trained from "
                "(measured against itself, every implicit reward of round 1 is 0)"
            )
        if self.pairs.consistency and self.judge.kind != "self":
            problems.append(f"pairs.consistency needs judge.kind=self (CREAM's two iterations; got {self.judge.kind})")
        if self.pairs.agree_with is not None and (
            self.pairs.agree_with not in ("self", "judge") or self.pairs.agree_with == self.judge.kind
        ):
            problems.append(
                f"pairs.agree_with must be self or judge, and not judge.kind (got {self.pairs.agree_with!r} "
                f"with judge.kind={self.judge.kind})"
            )
        if self.pairs.agree_with == "self" and not self.judge.reference:
            problems.append("judge.reference: pairs.agree_with=self needs the model the policy was trained from")
        problems += self._filter_problems()
        problems += self._update_problems()
        if self.pairs.min_gap < 0:
            problems.append(f"pairs.min_gap must be >= 0 (got {self.pairs.min_gap})")
        return problems

    def _filter_problems(self) -> list[str]:
        """PF-PPO's ensemble filter and SCIR's judge probability: what each needs of the judge."""
        problems = []
        j, p = self.judge, self.pairs
        if j.members and j.kind != "rm":
            problems.append(f"judge.members: an ensemble of reward models needs judge.kind=rm (got {j.kind})")
        if j.aggregation not in AGGREGATIONS:
            problems.append(f"judge.aggregation must be one of {', '.join(AGGREGATIONS)} (got {j.aggregation!r})")
        if j.uncertainty_weight < 0:
            problems.append(f"judge.uncertainty_weight must be >= 0 (got {j.uncertainty_weight})")
        if p.max_uncertainty is not None and (not j.members or p.strategy == "temporal"):
            problems.append(
                "pairs.max_uncertainty needs judge.members (an ensemble measures the uncertainty) and "
                f"pairs.strategy best_worst or best_random (got {len(j.members)} members, {p.strategy})"
            )
        if p.max_uncertainty is not None and p.max_uncertainty < 0:
            problems.append(f"pairs.max_uncertainty must be >= 0 (got {p.max_uncertainty})")
        try:
            reads_judge = "judge_probabilities" in get_policy_loss(self.train.loss).inputs
        except ValueError:
            reads_judge = False
        if reads_judge and "judge" not in (j.kind, p.agree_with):
            problems.append(
                f"train.loss: {self.train.loss!r} keeps the implicit reward consistent with the policy as a judge: "
                "set judge.kind=judge or pairs.agree_with=judge"
            )
        return problems

    def _update_problems(self) -> list[str]:
        """What recorded pairs (offline DPO) and TRL's GRPO leave out: the judged-pair options they never read."""
        p, problems = self.pairs, []
        pair_options = {
            "pairs.reference_reply": p.reference_reply,
            "pairs.consistency": p.consistency,
            "pairs.agree_with": p.agree_with is not None,
            "pairs.max_uncertainty": p.max_uncertainty is not None,
        }
        unused = [key for key, on in pair_options.items() if on]
        if p.strategy == "recorded" and unused:
            problems.append(f"pairs.strategy=recorded judges nothing: unset {', '.join(unused)}")
        if self.trainer == "trl_grpo":
            if self.judge.kind != "rm" or self.judge.members:
                problems.append(
                    f"trainer=trl_grpo rewards with one reward model: set judge.kind=rm, no judge.members "
                    f"(got {self.judge.kind}, {len(self.judge.members)} members)"
                )
            if p.strategy not in ("best_worst", "best_random") or unused:
                problems.append(
                    f"trainer=trl_grpo makes no pairs: unset pairs.strategy={p.strategy} {' '.join(unused)}".rstrip()
                )
            if self.reference != "previous":
                problems.append("reference: trainer=trl_grpo measures its KL to the round's starting policy (previous)")
        return problems

    def _count_problems(self) -> list[str]:
        problems = []
        for key, value, least in (
            ("rounds", self.rounds, 1),
            ("data.train_prompts", self.data.train_prompts, 1),
            ("generate.k", self.generate.k, 2),
            ("generate.batch_rows", self.generate.batch_rows, 1),
            ("eval.prompts", self.eval.prompts, 1),
            ("eval.max_new_tokens", self.eval.max_new_tokens, 1),
            ("eval.kl_prompts", self.eval.kl_prompts, 0),
            ("eval.kl_samples", self.eval.kl_samples, 0),
            ("num_threads", self.num_threads, 1),
        ):
            if value is not None and value < least:
                problems.append(f"{key} must be >= {least} (got {value})")
        return problems


def load_online_config(
    path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()
) -> OnlineConfig:
    """Defaults, then the YAML file, then ``key.sub=value`` overrides; checked, all problems at once."""
    return load_run_config(OnlineConfig(), path, overrides)
