"""Inference-time alignment by tree search over the denoising chain: Diffusion Tree Sampling (DTS) and its
greedy variant Diffusion Tree Search (DTS*) of Jain et al. 2025, with best-of-N as the baseline.

The target is the reward-tilted model

    π*(x_0) ∝ p_θ(x_0)·exp(λ·r(x_0)),

whose sampler needs the soft value of every partial chain, V(x_t) = log E_{p_θ(x_0 | x_t)}[exp(λ·r(x_0))]
(here in units of λ·r). DTS reads the DDIM chain as a tree: a node is a partial chain x_t on the sampling
timesteps, its children are draws from p_θ(x_{t-1} | x_t) (η > 0 so that they differ). Each iteration

    selection  from the root, pick children ∝ exp(v(child)) (DTS) or by the largest value (DTS*), until a
               node with fewer than ``max_children`` children;
    expansion  draw one new child of that node;
    rollout    run the base model from it to x_0, keeping every state as a node;
    backup     score r(x_0) and refresh the values on the path with the soft Bellman backup
               v(x_t) = log (1/|C|) Σ_{c ∈ C(x_t)} exp(v(c)), v(x_0) = λ·r(x_0)   (DTS)
               v(x_t) = max_{c ∈ C(x_t)} v(c)                                      (DTS*).

Every new child reuses the chain above it, so a rollout from depth k costs S - k denoiser calls instead of S:
the compute a best-of-N run spends re-denoising the high-noise steps is spent near the promising chains.
DTS's output is a path drawn from the root ∝ exp(v) (exact for λ = 0, and asymptotically π* as the tree
grows); DTS*'s is the highest-reward x_0 the tree holds. Compute is counted as ``Denoiser.calls`` (one per
image denoised once).

One tree per output, all grown in lockstep: each iteration expands one leaf per tree and the rollouts of all
trees are denoised together, one batched call per timestep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from rewardlab.diffusion.align import ImageReward
from rewardlab.diffusion.denoiser import NO_CONDITION, Condition, Denoiser
from rewardlab.diffusion.sampling import denoise_step, sample
from rewardlab.diffusion.schedule import sampling_timesteps


@dataclass(frozen=True)
class TreeSearchConfig:
    """One tree search. ``budget``: denoiser calls for all outputs together (each output's tree gets an equal
    share); ``lam``: λ of the target p_θ·exp(λ·r); ``greedy``: DTS* (max backup, greedy selection, best x_0
    out) instead of DTS; ``exploration``: DTS*'s UCT bonus c·√(ln N(parent) / N(child)) in units of λ·r;
    ``widening``: progressive widening, a node visited N times may hold ⌈widening·√(N + 1)⌉ children (at most
    ``max_children``), so that often-visited nodes, the root's x_T above all, keep branching (0: off, every
    node takes ``max_children`` at once)."""

    budget: int = 2000
    sampling_steps: int = 20
    eta: float = 1.0
    lam: float = 1.0
    max_children: int = 4
    greedy: bool = False
    exploration: float = 0.0
    widening: float = 0.0
    seed: int = 0

    def check(self, n_samples: int) -> None:
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1 (got {n_samples})")
        if self.sampling_steps < 1:
            raise ValueError(f"sampling_steps must be at least 1 (got {self.sampling_steps})")
        if self.budget < n_samples * self.sampling_steps:
            raise ValueError(
                f"budget ({self.budget} denoiser calls) must cover one full chain per output: at least "
                f"n_samples × sampling_steps = {n_samples * self.sampling_steps}"
            )
        if not self.eta > 0:
            raise ValueError(f"eta must be > 0 so that a node's children differ (got {self.eta})")
        if self.max_children < 1:
            raise ValueError(f"max_children must be at least 1 (got {self.max_children})")
        if self.lam < 0 or (self.greedy and self.lam == 0):
            raise ValueError(f"lam must be >= 0, and > 0 for the greedy search (got {self.lam})")
        if self.widening < 0:
            raise ValueError(f"widening must be >= 0 (got {self.widening})")
        if self.exploration < 0:
            raise ValueError(f"exploration must be >= 0 (got {self.exploration})")


@dataclass(frozen=True)
class TreeResult:
    """``images`` [n, C, H, W] and their ``rewards`` [n], and the denoiser ``calls`` spent finding them."""

    images: Tensor
    rewards: Tensor
    calls: int


def soft_value(child_values: list[float]) -> float:
    """DTS's soft Bellman backup, v(x_t) = log (1/|C|) Σ_c exp(v(c)): the Monte Carlo estimate of
    log E_{p_θ(x_{t-1}|x_t)}[exp(V(x_{t-1}))] from the children, which are draws from the model's step."""
    top = max(child_values)
    return top + math.log(sum(math.exp(v - top) for v in child_values) / len(child_values))


