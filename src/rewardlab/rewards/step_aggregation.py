"""How the probabilities a process reward model gives the steps of a chain make the chain's one score.

Here, below the models, so that anything that scores replies (``evaluate.scorers``' ``prm`` kind) and the
process package (training, ``prm score``, step-guided search) read a chain the same way.
"""

from __future__ import annotations

from torch import Tensor

from rewardlab.rewards.transforms import step_clip_rewards, step_delta_rewards

AGGREGATIONS = ("min", "product", "last", "mean", "sum")
SHAPINGS = ("clip", "delta")


def chain_score(probabilities: Tensor, aggregation: str = "min", shaping: str | None = None, eta: float = 0.5) -> float:
    """One chain's score from its steps' probabilities p_1..p_T (a 1-d tensor).

    ``aggregation``: ``min`` (the weakest step; Math-Shepherd, Wang et al. 2024), ``product`` (the
    probability that every step is right, if steps err independently; Lightman et al. 2023), ``last``
    (p_T: the whole chain judged at its end), ``mean``, or ``sum``. ``shaping`` first turns the
    probabilities into the per-step rewards an RL trainer would be given (Gao et al. 2024, "On Designing
    Effective RL Reward at Training Time for LLM Reasoning"): ``clip``, min(p_t − η, 0), or ``delta``,
    p_t − p_{t+1} with 0 at the last step; ``sum`` of those is then the chain's return, which neither
    mechanism lets grow with the number of steps (clip: at most 0; delta: p_1 − p_T, telescoped).
    """
    if probabilities.dim() != 1 or probabilities.numel() == 0:
        raise ValueError("a chain's step probabilities are a non-empty 1-d tensor")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)} (got {aggregation!r})")
    rewards = probabilities
    if shaping == "clip":
        rewards = step_clip_rewards(probabilities, eta)
    elif shaping == "delta":
        rewards = step_delta_rewards(probabilities)
    elif shaping is not None:
        raise ValueError(f"shaping must be one of {', '.join(SHAPINGS)} or None (got {shaping!r})")
    if aggregation == "min":
        return float(rewards.min())
    if aggregation == "product":
        return float(rewards.prod())
    if aggregation == "last":
        return float(rewards[-1])
    return float(rewards.mean() if aggregation == "mean" else rewards.sum())
