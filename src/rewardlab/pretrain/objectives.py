"""The five objectives of pretraining with human feedback (Korbak et al. 2023, §2), per token.

Each is a pure function of the log-probability each token got (``logps``, log π(x_t | x_<t)) and of
what the objective reads about the token: its segment's score (a reward, higher is better), whether
that segment is below the threshold, and for AWR the value head's prediction. They return per-token
losses and detached diagnostics; the trainer averages the losses over the tokens of a batch, as the
reference code does.

Filtering and conditional training change the *data*, not the loss: both train with plain MLE, on
a corpus without its low-scored documents (filtering) or with a control token before every segment
(conditional). The registry records which data each objective trains on and what it reads, so the
trainer asks instead of branching on names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from rewardlab.registry import Registry

Data = Literal["plain", "filtered", "conditional"]


@dataclass
class TokenLossOutput:
    """Per-token losses (the caller masks and averages them) and detached per-token diagnostics."""

    losses: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


def mle_loss(logps: Tensor) -> TokenLossOutput:
    """−log π(x_t | x_<t): maximum likelihood, the baseline every objective is compared with.

    Also the loss of filtering and conditional training, which differ from MLE only in their data."""
    return TokenLossOutput(-logps, {"logp": logps.detach()})


def unlikelihood_loss(logps: Tensor, is_bad: Tensor, alpha: float = 1.0) -> TokenLossOutput:
    """Likelihood on good tokens, unlikelihood on bad ones (Welleck et al. 2020; Korbak et al. 2023, eq. 3):

        loss_t = −log π(x_t | x_<t)                 if x_t's segment scores at or above the threshold
        loss_t = −α · log(1 − π(x_t | x_<t))        if it scores below

    1 − π is clamped at 1e-20, as in the reference code, so a token the model is sure of gives a large
    finite loss rather than infinity. Why: MLE alone cannot tell the model what *not* to write; the
    second term pushes probability away from tokens of bad segments.
    """
    if alpha < 0:
        raise ValueError(f"unlikelihood alpha must be >= 0 (got {alpha})")
    unlikely = torch.log(torch.clamp(1.0 - logps.exp(), min=1e-20))
    losses = torch.where(is_bad, -alpha * unlikely, -logps)
    return TokenLossOutput(losses, {"bad_share": is_bad.float().detach()})


def _weights(advantage: Tensor, beta: float, max_weight: float) -> Tensor:
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (got {beta})")
    return torch.clamp(torch.exp(advantage / beta), min=0.0, max=max_weight)


def rwr_loss(logps: Tensor, rewards: Tensor, beta: float = 1.0, max_weight: float = 1000.0) -> TokenLossOutput:
    """Reward-weighted regression (Peters & Schaal 2007; Korbak et al. 2023, eq. 4):

        loss_t = −log π(x_t | x_<t) · min(exp(R(x_t) / β), w_max)

    R(x_t) is the score of the segment token t belongs to. It is AWR with the value fixed at 0: MLE
    whose tokens count more the better their segment scored (β in the scorer's units).
    """
    weights = _weights(rewards, beta, max_weight)
    return TokenLossOutput(-logps * weights, {"weight": weights.detach()})


def awr_loss(
    logps: Tensor, rewards: Tensor, values: Tensor, alpha: float = 0.5, beta: float = 1.0, max_weight: float = 1000.0
) -> TokenLossOutput:
    """Advantage-weighted regression (Peng et al. 2019; Korbak et al. 2023, eq. 5):

        A_t    = R(x_t) − V(x_<t)                      (V detached: the advantage is a weight)
        loss_t = α · (−log π(x_t | x_<t) · min(exp(A_t / β), w_max)) + (1 − α) · (V(x_<t) − R(x_t))²

    V is a value head on the LM's hidden state before x_t, trained by the second term to predict
    the score of what comes next; subtracting it makes a token's weight say whether it is better
    than the model expected at that point, not merely good.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"awr alpha must be in [0, 1] (got {alpha})")
    advantage = rewards - values.detach()
    weights = _weights(advantage, beta, max_weight)
    value_losses = (values - rewards) ** 2
    losses = alpha * (-logps * weights) + (1 - alpha) * value_losses
    return TokenLossOutput(
        losses, {"weight": weights.detach(), "advantage": advantage.detach(), "value_loss": value_losses.detach()}
    )


@dataclass(frozen=True)
class PretrainObjective:
    """An objective by name: the data it trains on, what each token's loss reads, and its options."""

    name: str
    loss: Callable[..., TokenLossOutput]
    data: Data = "plain"
    needs_scores: bool = False
    needs_is_bad: bool = False
    needs_values: bool = False
    options: tuple[str, ...] = ()
    description: str = ""

    def check_options(self, options: dict[str, Any]) -> list[str]:
        unknown = sorted(set(options) - set(self.options))
        allowed = ", ".join(self.options) or "none"
        return [f"objective {self.name} has no option {name!r} (its options: {allowed})" for name in unknown]

    def token_losses(self, fields: dict[str, Tensor], **options: Any) -> TokenLossOutput:
        """The loss on a batch's per-token fields (``logps``, ``scores``, ``is_bad``, ``values``)."""
        args: dict[str, Tensor] = {"logps": fields["logps"]}
        if self.needs_scores:
            args["rewards"] = fields["scores"]
        if self.needs_is_bad:
            args["is_bad"] = fields["is_bad"]
        if self.needs_values:
            args["values"] = fields["values"]
        return self.loss(**args, **options)


PRETRAIN_OBJECTIVES: Registry[PretrainObjective] = Registry("pretraining objective")

for _objective in (
    PretrainObjective("mle", mle_loss, description="maximum likelihood on every segment (the baseline)"),
    PretrainObjective(
        "filtering", mle_loss, data="filtered", description="MLE on the documents scoring above the threshold"
    ),
    PretrainObjective(
        "conditional",
        mle_loss,
        data="conditional",
        description="MLE with <|good|>/<|bad|> before each segment; sample under <|good|>",
    ),
    PretrainObjective(
        "unlikelihood",
        unlikelihood_loss,
        needs_is_bad=True,
        options=("alpha",),
        description="MLE on good segments, unlikelihood on bad ones",
    ),
    PretrainObjective(
        "rwr",
        rwr_loss,
        needs_scores=True,
        options=("beta", "max_weight"),
        description="tokens weighted by exp(score/β)",
    ),
    PretrainObjective(
        "awr",
        awr_loss,
        needs_scores=True,
        needs_values=True,
        options=("alpha", "beta", "max_weight"),
        description="tokens weighted by exp(advantage/β), with a value head",
    ),
):
    PRETRAIN_OBJECTIVES.add(_objective.name, _objective)


def get_pretrain_objective(name: str) -> PretrainObjective:
    """The objective registered as ``name``; an unknown name fails with the list of registered ones."""
    return PRETRAIN_OBJECTIVES.get(name)
