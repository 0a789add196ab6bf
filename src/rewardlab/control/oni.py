"""ONI: a language model labels captions of what the agent sees, and a small model learns an intrinsic reward from them.

Online Intrinsic Rewards (Zheng et al. 2024, *Online Intrinsic Rewards for Decision Making Agents from Large
Language Model Feedback*, sec. 3): each observation has a caption c(o); an LM annotates captions as helpful for
the task or not; a classifier p_η(helpful | c) is trained on those labels with the binary cross-entropy

    L(η) = −Σ_c [y_c·log p_η(c) + (1 − y_c)·log(1 − p_η(c))],

and the agent maximises r(s, a) = r_ext(s, a) + β·r_int, with r_int = 1[p_η(c) > ½] (their classification
variant), over a sparse extrinsic reward. The classifier gives a reward to captions the LM never labelled.

In the paper the LM labels captions asynchronously, on a server, while the agent keeps acting. Two forms here:

- :func:`oni` labels in a batch with a cache: the distinct captions met by ``episodes`` uniform-random rollouts are
  labelled once each, before planning exactly (value iteration) on sparse + β·intrinsic.
- :func:`oni_online` is the paper's setting: a Q-learning agent explores on sparse + β·intrinsic while a background
  worker labels the captions it meets (:class:`CaptionLabeller`); a caption counts 0 until it is labelled or the
  classifier, retrained every few episodes on the labels so far, rewards it.

The classifier is a logistic regression over the caption's words. The caption of a transition is what the agent
meets in the cell it enters (:data:`CAPTIONS`). The extrinsic reward is sparse: only the true reward's goal and hazard
terms (``SPARSE_FEATURES``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from rewardlab.control.icpl import TASK
from rewardlab.control.language import Generate, Outcomes, expected_table, transition_descriptions
from rewardlab.control.lare import sample_episodes
from rewardlab.control.mdp import CELL_FEATURES, TabularMDP, greedy_policy, normalized_return, value_iteration
from rewardlab.progress import progress_bar
from rewardlab.runs.config import Checked

CAPTIONS = {
    "wall": "You bump into a wall.",
    "empty": "You walk onto an empty floor tile.",
    "coin": "You pick up a gold coin.",
    "mud": "You wade into sticky mud.",
    "goal": "You reach the delivery goal.",
    "hazard": "You fall into a deadly pit.",
}
"""The caption of a transition, by what the cell entered holds (``wall`` when the move was blocked)."""

SPARSE_FEATURES = ("goal", "hazard")
"""The features the sparse extrinsic reward keeps from the true weights; the rest are zeroed."""

WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class ONIConfig(Checked):
    beta: float = 1.0
    """Weight of the intrinsic reward (its values are 0 or 1) beside the extrinsic one."""
    episodes: int = 20
    """Uniform-random rollouts whose captions are sent for labelling."""
    episode_length: int = 20
    steps: int = 300
    """Full-batch gradient steps of the caption classifier."""
    lr: float = 0.5
    seed: int = 0

    def problems(self) -> list[str]:
        found = self.not_positive_integers("episodes", "episode_length", "steps")
        if not self.beta >= 0:
            found.append(f"beta must be 0 or more (got {self.beta})")
        if not self.lr > 0:
            found.append(f"lr must be positive (got {self.lr})")
        return found


@dataclass
class ONIOutput:
    labels: dict[str, int | None] = field(default_factory=dict)
    """The LM's label of each caption it was asked about: 1 helpful, 0 not, None when the reply was neither."""
    replies: dict[str, str] = field(default_factory=dict)
    helpful: dict[str, bool] = field(default_factory=dict)
    """The classifier's verdict on every caption of the MDP, labelled or not."""
    intrinsic: np.ndarray | None = None
    sparse_normalized: float = 0.0
    shaped_normalized: float = 0.0


