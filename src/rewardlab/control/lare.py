"""LaRe: a language model names the latent factors of the reward; return decomposition learns how they add up.

Latent Reward (Qu et al. 2025, *Latent Reward: LLM-Empowered Credit Assignment in Episodic Reinforcement
Learning*): only an episode's total return R(τ) = Σ_t r(s_t, a_t) is observed. The LM writes code
z = φ_LLM(s, a) that turns a state description into a vector of latent reward factors (sec. 4.1), several
candidates of which are checked (their self-verification), and a decoder r̂ = g(z) is fitted by return
decomposition, the loss of RRD (Ren et al. 2022, eq. 4, over whole episodes):

    L(g) = E_τ[(R(τ) − Σ_t g(φ_LLM(s_t, a_t)))²].

With g linear, g(z) = z·θ, the loss is least squares on the episode sums Z_τ = Σ_t z_t: θ = argmin ‖Zθ − R‖²
(+ ridge·‖θ‖²). The paper's claim is that a few reward-relevant factors make this credit assignment far easier
than decomposing over the raw observation; the raw baseline here is the tabular agent's own input, a one-hot of
(s, a), S·A unknowns from the same episodes. If the factors span the true reward's features and the episodes'
summed factors have full column rank, the fit recovers the true per-step reward exactly (known-answer test).

Self-verification is done on data here, not by asking the LM again: candidates whose code fails or returns
vectors of varying length are discarded (reason kept), and of those left the one whose decomposition predicts
held-out episodes' returns best is chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rewardlab.control.icpl import FUNCTION_HELP, TASK
from rewardlab.control.language import (
    Generate,
    Outcomes,
    expected_table,
    extract_function,
    grid_description,
    run_function,
    transition_descriptions,
)
from rewardlab.control.mdp import TabularMDP, greedy_policy, normalized_return, rollout, value_iteration
from rewardlab.progress import progress_bar
from rewardlab.runs.config import Checked

TRUE_FACTORS_CODE = """def factors(t):
    return [1.0, t["entered"] == "coin", t["entered"] == "mud", t["entered"] == "goal", t["entered"] == "hazard"]
