"""The distillation loop: batch → teacher distributions (no grad) → student distributions → loss → step.

Why not the policy trainer with more batch fields: it precomputes what the loss needs once for all
pairs, and a teacher's full-vocabulary distributions for every reply token of a data set do not fit
(SmolLM2: 49,152 floats per token). Here they are computed per micro-batch of ``micro_pairs`` pairs,
used and dropped; gradients accumulate over the micro-batches of a step. Batches follow the policy trainer's
seeded order; checkpoints are :mod:`rewardlab.runs.checkpoint`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from rewardlab.data.records import PreferencePair
from rewardlab.distill.distributions import ReplyDistributions, reply_distributions
from rewardlab.distill.losses import DISTILL_METHODS, LossWeights, distillation_loss, teacher_advantages
from rewardlab.models.formatting import choose_format
from rewardlab.models.logprobs import PairTokens
from rewardlab.models.pair_encoding import encode_pairs
from rewardlab.policy.trainer import batches, clip, disable_dropout, weight_problems
from rewardlab.runs.checkpoint import TrainState, checkpoint_extra, load_checkpoint, save_checkpoint

WEIGHT_NAMES = ("nll", "chosen_kl", "rejected_kl", "advantage")


@dataclass
class DistillTrainConfig:
    method: str = "dckd"
    """sft, kd, dckd, adpa or adpa+dckd (:data:`rewardlab.distill.losses.DISTILL_METHODS`)."""
    weights: dict[str, float] = field(default_factory=dict)
    """Overrides of the method's term weights: nll, chosen_kl, rejected_kl, advantage."""
    advantage_beta: float = 1.0
    """β of the teacher's advantage β·log(π_T/π_ref) (the reference code's plain log-ratio: 1)."""
    steps: int = 100
    batch_pairs: int = 8
    """Pairs per optimiser step."""
    micro_pairs: int = 2
    """Pairs per forward pass: the full-vocabulary distributions of this many pairs are held at once."""
    lr: float = 1e-5
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    seed: int = 0
    text_format: str = "auto"
    max_prompt_tokens: int = 512
    max_reply_tokens: int = 512
    max_row_tokens: int | None = None
    save_every: int = 50

    def loss_weights(self) -> LossWeights:
        base = DISTILL_METHODS.get(self.method.strip().lower(), LossWeights())
        return replace(base, **{k: float(v) for k, v in self.weights.items() if k in WEIGHT_NAMES})

    def problems(self) -> list[str]:
        found = []
        if self.method.strip().lower() not in DISTILL_METHODS:
            found.append(f"method must be one of {', '.join(DISTILL_METHODS)} (got {self.method!r})")
        unknown = [k for k in self.weights if k not in WEIGHT_NAMES]
        if unknown:
            found.append(f"weights: unknown term(s) {', '.join(unknown)} (terms: {', '.join(WEIGHT_NAMES)})")
        else:
            found += [f"weights: {p}" for p in self.loss_weights().problems()]
        for name in ("steps", "batch_pairs", "micro_pairs", "max_prompt_tokens", "max_reply_tokens", "save_every"):
            if getattr(self, name) < 1:
                found.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("lr", "advantage_beta"):
            if not getattr(self, name) > 0:
                found.append(f"{name} must be > 0 (got {getattr(self, name)})")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            found.append(f"max_grad_norm must be > 0 or None (got {self.max_grad_norm})")
        return found


@dataclass(frozen=True)
class DistillTrainResult:
    history: list[dict[str, float]]
    """Per step: loss, grad_norm, and the batch mean of each weighted term (nll, chosen_kl, ...)."""


def shared_vocabulary_problems(
    student: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    teacher: torch.nn.Module,
    teacher_tokenizer: PreTrainedTokenizerBase | None,
    name: str = "teacher",
) -> list[str]:
    """Why ``teacher``'s distributions cannot be compared with the student's, if they cannot: the
    losses compare probabilities token id by token id, so both need one tokenizer and one output size."""
    found = []
    size, expected = teacher.get_output_embeddings().weight.shape[0], student.get_output_embeddings().weight.shape[0]
    if size != expected:
        found.append(f"{name}: its output layer has {size} tokens, the student's {expected}")
    if teacher_tokenizer is not None and teacher_tokenizer.get_vocab() != tokenizer.get_vocab():
        ours, theirs = tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
        differ = sorted(set(ours.items()) ^ set(theirs.items()), key=lambda kv: kv[1])[:3]
        shown = ", ".join(f"{t!r}→{i}" for t, i in differ)
        found.append(
            f"{name}: its tokenizer differs from the student's ({len(theirs)} vs {len(ours)} tokens; e.g. {shown})"
        )
    if found:
        found[-1] += "; teacher and student must share a tokenizer (build the student with `rewardlab distill student`)"
    return found