def transition_captions(outcomes: Outcomes) -> list[str]:
    """The caption of each transition: what the agent meets in the cell it enters."""
    return [CAPTIONS[d["entered"] if d["moved"] else "wall"] for d in outcomes.descriptions]  # type: ignore[index]


def label_prompt(caption: str, task: str = TASK) -> str:
    return (
        f'An agent moves in a gridworld. {task}\n\nThe agent sees this message: "{caption}"\n\n'
        "Is this event helpful for the task? Answer with one word: yes or no."
    )


def parse_label(reply: str) -> int | None:
    """1 for a reply that starts with yes, 0 for no, None otherwise."""
    words = WORD.findall(reply.lower())
    if not words or words[0] not in ("yes", "no"):
        return None
    return int(words[0] == "yes")


def label_captions(
    captions: Sequence[str], generate: Generate, task: str = TASK, progress: bool = False
) -> tuple[dict[str, int | None], dict[str, str]]:
    """Each distinct caption labelled once by the LM (the cache that stands in for ONI's asynchronous server)."""
    labels: dict[str, int | None] = {}
    replies: dict[str, str] = {}
    distinct = list(dict.fromkeys(captions))
    with progress_bar(progress, "ONI caption labels", len(distinct)) as advance:
        for caption in distinct:
            replies[caption] = generate(label_prompt(caption, task))
            labels[caption] = parse_label(replies[caption])
            advance()
    return labels, replies


def bag_of_words(captions: Sequence[str], vocabulary: Sequence[str]) -> torch.Tensor:
    """(N, V+1): word counts of each caption over ``vocabulary``, and a constant 1 for the bias."""
    index = {w: k for k, w in enumerate(vocabulary)}
    x = torch.zeros(len(captions), len(vocabulary) + 1, dtype=torch.float64)
    for n, caption in enumerate(captions):
        for word in WORD.findall(caption.lower()):
            if word in index:
                x[n, index[word]] += 1
    x[:, -1] = 1.0
    return x


def train_caption_classifier(
    captions: Sequence[str], labels: Sequence[int], steps: int = 300, lr: float = 0.5
) -> tuple[list[str], torch.Tensor]:
    """Logistic regression p_η(helpful | caption) fitted by full-batch gradient descent on the BCE loss (with a
    1e-3 L2 so separable labels keep finite weights); returns the vocabulary and η."""
    vocabulary = sorted({w for c in captions for w in WORD.findall(c.lower())})
    x = bag_of_words(captions, vocabulary)
    y = torch.tensor(list(labels), dtype=torch.float64)
    eta = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([eta], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ eta, y) + 1e-3 * eta[:-1].pow(2).sum()
        loss.backward()
        optimizer.step()
    return vocabulary, eta.detach()


def classify_captions(
    labels: dict[str, int | None], captions: Sequence[str], steps: int = 300, lr: float = 0.5
) -> dict[str, bool]:
    """The classifier's verdict p_η(helpful | c) > ½ on each of ``captions``, trained on the captions labelled so
    far (replies that were neither yes nor no are left out); all False when nothing is labelled yet."""
    labelled = [c for c, y in labels.items() if y is not None]
    if not labelled:
        return {c: False for c in captions}
    vocabulary, eta = train_caption_classifier(labelled, [labels[c] for c in labelled], steps, lr)  # type: ignore[misc]
    logits = bag_of_words(captions, vocabulary) @ eta
    return {c: bool(z > 0) for c, z in zip(captions, logits.tolist(), strict=True)}


def sparse_weights(mdp: TabularMDP, weights: np.ndarray) -> np.ndarray:
    """The true weights with every feature but ``SPARSE_FEATURES`` zeroed."""
    keep = np.array([name in SPARSE_FEATURES for name in mdp.feature_names], dtype=float)
    return np.asarray(weights, dtype=float) * keep