def backup_value(child_values: list[float], greedy: bool) -> float:
    """A node's value from its children's: the soft backup (DTS) or the max (DTS*)."""
    return max(child_values) if greedy else soft_value(child_values)


def boltzmann_probabilities(values: Tensor) -> Tensor:
    """DTS's selection policy over children, P(c) ∝ exp(v(c))."""
    return torch.softmax(values, 0)


@dataclass(eq=False)
class _Node:
    """x at ``timesteps[k]`` (k = S: x_0; the root, k = -1, stands before x_T ~ N(0, I) and holds no state)."""

    k: int
    state: Tensor | None
    parent: _Node | None
    children: list[_Node] = field(default_factory=list)
    value: float = 0.0
    visits: int = 0
    saturated: bool = False  # x_0, or every child is saturated and no child can be added: nothing left to grow
    reward: float = 0.0


@dataclass
class _Tree:
    root: _Node
    budget: int
    spent: int = 0
    done: bool = False
    leaves: list[_Node] = field(default_factory=list)


def _choose(node: _Node, config: TreeSearchConfig, generator: torch.Generator) -> _Node:
    open_children = [c for c in node.children if not c.saturated]
    values = torch.tensor([c.value for c in open_children], dtype=torch.float64)
    if config.greedy:
        if config.exploration:
            values = values + config.exploration * torch.tensor(
                [math.sqrt(math.log(max(node.visits, 1)) / c.visits) for c in open_children], dtype=torch.float64
            )
        return open_children[int(values.argmax())]
    return open_children[int(torch.multinomial(boltzmann_probabilities(values), 1, generator=generator))]


def allowed_children(visits: int, config: TreeSearchConfig) -> int:
    """How many children a node visited ``visits`` times may hold: ``max_children``, or with progressive
    widening ⌈widening·√(visits + 1)⌉ capped there."""
    if not config.widening:
        return config.max_children
    return min(config.max_children, math.ceil(config.widening * math.sqrt(visits + 1)))


def _select(tree: _Tree, config: TreeSearchConfig, generator: torch.Generator) -> _Node:
    """Descend from the root to the first node that may take another child (or whose children are all spent)."""
    node = tree.root
    while len(node.children) >= allowed_children(node.visits, config) and not all(c.saturated for c in node.children):
        node = _choose(node, config, generator)
    return node


def _backup(leaf: _Node, config: TreeSearchConfig) -> None:
    leaf.value, leaf.visits, leaf.saturated = config.lam * leaf.reward, leaf.visits + 1, True
    node = leaf.parent
    while node is not None:
        node.visits += 1
        node.value = backup_value([c.value for c in node.children], config.greedy)
        node.saturated = len(node.children) >= config.max_children and all(c.saturated for c in node.children)
        node = node.parent


def _rollout_cost(node: _Node, steps: int) -> int:
    return steps - max(node.k, 0)


@torch.no_grad()
def _grow(
    denoiser: Denoiser,
    reward: ImageReward,
    trees: list[_Tree],
    starts: list[tuple[int, _Node]],
    timesteps: list[int],
    config: TreeSearchConfig,
    condition: Condition,
    generator: torch.Generator,
) -> None:
    """Expand each selected node by one child and roll it out to x_0, all trees' chains batched per timestep."""
    steps = len(timesteps)
    current: list[Tensor] = []
    first: list[int] = []
    parents: list[_Node] = []
    for _, node in starts:
        if node.k < 0:  # the root's child is a fresh x_T, free of denoiser calls
            x_t = torch.randn((1, *denoiser.image_shape), generator=generator)
            child = _Node(0, x_t[0], node)
            node.children.append(child)
            parents.append(child)
            current.append(x_t)
            first.append(0)
        else:
            parents.append(node)
            current.append(node.state.unsqueeze(0))
            first.append(node.k)
    tree_index = torch.tensor([i for i, _ in starts])
    for k in range(min(first), steps):
        active = [j for j, a in enumerate(first) if a <= k]
        x_next, _ = denoise_step(
            denoiser,
            torch.cat([current[j] for j in active]),
            timesteps,
            k,
            condition.rows(tree_index[active]),
            config.eta,
            generator,
        )
        for row, j in enumerate(active):
            current[j] = x_next[row : row + 1]
            child = _Node(k + 1, x_next[row], parents[j])
            parents[j].children.append(child)
            parents[j] = child
    rewards = reward(torch.cat(current)).detach().flatten().tolist()
    for (i, _), leaf, r, a in zip(starts, parents, rewards, first, strict=True):
        leaf.reward = float(r)
        _backup(leaf, config)
        trees[i].leaves.append(leaf)
        trees[i].spent += steps - a


