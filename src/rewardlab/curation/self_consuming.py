"""The self-consuming loop: retrain a generator on its own samples, curated by a reward.

Ferbach, Bertrand, Bose & Gidel 2024, *Self-Consuming Generative Models with Curated Data Provably
Optimize Human Preferences* (arXiv 2407.09499). Only the abstract is in the papers file: it states
that retraining on curated own samples is an implicit preference optimisation whose expected reward
is maximised, and that mixing in a positive fraction of real data keeps the loop stable. The update
rule below is derived here from the curation model the abstract describes (a user sees K samples and
keeps one), not copied from the paper's equations.

One round: draw K samples x_1..x_K from p_t; keep x_k with the Bradley-Terry (Luce) choice
probability e^{r(x_k)} / Σ_j e^{r(x_j)}, or the best of the K (ties broken uniformly); retrain on
what was kept, with a fraction λ of the batch replaced by real data. With perfect retraining the
next model is the distribution of that batch:

    p_{t+1}(x) = λ·p_data(x) + (1 - λ)·p_t(x)·H_t(x),
    H_t(x) = K·E_{x_2..x_K ~ p_t}[ e^{r(x)} / (e^{r(x)} + Σ_{j≥2} e^{r(x_j)}) ]      (Bradley-Terry)
    p_t(x)·H_t(x) = p_t(x)/P_t(r = r(x)) · [P_t(r ≤ r(x))^K - P_t(r < r(x))^K]         (best of K)

(K → ∞ under Bradley-Terry gives p_{t+1} ∝ p_t·e^r, the KL-regularised RLHF optimum with β = 1.)
What follows from it, and what the tests check:

- with λ = 0 the expected reward never falls: E_{p_{t+1}}[r] - E_{p_t}[r] is the mean over K draws of
  Σ_k w_k r_k - mean_k r_k with w = softmax(r) (or the arg-max), which is ≥ 0 by Chebyshev's sum
  inequality because the weights rise with the reward; the mass moves onto the reward's maximisers
  and diversity collapses;
- with λ > 0 the model keeps p_{t+1} ≥ λ·p_data everywhere, so it never leaves the data's support and
  stays within total variation 1 - λ of it.

``curated_distribution`` is that update exactly, on a finite set of outcomes. ``run_self_consuming``
runs it for real: a ``StringModel`` trained by maximum likelihood on strings from a known Markov
source, curated by a known reward (the count of one token), retrained for several rounds. Diversity
is the exact Shannon entropy of the model over all strings (the set is small enough to enumerate),
because collapse is a loss of probability mass spread, which entropy measures directly and which
does not depend on how many samples are drawn; the fraction of distinct strings among the round's
samples is reported beside it as the measure a user without the density would see.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import Tensor

from rewardlab.curation.string_model import StringModel, all_strings, markov_log_probs
from rewardlab.progress import progress_bar

Choice = Literal["bradley_terry", "best_of_k"]
CHOICES = ("bradley_terry", "best_of_k")
MAX_TUPLES = 1_000_000
"""Largest number of (K-1)-tuples of reward levels the exact Bradley-Terry update enumerates."""


def curated_distribution(
    probs: Tensor,
    rewards: Tensor,
    k: int,
    choice: Choice = "bradley_terry",
    real: Tensor | None = None,
    real_fraction: float = 0.0,
) -> Tensor:
    """The model after one round of curation and perfect retraining: p_{t+1} above, exactly.

    H_t(x) depends on x only through r(x), so it is computed on the distinct reward levels (the
    Bradley-Terry expectation enumerates the (K-1)-tuples of levels) and spread back over the
    outcomes in proportion to p_t.
    """
    probs, rewards = probs.double(), rewards.double()
    check_distribution(probs, "probs")
    probs = probs / probs.sum()  # a sum of 1 + ε would come back as 1 + Kε, and grow each round
    if rewards.shape != probs.shape:
        raise ValueError(f"rewards has shape {tuple(rewards.shape)}, probs {tuple(probs.shape)}: they must match")
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    if choice not in CHOICES:
        raise ValueError(f"unknown choice {choice!r}; choose one of {', '.join(CHOICES)}")
    if not 0.0 <= real_fraction < 1.0:
        raise ValueError(f"real_fraction must be in [0, 1) (got {real_fraction})")
    levels, group = torch.unique(rewards, return_inverse=True)
    mass = torch.zeros(len(levels), dtype=torch.float64).index_add_(0, group, probs)
    gain = bradley_terry_gain(mass, levels, k) if choice == "bradley_terry" else best_of_k_gain(mass, k)
    curated = probs * gain[group]
    curated = curated / curated.sum()
    if real_fraction == 0.0:
        return curated
    if real is None:
        raise ValueError("real_fraction > 0 needs the real data distribution (real=...)")
    check_distribution(real.double(), "real")
    return real_fraction * real.double() / real.double().sum() + (1.0 - real_fraction) * curated


def check_distribution(probs: Tensor, name: str) -> None:
    if probs.dim() != 1 or (probs < 0).any() or not math.isclose(probs.sum().item(), 1.0, abs_tol=1e-6):
        raise ValueError(f"{name} must be a 1-D probability vector summing to 1 (sum {probs.sum().item():.6g})")


def bradley_terry_gain(mass: Tensor, levels: Tensor, k: int) -> Tensor:
    """H(level) = K·Σ_{tuples} P(tuple)·e^{r}/(e^{r} + Σ_tuple e^{r_j}), over (K-1)-tuples of levels."""
    if k == 1:
        return torch.ones_like(mass)
    if len(levels) ** (k - 1) > MAX_TUPLES:
        raise ValueError(
            f"{len(levels)} reward levels and k={k} need {len(levels)}**{k - 1} tuples (at most {MAX_TUPLES})"
        )
    weights = (levels - levels.max()).exp()  # shifting r changes no choice probability
    others = torch.tensor(list(itertools.product(range(len(levels)), repeat=k - 1)), dtype=torch.long)
    tuple_probs = mass[others].prod(dim=1)
    others_weight = weights[others].sum(dim=1)
    choice = weights[:, None] / (weights[:, None] + others_weight[None, :])
    return k * (choice * tuple_probs[None, :]).sum(dim=1)


def best_of_k_gain(mass: Tensor, k: int) -> Tensor:
    """H(level) = [P(r ≤ level)^K - P(r < level)^K] / P(r = level); levels sorted ascending."""
    at_most = mass.cumsum(0).clamp(max=1.0)
    below = at_most - mass
    safe = torch.where(mass > 0, mass, torch.ones_like(mass))
    return torch.where(mass > 0, (at_most**k - below**k) / safe, torch.zeros_like(mass))


def entropy(probs: Tensor) -> float:
    """Shannon entropy in nats, with 0·log 0 = 0."""
    probs = probs.double()
    return float(-(probs * torch.where(probs > 0, probs.log(), torch.zeros_like(probs))).sum()) + 0.0  # not -0.0


def choose(rewards: Tensor, choice: Choice, generator: torch.Generator) -> Tensor:
    """The index kept in each row of (N, K) rewards: Bradley-Terry draws with probability
    softmax(r); best-of-K takes the arg-max, a uniform draw among tied maxima."""
    if choice == "bradley_terry":
        weights = (rewards - rewards.max(dim=1, keepdim=True).values).exp()
    elif choice == "best_of_k":
        weights = (rewards == rewards.max(dim=1, keepdim=True).values).double()
    else:
        raise ValueError(f"unknown choice {choice!r}; choose one of {', '.join(CHOICES)}")
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


@dataclass
class SelfConsumingConfig:
    """One self-consuming run on strings of ``length`` tokens from ``vocab``."""

    rounds: int = 10
    k: int = 4
    choice: Choice = "bradley_terry"
    real_fraction: float = 0.0
    samples: int = 2000
    vocab: int = 4
    length: int = 6
    stay: float = 0.4
    reward_token: int = 0
    hidden: int = 64
    initial_epochs: int = 60
    epochs: int = 20
    batch_size: int = 250
    lr: float = 3e-3
    seed: int = 0

    def errors(self) -> list[str]:
        """Every problem at once, each naming the field."""
        found = []
        for name in ("rounds", "k", "samples", "hidden", "initial_epochs", "epochs", "batch_size"):
            least = 0 if name in ("rounds", "epochs") else 1
            if getattr(self, name) < least:
                found.append(f"{name} must be at least {least} (got {getattr(self, name)})")
        if self.choice not in CHOICES:
            found.append(f"choice must be one of {', '.join(CHOICES)} (got {self.choice!r})")
        if not 0.0 <= self.real_fraction < 1.0:
            found.append(f"real_fraction must be in [0, 1) (got {self.real_fraction})")
        if not 0.0 < self.stay < 1.0:
            found.append(f"stay must be in (0, 1) (got {self.stay})")
        if not 0 <= self.reward_token < self.vocab:
            found.append(f"reward_token must be in [0, vocab) (got {self.reward_token}, vocab {self.vocab})")
        return found


@dataclass
class RoundOutput:
    """The model after a round (round 0: trained on real data only). Exact values are over all strings."""

    round: int
    expected_reward: float
    entropy: float
    distinct: float
    tv_to_data: float
    kept_reward: float | None
    train_nll: float

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def markov_source(vocab: int, stay: float) -> tuple[Tensor, Tensor]:
    """The real data: a uniform first token, then the same token again with probability ``stay``,
    else one of the others uniformly (a doubly stochastic chain, so every position is uniform)."""
    transition = torch.full((vocab, vocab), (1.0 - stay) / (vocab - 1), dtype=torch.float64)
    transition.fill_diagonal_(stay)
    return torch.full((vocab,), 1.0 / vocab, dtype=torch.float64), transition


def count_reward(strings: Tensor, token: int) -> Tensor:
    """r(x) = the number of positions holding ``token``: known, with one maximiser (all ``token``)."""
    return (strings == token).sum(dim=1).double()


def fit(
    model: StringModel, strings: Tensor, epochs: int, config: SelfConsumingConfig, generator: torch.Generator
) -> float:
    """Maximum likelihood on ``strings`` with Adam; returns the mean NLL of the last epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    last = float("nan")
    for _ in range(epochs):
        order = torch.randperm(len(strings), generator=generator)
        total = 0.0
        for start in range(0, len(strings), config.batch_size):
            batch = strings[order[start : start + config.batch_size]]
            loss = -model.log_prob(batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        last = total / len(strings)
    return last


def measure(
    model: StringModel, space: Tensor, rewards: Tensor, data_probs: Tensor, samples: int, generator: torch.Generator
) -> dict[str, float]:
    with torch.no_grad():
        probs = model.log_prob(space).double().exp()
    drawn = model.sample(samples, generator)
    return {
        "expected_reward": float(probs @ rewards),
        "entropy": entropy(probs),
        "distinct": len(torch.unique(drawn, dim=0)) / samples,
        "tv_to_data": float(0.5 * (probs - data_probs).abs().sum()),
    }


def curate(model: StringModel, config: SelfConsumingConfig, generator: torch.Generator) -> Tensor:
    """``samples`` strings, each the one kept out of K fresh draws from the model."""
    drawn = model.sample(config.samples * config.k, generator)
    rewards = count_reward(drawn, config.reward_token).view(config.samples, config.k)
    kept = choose(rewards, config.choice, generator)
    return drawn.view(config.samples, config.k, -1)[torch.arange(config.samples), kept]


def run_self_consuming(config: SelfConsumingConfig, *, progress: bool = False) -> list[RoundOutput]:
    """Train on real strings, then ``rounds`` times: draw K·samples strings, keep ``samples`` by the
    curation choice, replace ``real_fraction`` of them by real strings, fine-tune on the result."""
    if problems := config.errors():
        raise ValueError("; ".join(problems))
    generator = torch.Generator().manual_seed(config.seed)
    space = all_strings(config.vocab, config.length)
    rewards = count_reward(space, config.reward_token)
    data_probs = markov_log_probs(space, *markov_source(config.vocab, config.stay)).exp()
    real = space[torch.multinomial(data_probs, config.samples, replacement=True, generator=generator)]
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = StringModel(config.vocab, config.length, config.hidden)
    nll = fit(model, real, config.initial_epochs, config, generator)
    first = measure(model, space, rewards, data_probs, config.samples, generator)
    history = [RoundOutput(0, **first, kept_reward=None, train_nll=nll)]
    n_real = round(config.real_fraction * config.samples)
    with progress_bar(progress, "self-consuming rounds", config.rounds) as advance:
        for t in range(1, config.rounds + 1):
            kept = curate(model, config, generator)
            fresh = real[torch.randperm(len(real), generator=generator)[:n_real]]
            nll = fit(model, torch.cat([kept[: config.samples - n_real], fresh]), config.epochs, config, generator)
            row = measure(model, space, rewards, data_probs, config.samples, generator)
            kept_reward = float(count_reward(kept, config.reward_token).mean())
            history.append(RoundOutput(t, **row, kept_reward=kept_reward, train_nll=nll))
            advance(reward=f"{row['expected_reward']:.3f}", entropy=f"{row['entropy']:.3f}")
    return history


def exact_rounds(
    probs: Tensor,
    rewards: Tensor,
    rounds: int,
    k: int,
    choice: Choice = "bradley_terry",
    real: Tensor | None = None,
    real_fraction: float = 0.0,
) -> list[Tensor]:
    """p_0 = ``probs``, then ``rounds`` applications of ``curated_distribution``: the loop with
    infinitely many samples and perfect retraining, to set a trained run beside."""
    history = [probs.double()]
    for _ in range(rounds):
        history.append(curated_distribution(history[-1], rewards, k, choice, real, real_fraction))
    return history
