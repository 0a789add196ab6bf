"""The context-marginal preference: a preference stated without its context is a mixture over contexts.

Pitis et al. 2024 ("Improving Context-Aware Preference Modeling for Language Models"; only the
abstract and the decomposition were read) split preference modelling in two: pick the context c in
which a prompt x is meant (who asks, what they want), then judge the replies in that context,

    P(y1 ≻ y2 | x) = Σ_c P(c | x) · P(y1 ≻ y2 | x, c),
    P(y1 ≻ y2 | x, c) = σ(r(x, c, y1) − r(x, c, y2))  (Bradley-Terry on (x, c, y_w, y_l)).

The context-conditioned reward r(x, c, y) is an ordinary reward model reading c before the prompt
(``data/context.py``), trained with the ordinary ``bradley_terry`` objective; what is new is this
mixture, which says what a context-aware model predicts when the context is not given, and why a
model trained without contexts learns ½ where two contexts disagree equally.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def context_marginal_logp(context_logps: Tensor, chosen: Tensor, rejected: Tensor) -> Tensor:
    """log P(y1 ≻ y2 | x) = logsumexp_c [log P(c|x) + log σ(r(x,c,y1) − r(x,c,y2))], over the last dim.

    ``context_logps`` are log P(c|x) (each row normalised over its C contexts), ``chosen`` and
    ``rejected`` the rewards r(x, c, y1) and r(x, c, y2) under each context, all of shape (..., C).
    Computed in log space, so -context_marginal_logp is a stable loss for pairs whose context is
    unobserved (the mixture's negative log-likelihood).
    """
    if not context_logps.shape == chosen.shape == rejected.shape or context_logps.dim() == 0:
        raise ValueError(
            "context log-probabilities and both rewards need the same shape (..., contexts), got "
            f"{tuple(context_logps.shape)}, {tuple(chosen.shape)} and {tuple(rejected.shape)}"
        )
    return torch.logsumexp(context_logps + F.logsigmoid(chosen - rejected), dim=-1)


def context_marginal_preference(context_probs: Tensor, chosen: Tensor, rejected: Tensor) -> Tensor:
    """P(y1 ≻ y2 | x) = Σ_c P(c|x) · σ(r(x,c,y1) − r(x,c,y2)) from probabilities P(c|x) of shape (..., C).

    Probabilities that do not sum to 1 over the contexts are an error: the mixture would not be a
    probability.
    """
    total = context_probs.sum(dim=-1)
    if bool((context_probs < 0).any()) or not torch.allclose(total, torch.ones_like(total), atol=1e-5):
        raise ValueError("context probabilities must be non-negative and sum to 1 over the last dimension")
    return context_marginal_logp(torch.log(context_probs), chosen, rejected).exp()
