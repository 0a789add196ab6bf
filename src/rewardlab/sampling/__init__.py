"""Sampling against a reward: N replies per prompt, best-of-N, rejection sampling, over-optimisation."""

from rewardlab.sampling.batched import sample_replies_batched
from rewardlab.sampling.best_of_n import best_of_n_curve, best_of_n_kl, best_of_n_weights
from rewardlab.sampling.generation import Sample, SampleConfig, sample_replies
from rewardlab.sampling.kl_optimal import best_of_n_levels, solve_tilt, tilt
from rewardlab.sampling.rejection import rso_accept, rso_sample, tilted_distribution

__all__ = [
    "Sample",
    "SampleConfig",
    "best_of_n_curve",
    "best_of_n_kl",
    "best_of_n_levels",
    "best_of_n_weights",
    "rso_accept",
    "rso_sample",
    "sample_replies",
    "sample_replies_batched",
    "solve_tilt",
    "tilt",
    "tilted_distribution",
]
