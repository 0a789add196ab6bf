"""A learned reward r̂(o, a) over a Gymnasium environment's observations and actions, fitted to segment
preferences.

Christiano et al. (2017, sec. 2.2.3) read a preference between segments σ¹ ≻ σ² as Bradley-Terry over
the sums of the learned reward along each:

    P̂(σ¹ ≻ σ²) = exp Σ_t r̂(o¹_t, a¹_t) / (exp Σ_t r̂(o¹_t, a¹_t) + exp Σ_t r̂(o²_t, a²_t))

and minimise the cross-entropy with the labels (ties as ½). That is the ``bradley_terry`` objective of
``rewardlab.objectives`` with a segment's return r̂(σ) = Σ_t r̂(o_t, a_t) in place of a reply's reward,
so the loss is looked up in the objectives registry and any pairwise scalar objective can stand in.

r̂ is a small MLP over [normalised observation, action] (a Discrete action one-hot). Saved as safetensors
weights plus a JSON config; nothing loaded runs code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import Tensor, nn

from rewardlab.atomic import write_files_atomic
from rewardlab.control.segments import Segment, SegmentPreference
from rewardlab.objectives.registry import get_objective
from rewardlab.progress import progress_bar

WEIGHTS_FILE = "reward.safetensors"
CONFIG_FILE = "reward.json"


@dataclass(frozen=True)
class RewardNetConfig:
    observation_size: int
    action_size: int
    """Number of actions of a Discrete space (one-hot), or the length of a Box action."""
    discrete: bool
    hidden: tuple[int, ...] = (64, 64)

    def problems(self) -> list[str]:
        out = []
        if self.observation_size < 1:
            out.append(f"observation_size must be positive (got {self.observation_size})")
        if self.action_size < 1:
            out.append(f"action_size must be positive (got {self.action_size})")
        if any(h < 1 for h in self.hidden):
            out.append(f"hidden sizes must be positive (got {list(self.hidden)})")
        return out


@dataclass
class RewardTrainConfig:
    objective: str = "bradley_terry"
    """A pairwise objective of ``rewardlab.objectives`` over scalar rewards (``rewardlab objectives``)."""
    objective_args: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_pairs: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0


class RewardNet(nn.Module):
    """r̂(o, a): an MLP over the observation (standardised by statistics of the training data, kept as
    buffers so they travel with the weights) and the action."""

    def __init__(self, config: RewardNetConfig):
        super().__init__()
        problems = config.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self.config = config
        layers: list[nn.Module] = []
        width = config.observation_size + config.action_size
        for hidden in config.hidden:
            layers += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("observation_mean", torch.zeros(config.observation_size))
        self.register_buffer("observation_std", torch.ones(config.observation_size))

    def forward(self, observations: Tensor, actions: Tensor) -> Tensor:
        """Rewards (N,) of N steps: observations (N, O), actions (N,) indices or (N, A) values."""
        if self.config.discrete:
            actions = nn.functional.one_hot(actions.long(), self.config.action_size).to(observations.dtype)
        else:
            actions = actions.reshape(len(actions), self.config.action_size).to(observations.dtype)
        inputs = torch.cat([(observations - self.observation_mean) / self.observation_std, actions], dim=-1)
        return self.mlp(inputs).squeeze(-1)

    @torch.no_grad()
    def reward(self, observation: Any, action: Any) -> float:
        """r̂ of one step, for the environment wrapper."""
        obs = torch.as_tensor(np.asarray(observation, dtype=np.float32)).reshape(1, -1)
        if self.config.discrete:
            act = torch.tensor([int(np.asarray(action).item())])
        else:
            act = torch.as_tensor(np.asarray(action, dtype=np.float32)).reshape(1, -1)
        return float(self(obs, act))

    def save(self, folder: str | Path) -> Path:
        """Weights (safetensors) and config (JSON) into ``folder``, both or neither."""
        folder = Path(folder)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        write_files_atomic(
            {
                folder / WEIGHTS_FILE: save(tensors),
                folder / CONFIG_FILE: json.dumps(asdict(self.config), indent=1) + "\n",
            }
        )
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RewardNet:
        """The reward saved in ``folder``; a missing or malformed file is named."""
        folder = Path(folder)
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder}: a learned control reward needs {name}, and it is missing")
        try:
            raw = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
            config = RewardNetConfig(**{**raw, "hidden": tuple(raw.get("hidden", ()))})
        except (json.JSONDecodeError, TypeError) as error:
            raise ValueError(f"{folder / CONFIG_FILE}: not a reward config ({error})") from None
        net = cls(config)
        try:
            net.load_state_dict(load_file(folder / WEIGHTS_FILE))
        except RuntimeError as error:
            raise ValueError(f"{folder / WEIGHTS_FILE}: weights do not match {CONFIG_FILE} ({error})") from None
        return net.eval()


def config_for_segments(segments: Sequence[Segment], discrete: bool | None = None, **kwargs: Any) -> RewardNetConfig:
    """A config sized from the segments: Discrete if every action is an int (unless ``discrete`` says)."""
    first = segments[0]
    actions = [a for s in segments for a in s.actions]
    if discrete is None:
        discrete = all(isinstance(a, int) for a in actions)
    action_size = max(int(a) for a in actions) + 1 if discrete else len(first.actions[0])
    return RewardNetConfig(len(first.observations[0]), action_size, discrete, **kwargs)


def step_tensors(segments: Sequence[Segment], config: RewardNetConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Every step of the segments, padded to the longest: observations (S, T, O), actions (S, T) indices
    or (S, T, A) values, and a mask (S, T) of real steps.

    A segment's last observation (the state after its last action) scores nothing: r̂ is over (o_t, a_t).
    """
    longest = max(len(s) for s in segments)
    obs = np.zeros((len(segments), longest, config.observation_size), dtype=np.float32)
    act_shape = (len(segments), longest) if config.discrete else (len(segments), longest, config.action_size)
    act = np.zeros(act_shape, dtype=np.int64 if config.discrete else np.float32)
    mask = np.zeros((len(segments), longest), dtype=bool)
    for i, segment in enumerate(segments):
        steps = len(segment)
        try:
            obs[i, :steps] = np.asarray(segment.observations[:-1], dtype=np.float32).reshape(steps, -1)
            act[i, :steps] = np.asarray(segment.actions).reshape(act[i, :steps].shape)
        except ValueError as error:
            raise ValueError(
                f"segment {i} does not fit the reward's shapes (observation size {config.observation_size}, "
                f"{'discrete' if config.discrete else 'continuous'} actions of size {config.action_size}): {error}"
            ) from None
        mask[i, :steps] = True
    return torch.from_numpy(obs), torch.from_numpy(act), torch.from_numpy(mask)