def train_distill(
    student: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    config: DistillTrainConfig,
    teacher: torch.nn.Module | None = None,
    teacher_reference: torch.nn.Module | None = None,
    log: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> DistillTrainResult:
    """Train ``student`` in place on ``pairs`` with the configured method's loss.

    ``teacher`` (the aligned model) is needed by every term but the NLL, ``teacher_reference`` (the
    teacher before alignment) by the advantage. For ADPA the rejected replies should be the student's
    own samples, as in the paper (:func:`rewardlab.distill.student_samples.with_student_rejected`); the
    loop trains on whatever replies ``pairs`` hold.
    """
    weights = config.loss_weights()
    problems = config.problems()
    if weights.needs_teacher and teacher is None:
        problems.append(f"method {config.method!r} needs a teacher (the aligned model)")
    if weights.needs_teacher_reference and teacher_reference is None:
        problems.append(f"method {config.method!r} needs a teacher_reference (the teacher before alignment)")
    if tokenizer.pad_token_id is None:
        problems.append("the tokenizer has no pad token; set tokenizer.pad_token before training")
    for name, model in (("teacher", teacher), ("teacher_reference", teacher_reference)):
        if model is not None:
            problems += shared_vocabulary_problems(student, tokenizer, model, None, name)
    problems += weight_problems(pairs)
    if problems:
        raise ValueError("invalid distillation configuration:\n" + "\n".join(f"  - {p}" for p in problems))
    tokens = encode_pairs(
        tokenizer,
        pairs,
        choose_format(tokenizer, config.text_format),
        config.max_prompt_tokens,
        config.max_reply_tokens,
    )
    frozen = [m.eval().requires_grad_(False) for m in (teacher, teacher_reference) if m is not None]
    for model in frozen:
        disable_dropout(model)
    disable_dropout(student)
    student.train()
    trained = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    pair_weights = torch.tensor([p.weight for p in pairs], dtype=torch.float32)
    history: list[dict[str, float]] = []
    checkpoint = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume and checkpoint is not None and (checkpoint / "state.json").is_file():
        done = load_checkpoint(checkpoint, student, optimizer, None).step
        history = checkpoint_extra(checkpoint)["history"][:done]
    pad = tokenizer.pad_token_id
    order = batches(len(tokens), config.batch_pairs, config.steps, config.seed)
    for step, indices in enumerate(order[len(history) :], start=len(history) + 1):
        sums: dict[str, float] = {}
        total = 0.0
        for start in range(0, len(indices), config.micro_pairs):
            micro = indices[start : start + config.micro_pairs]
            losses, terms = _micro_batch_loss(
                student, teacher, teacher_reference, tokens.select(micro), pad, weights, config
            )
            objective = (losses * pair_weights[micro].to(losses.device)).sum() / len(indices)
            objective.backward()
            total += objective.item()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.sum().item()
        grad_norm = clip(trained, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        values = {"loss": total, "grad_norm": grad_norm, **{k: v / len(indices) for k, v in sums.items()}}
        history.append(values)
        if log is not None:
            log(step, values)
        if checkpoint is not None and (step % config.save_every == 0 or step == config.steps):
            save_checkpoint(checkpoint, student, optimizer, None, TrainState(step=step), {"history": history})
    student.eval()
    return DistillTrainResult(history)


def _micro_batch_loss(
    student: torch.nn.Module,
    teacher: torch.nn.Module | None,
    teacher_reference: torch.nn.Module | None,
    tokens: PairTokens,
    pad_id: int,
    weights: LossWeights,
    config: DistillTrainConfig,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-pair losses of one micro-batch; the teachers' distributions live only inside this call."""
    teacher_out: ReplyDistributions | None = None
    advantages = None
    with torch.no_grad():
        if weights.needs_teacher and teacher is not None:
            teacher_out = reply_distributions(teacher, tokens, pad_id, config.max_row_tokens)
        if weights.needs_teacher_reference and teacher_reference is not None and teacher_out is not None:
            reference = reply_distributions(teacher_reference, tokens, pad_id, config.max_row_tokens)
            advantages = teacher_advantages(teacher_out.rejected, reference.rejected, config.advantage_beta)
            del reference
    s = reply_distributions(student, tokens, pad_id, config.max_row_tokens)
    device = s.chosen.device
    out = distillation_loss(
        weights,
        s.chosen_mask,
        s.rejected_mask,
        chosen_token_logps=s.token_logps("chosen"),
        student_chosen_logps=s.chosen,
        student_rejected_logps=s.rejected,
        teacher_chosen_logps=teacher_out.chosen.to(device) if teacher_out is not None else None,
        teacher_rejected_logps=teacher_out.rejected.to(device) if teacher_out is not None else None,
        rejected_advantages=advantages.to(device) if advantages is not None else None,
    )
    return out.losses, out.terms