def oni(
    mdp: TabularMDP,
    generate: Generate,
    weights: Sequence[float] | np.ndarray,
    config: ONIConfig | None = None,
    *,
    task: str = TASK,
    progress: bool = False,
) -> ONIOutput:
    """ONI on a gridworld with true ``weights``: label the captions random rollouts meet, train the classifier,
    plan on sparse + β·intrinsic, and compare with planning on the sparse reward alone (normalized returns)."""
    config = config or ONIConfig()
    config.check()
    weights = np.asarray(weights, dtype=float)
    outcomes = transition_descriptions(mdp)
    captions = transition_captions(outcomes)
    rng = np.random.default_rng(config.seed)
    episodes = sample_episodes(mdp, outcomes, weights, config.episodes, config.episode_length, rng)
    seen = [captions[k] for k in episodes.steps.ravel() if k >= 0]
    out = ONIOutput()
    out.labels, out.replies = label_captions(seen, generate, task, progress)
    out.helpful = classify_captions(out.labels, list(dict.fromkeys(captions)), config.steps, config.lr)
    per_outcome = np.array([float(out.helpful[c]) for c in captions])
    out.intrinsic = expected_table(mdp, outcomes, per_outcome)
    sparse = mdp.reward(sparse_weights(mdp, weights))
    for name, reward in (("sparse", sparse), ("shaped", sparse + config.beta * out.intrinsic)):
        policy = greedy_policy(value_iteration(mdp, reward)[1])
        setattr(out, f"{name}_normalized", normalized_return(mdp, policy, weights))
    return out


# -- ONI online: a Q-learning agent explores while a background worker labels its captions ------------------------


@dataclass(frozen=True)
class ONIOnlineConfig(Checked):
    beta: float = 0.3
    """Weight of the intrinsic reward (0 or 1 per step); 0 is the sparse-reward-only baseline."""
    episodes: int = 200
    episode_length: int = 100
    alpha: float = 0.5
    """Q-learning step size."""
    epsilon: float = 0.1
    """Probability of a uniformly random action (ε-greedy; greedy ties are broken at random)."""
    retrain_every: int = 10
    """Episodes between retrainings of the caption classifier on the labels that have arrived."""
    asynchronous: bool = True
    """Label on a background worker while the agent acts (the paper); False answers each caption at once, so a
    run is reproducible from ``seed``."""
    steps: int = 300
    lr: float = 0.5
    seed: int = 0

    def problems(self) -> list[str]:
        found = self.not_positive_integers("episodes", "episode_length", "retrain_every", "steps")
        if not self.beta >= 0:
            found.append(f"beta must be 0 or more (got {self.beta})")
        if not 0 < self.alpha <= 1:
            found.append(f"alpha must be in (0, 1] (got {self.alpha})")
        if not 0 <= self.epsilon <= 1:
            found.append(f"epsilon must be in [0, 1] (got {self.epsilon})")
        if not self.lr > 0:
            found.append(f"lr must be positive (got {self.lr})")
        return found


@dataclass
class ONIOnlineOutput:
    returns: list[float] = field(default_factory=list)
    """Each episode's undiscounted return under the true weights."""
    reached_goal: list[bool] = field(default_factory=list)
    labelled: list[int] = field(default_factory=list)
    """How many captions had a label when each episode ended (labels that arrived, replies that parsed or not)."""
    first_goal_episode: int | None = None
    """The 1-based episode in which the agent first entered the goal; None if it never did."""
    normalized: float = 0.0
    """The normalized return (true weights) of the greedy policy of the final Q table."""
    labels: dict[str, int | None] = field(default_factory=dict)
    replies: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    """Captions whose labeller call raised, with the error; they count as unlabelled."""
    helpful: dict[str, bool] = field(default_factory=dict)
    """The final intrinsic verdict on every caption of the MDP (its label, else the classifier's)."""
    q: np.ndarray | None = None