"""
"""Factors that span the delivery reward: ``CELL_FEATURES`` of the cell entered."""


@dataclass(frozen=True)
class LaReConfig(Checked):
    candidates: int = 4
    episodes: int = 40
    """Episodes of a uniform-random agent whose total returns are observed."""
    episode_length: int = 20
    holdout: float = 0.25
    """Fraction of episodes held out to choose among the LM's candidates."""
    ridge: float = 1e-6
    timeout_s: float = 5.0
    seed: int = 0

    def problems(self) -> list[str]:
        found = []
        for name in ("candidates", "episodes", "episode_length"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                found.append(f"{name} must be a positive integer (got {getattr(self, name)!r})")
        if not 0 < self.holdout < 1:
            found.append(f"holdout must be in (0, 1) (got {self.holdout})")
        if not self.ridge >= 0:
            found.append(f"ridge must be 0 or more (got {self.ridge})")
        if not self.timeout_s > 0:
            found.append(f"timeout_s must be positive (got {self.timeout_s})")
        return found


@dataclass
class Episodes:
    """Transitions taken, as rows of ``Outcomes`` (−1 for a step from a terminal state), and total returns."""

    steps: np.ndarray  # (N, T) int
    returns: np.ndarray  # (N,)


@dataclass
class Decomposition:
    """A fitted r̂: the decoder's weights, the per-step reward table (S, A), and how good it is."""

    theta: np.ndarray
    table: np.ndarray
    normalized: float
    reward_rmse: float
    """Root mean squared error of r̂(s, a) against the true r(s, a) over non-terminal (s, a)."""


@dataclass
class FactorCandidate:
    reply: str
    code: str | None
    error: str | None = None
    dims: int = 0
    heldout_mse: float | None = None


@dataclass
class LaReOutput:
    candidates: list[FactorCandidate] = field(default_factory=list)
    chosen: int | None = None
    lare: Decomposition | None = None
    raw: Decomposition | None = None

    @property
    def ran_fraction(self) -> float:
        return sum(c.error is None for c in self.candidates) / len(self.candidates) if self.candidates else 0.0


def factor_prompt(mdp: TabularMDP, task: str = TASK) -> str:
    """LaRe's prompt: the environment and the task, asking for code that returns the reward's latent factors."""
    return "\n\n".join(
        [
            "Write a Python function that evaluates one move of an agent in a gridworld from several angles.",
            f"Task: {task}",
            "Grid:\n" + grid_description(mdp),
            FUNCTION_HELP.replace("It returns one number: the reward for that move.", ""),
            "Return a list of numbers, each one factor that matters for the task (for example whether a coin was "
            "picked up). Reply with the code only, in this form:\n```python\ndef factors(t):\n    ...\n"
            "    return [factor1, factor2, factor3]\n```",
        ]
    )


def sample_episodes(
    mdp: TabularMDP, outcomes: Outcomes, weights: np.ndarray, count: int, length: int, rng: np.random.Generator
) -> Episodes:
    """``count`` uniform-random episodes of ``length`` steps and their undiscounted true returns."""
    row = {tuple(k): n for n, k in enumerate(outcomes.index.tolist())}
    reward = mdp.reward(weights)
    steps = np.full((count, length), -1, dtype=int)
    returns = np.zeros(count)
    for e in range(count):
        start = int(rng.choice(mdp.n_states, p=mdp.start))
        states, actions = rollout(mdp, None, start, length, rng)
        for t, (s, a) in enumerate(zip(states[:-1], actions, strict=True)):
            if not mdp.terminal[s]:
                steps[e, t] = row[(s, a, states[t + 1])]
                returns[e] += reward[s, a]
    return Episodes(steps, returns)


def episode_sums(step_features: np.ndarray, episodes: Episodes) -> np.ndarray:
    """Z_τ = Σ_t z(s_t, a_t, s_{t+1}) per episode, (N, D), from per-outcome features (K, D)."""
    padded = np.vstack([step_features, np.zeros((1, step_features.shape[1]))])  # row −1: terminal steps
    return padded[episodes.steps].sum(axis=1)


def return_decomposition(sums: np.ndarray, returns: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """θ minimising ‖Zθ − R‖² + ridge·‖θ‖² (the minimum-norm least-squares solution when ridge is 0)."""
    if ridge == 0:
        return np.linalg.lstsq(sums, returns, rcond=None)[0]
    d = sums.shape[1]
    return np.linalg.solve(sums.T @ sums + ridge * np.eye(d), sums.T @ returns)


def decompose(
    mdp: TabularMDP,
    outcomes: Outcomes,
    step_features: np.ndarray,
    episodes: Episodes,
    weights: np.ndarray,
    ridge: float = 0.0,
) -> Decomposition:
    """Fit r̂ = z·θ by return decomposition and measure it against the true reward."""
    theta = return_decomposition(episode_sums(step_features, episodes), episodes.returns, ridge)
    table = expected_table(mdp, outcomes, step_features @ theta)
    alive = ~mdp.terminal
    rmse = float(np.sqrt(np.mean((table[alive] - mdp.reward(weights)[alive]) ** 2)))
    policy = greedy_policy(value_iteration(mdp, table)[1])
    return Decomposition(theta, table, normalized_return(mdp, policy, weights), rmse)


def state_action_onehot(mdp: TabularMDP, outcomes: Outcomes) -> np.ndarray:
    """The raw baseline's per-step features: a one-hot of (s, a), (K, S·A)."""
    onehot = np.zeros((len(outcomes.index), mdp.n_states * mdp.n_actions))
    onehot[np.arange(len(outcomes.index)), outcomes.index[:, 0] * mdp.n_actions + outcomes.index[:, 1]] = 1.0
    return onehot


def heldout_error(step_features: np.ndarray, train: Episodes, test: Episodes, ridge: float) -> float:
    """Mean squared error of held-out episode returns predicted by a decomposition fitted on ``train``."""
    theta = return_decomposition(episode_sums(step_features, train), train.returns, ridge)
    return float(np.mean((episode_sums(step_features, test) @ theta - test.returns) ** 2))


def lare(
    mdp: TabularMDP,
    generate: Generate,
    weights: Sequence[float] | np.ndarray,
    config: LaReConfig | None = None,
    *,
    task: str = TASK,
    progress: bool = False,
) -> LaReOutput:
    """LaRe on a gridworld with true ``weights``: the LM's factor code, checked and chosen on held-out episodes,
    decomposed over all episodes; beside it the raw one-hot decomposition of the same episodes."""
    config = config or LaReConfig()
    config.check()
    weights = np.asarray(weights, dtype=float)
    outcomes = transition_descriptions(mdp)
    rng = np.random.default_rng(config.seed)
    episodes = sample_episodes(mdp, outcomes, weights, config.episodes, config.episode_length, rng)
    cut = max(1, round(config.episodes * (1 - config.holdout)))
    train = Episodes(episodes.steps[:cut], episodes.returns[:cut])
    test = Episodes(episodes.steps[cut:], episodes.returns[cut:])
    out = LaReOutput()
    features: list[np.ndarray | None] = []
    prompt = factor_prompt(mdp, task)
    with progress_bar(progress, "LaRe factor candidates", config.candidates) as advance:
        for _ in range(config.candidates):
            reply = generate(prompt)
            code = extract_function(reply, "factors")
            candidate = FactorCandidate(reply, code)
            values = None
            if code is None:
                candidate.error = "the reply defines no function factors(t)"
            else:
                run = run_function(code, "factors", outcomes.descriptions, vector=True, timeout_s=config.timeout_s)
                candidate.error, values = run.error, run.values
            if values is not None:
                candidate.dims = values.shape[1]
                candidate.heldout_mse = heldout_error(values, train, test, config.ridge) if len(test.returns) else 0.0
            out.candidates.append(candidate)
            features.append(values)
            advance()
    scored = [k for k, c in enumerate(out.candidates) if c.heldout_mse is not None]
    if scored:
        out.chosen = min(scored, key=lambda k: out.candidates[k].heldout_mse)  # type: ignore[arg-type,return-value]
        out.lare = decompose(mdp, outcomes, features[out.chosen], episodes, weights, config.ridge)  # type: ignore[arg-type]
    out.raw = decompose(mdp, outcomes, state_action_onehot(mdp, outcomes), episodes, weights, config.ridge)
    return out
