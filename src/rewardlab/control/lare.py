"""LaRe: a language model names the latent factors of the reward; return decomposition learns how they add up.

Latent Reward (Qu et al. 2025, *Latent Reward: LLM-Empowered Credit Assignment in Episodic Reinforcement
Learning*): only an episode's total return R(τ) = Σ_t r(s_t, a_t) is observed. The LM writes code
z = φ_LLM(s, a) that turns a state description into a vector of latent reward factors (sec. 4.1), several
candidates of which are checked (self-verification, below), and a decoder r̂ = g(z) is fitted by return
decomposition, the loss of RRD (Ren et al. 2022, eq. 4, over whole episodes):

    L(g) = E_τ[(R(τ) − Σ_t g(φ_LLM(s_t, a_t)))²].

With g linear, g(z) = z·θ, the loss is least squares on the episode sums Z_τ = Σ_t z_t: θ = argmin ‖Zθ − R‖²
(+ ridge·‖θ‖²). The paper's claim is that a few reward-relevant factors make this credit assignment far easier
than decomposing over the raw observation; the raw baseline here is the tabular agent's own input, a one-hot of
(s, a), S·A unknowns from the same episodes. If the factors span the true reward's features and the episodes'
summed factors have full column rank, the fit recovers the true per-step reward exactly (known-answer test).

The paper's decoder is an MLP (``decoder="mlp"``): r̂(s, a) = g_θ(z(s, a)) with g_θ a small ReLU network,
trained by full-batch Adam on the same return-decomposition loss,

    L(θ) = Σ_τ (Σ_t g_θ(z_t) − R(τ))²,

so factors that carry the reward only through a nonlinear function (a square, a product, a category code)
are still decoded, where the linear g cannot be.

Self-verification (``verify=True``, the paper's sec. 4.1 check of the LM's code): after each candidate, a second
prompt shows the LM its code with the sandbox's result on a few sample transitions, or the error it raised, and
asks it to confirm or correct it; a correction replaces the candidate only if it runs. On data, candidates
whose code fails or returns vectors of varying length are discarded (reason kept), and of those left the one
whose decomposition predicts held-out episodes' returns best is chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import torch
from torch import nn

from rewardlab.control.icpl import FUNCTION_HELP, TASK
from rewardlab.control.language import (
    CodeRun,
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

NONLINEAR_FACTORS_CODE = """def factors(t):
    return [(t["entered"] == "goal") - (t["entered"] == "hazard"), (t["entered"] == "coin") - (t["entered"] == "mud")]
