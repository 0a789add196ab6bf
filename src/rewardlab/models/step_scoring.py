"""A reward model read step by step: each prefix of a chain's steps scored after the prompt.

A process reward model (``rewardlab prm train``) learns to score the prompt followed by a chain's first t
steps, one a line (``StepChain.prefix``), with the logit that the chain is still right after step t. This
module turns chains, or plain replies split at their lines, into those prefixes and scores them; it sits
with the models so that both ``process`` and the ``prm`` scorer kind of ``evaluate`` read chains one way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from rewardlab.data.chains import StepChain
from rewardlab.data.readers import read_json_file
from rewardlab.data.records import DataError, Prompt
from rewardlab.models.reward_model import RewardModel, saved_model_problem
from rewardlab.precision import Precision

STEP_OBJECTIVE = "step_bce"
"""The start of a process (or outcome) reward model's saved ``info.objective``: ``step_bce (process supervision)``."""


def split_steps(reply: str) -> tuple[str, ...]:
    """A reply as the steps a PRM was trained on: its lines that hold text, stripped, as ``prm search``
    reads a policy's chain (``data.arithmetic.reply_steps``, without its stop at the stated answer) and as
    a chains file lists them. A reply with no text is one empty step, so the PRM reads the prompt alone."""
    steps = tuple(line.strip() for line in reply.splitlines() if line.strip())
    return steps or ("",)


def reply_chains(prompts: Sequence[Prompt], replies: Sequence[str]) -> list[StepChain]:
    """Each reply to its prompt as a chain of steps (``split_steps``)."""
    return [StepChain(prompt, split_steps(reply)) for prompt, reply in zip(prompts, replies, strict=True)]


def step_rows(chains: Sequence[StepChain], outcome_only: bool = False) -> tuple[list, list[str], list[int]]:
    """(prompts, prefixes, chain of each row): one row per step, or only each chain's last (``outcome_only``)."""
    prompts, prefixes, owners = [], [], []
    for index, chain in enumerate(chains):
        for count in range(len(chain.steps) if outcome_only else 1, len(chain.steps) + 1):
            prompts.append(chain.prompt)
            prefixes.append(chain.prefix(count))
            owners.append(index)
    return prompts, prefixes, owners


def step_logits(
    model: RewardModel,
    chains: Sequence[StepChain],
    *,
    precision: Precision = "auto",
    progress: bool = False,
    outcome_only: bool = False,
) -> list[Tensor]:
    """Each chain's step logits r_1..r_T: the model's score of the prompt followed by the first t steps
    (with ``outcome_only``, r_T alone: the last is all that the ``last`` aggregate reads).

    Any reward model can be read this way; one trained by ``rewardlab prm train`` gives logits of the
    probability that the chain is still right (σ(r_t)). Every prefix is its own sequence, so an encoder
    never sees the steps after the one it scores; and a text's score does not depend on what else is
    scored with it (``RewardModel.outputs_ids``), so r_T is the same bit for bit either way.
    """
    prompts, prefixes, _ = step_rows(chains, outcome_only)
    scores = torch.tensor(model.score(prompts, prefixes, precision=precision, progress=progress))
    return list(scores.split([1 if outcome_only else len(chain.steps) for chain in chains]))


def step_model_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a model that ``rewardlab prm train`` saved (process or outcome supervision), or
    None; read from its config, before any weights load."""
    if problem := saved_model_problem(path):
        return f"{path}: {problem}"
    try:
        config = read_json_file(Path(path) / "config.json")
    except DataError as error:
        return str(error)
    saved = config.get("rewardlab") if isinstance(config, dict) else None
    objective = saved.get("objective", "") if isinstance(saved, dict) else ""
    if isinstance(objective, str) and objective.startswith(STEP_OBJECTIVE):
        return None
    if not isinstance(saved, dict):
        trained = "not saved by rewardlab"
    else:
        trained = f"trained with objective {objective!r}" if objective else "saved with no training objective"
    return (
        f"{path}: not a process reward model ({trained}; a PRM's steps are scored with the logit that the chain "
        "is still right, as `rewardlab prm train` trains one); score whole replies with --scorer reward-model"
    )
