"""ICPL: a language model writes reward code, and preferences over the behaviour it produces steer the rewrites.

In-Context Preference Learning (Yu et al. 2024, *Few-shot In-Context Preference Learning Using Large Language
Models*, Alg. 1): each iteration the LM writes K reward functions R_1..R_K; a policy is trained on each; a human
watches the K behaviours and names the best and the worst; the next prompt shows the best reward's code and the
worst's, with what their agents did, and asks for an improved reward. Preferences thus act on reward *code*, not
on the weights of a network learned from scratch.

Here "training a policy" is exact planning: the candidate's code (``def reward(t) -> float`` over a transition's
description, ``language.DESCRIPTION_KEYS``) is run in the sandbox on every transition, giving a reward table
r_k(s, a) = Σ_s' P(s'|s, a)·R_k(t(s, a, s')), whose optimal policy π_k = greedy(Q*_{r_k}) is the behaviour. The
simulated human ranks behaviours by their true return J(π_k) = E_{s0}[V^{π_k}_{r*}(s0)] (the synthetic preferences
of the paper's sec. 5.1); with ``noise`` > 0 the best is a Plackett–Luce draw, P(k) ∝ exp(J(π_k)/noise) (and the
worst one with exp(−J/noise)), the Bradley–Terry choice model extended to K options. Code that fails, runs past its
time limit or returns non-numbers is discarded, with the reason kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rewardlab.control.language import (
    Generate,
    Outcomes,
    expected_table,
    extract_function,
    grid_description,
    run_function,
    transition_descriptions,
)
from rewardlab.control.mdp import (
    CELL_NAMES,
    TabularMDP,
    expected_return,
    greedy_policy,
    grid_cells,
    normalized_return,
    rollout,
    value_iteration,
)
from rewardlab.progress import progress_bar
from rewardlab.runs.config import Checked

TASK = (
    "The agent should reach the goal G, taking few steps, pick up coins c on the way if they are close, "
    "avoid walking through mud m, and never enter a hazard X."
)

TRUE_REWARD_CODE = """def reward(t):
    value = -1.0
    if t["entered"] == "coin":
        value += 1.0
    if t["entered"] == "mud":
        value -= 5.0
    if t["entered"] == "goal":
        value += 50.0
    if t["entered"] == "hazard":
        value -= 50.0
    return value
"""
"""The delivery domain's true reward (``mdp.DELIVERY_WEIGHTS``) written as ICPL's LM should write it."""

FUNCTION_HELP = """The function receives one move of the agent as a dict t with keys:
  t["row"], t["col"]: the agent's cell; t["action"]: "up", "down", "left" or "right";
  t["next_row"], t["next_col"]: the cell it ends in;
  t["entered"]: what that cell holds: "empty", "coin", "mud", "goal" or "hazard";
  t["moved"]: False if the agent walked into a wall.
It returns one number: the reward for that move."""


@dataclass(frozen=True)
class ICPLConfig(Checked):
    """How many rounds of rewrites, how many candidates each, and the simulated human."""

    iterations: int = 3
    candidates: int = 4
    timeout_s: float = 5.0
    """Sandbox time limit for one candidate run over all transitions."""
    noise: float = 0.0
    """Plackett–Luce temperature of the simulated human on true returns; 0 always names the truly best and worst."""
    behaviour_steps: int = 30
    """Length of the rollout whose events the next prompt reports for the best and worst candidates."""
    seed: int = 0

    def problems(self) -> list[str]:
        found = self.not_positive_integers("iterations", "candidates", "behaviour_steps")
        if not self.timeout_s > 0:
            found.append(f"timeout_s must be positive (got {self.timeout_s})")
        if not self.noise >= 0:
            found.append(f"noise must be 0 or more (got {self.noise})")
        return found


@dataclass
class Candidate:
    """One reward function the LM wrote: its reply, the code found in it, and either why it was discarded
    (``error``) or its policy's true return and normalized return (1 optimal, 0 uniform-random)."""

    reply: str
    code: str | None
    error: str | None = None
    true_return: float | None = None
    normalized: float | None = None
    behaviour: str = ""

    @property
    def ran(self) -> bool:
        return self.error is None


@dataclass
class ICPLIteration:
    prompt: str
    candidates: list[Candidate]
    preferred: int | None = None
    rejected: int | None = None

    @property
    def best_normalized(self) -> float | None:
        """The normalized return of the best candidate that ran (None when none ran)."""
        scores = [c.normalized for c in self.candidates if c.normalized is not None]
        return max(scores) if scores else None


@dataclass
class ICPLOutput:
    iterations: list[ICPLIteration] = field(default_factory=list)

    @property
    def best_per_iteration(self) -> list[float | None]:
        return [it.best_normalized for it in self.iterations]

    @property
    def ran_fraction(self) -> float:
        """Of all candidates written, the fraction whose code ran and returned numbers."""
        everything = [c for it in self.iterations for c in it.candidates]
        return sum(c.ran for c in everything) / len(everything) if everything else 0.0


