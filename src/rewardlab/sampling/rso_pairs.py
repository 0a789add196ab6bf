"""DPO pairs by statistical rejection sampling (RSO): replies of the reward-tilted policy, ranked by reward.

Liu et al. 2023, "Statistical Rejection Sampling Improves Preference Optimization", §3: the MLE of
the optimal policy needs pairs drawn from that policy,

    π_r(y|x) = π_sft(y|x) · exp(r(x, y)/β) / Z(x),

not from π_sft. For each prompt, N candidates are sampled from the policy (π_sft), scored by the
reward model (or by a scorer such as R³, with no preference data at all), and Algorithm 1
(:func:`rewardlab.sampling.rejection.rso_sample`) accepts up to k of them as draws of π_r; the
accepted replies are paired as they were drawn (1st with 2nd, 3rd with 4th, ...) and each pair
is labelled by the reward (the higher one is ``chosen``).

Choices made here, not prescribed by the paper: disjoint consecutive pairs (each pair is two draws
of π_r, so its two replies are independent; every pair among the k would reuse replies); a pair
whose two rewards are equal (the same reply drawn twice, say) is dropped, as it carries no
preference; empty replies are not candidates (a pair with an empty reply is not valid data).

With a ``direction`` and a multi-attribute reward model, r is the attributes' projection on the
unit direction (Wang et al. 2024, "Arithmetic Control of LLMs for Diverse User Preferences"): the
tilt and the labels then follow that user preference, and DPO on the pairs is DPA's directional
rejection-sampling fine-tuning, with RSO's acceptance in place of keeping only the best reply.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.evaluate.scorers import Scorer, ScorerSpec, build_scorer
from rewardlab.precision import Precision, precision_problem
from rewardlab.runs.config import Checked
from rewardlab.sampling.generation import SampleConfig, sample_replies
from rewardlab.sampling.rejection import rso_sample


def rso_pairs(rewards: Sequence[float], beta: float, accept: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(chosen, rejected) candidate indices: up to ``accept`` draws of π_r (Algorithm 1), paired as drawn.

    Each pair's reply with the higher reward is ``chosen``; pairs of equal rewards are dropped and
    an odd last draw is left unpaired, so at most ``accept // 2`` pairs come back.
    """
    if accept < 2:
        raise ValueError(f"accept must be at least 2 to make a pair (got {accept})")
    r = np.asarray(rewards, dtype=np.float64)
    drawn = rso_sample(r, beta, accept, rng)
    pairs = []
    for a, b in zip(drawn[0::2], drawn[1::2], strict=False):
        if r[a] != r[b]:
            pairs.append((a, b) if r[a] > r[b] else (b, a))
    return pairs


