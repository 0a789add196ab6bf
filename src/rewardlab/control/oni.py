"""ONI: a language model labels captions of what the agent sees, and a small model learns an intrinsic reward from them.

Online Intrinsic Rewards (Zheng et al. 2024, *Online Intrinsic Rewards for Decision Making Agents from Large
Language Model Feedback*, sec. 3): each observation has a caption c(o); an LM annotates captions as helpful for
the task or not; a classifier p_η(helpful | c) is trained on those labels with the binary cross-entropy

    L(η) = −Σ_c [y_c·log p_η(c) + (1 − y_c)·log(1 − p_η(c))],

and the agent maximises r(s, a) = r_ext(s, a) + β·r_int, with r_int = 1[p_η(c) > ½] (their classification
variant), over a sparse extrinsic reward. The classifier gives a reward to captions the LM never labelled.

In the paper the LM labels captions asynchronously, on a server, while the agent keeps acting. Here labelling is a
batch with a cache: the distinct captions met by ``episodes`` uniform-random rollouts are labelled once each, before
planning; the classifier (logistic regression over the caption's words) then rewards every transition. The caption
of a transition is what the agent meets in the cell it enters (:data:`CAPTIONS`). The extrinsic reward is sparse:
only the true reward's goal and hazard terms (``SPARSE_FEATURES``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rewardlab.control.icpl import TASK
from rewardlab.control.language import Generate, Outcomes, expected_table, transition_descriptions
from rewardlab.control.lare import sample_episodes
from rewardlab.control.mdp import TabularMDP, greedy_policy, normalized_return, value_iteration
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
        found = []
        for name in ("episodes", "episode_length", "steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                found.append(f"{name} must be a positive integer (got {getattr(self, name)!r})")
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
    labelled = [c for c, y in out.labels.items() if y is not None]
    distinct = list(dict.fromkeys(captions))
    if labelled:
        vocabulary, eta = train_caption_classifier(labelled, [out.labels[c] for c in labelled], config.steps, config.lr)  # type: ignore[misc]
        logits = bag_of_words(distinct, vocabulary) @ eta
        out.helpful = {c: bool(z > 0) for c, z in zip(distinct, logits.tolist(), strict=True)}
    else:
        out.helpful = {c: False for c in distinct}
    per_outcome = np.array([float(out.helpful[c]) for c in captions])
    out.intrinsic = expected_table(mdp, outcomes, per_outcome)
    sparse = mdp.reward(sparse_weights(mdp, weights))
    for name, reward in (("sparse", sparse), ("shaped", sparse + config.beta * out.intrinsic)):
        policy = greedy_policy(value_iteration(mdp, reward)[1])
        setattr(out, f"{name}_normalized", normalized_return(mdp, policy, weights))
    return out
