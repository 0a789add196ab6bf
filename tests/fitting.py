"""Fitting free parameters or small linear rewards to synthetic data, for tests with a known answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor


@contextmanager
def single_thread() -> Iterator[None]:
    """Run tiny-tensor loops on one thread: on a busy 2-core machine a second thread only adds waiting
    (measured tenfold slower with two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def minimise(loss: Callable[[], Tensor], params: Sequence[Tensor], iterations: int = 200) -> float:
    """Minimise a smooth loss over ``params`` with L-BFGS (strong-Wolfe line search); returns the final loss."""
    optimiser = torch.optim.LBFGS(
        params, lr=1, max_iter=iterations, tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        optimiser.zero_grad()
        value = loss()
        value.backward()
        return value

    with single_thread():
        optimiser.step(closure)
    with torch.no_grad():
        return float(loss())


def descend(loss: Callable[[], Tensor], params: Sequence[Tensor], steps: int, lr: float = 0.05) -> float:
    """Adam for ``steps`` steps, for losses that are not convex (unit-normalised embeddings)."""
    optimiser = torch.optim.Adam(params, lr=lr)
    with single_thread():
        for _ in range(steps):
            optimiser.zero_grad()
            value = loss()
            value.backward()
            optimiser.step()
    with torch.no_grad():
        return float(loss())


def pair_accuracy(weights: Tensor, true_weights: Tensor, generator: torch.Generator, pairs: int = 4000) -> float:
    """Fraction of fresh random pairs that the linear reward ``weights`` orders as the true one does."""
    delta = torch.randn(pairs, len(true_weights), generator=generator, dtype=true_weights.dtype)
    return float(((delta @ weights > 0) == (delta @ true_weights > 0)).double().mean())
