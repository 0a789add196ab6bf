"""A tiny autoregressive generator over short token strings, small enough to enumerate exactly.

The self-consuming loop needs a generator that is really trained (sampled from, retrained by maximum
likelihood) and whose whole distribution can still be read: with ``vocab ** length`` strings in the
tens of thousands at most, the model's probability of every string is one batched forward, so its
expected reward and entropy are exact rather than estimated from samples.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

MAX_STRINGS = 100_000
"""Largest ``vocab ** length`` that ``all_strings`` enumerates."""


def all_strings(vocab: int, length: int) -> Tensor:
    """Every string of ``length`` tokens from ``range(vocab)``, shape (vocab**length, length), in
    lexicographic order."""
    if vocab < 2 or length < 1:
        raise ValueError(f"need vocab >= 2 and length >= 1 (got vocab={vocab}, length={length})")
    if vocab**length > MAX_STRINGS:
        raise ValueError(f"vocab**length = {vocab**length} strings is too many to enumerate (at most {MAX_STRINGS})")
    return torch.tensor(list(itertools.product(range(vocab), repeat=length)), dtype=torch.long)


def markov_log_probs(strings: Tensor, start: Tensor, transition: Tensor) -> Tensor:
    """log p(x) = log start[x_1] + Σ_i log transition[x_{i-1}, x_i]: the known "real data" source."""
    logps = start.log()[strings[:, 0]]
    if strings.shape[1] > 1:
        logps = logps + transition.log()[strings[:, :-1], strings[:, 1:]].sum(dim=1)
    return logps


class StringModel(nn.Module):
    """p(x) = Π_i softmax(MLP([one-hot(x_<i), one-hot(i)]))[x_i].

    One MLP serves every position; tokens at or after position i are masked out of its input, so the
    model is autoregressive and its probabilities over all strings sum to one exactly.
    """

    def __init__(self, vocab: int, length: int, hidden: int = 64) -> None:
        super().__init__()
        self.vocab, self.length = vocab, length
        self.net = nn.Sequential(
            nn.Linear(length * vocab + length, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, vocab),
        )
        self.register_buffer("prefix_mask", torch.ones(length, length).tril(-1), persistent=False)

    def logits(self, strings: Tensor) -> Tensor:
        """Next-token logits at every position, (N, length, vocab), from the tokens before it."""
        n = strings.shape[0]
        onehot = nn.functional.one_hot(strings, self.vocab).float()  # (N, L, V)
        prefix = onehot.unsqueeze(1) * self.prefix_mask[None, :, :, None]  # (N, L positions, L, V)
        position = torch.eye(self.length).expand(n, -1, -1)
        return self.net(torch.cat([prefix.reshape(n, self.length, -1), position], dim=-1))

    def log_prob(self, strings: Tensor) -> Tensor:
        """log p(x) for each string, (N,)."""
        logps = self.logits(strings).log_softmax(-1)
        return logps.gather(-1, strings.unsqueeze(-1)).squeeze(-1).sum(-1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` strings drawn token by token, (n, length)."""
        strings = torch.zeros(n, self.length, dtype=torch.long)
        for i in range(self.length):
            probs = self.logits(strings)[:, i].softmax(-1)
            strings[:, i] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return strings