class CaptionLabeller:
    """ONI's LLM server in miniature: ``submit`` queues a caption's prompt for ``generate`` and returns at once;
    one background worker (a single-thread executor, so the LM is never called concurrently) answers them in
    order; ``collect`` moves the answers that have arrived into ``labels``. Synchronous (``asynchronous=False``),
    ``submit`` answers before it returns. A call that raises is recorded in ``errors``, never re-raised."""

    def __init__(self, generate: Generate, task: str = TASK, asynchronous: bool = True) -> None:
        self.generate, self.task = generate, task
        self.labels: dict[str, int | None] = {}
        self.replies: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.pending: dict[str, Future[str]] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oni-labeller") if asynchronous else None

    def submit(self, caption: str) -> None:
        """Ask for ``caption``'s label, unless it was asked for before."""
        if caption in self.pending or caption in self.labels or caption in self.errors:
            return
        if self.executor is None:
            future: Future[str] = Future()
            try:
                future.set_result(self.generate(label_prompt(caption, self.task)))
            except Exception as error:  # a failing labeller is reported, not fatal
                future.set_exception(error)
        else:
            future = self.executor.submit(self.generate, label_prompt(caption, self.task))
        self.pending[caption] = future
        self.collect()

    def collect(self, wait: bool = False) -> bool:
        """Record the answers that have arrived (all of them, waiting, with ``wait``); True when any arrived."""
        done = [c for c, f in self.pending.items() if wait or f.done()]
        for caption in done:
            future = self.pending.pop(caption)
            error = future.exception()
            if error is not None:
                self.errors[caption] = f"{type(error).__name__}: {error}"
                continue
            self.replies[caption] = future.result()
            self.labels[caption] = parse_label(self.replies[caption])
        return bool(done)

    def close(self) -> None:
        """Wait for every queued caption, then stop the worker."""
        self.collect(wait=True)
        if self.executor is not None:
            self.executor.shutdown(wait=True)


def outcome_features(mdp: TabularMDP, outcomes: Outcomes) -> np.ndarray:
    """φ of each outcome (s, a, s') of a gridworld over ``CELL_FEATURES`` (K, F): a step, and what s' holds."""
    if tuple(mdp.feature_names) != CELL_FEATURES:
        raise ValueError(f"oni_online needs a gridworld's features {CELL_FEATURES} (got {mdp.feature_names})")
    kinds = ("coin", "mud", "goal", "hazard")
    return np.array([[1.0] + [float(d["entered"] == k) for k in kinds] for d in outcomes.descriptions])


def q_learning_update(
    q: np.ndarray, s: int, a: int, r: float, s2: int, terminal: bool, alpha: float, gamma: float
) -> float:
    """One tabular Q-learning step (Watkins 1989), in place; returns the TD error δ:

    δ = r + γ·(1 − done)·max_a' Q(s', a') − Q(s, a),    Q(s, a) ← Q(s, a) + α·δ."""
    target = r + (0.0 if terminal else gamma * float(q[s2].max()))
    delta = target - float(q[s, a])
    q[s, a] += alpha * delta
    return delta


