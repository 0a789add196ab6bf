"""A softmax network read as a utility function, not a probability model ("Utility-Probability
Duality of Neural Networks", Huang & Yuan 2023).

The paper reads a network with softmax outputs as an **ordinal utility** u(y | x) = z_y(x), its logit,
encoding the preference its training data reveal: an example (x, y) says y was chosen over every
other output. Under the logit choice rule (random utilities with i.i.d. Gumbel noise, McFadden
1974) utilities give the chance that y is the one chosen from a candidate set C:

    P_u(y | C) = exp(u(y)/τ) / Σ_{y' ∈ C} exp(u(y')/τ)                                      (1)

(:func:`utility_to_probability`). MLE's SGD step on the logits is then a utility-learning step:
with e_y the chosen output's indicator and η the learning rate,

    u ← u − η ∇_u(−log P_u(y)) = u + η (e_y − P_u)                                          (2)

(:func:`utility_learning_step`): the chosen output gains its shortfall from being chosen surely,
1 − P_u(y), and every other output loses the probability the current utilities would have chosen
it instead. Its expected step under the data's choices y ~ P*, P* − P_u, vanishes where
u* = log P* + c: the utilities SGD iterates towards rank outputs by how often the data choose them,
and any increasing transform of them ranks them alike, which is all an ordinal utility promises.

For a reply of several tokens the utility reading sums the raw logits of its tokens,
U(x, y) = Σ_t z_t(y_t), where the probability reading sums log-softmaxes, log π(y | x) =
Σ_t (z_t(y_t) − log Σ_v exp z_t(v)); they differ by the per-step log-partitions, which depend on
the reply (:class:`LogitUtilityScorer`). Eq. (1) over a set of candidate replies turns those
utilities back into probabilities for decision rules that need probabilities (expected-reward
selection, minimum Bayes risk); the abstract promises such a transform and double-digit gains
from it, and eq. (1) is the choice rule the utility reading rests on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rewardlab.data.records import Prompt
from rewardlab.models.causal_lm import CausalLM


def utility_to_probability(utilities: Tensor, temperature: float = 1.0, dim: int = -1) -> Tensor:
    """Eq. (1): the logit choice probability of each option among those along ``dim``.

    Adding a constant to every utility changes nothing (utilities are ordinal up to that); −inf is
    an option never chosen; τ → 0 puts all the mass on the highest utility.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (got {temperature})")
    return torch.softmax(utilities / temperature, dim=dim)


def utility_learning_step(utilities: Tensor, chosen: Tensor | int, lr: float) -> Tensor:
    """Eq. (2): the utilities after one MLE SGD step on the observed choice ``chosen`` (an index per
    row of ``utilities``, whose last dimension holds the options)."""
    chosen = torch.as_tensor(chosen, device=utilities.device)
    revealed = torch.nn.functional.one_hot(chosen, utilities.shape[-1]).to(utilities.dtype)
    return utilities + lr * (revealed - utility_to_probability(utilities))


@dataclass(frozen=True)
class ReplyUtilities:
    """Per reply: U = Σ_t z_t(y_t), log π = Σ_t log softmax(z_t)(y_t), and the token count."""

    utilities: list[float]
    logps: list[float]
    lengths: list[int]


@torch.inference_mode()
def reply_utilities(lm: CausalLM, prompts: Sequence[Prompt], replies: Sequence[str]) -> ReplyUtilities:
    """Both readings of each reply's tokens (rendered as ``CausalLM.encode_reply`` renders them, the end
    of turn included), from one unpadded forward pass per reply: no padding can shift a logit."""
    device = next(lm.model.parameters()).device
    utilities, logps, lengths = [], [], []
    for index, (prompt, reply) in enumerate(zip(prompts, replies, strict=True)):
        prompt_ids, reply_ids = lm.encode_reply(prompt, reply)
        if not prompt_ids or not reply_ids:
            raise ValueError(f"reply {index}: its {'prompt' if not prompt_ids else 'reply'} has no tokens")
        ids = torch.tensor([prompt_ids + reply_ids], device=device)
        logits = lm.model(input_ids=ids, use_cache=False).logits[0].float()
        steps = logits[len(prompt_ids) - 1 : len(prompt_ids) - 1 + len(reply_ids)]
        targets = torch.tensor(reply_ids, device=device)
        picked = steps.gather(-1, targets[:, None])[:, 0]
        utilities.append(float(picked.sum()))
        logps.append(float((picked - steps.logsumexp(-1)).sum()))
        lengths.append(len(reply_ids))
    return ReplyUtilities(utilities, logps, lengths)


@dataclass
class LogitUtilityScorer:
    """An LM's utility of each reply, U(x, y) = Σ_t z_t(y_t): its logits read as utilities rather than
    its probability log π(y | x) (which ``ImplicitRewardScorer``'s ``sum`` mode reads)."""

    lm: CausalLM

    @property
    def precision(self) -> str:
        return self.lm.precision

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        return reply_utilities(self.lm, prompts, replies).utilities
