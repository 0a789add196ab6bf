"""The target policy's move in preference synthesis (``curation.synthesis``): k sampled replies a prompt.

Replies come from the batched sampler (``batched.py``: prompts read once, finished rows dropped), so
reply i of a prompt depends only on (seed, prompt, i): a re-sampled round, which passes another seed,
draws new replies, and a rerun with the same settings draws the same ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from rewardlab.curation.synthesis import Candidate, Sampler
from rewardlab.data.records import Prompt
from rewardlab.models.causal_lm import CausalLM
from rewardlab.sampling.batched import sample_replies_batched
from rewardlab.sampling.generation import SampleConfig


def policy_sampler(lm: CausalLM, *, max_new_tokens: int = 128, batch_rows: int = 64, progress: bool = False) -> Sampler:
    """A ``Sampler`` drawing from ``lm`` with at most ``max_new_tokens`` tokens a reply."""

    def sample(prompts: Sequence[Prompt], k: int, temperature: float, seed: int) -> list[list[Candidate]]:
        config = SampleConfig(n=k, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        drawn = sample_replies_batched(lm, prompts, config, batch_rows=batch_rows, progress=progress)
        return [[Candidate(s.text, s.finished) for s in samples] for samples in drawn]

    return sample