def epsilon_greedy(q_row: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """A uniformly random action with probability ε, else a greedy one (ties broken uniformly at random)."""
    if rng.random() < epsilon:
        return int(rng.integers(len(q_row)))
    best = np.flatnonzero(q_row == q_row.max())
    return int(best[0] if len(best) == 1 else rng.choice(best))


def oni_online(
    mdp: TabularMDP,
    generate: Generate,
    weights: Sequence[float] | np.ndarray,
    config: ONIOnlineConfig | None = None,
    *,
    task: str = TASK,
    progress: bool = False,
) -> ONIOnlineOutput:
    """ONI as the paper runs it, on a gridworld with true ``weights``: a Q-learning agent (:func:`q_learning_update`,
    ε-greedy) acts ``episodes`` episodes of at most ``episode_length`` steps from the start distribution, rewarded

        r_t = r_ext(s, a, s') + β·r_int(c_t),

    with r_ext the sparse goal/hazard reward of the outcome it drew and c_t its caption. A yes/no caption reward
    pays every meeting: two helpful cells side by side pay the agent to walk between them (measured: on a trail
    of coins to the goal it found the goal on 1 seed in 10 against 10 of 10 without it).

    Each new caption goes to the labeller at once and the agent goes on acting. r_int(c) is the LM's label once it
    has arrived, else the verdict of the classifier retrained every ``retrain_every`` episodes on the labels so
    far, else 0. With ``asynchronous=True`` which step a label first counts at depends on how fast the LM answers,
    so two runs with one seed can differ; with False each label is there from the step its caption is first met,
    and a run is a function of ``seed``. Records each episode's true return, whether it reached the goal and how
    many labels had arrived; at the end, waits for the labels still queued and scores the greedy policy."""
    config = config or ONIOnlineConfig()
    config.check()
    weights = np.asarray(weights, dtype=float)
    outcomes = transition_descriptions(mdp)
    captions = transition_captions(outcomes)
    phi = outcome_features(mdp, outcomes)
    true_reward, sparse_reward = phi @ weights, phi @ sparse_weights(mdp, weights)
    goal = np.array([d["entered"] == "goal" for d in outcomes.descriptions])
    rows: dict[tuple[int, int], list[int]] = {}
    for k, (s, a, _) in enumerate(outcomes.index.tolist()):
        rows.setdefault((s, a), []).append(k)
    cumulative = {sa: np.cumsum(outcomes.prob[ks]) for sa, ks in rows.items()}
    distinct = list(dict.fromkeys(captions))
    rng = np.random.default_rng(config.seed)
    q = np.zeros((mdp.n_states, mdp.n_actions))
    out = ONIOnlineOutput(q=q)
    labeller = CaptionLabeller(generate, task, config.asynchronous)
    verdicts: dict[str, bool] = {}

    def intrinsic(caption: str) -> float:
        label = labeller.labels.get(caption)
        return float(label) if label is not None else float(verdicts.get(caption, False))

    try:
        with progress_bar(progress, "ONI online episodes", config.episodes) as advance:
            for episode in range(config.episodes):
                if config.beta > 0 and episode > 0 and episode % config.retrain_every == 0:
                    verdicts = classify_captions(labeller.labels, distinct, config.steps, config.lr)
                s = int(rng.choice(mdp.n_states, p=mdp.start))
                total, reached = 0.0, False
                for _ in range(config.episode_length):
                    if mdp.terminal[s]:
                        break
                    a = epsilon_greedy(q[s], config.epsilon, rng)
                    ks, cum = rows[(s, a)], cumulative[(s, a)]
                    k = ks[min(int(np.searchsorted(cum, rng.random() * cum[-1], "right")), len(ks) - 1)]
                    s2 = int(outcomes.index[k, 2])
                    r = float(sparse_reward[k])
                    if config.beta > 0:
                        labeller.submit(captions[k])
                        labeller.collect()
                        r += config.beta * intrinsic(captions[k])
                    q_learning_update(q, s, a, r, s2, bool(mdp.terminal[s2]), config.alpha, mdp.gamma)
                    total += float(true_reward[k])
                    reached = reached or bool(goal[k])
                    s = s2
                out.returns.append(total)
                out.reached_goal.append(reached)
                out.labelled.append(len(labeller.labels))
                if reached and out.first_goal_episode is None:
                    out.first_goal_episode = episode + 1
                advance()
    finally:
        labeller.close()
    out.labels, out.replies, out.errors = labeller.labels, labeller.replies, labeller.errors
    verdicts = classify_captions(labeller.labels, distinct, config.steps, config.lr)
    out.helpful = {c: bool(intrinsic(c)) for c in distinct}
    out.normalized = normalized_return(mdp, greedy_policy(q), weights)
    return out