"""
"""Two signed factors from which the delivery reward is a nonlinear function: with z₁ = goal − hazard and
z₂ = coin − mud, r = −1 + 50·z₁ + 3·z₂ − 2·z₂² (z₂ = 1 → +1, z₂ = −1 → −5), a square no linear g can express."""

DECODERS = ("linear", "mlp")


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
    decoder: str = "linear"
    """``linear`` (g(z) = z·θ, least squares) or ``mlp`` (the paper's g_θ, trained by Adam)."""
    hidden: int = 64
    """Width of each of the MLP decoder's ``layers`` hidden ReLU layers."""
    layers: int = 2
    mlp_steps: int = 1500
    """Full-batch Adam steps of the MLP decoder."""
    mlp_lr: float = 1e-2
    verify: bool = False
    """Self-verification: show the LM each candidate's sandbox result (or error) and let it correct the code."""
    verify_samples: int = 5
    """Sample transitions whose factors the verification prompt shows (one per kind of cell entered first)."""

    def problems(self) -> list[str]:
        found = self.not_positive_integers(
            "candidates", "episodes", "episode_length", "hidden", "layers", "mlp_steps", "verify_samples"
        )
        if self.decoder not in DECODERS:
            found.append(f"decoder must be one of {', '.join(DECODERS)} (got {self.decoder!r})")
        if not self.mlp_lr > 0:
            found.append(f"mlp_lr must be positive (got {self.mlp_lr})")
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
    """The linear decoder's weights; for the MLP decoder its parameters, flattened."""
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
    verification: Verification | None = None


@dataclass
class Verification:
    """One self-verification exchange: what the LM was shown, what it said, and what came of it:
    ``confirmed`` (a candidate that ran, given no new code or the same code), ``corrected`` (new code that runs
    replaced the candidate), ``rejected: <why>`` (the new code did not run; the candidate is kept as it was) or
    ``no correction`` (a candidate that did not run got no new code)."""

    prompt: str
    reply: str
    outcome: str
    error_before: str | None
    """The candidate's error before verification (None: it ran)."""


@dataclass
class LaReOutput:
    candidates: list[FactorCandidate] = field(default_factory=list)
    chosen: int | None = None
    lare: Decomposition | None = None
    raw: Decomposition | None = None

    @property
    def ran_fraction(self) -> float:
        return sum(c.error is None for c in self.candidates) / len(self.candidates) if self.candidates else 0.0

    @property
    def ran_before_verification(self) -> int:
        """How many candidates ran as the LM first wrote them (equal to those that ran when not verifying)."""
        return sum((c.verification.error_before if c.verification else c.error) is None for c in self.candidates)


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


@dataclass(frozen=True)
class MLPDecoder:
    """The paper's decoder g_θ: ``layers`` hidden ReLU layers of width ``hidden``, trained full-batch."""

    hidden: int = 64
    layers: int = 2
    steps: int = 1500
    lr: float = 1e-2
    seed: int = 0


def mlp_return_decomposition(
    step_features: np.ndarray, episodes: Episodes, decoder: MLPDecoder = MLPDecoder()
) -> tuple[np.ndarray, np.ndarray]:
    """Per-outcome rewards g_θ(z) (K,) and θ flattened, with θ minimising the return-decomposition loss
    L(θ) = Σ_τ (Σ_t g_θ(z_t) − R(τ))² by full-batch Adam from a seeded start.

    The episode sums are C·g_θ(Z), with C (N, K) counting each outcome's steps in each episode, so one step
    evaluates g on the K outcomes once. The factors are standardised and the output scaled by the returns'
    spread (an affine change of g's first and last layers: the minimisers are the same), so one learning rate
    fits factors and returns of any scale; the loss is divided by N·Var(R), which rescales L only."""
    features = torch.as_tensor(step_features, dtype=torch.float64)
    counts = torch.as_tensor(episode_sums(np.eye(len(step_features)), episodes), dtype=torch.float64)
    returns = torch.as_tensor(episodes.returns, dtype=torch.float64)
    mean, std = features.mean(0), features.std(0, unbiased=False)
    inputs = (features - mean) / torch.where(std > 0, std, torch.ones_like(std))
    spread = float(returns.std(unbiased=False))
    scale = spread if spread > 0 else 1.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(decoder.seed)
        widths = [inputs.shape[1]] + [decoder.hidden] * decoder.layers
        body: list[nn.Module] = []
        for width_in, width_out in pairwise(widths):
            body += [nn.Linear(width_in, width_out), nn.ReLU()]
        net = nn.Sequential(*body, nn.Linear(widths[-1], 1)).to(torch.float64)
    optimizer = torch.optim.Adam(net.parameters(), lr=decoder.lr)
    for _ in range(decoder.steps):
        optimizer.zero_grad()
        loss = ((counts @ net(inputs).squeeze(-1) - returns / scale) ** 2).mean()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        rewards = net(inputs).squeeze(-1).numpy() * scale
        theta = torch.cat([p.reshape(-1) for p in net.parameters()]).numpy()
    return rewards, theta


def fit_decoder(
    step_features: np.ndarray, episodes: Episodes, ridge: float = 0.0, decoder: MLPDecoder | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(per-outcome r̂ (K,), θ): the linear decoder by least squares, or ``decoder``'s MLP when given."""
    if decoder is not None:
        return mlp_return_decomposition(step_features, episodes, decoder)
    theta = return_decomposition(episode_sums(step_features, episodes), episodes.returns, ridge)
    return step_features @ theta, theta


def decompose(
    mdp: TabularMDP,
    outcomes: Outcomes,
    step_features: np.ndarray,
    episodes: Episodes,
    weights: np.ndarray,
    ridge: float = 0.0,
    decoder: MLPDecoder | None = None,
) -> Decomposition:
    """Fit r̂ = g(z) by return decomposition (linear, or ``decoder``'s MLP) and measure it against the true
    reward."""
    rewards, theta = fit_decoder(step_features, episodes, ridge, decoder)
    table = expected_table(mdp, outcomes, rewards)
    alive = ~mdp.terminal
    rmse = float(np.sqrt(np.mean((table[alive] - mdp.reward(weights)[alive]) ** 2)))
    policy = greedy_policy(value_iteration(mdp, table)[1])
    return Decomposition(theta, table, normalized_return(mdp, policy, weights), rmse)


def state_action_onehot(mdp: TabularMDP, outcomes: Outcomes) -> np.ndarray:
    """The raw baseline's per-step features: a one-hot of (s, a), (K, S·A)."""
    onehot = np.zeros((len(outcomes.index), mdp.n_states * mdp.n_actions))
    onehot[np.arange(len(outcomes.index)), outcomes.index[:, 0] * mdp.n_actions + outcomes.index[:, 1]] = 1.0
    return onehot


def heldout_error(
    step_features: np.ndarray, train: Episodes, test: Episodes, ridge: float, decoder: MLPDecoder | None = None
) -> float:
    """Mean squared error of held-out episode returns predicted by a decomposition fitted on ``train``."""
    rewards = fit_decoder(step_features, train, ridge, decoder)[0]
    return float(np.mean((episode_sums(rewards[:, None], test)[:, 0] - test.returns) ** 2))


def sample_transitions(outcomes: Outcomes, count: int) -> list[int]:
    """Rows of ``outcomes`` the verifier is shown: the first transition entering each kind of cell (so a
    coin, the goal and a hazard are among them when the grid has them), then the next ones in order."""
    first: dict[object, int] = {}
    for k, description in enumerate(outcomes.descriptions):
        first.setdefault(description["entered"], k)
    chosen = list(first.values())[:count]
    rest = [k for k in range(len(outcomes.descriptions)) if k not in set(chosen)]
    return sorted(chosen + rest[: count - len(chosen)])


def verify_prompt(
    reply: str, code: str | None, run: CodeRun, outcomes: Outcomes, samples: Sequence[int], task: str = TASK
) -> str:
    """The self-verification prompt: the LM's code (or its whole reply, when no function was found) and what
    the sandbox made of it: the factors of each sample transition, or the error."""
    shown = code if code is not None else reply
    if run.values is not None:
        lines = [f"{outcomes.descriptions[k]} -> {[round(float(v), 3) for v in run.values[k]]}" for k in samples]
        result = "Run on sample moves, it returned:\n" + "\n".join(lines)
    else:
        result = f"It did not run: {run.error}"
    return "\n\n".join(
        [
            "You wrote this Python function to evaluate one move of an agent in a gridworld from several angles.",
            f"Task: {task}",
            f"Your code:\n```python\n{shown.strip()}\n```",
            result,
            FUNCTION_HELP.replace("It returns one number: the reward for that move.", ""),
            "Check it. If it runs and each number is a factor that matters for the task, reply with the same code. "
            "Otherwise reply with the corrected code only, in this form:\n```python\ndef factors(t):\n    ...\n"
            "    return [factor1, factor2, factor3]\n```",
        ]
    )


def self_verify(
    generate: Generate,
    candidate: FactorCandidate,
    run: CodeRun,
    outcomes: Outcomes,
    samples: Sequence[int],
    timeout_s: float = 5.0,
    task: str = TASK,
) -> CodeRun:
    """Ask the LM to confirm or correct ``candidate`` (whose sandbox result is ``run``); new code replaces the
    candidate's (and its error) only if it runs over every transition. Returns the run the candidate now has
    and records the exchange in ``candidate.verification``."""
    before = candidate.error
    prompt = verify_prompt(candidate.reply, candidate.code, run, outcomes, samples, task)
    reply = generate(prompt)
    code = extract_function(reply, "factors")
    outcome = "confirmed" if run.ok else "no correction"
    if code is not None and code.strip() != (candidate.code or "").strip():
        corrected = run_function(code, "factors", outcomes.descriptions, vector=True, timeout_s=timeout_s)
        if corrected.ok:
            outcome, run = "corrected", corrected
            candidate.code, candidate.error = code, None
        else:
            outcome = f"rejected: {corrected.error}"
    candidate.verification = Verification(prompt, reply, outcome, before)
    return run


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
    decoder = mlp_decoder(config)
    samples = sample_transitions(outcomes, config.verify_samples)
    out = LaReOutput()
    features: list[np.ndarray | None] = []
    prompt = factor_prompt(mdp, task)
    with progress_bar(progress, "LaRe factor candidates", config.candidates) as advance:
        for _ in range(config.candidates):
            reply = generate(prompt)
            code = extract_function(reply, "factors")
            candidate = FactorCandidate(reply, code)
            if code is None:
                run = CodeRun(None, "the reply defines no function factors(t)")
            else:
                run = run_function(code, "factors", outcomes.descriptions, vector=True, timeout_s=config.timeout_s)
            candidate.error = run.error
            if config.verify:
                run = self_verify(generate, candidate, run, outcomes, samples, config.timeout_s, task)
            if run.values is not None:
                candidate.dims = run.values.shape[1]
                candidate.heldout_mse = (
                    heldout_error(run.values, train, test, config.ridge, decoder) if len(test.returns) else 0.0
                )
            out.candidates.append(candidate)
            features.append(run.values)
            advance()
    scored = [k for k, c in enumerate(out.candidates) if c.heldout_mse is not None]
    if scored:
        out.chosen = min(scored, key=lambda k: out.candidates[k].heldout_mse)  # type: ignore[arg-type,return-value]
        chosen = features[out.chosen]
        out.lare = decompose(mdp, outcomes, chosen, episodes, weights, config.ridge, decoder)  # type: ignore[arg-type]
    onehot = state_action_onehot(mdp, outcomes)
    out.raw = decompose(mdp, outcomes, onehot, episodes, weights, config.ridge, decoder)
    return out


def mlp_decoder(config: LaReConfig) -> MLPDecoder | None:
    """The MLP decoder ``config`` asks for, or None for the linear one."""
    if config.decoder != "mlp":
        return None
    return MLPDecoder(config.hidden, config.layers, config.mlp_steps, config.mlp_lr, config.seed)