def reward_prompt(
    mdp: TabularMDP, task: str = TASK, preferred: Candidate | None = None, rejected: Candidate | None = None
) -> str:
    """The prompt of one iteration: the environment, the task, the function's contract; from the second
    iteration on, the preferred and the rejected code with what their agents did (ICPL's in-context feedback)."""
    parts = [
        "Write a Python reward function for an agent in a gridworld.",
        f"Task: {task}",
        "Grid:\n" + grid_description(mdp),
        FUNCTION_HELP,
    ]
    if preferred is not None:
        parts.append(
            f"This reward function gave the best behaviour:\n```python\n{preferred.code}\n```\n{preferred.behaviour}"
        )
        if rejected is not None:
            parts.append(f"This one gave the worst behaviour:\n```python\n{rejected.code}\n```\n{rejected.behaviour}")
        parts.append(
            "Write an improved reward function: keep what made the best one good, fix what made the worst bad."
        )
    parts.append("Reply with the code only, in this form:\n```python\ndef reward(t):\n    ...\n    return value\n```")
    return "\n\n".join(parts)


def code_reward_table(
    mdp: TabularMDP, outcomes: Outcomes, code: str, timeout_s: float
) -> tuple[np.ndarray | None, str | None]:
    """The reward table (S, A) of ``reward(t)`` code, run in the sandbox, or why there is none."""
    run = run_function(code, "reward", outcomes.descriptions, timeout_s=timeout_s)
    if not run.ok:
        return None, run.error
    return expected_table(mdp, outcomes, run.values), None  # type: ignore[arg-type]


def behaviour_summary(mdp: TabularMDP, policy: np.ndarray, steps: int, rng: np.random.Generator) -> str:
    """What the agent did in one rollout from a start state, in words (what a human sees in ICPL's videos)."""
    start = int(rng.choice(mdp.n_states, p=mdp.start))
    states, _ = rollout(mdp, policy, start, steps, rng)
    cells = grid_cells(mdp)
    kinds = [CELL_NAMES[mdp.layout[i][j]] for i, j in (cells[s] for s in states[1:])]
    ended = next((t for t, s in enumerate(states[1:], start=1) if mdp.terminal[s]), None)
    walked = kinds[:ended] if ended else kinds
    counts = ", ".join(f"{walked.count(k)} {k}" for k in ("coin", "mud"))
    if ended is None:
        return f"Its agent did not finish within {steps} steps ({counts} cells entered)."
    return f"Its agent reached a {kinds[ended - 1]} after {ended} steps ({counts} cells entered)."


def simulated_choice(returns: Sequence[float], noise: float, rng: np.random.Generator) -> tuple[int, int]:
    """(best, worst) indices by true return; with ``noise`` > 0 Plackett–Luce draws (Gumbel-max on J/noise)."""
    j = np.asarray(returns, dtype=float)
    if noise == 0 or len(j) < 2:
        return int(np.argmax(j)), int(np.argmin(j))
    best = int(np.argmax(j / noise + rng.gumbel(size=len(j))))
    others = [k for k in range(len(j)) if k != best]
    worst = others[int(np.argmax(-j[others] / noise + rng.gumbel(size=len(others))))]
    return best, worst


def evaluate_candidate(
    mdp: TabularMDP, outcomes: Outcomes, reply: str, weights: np.ndarray, config: ICPLConfig, rng: np.random.Generator
) -> Candidate:
    """Extract, run, plan, and score one reply under the true reward."""
    code = extract_function(reply, "reward")
    if code is None:
        return Candidate(reply, None, "the reply defines no function reward(t)")
    table, error = code_reward_table(mdp, outcomes, code, config.timeout_s)
    if table is None:
        return Candidate(reply, code, error)
    policy = greedy_policy(value_iteration(mdp, table)[1])
    return Candidate(
        reply,
        code,
        true_return=expected_return(mdp, policy, weights),
        normalized=normalized_return(mdp, policy, weights),
        behaviour=behaviour_summary(mdp, policy, config.behaviour_steps, rng),
    )


def icpl(
    mdp: TabularMDP,
    generate: Generate,
    weights: Sequence[float] | np.ndarray,
    config: ICPLConfig | None = None,
    *,
    task: str = TASK,
    progress: bool = False,
) -> ICPLOutput:
    """Run ICPL on a gridworld whose true reward has ``weights``; ``generate`` is the LM (prompt → reply).
    The feedback of the latest iteration where something ran is carried into the next prompt."""
    config = config or ICPLConfig()
    config.check()
    weights = np.asarray(weights, dtype=float)
    outcomes = transition_descriptions(mdp)
    rng = np.random.default_rng(config.seed)
    out = ICPLOutput()
    preferred: Candidate | None = None
    rejected: Candidate | None = None
    with progress_bar(progress, "ICPL candidates", config.iterations * config.candidates) as advance:
        for _ in range(config.iterations):
            prompt = reward_prompt(mdp, task, preferred, rejected)
            candidates = []
            for _ in range(config.candidates):
                candidates.append(evaluate_candidate(mdp, outcomes, generate(prompt), weights, config, rng))
                advance()
            iteration = ICPLIteration(prompt, candidates)
            ran = [k for k, c in enumerate(candidates) if c.ran]
            if ran:
                best, worst = simulated_choice([candidates[k].true_return for k in ran], config.noise, rng)
                iteration.preferred = ran[best]
                preferred = candidates[ran[best]]
                iteration.rejected = ran[worst] if len(ran) > 1 else None
                rejected = candidates[ran[worst]] if len(ran) > 1 else None
            out.iterations.append(iteration)
    return out
