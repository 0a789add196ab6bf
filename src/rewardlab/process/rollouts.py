"""Step labels without annotators: Monte-Carlo rollouts of a policy from each step (``rewardlab prm label``).

Math-Shepherd (Wang et al. 2024) labels step t of a chain with answer a* by letting a policy complete
the chain k times from its first t steps and reading the answers a_j of the completions:

    soft:  y_t = (1/k) Σ_j 1[a_j = a*]        hard:  y_t = 1[∃ j: a_j = a*]

MedS³ trains its PRM on such labels of a small model's own steps. The last step needs no rollout: the
chain has stated its answer, so y_T = 1[the chain's answer = a*]. Answers are read as the last "the
answer is N" a text states (``data.arithmetic.stated_answer``), so the chains' ``answer`` is a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from rewardlab.data.arithmetic import parse_number, stated_answer
from rewardlab.data.chains import StepChain
from rewardlab.models.causal_lm import CausalLM
from rewardlab.progress import progress_bar
from rewardlab.sampling.batched import decode_rows, reply_seed
from rewardlab.sampling.generation import prompt_prefix

ESTIMATES = ("soft", "hard")


def rollout_label(answers: Sequence[Fraction | None], answer: Fraction, estimate: str = "soft") -> float:
    """A step's label from its rollouts' answers (None: the rollout stated none)."""
    if estimate not in ESTIMATES:
        raise ValueError(f"estimate must be soft or hard (got {estimate!r})")
    if not answers:
        raise ValueError("a step needs at least one rollout")
    hits = sum(a == answer for a in answers)
    return hits / len(answers) if estimate == "soft" else float(hits > 0)


def reference_answer(chain: StepChain) -> Fraction:
    """The chain's ``answer`` as a number, or a ValueError naming the chain."""
    where = chain.source or chain.id or "a chain"
    if chain.answer is None:
        raise ValueError(f'{where}: field "answer" is missing (rollout labels compare the rollouts\' answers with it)')
    try:
        return parse_number(chain.answer)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f'{where}: field "answer" is {chain.answer!r} (expected a number)') from None


def monte_carlo_labels(
    lm: CausalLM,
    chains: Sequence[StepChain],
    *,
    rollouts: int = 8,
    estimate: str = "soft",
    temperature: float = 0.7,
    max_new_tokens: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> list[StepChain]:
    """``chains`` with every step labelled from ``rollouts`` completions of ``lm`` (the labels they had are
    replaced). Rollouts are seeded by ``seed``, the prefix and their index, so a rerun gives the same labels."""
    if rollouts < 1 or max_new_tokens < 1 or not temperature > 0:
        raise ValueError(
            f"rollouts and max_new_tokens must be >= 1 and temperature > 0 "
            f"(got {rollouts}, {max_new_tokens}, {temperature})"
        )
    answers = [reference_answer(chain) for chain in chains]
    labelled = []
    with progress_bar(progress, f"rollouts ({rollouts} a step)", len(chains)) as advance:
        for chain, answer in zip(chains, answers, strict=True):
            head = prompt_prefix(lm, chain.prompt)
            prefixes = [head + lm.tokens("\n".join(chain.steps[:t]) + "\n") for t in range(1, len(chain.steps))]
            owners = [i for i in range(len(prefixes)) for _ in range(rollouts)]
            seeds = [reply_seed(seed, prefixes[i], j) for i in range(len(prefixes)) for j in range(rollouts)]
            decoded = (
                decode_rows(lm, prefixes, owners, max_new_tokens=max_new_tokens, temperature=temperature, seeds=seeds)
                if prefixes
                else []
            )
            texts = [lm.tokenizer.decode(ids, skip_special_tokens=True) for ids, _ in decoded]
            labels = [
                rollout_label([stated_answer([t]) for t in texts[i * rollouts : (i + 1) * rollouts]], answer, estimate)
                for i in range(len(prefixes))
            ]
            labels.append(float(stated_answer(chain.steps) == answer))
            labelled.append(StepChain(chain.prompt, chain.steps, tuple(labels), chain.answer, chain.id, chain.source))
            advance()
    return labelled