def prompt_rng(seed: int, prompt: Prompt) -> np.random.Generator:
    """The acceptance draws of one prompt, seeded from (seed, prompt): independent of the other prompts."""
    text = json.dumps(prompt if isinstance(prompt, str) else list(prompt), ensure_ascii=False)
    digest = hashlib.sha256(f"{seed}:rso:{text}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


@dataclass
class RSOPairsConfig(Checked):
    policy: str
    """The policy π_sft the candidates come from: smollm2 or a local causal LM folder."""
    reward_model: str | None
    """A saved rewardlab reward model: r of the tilt, and the label of each pair (or ``scorer``)."""
    prompts: list[Prompt]
    sampling: SampleConfig = field(default_factory=SampleConfig)
    """``sampling.n`` is N, the candidates per prompt."""
    beta: float = 0.5
    """β of the tilt exp(r/β): large β keeps π_sft, small β only the best candidates."""
    accept: int = 8
    """Draws of π_r per prompt at most (Algorithm 1, without replacement among the N candidates)."""
    precision: Precision = "auto"
    progress: bool = False
    direction: list[float] | None = None
    """For a multi-attribute reward model: the attribute weights r is the projection on (default: its saved one)."""
    scorer: str | None = None
    """Instead of a reward model, a scorer kind that needs no model folder (``rewardlab eval --scorer``'s
    names), e.g. ``r3``: pairs labelled without any preference data, the preference-free alignment of
    Kim & Seo 2024 ("Preference-free Alignment Learning with Regularized Relevance Reward")."""

    def problems(self) -> list[str]:
        from rewardlab.models.reward_model import saved_model_problem
        from rewardlab.rewards.direction import direction_problem, saved_head

        problems = self.sampling.problems()
        if not self.prompts:
            problems.append("no prompts to sample from")
        if not (np.isfinite(self.beta) and self.beta > 0):
            problems.append(f"beta must be positive (got {self.beta})")
        if not 2 <= self.accept <= self.sampling.n:
            problems.append(f"accept must be between 2 and n={self.sampling.n} (got {self.accept})")
        if problem := precision_problem(self.precision):
            problems.append(problem)
        if (self.reward_model is None) == (self.scorer is None):
            problems.append("give exactly one of a reward model and a scorer")
        elif self.scorer is not None:
            problems += self.scorer_spec().problems()
            if self.direction is not None:
                problems.append("a direction needs a multi-attribute reward model, not a scorer")
        elif problem := saved_model_problem(self.reward_model):
            problems.append(f"reward model {self.reward_model}: {problem}")
        elif problem := direction_problem(*saved_head(self.reward_model), self.direction):
            problems.append(f"direction {problem} (reward model {self.reward_model})")
        return problems

    def scorer_spec(self) -> ScorerSpec:
        return ScorerSpec(kind=self.scorer or "reward-model", model=self.reward_model, precision=self.precision)

    def reward(self) -> Callable[[list[Prompt], list[str]], list[float]]:
        """Each reply's reward r(x, y): the reward model's score (along ``direction``), or the scorer's."""
        if self.scorer is None:
            from rewardlab.models.reward_model import RewardModel

            model = RewardModel.from_pretrained(self.reward_model)
            return lambda prompts, replies: model.score(
                prompts, replies, precision=self.precision, progress=self.progress, direction=self.direction
            )
        scorer = build_scorer(self.scorer_spec())
        if not isinstance(scorer, Scorer):
            raise ValueError(f"scorer {self.scorer} compares two replies; RSO needs a reward for each reply")
        return scorer.score


@dataclass(frozen=True)
class RSOPairsOutput:
    pairs: list[PreferencePair]
    stats: dict[str, float | int]


def build_rso_pairs(config: RSOPairsConfig) -> RSOPairsOutput:
    """Sample N candidates per prompt, score them, accept draws of π_r and pair them (module docstring).

    Each pair keeps both rewards as ``chosen_rating`` / ``rejected_rating``, the id
    ``rso-<prompt index>-<pair index>`` and the group ``rso-<prompt index>``: the pairs of one prompt
    are split together, so a prompt is never both trained on and tested.
    """
    from rewardlab.models.causal_lm import CausalLM

    config.check()
    start = time.perf_counter()
    reward = config.reward()  # loaded first: a scorer that cannot be used fails before the sampling
    lm = CausalLM.from_pretrained(config.policy, precision=config.precision)
    samples = sample_replies(lm, config.prompts, config.sampling, progress=config.progress)
    del lm
    candidates = [[s.text for s in row if s.text] for row in samples]
    flat_prompts = [p for p, row in zip(config.prompts, candidates, strict=True) for _ in row]
    flat_replies = [text for row in candidates for text in row]
    rewards = np.asarray(reward(flat_prompts, flat_replies), dtype=np.float64)
    pairs: list[PreferencePair] = []
    offset, accepted_rewards = 0, []
    for i, (prompt, row) in enumerate(zip(config.prompts, candidates, strict=True)):
        r = rewards[offset : offset + len(row)]
        offset += len(row)
        if len(row) < 2:
            continue
        for j, (c, k) in enumerate(rso_pairs(r, config.beta, config.accept, prompt_rng(config.sampling.seed, prompt))):
            accepted_rewards += [r[c], r[k]]
            pairs.append(
                PreferencePair(
                    prompt,
                    row[c],
                    row[k],
                    chosen_rating=float(r[c]),
                    rejected_rating=float(r[k]),
                    id=f"rso-{i}-{j}",
                    group=f"rso-{i}",
                )
            )
    stats = {
        "prompts": len(config.prompts),
        "candidates": sum(len(row) for row in samples),
        "empty_candidates": sum(len(row) - len(c) for row, c in zip(samples, candidates, strict=True)),
        "pairs": len(pairs),
        "mean_candidate_reward": float(rewards.mean()) if rewards.size else float("nan"),
        "mean_paired_reward": float(np.mean(accepted_rewards)) if accepted_rewards else float("nan"),
        "seconds": round(time.perf_counter() - start, 1),
    }
    return RSOPairsOutput(pairs, stats)


def pair_rows(pairs: Sequence[PreferencePair]) -> str:
    """The pairs as JSONL that ``rewardlab dpo --data`` reads (a conversation prompt as its messages)."""
    lines = []
    for p in pairs:
        row = {
            "id": p.id,
            "group": p.group,
            "prompt": p.prompt if isinstance(p.prompt, str) else list(p.prompt),
            "chosen": p.chosen,
            "rejected": p.rejected,
            "chosen_rating": p.chosen_rating,
            "rejected_rating": p.rejected_rating,
        }
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    return "".join(lines)
