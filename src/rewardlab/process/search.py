"""Choosing among a policy's reasoning chains with a process reward model: best-of-N over whole chains,
and beam search over steps (``rewardlab prm search``).

Best-of-N (Lightman et al. 2023) samples N chains and keeps the one whose step probabilities score
highest (``chain_score``). Step-level beam search (as MedS³ and the PRM search literature use it)
grows ``beam`` partial chains one step at a time: each is extended by ``expansions`` sampled next steps,
every candidate is scored by the PRM on its steps so far, and the ``beam`` best go on; a chain that has
stated its answer (or that the policy ended) is finished. It spends the policy's tokens on the steps the
PRM believes in, where best-of-N spends them on whole chains decided only at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rewardlab.data.arithmetic import reply_steps, stated_answer
from rewardlab.data.chains import StepChain
from rewardlab.data.records import Prompt
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.step_scoring import step_logits
from rewardlab.progress import progress_bar
from rewardlab.rewards.step_aggregation import chain_score
from rewardlab.sampling.batched import decode_rows, reply_seed, sample_replies_batched
from rewardlab.sampling.generation import SampleConfig, prompt_prefix


@dataclass(frozen=True)
class Chosen:
    """The chain kept for one prompt, its score, and how many chains (or step candidates) were scored."""

    steps: tuple[str, ...]
    score: float
    candidates: int
    policy_tokens: int


def best_of_n_chains(
    lm: CausalLM,
    prm: RewardModel,
    prompts: Sequence[Prompt],
    config: SampleConfig,
    aggregation: str = "min",
    progress: bool = False,
) -> list[Chosen]:
    """For each prompt, the best of ``config.n`` sampled chains by the PRM (a reply with no text is no candidate)."""
    drawn = sample_replies_batched(lm, prompts, config, progress=progress)
    chosen = []
    for prompt, samples in zip(prompts, drawn, strict=True):
        chains = [StepChain(prompt, steps) for steps in (reply_steps(s.text) for s in samples) if steps]
        tokens = sum(s.tokens for s in samples)
        if not chains:
            chosen.append(Chosen((), float("-inf"), 0, tokens))
            continue
        scores = [chain_score(torch.sigmoid(t), aggregation) for t in step_logits(prm, chains)]
        best = max(range(len(chains)), key=scores.__getitem__)
        chosen.append(Chosen(chains[best].steps, scores[best], len(chains), tokens))
    return chosen


def step_beam_search(
    lm: CausalLM,
    prm: RewardModel,
    prompt: Prompt,
    *,
    beam: int = 4,
    expansions: int = 4,
    max_steps: int = 8,
    step_tokens: int = 48,
    temperature: float = 0.7,
    seed: int = 0,
    aggregation: str = "min",
) -> Chosen:
    """Beam search over steps for one prompt; a step is the policy's text up to its next line break."""
    if min(beam, expansions, max_steps, step_tokens) < 1 or not temperature > 0:
        raise ValueError("beam, expansions, max_steps and step_tokens must be >= 1 and temperature > 0")
    head = prompt_prefix(lm, prompt)
    beams: list[tuple[tuple[str, ...], float]] = [((), 0.0)]
    finished: list[tuple[tuple[str, ...], float]] = []
    scored = tokens = 0
    for _ in range(max_steps):
        prefixes = [head + lm.tokens("".join(s + "\n" for s in steps)) for steps, _ in beams]
        owners = [i for i in range(len(beams)) for _ in range(expansions)]
        seeds = [reply_seed(seed, prefixes[i], j) for i in range(len(beams)) for j in range(expansions)]
        decoded = decode_rows(lm, prefixes, owners, max_new_tokens=step_tokens, temperature=temperature, seeds=seeds)
        candidates: list[tuple[tuple[str, ...], bool]] = []
        for owner, (ids, ended) in zip(owners, decoded, strict=True):
            tokens += len(ids)
            line = next(
                (x.strip() for x in lm.tokenizer.decode(ids, skip_special_tokens=True).split("\n") if x.strip()), ""
            )
            if line:
                candidates.append(((*beams[owner][0], line), ended))
        if not candidates:
            break
        logits = step_logits(prm, [StepChain(prompt, steps) for steps, _ in candidates])
        scores = [chain_score(torch.sigmoid(t), aggregation) for t in logits]
        scored += len(candidates)
        ranked = sorted(range(len(candidates)), key=lambda i: -scores[i])[:beam]
        beams = []
        for i in ranked:
            steps, ended = candidates[i]
            done = ended or stated_answer(steps[-1:]) is not None
            (finished if done else beams).append((steps, scores[i]))
        if not beams:
            break
    pool = finished or beams
    if not pool:
        return Chosen((), float("-inf"), scored, tokens)
    steps, score = max(pool, key=lambda item: item[1])
    return Chosen(steps, score, scored, tokens)


def beam_search_all(
    lm: CausalLM, prm: RewardModel, prompts: Sequence[Prompt], progress: bool = False, **options
) -> list[Chosen]:
    """``step_beam_search`` for every prompt, with a progress bar."""
    chosen = []
    with progress_bar(progress, "beam search", len(prompts)) as advance:
        for prompt in prompts:
            chosen.append(step_beam_search(lm, prm, prompt, **options))
            advance()
    return chosen