def padded_returns(net: RewardNet, obs: Tensor, act: Tensor, mask: Tensor) -> Tensor:
    """Σ_t r̂(o_t, a_t) over the real steps of each padded segment (``step_tensors``' output)."""
    rewards = net(obs.flatten(0, 1), act.flatten(0, 1)).view(mask.shape)
    return (rewards * mask).sum(-1)


def segment_returns(net: RewardNet, segments: Sequence[Segment]) -> Tensor:
    """r̂(σ) = Σ_t r̂(o_t, a_t) for each segment, shape (len(segments),)."""
    return padded_returns(net, *step_tensors(segments, net.config))


def _objective(config: RewardTrainConfig):
    objective = get_objective(config.objective)
    unusable = [name for name in objective.required if name not in ("chosen", "rejected", "tie")]
    if (
        not objective.pairwise
        or objective.head != "reward"
        or objective.outputs(config.objective_args) != 1
        or unusable
    ):
        raise ValueError(
            f"objective {objective.name!r} cannot train a segment reward: it must compare pairs of scalar "
            f"rewards and need nothing beyond chosen, rejected and tie (it needs {', '.join(objective.required)})"
        )
    problems = objective.check_options(config.objective_args)
    if problems:
        raise ValueError("; ".join(problems))
    return objective


def train_reward(
    preferences: Sequence[SegmentPreference],
    config: RewardTrainConfig | None = None,
    net_config: RewardNetConfig | None = None,
    progress: bool = True,
) -> RewardNet:
    """Fit r̂ to the judgements by minimising the objective over segment returns (module docstring).

    The preferred segment is ``chosen``; an ``equal`` judgement is passed as a tie (target ½) to an
    objective that reads ties and left out otherwise.
    """
    config = config or RewardTrainConfig()
    objective = _objective(config)
    kept = [p for p in preferences if p.preferred != "equal" or objective.uses_ties]
    if not kept:
        raise ValueError("no usable preferences (every judgement is a tie, and the objective cannot read ties)")
    chosen = [p.b if p.preferred == "b" else p.a for p in kept]
    rejected = [p.a if p.preferred == "b" else p.b for p in kept]
    tie = torch.tensor([p.preferred == "equal" for p in kept])
    torch.manual_seed(config.seed)
    net = RewardNet(net_config or config_for_segments(chosen + rejected))
    obs, act, mask = step_tensors(chosen + rejected, net.config)
    real = obs[mask]
    net.observation_mean.copy_(real.mean(0))
    net.observation_std.copy_(real.std(0).clamp_min(1e-6) if len(real) > 1 else torch.ones(real.shape[1]))
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    batches = -(-len(kept) // config.batch_pairs)
    net.train()
    with progress_bar(progress, "reward", config.epochs * batches) as advance:
        for _ in range(config.epochs):
            for batch in torch.randperm(len(kept), generator=generator).split(config.batch_pairs):
                both = torch.cat([batch, batch + len(kept)])
                returns = padded_returns(net, obs[both], act[both], mask[both])
                fields = {"chosen": returns[: len(batch)], "rejected": returns[len(batch) :], "tie": tie[batch]}
                loss = objective(fields, **config.objective_args).losses.mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                advance(loss=f"{loss.item():.4f}")
    return net.eval()


@torch.no_grad()
def reward_normalisation(net: RewardNet, segments: Sequence[Segment]) -> tuple[float, float]:
    """(mean, standard deviation) of r̂ over every step of ``segments``: the shift and scale that give the
    learned reward zero mean and unit spread there (Christiano et al. 2017, sec. 2.2.3)."""
    obs, act, mask = step_tensors(segments, net.config)
    rewards = net(obs[mask], act[mask])
    return float(rewards.mean()), float(rewards.std()) if len(rewards) > 1 else 1.0