def _draw(tree: _Tree, config: TreeSearchConfig, generator: torch.Generator) -> _Node:
    """DTS's output: a path from the root, each child drawn ∝ exp(v); DTS*'s: the best x_0 found."""
    if config.greedy:
        return max(tree.leaves, key=lambda leaf: leaf.reward)
    node = tree.root
    while node.children:
        values = torch.tensor([c.value for c in node.children], dtype=torch.float64)
        node = node.children[int(torch.multinomial(boltzmann_probabilities(values), 1, generator=generator))]
    return node


@torch.no_grad()
def tree_sample(
    denoiser: Denoiser,
    reward: ImageReward,
    n_samples: int,
    config: TreeSearchConfig = TreeSearchConfig(),
    condition: Condition = NO_CONDITION,
) -> TreeResult:
    """``n_samples`` images by DTS (``config.greedy`` false: draws from p_θ·exp(λ·r)) or DTS* (true: the
    highest-reward image each tree found), each output from its own tree of ``config.budget // n_samples``
    denoiser calls."""
    config.check(n_samples)
    condition = condition.for_samples(n_samples)
    generator = torch.Generator().manual_seed(config.seed)
    timesteps = sampling_timesteps(config.sampling_steps, denoiser.train_steps)
    steps = len(timesteps)
    trees = [_Tree(_Node(-1, None, None), config.budget // n_samples) for _ in range(n_samples)]
    calls_before = denoiser.calls
    while True:
        starts = []
        for i, tree in enumerate(trees):
            if tree.done:
                continue
            if tree.root.saturated:
                tree.done = True
                continue
            node = _select(tree, config, generator)
            if tree.spent + _rollout_cost(node, steps) > tree.budget:
                tree.done = True
                continue
            starts.append((i, node))
        if not starts:
            break
        _grow(denoiser, reward, trees, starts, timesteps, config, condition, generator)
    outputs = [_draw(tree, config, generator) for tree in trees]
    return TreeResult(
        torch.stack([leaf.state for leaf in outputs]),
        torch.tensor([leaf.reward for leaf in outputs]),
        denoiser.calls - calls_before,
    )


@torch.no_grad()
def best_of_n(
    denoiser: Denoiser,
    reward: ImageReward,
    n_samples: int,
    budget_calls: int,
    sampling_steps: int = 20,
    eta: float = 1.0,
    seed: int = 0,
    condition: Condition = NO_CONDITION,
    batch_size: int = 256,
) -> TreeResult:
    """The baseline at the same compute: N = budget_calls // (n_samples · sampling_steps) full chains per output,
    keeping the highest-reward one of each output's N."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1 (got {n_samples})")
    per_output = budget_calls // (n_samples * sampling_steps) if sampling_steps >= 1 else 0
    if per_output < 1:
        raise ValueError(
            f"budget_calls ({budget_calls}) must cover one full chain per output: at least "
            f"n_samples × sampling_steps = {n_samples * max(sampling_steps, 1)}"
        )
    condition = condition.for_samples(n_samples).repeat(per_output)
    generator = torch.Generator().manual_seed(seed)
    calls_before = denoiser.calls
    total = n_samples * per_output
    images = []
    for start in range(0, total, batch_size):
        rows = torch.arange(start, min(start + batch_size, total))
        images.append(sample(denoiser, len(rows), sampling_steps, eta, condition.rows(rows), generator).images)
    all_images = torch.cat(images)
    rewards = reward(all_images).detach().flatten().view(n_samples, per_output)
    best = rewards.argmax(1)
    chosen = torch.arange(n_samples) * per_output + best
    return TreeResult(all_images[chosen], rewards.gather(1, best[:, None])[:, 0], denoiser.calls - calls_before)
