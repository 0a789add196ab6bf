"""A scalar reward model stored in the plain Hugging Face format.

The weights are an ``AutoModelForSequenceClassification`` with one label, saved as safetensors,
so transformers loads it without rewardlab (which other libraries score it the same way, and how:
``consumer_fields.py`` and ``tests/test_consumers.py``). What rewardlab adds lives in the config
under ``rewardlab``: how texts were formatted, the maximum length, and the mean and standard
deviation of rewards on the training data (for later normalisation); ``README.md`` is the model card.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import types
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel
from transformers import logging as hf_logging

from rewardlab.atomic import atomic_directory
from rewardlab.data.records import Prompt
from rewardlab.models.backbones import resolve_backbone
from rewardlab.models.consumer_fields import consumer_tokenizer, is_plain_template, set_consumer_config
from rewardlab.models.first_token import compute_first_token_only
from rewardlab.models.formatting import TextFormat, choose_format, format_text
from rewardlab.models.model_card import write_model_card
from rewardlab.models.sequences import TILE_TOKENS, Encoded, encode_texts, pad_batch, pad_tile, scoring_tiles
from rewardlab.models.shared_prefix import pack_pairs, packed_pair_rewards
from rewardlab.models.users import UserExamples, UserTable
from rewardlab.models.weight_files import require_safetensors
from rewardlab.precision import Precision, resolve_precision
from rewardlab.progress import progress_bar
from rewardlab.rewards.aggregate import (
    aggregate_ensemble,
    combine_attributes,
    gpm_preference_logit,
    standardise_members,
)

log = logging.getLogger(__name__)


@dataclass
class RewardModelInfo:
    """What a checkpoint must remember to score texts the way it was trained on them."""

    text_format: TextFormat
    max_length: int
    backbone: str = ""
    objective: str = ""
    reward_mean: float | None = None
    reward_std: float | None = None
    temperature: float | None = None
    """T such that σ((r_a − r_b)/T) is calibrated on the validation split (temperature scaling)."""
    head: str = "reward"
    """What the outputs mean (``objectives.registry.Objective.head``): reward, attributes, ensemble or preference."""
    direction: list[float] | None = None
    """For an ``attributes`` head: the default weights combining the attributes (equal if unset)."""
    aggregation: str = "mean"
    """For an ``ensemble`` head: mean, wco or uwo."""
    uncertainty_weight: float = 0.0
    """For an ``ensemble`` head aggregated by ``uwo``: λ in mean − λ·variance."""
    member_means: list[float] | None = None
    member_stds: list[float] | None = None
    """For an ``ensemble`` head: each output's mean and spread on training replies; the outputs are
    standardised with them before they are aggregated, so no member's scale decides the ensemble."""
    objective_args: dict | None = None
    """The objective's options, so a ``preference`` head compares pairs as it was trained to."""
    users: str | None = None
    """For a ``users`` head (a pluralistic model): the user model (``rewards.pluralistic``) that turns a
    user's row of ``users.safetensors`` into their reward; None for every other model."""
    status: str = "complete"
    """``unfinished`` for the best weights so far that a training run saves as it goes (no reward
    statistics, no temperature); ``complete`` once the run has finished. Loading an unfinished model warns."""

    @property
    def scores_pairs(self) -> bool:
        """True when the model compares two replies rather than scoring each alone."""
        return self.head == "preference"


def disable_dropout(model: torch.nn.Module) -> None:
    """Set every dropout probability to zero.

    Reward training gains little from dropout, and on CPUs attention with dropout leaves the
    fused kernel and runs about 2.5x slower. Config fields are zeroed too so that attention
    implementations reading them directly see the change.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    for name, value in list(vars(model.config).items()):
        if "dropout" in name and isinstance(value, float):
            setattr(model.config, name, 0.0)


class RewardModel:
    """A backbone with a scalar head, its tokenizer, and how texts are formatted for it."""

    def __init__(
        self, model: PreTrainedModel, tokenizer, info: RewardModelInfo, users: UserTable | None = None
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.users = users
        """A pluralistic model's per-user rows (``info.head == "users"``); None for every other model."""
        keep_head_in_fp32(model)

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_backbone(
        cls,
        backbone: str,
        *,
        max_length: int = 256,
        text_format: str = "auto",
        dropout: bool = False,
        outputs: int = 1,
        head: str = "reward",
    ) -> RewardModel:
        """A new reward model: pretrained ``backbone`` plus a freshly initialised head of ``outputs`` values."""
        path = require_safetensors(resolve_backbone(backbone), str(backbone), "AutoModel")
        tokenizer = AutoTokenizer.from_pretrained(path)
        ensure_pad_token(tokenizer)
        with _quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=outputs, trust_remote_code=False, use_safetensors=True, dtype=torch.float32
            )
        model.config.pad_token_id = tokenizer.pad_token_id
        if not dropout:
            disable_dropout(model)
        # a rewardlab folder as backbone: its template writes the plain format, it is no chat model's
        if text_format == "auto" and is_plain_template(getattr(tokenizer, "chat_template", None)):
            text_format = "plain"
        info = RewardModelInfo(choose_format(tokenizer, text_format), max_length, backbone=str(backbone), head=head)
        compute_first_token_only(model)
        return cls(model, tokenizer, info)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> RewardModel:
        """Load a saved reward model (rewardlab's or any local one-label sequence classifier)."""
        path = Path(path)
        if problem := saved_model_problem(path):
            raise FileNotFoundError(f"{path}: {problem}")
        require_safetensors(path, auto_class="AutoModelForSequenceClassification")
        tokenizer = AutoTokenizer.from_pretrained(path)
        ensure_pad_token(tokenizer)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, trust_remote_code=False, use_safetensors=True, dtype=torch.float32
        )
        saved = getattr(model.config, "rewardlab", None) or {}
        if model.config.num_labels != 1 and saved.get("head", "reward") == "reward":
            raise ValueError(
                f"{path}: a reward model has one output (num_labels=1), this one has {model.config.num_labels} "
                "and no rewardlab head that says how to combine them"
            )
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        info = RewardModelInfo(
            text_format=saved.get("text_format") or choose_format(tokenizer),
            max_length=int(saved.get("max_length") or min(tokenizer.model_max_length, 512)),
            **{
                k: saved[k]
                for k in (
                    "backbone",
                    "objective",
                    "reward_mean",
                    "reward_std",
                    "temperature",
                    "head",
                    "direction",
                    "aggregation",
                    "uncertainty_weight",
                    "member_means",
                    "member_stds",
                    "objective_args",
                    "users",
                    "status",
                )
                if k in saved
            },
        )
        if info.status != "complete":
            warnings.warn(unfinished_warning(path), UnfinishedModelWarning, stacklevel=2)
        model.eval()
        compute_first_token_only(model)
        return cls(model, tokenizer, info, UserTable.load(path) if info.users else None)

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the model folder atomically: weights (safetensors), tokenizer, config with ``rewardlab``,
        and a model card.

        The folder also carries what other libraries read (``consumer_fields``): the tokenizer cuts
        from the left at ``max_length``, a ``plain`` model's chat template writes its format, the one
        label is ``reward``, and ``config.mean``/``config.std`` hold the reward statistics.
        """
        with atomic_directory(path) as tmp:
            self.write_folder(tmp)
            write_model_card(tmp, self.info)
        return Path(path)

    def write_folder(self, folder: Path, *, template_special_tokens: bool = True) -> None:
        """Weights, config and tokenizer into an existing ``folder`` (``save_pretrained`` without the card);
        ``template_special_tokens`` as in ``consumer_fields.plain_chat_template``."""
        model, info = self.model, self.info
        model.config.rewardlab = asdict(info)
        set_consumer_config(model.config, info.head, info.reward_mean, info.reward_std)
        model.save_pretrained(folder, safe_serialization=True)
        consumer_tokenizer(self.tokenizer, info.text_format, info.max_length, template_special_tokens).save_pretrained(
            folder
        )
        if self.users is not None:
            self.users.save(folder)

    # -- text to tokens ----------------------------------------------------------------------------

    def format(self, prompt: Prompt, reply: str) -> str:
        return format_text(prompt, reply, self.info.text_format, self.tokenizer)

    def encode(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> Encoded:
        """Token ids of each (prompt, reply), left-truncated to ``max_length``."""
        texts = [self.format(p, r) for p, r in zip(prompts, replies, strict=True)]
        return encode_texts(
            self.tokenizer, texts, self.info.max_length, add_special_tokens=self.info.text_format == "plain"
        )

    # -- scoring -----------------------------------------------------------------------------------

    def rewards(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One reward per row; decoders read it at the last non-padding token."""
        return sequence_rewards(self.model, input_ids, attention_mask)

    @property
    def shares_prefix(self) -> bool:
        """Whether a pair's shared prompt can be computed once: true for causal decoders only.

        Decoder classification heads are named ``score`` in transformers (Llama, Qwen, Mistral,
        GPT-2...), encoder heads ``classifier``; see ``models/shared_prefix.py`` for why encoders
        cannot share.
        """
        return hasattr(self.model, "score") and not getattr(self.model.config, "is_encoder_decoder", False)

    def pair_rewards(
        self, chosen: Sequence[Sequence[int]], rejected: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Rewards of the chosen and rejected reply of each pair, and how many real tokens were computed."""
        if self.shares_prefix:
            packed = pack_pairs(chosen, rejected, self.tokenizer.pad_token_id)
            chosen_rewards, rejected_rewards = packed_pair_rewards(self.model, packed)
            return chosen_rewards, rejected_rewards, packed.real_tokens
        return self.separate_pair_rewards(chosen, rejected)

    def separate_pair_rewards(
        self, chosen: Sequence[Sequence[int]], rejected: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """As :meth:`pair_rewards`, with every text in its own padded row (a decoder's prompt read twice)."""
        device = self.model.device
        input_ids, mask = pad_batch([*chosen, *rejected], self.tokenizer.pad_token_id)
        chosen_rewards, rejected_rewards = self.rewards(input_ids.to(device), mask.to(device)).split(len(chosen))
        return chosen_rewards, rejected_rewards, int(mask.sum())

    @torch.inference_mode()
    def outputs_ids(
        self,
        ids: Sequence[Sequence[int]],
        *,
        precision: Precision = "auto",
        tile_tokens: int = TILE_TOKENS,
        progress: bool = False,
        head_inputs: bool = False,
    ) -> torch.Tensor:
        """The head's outputs for token sequences, (N,) or (N, D), computed in fixed-shape tiles
        (see ``scoring_tiles``); with ``head_inputs``, the (N, hidden) vectors the head reads instead.

        A text's outputs do not depend on what else is scored with it, nor in which order, bit
        for bit, in fp32 and in bf16, at a given ``tile_tokens`` (another pass size changes the matrix
        shapes, and so the last bits).
        """
        self.model.eval()
        device = self.model.device
        module = self.model
        if resolve_precision(precision, device) == "bf16" and module.dtype != torch.bfloat16:
            module = bf16_copy(module)
        head = scalar_head(module)
        seen: list[torch.Tensor] = []
        hook = head.register_forward_pre_hook(lambda _, args: seen.append(args[0])) if head_inputs else None
        width = head.in_features if head_inputs else self.model.config.num_labels
        outputs = torch.zeros((len(ids), width) if width > 1 else (len(ids),))
        try:
            with progress_bar(progress, "scoring", len(ids)) as advance:
                for tile in scoring_tiles([len(s) for s in ids], tile_tokens):
                    input_ids, mask = pad_tile([ids[i] for i in tile.indices], tile, self.tokenizer.pad_token_id)
                    values = sequence_rewards(module, input_ids.to(device), mask.to(device))
                    if head_inputs:  # a decoder's head reads every position: keep the last real token's
                        values = seen.pop().float()
                        values = values[torch.arange(len(values)), mask.sum(1) - 1] if values.dim() == 3 else values
                    outputs[tile.indices] = values.cpu()[: len(tile.indices)]
                    advance(len(tile.indices))
        finally:
            if hook is not None:
                hook.remove()
        return outputs

    def score_ids(
        self,
        ids: Sequence[Sequence[int]],
        *,
        precision: Precision = "auto",
        tile_tokens: int = TILE_TOKENS,
        progress: bool = False,
        direction: Sequence[float] | None = None,
        user: str | UserExamples | None = None,
    ) -> list[float]:
        """One reward per token sequence: the head's outputs reduced as its ``info.head`` says (for a
        pluralistic model, for ``user``: see :meth:`user_row`)."""
        row = self.user_row(user, precision=precision)
        outputs = self.outputs_ids(ids, precision=precision, tile_tokens=tile_tokens, progress=progress)
        return self.reduce(outputs, direction=direction, user_row=row)[0].tolist()

    def user_row(self, user: str | UserExamples | None, *, precision: Precision = "auto") -> torch.Tensor | None:
        """The row a pluralistic model scores with: None for the population, a known user id's row, or
        the row the user model fits (``fit``, heads frozen) to a new user's labelled pairs."""
        if user is None:
            return None
        if self.users is None:
            raise ValueError(
                f"this model gives one reward for everyone (head {self.info.head!r}), not one per user; "
                "score without a user (--user / --user-examples are for pluralistic models)"
            )
        if not isinstance(user, UserExamples):
            return self.users.row(user).detach()
        k = len(user.prompts)
        ids = self.encode([*user.prompts, *user.prompts], [*user.chosen, *user.rejected]).ids
        outputs = self.outputs_ids(ids, precision=precision).clone().reshape(2 * k, -1)  # a normal tensor
        return self.users.user_model.fit(outputs[:k], outputs[k:], self.users.rows.detach())

    def reduce(
        self,
        outputs: torch.Tensor,
        *,
        direction: Sequence[float] | None = None,
        user_row: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(reward, uncertainty or None) from head outputs; ``direction`` overrides an attributes head's;
        ``user_row`` is the user a pluralistic model scores for (default: the population)."""
        info = self.info
        if info.head == "reward":
            return outputs, None
        if info.head == "users":
            if self.users is None:
                raise ValueError("this pluralistic model has no user table (users.safetensors) to score with")
            with torch.no_grad():
                row = self.users.population() if user_row is None else user_row
                outputs = outputs.reshape(len(outputs), -1)
                return self.users.user_model.reward(outputs.float(), row.to(outputs.device).float()), None
        if info.head == "attributes":
            direction = direction if direction is not None else info.direction
            return combine_attributes(outputs, direction if direction is not None else [1.0] * outputs.shape[-1]), None
        if info.head == "ensemble":
            if info.member_means is not None and info.member_stds is not None:
                outputs = standardise_members(outputs, info.member_means, info.member_stds)
            return aggregate_ensemble(outputs, info.aggregation, info.uncertainty_weight)
        raise ValueError(
            "this model compares replies (preference embeddings) and gives no reward for one reply alone; "
            "compare pairs with model.preference_logits(...) or `rewardlab eval`"
        )

    def preference_logits(
        self, a_ids: Sequence[Sequence[int]], b_ids: Sequence[Sequence[int]], **kwargs
    ) -> list[float]:
        """log-odds that each ``a`` is preferred to its ``b``: r_a − r_b for a reward, or the skew-symmetric
        form of preference embeddings (``heads.preference_logit``) for a pair-scoring model."""
        outputs = self.outputs_ids([*a_ids, *b_ids], **kwargs)
        a, b = outputs[: len(a_ids)], outputs[len(a_ids) :]
        if self.info.scores_pairs:
            args = self.info.objective_args or {}
            options = {k: args[k] for k in ("beta", "normalize") if k in args}
            return gpm_preference_logit(a, b, **options).tolist()
        return (self.reduce(a)[0] - self.reduce(b)[0]).tolist()

    def score(
        self,
        prompts: Sequence[Prompt],
        replies: Sequence[str],
        *,
        precision: Precision = "auto",
        progress: bool = False,
        direction: Sequence[float] | None = None,
        user: str | UserExamples | None = None,
    ) -> list[float]:
        """The reward of each reply to its prompt (bf16 where the hardware computes it natively).

        ``direction`` weighs the attributes of a multi-attribute model (default: the saved one). ``user``
        says whom a pluralistic model scores for: None (the population), a user id it was trained with,
        or a new user's ``UserExamples`` (their row fitted from those pairs); other models refuse it.
        """
        encoded = self.encode(prompts, replies)
        return self.score_ids(encoded.ids, precision=precision, progress=progress, direction=direction, user=user)

    def score_with_uncertainty(
        self, prompts: Sequence[Prompt], replies: Sequence[str], *, precision: Precision = "auto"
    ) -> tuple[list[float], list[float]]:
        """(reward, members' variance) per reply, for an ensemble head; aggregated as saved in ``info``."""
        if self.info.head != "ensemble":
            raise ValueError(f"only an ensemble model has an uncertainty (this model's head: {self.info.head})")
        outputs = self.outputs_ids(self.encode(prompts, replies).ids, precision=precision)
        reward, variance = self.reduce(outputs)
        return reward.tolist(), variance.tolist()


class UnfinishedModelWarning(UserWarning):
    """A model saved by a training run that has not finished was loaded."""


def unfinished_warning(path: Path) -> str:
    """Why an unfinished model should not be used as it is, and how to finish it."""
    run = path.resolve().parent
    return (
        f"{path}: saved by a training run that did not finish (killed or stopped): the best weights so far, "
        "without reward statistics or a calibration temperature; finish it with "
        f"`rewardlab train --output {run} --resume` (same options), or train again"
    )


def saved_model_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a saved model folder, or None when it is one (checked before loading, so
    that the user reads which path is wrong rather than transformers' guess that it names a hub model)."""
    path = Path(path)
    if not path.exists():
        return "no such folder"
    if not path.is_dir():
        return "is a file; a saved reward model is a folder"
    if not (path / "config.json").is_file():
        return "not a saved reward model (no config.json)"
    return None


def sequence_rewards(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return model(input_ids=input_ids, attention_mask=attention_mask).logits.squeeze(-1).float()


def bf16_copy(model: PreTrainedModel) -> PreTrainedModel:
    """A copy of ``model`` with its weights in bf16 and its scalar head in fp32, with exact values.

    Computing in bf16 weights is faster than bf16 autocast over fp32 weights, which casts every
    weight again at every pass (see ``benchmarks/ablation.py`` for training).
    """
    clone = copy.deepcopy(model).to(torch.bfloat16)
    head = scalar_head(clone)
    if head is not None:
        head.float().load_state_dict(scalar_head(model).state_dict())
    return clone


def scalar_head(model: PreTrainedModel) -> torch.nn.Module | None:
    """The one-output head: ``classifier`` on encoders, ``score`` on decoders."""
    return getattr(model, "classifier", None) or getattr(model, "score", None)


def keep_head_in_fp32(model: PreTrainedModel) -> None:
    """Run the scalar head in fp32, outside bf16 autocast and whatever the backbone's dtype.

    bf16 keeps about 3 significant digits: a reward of 1.234 would come out as 1.234375, near-ties
    would become exact ties, and reward gaps in the loss would be rounded. The backbone gains the
    speed of bf16; the one dot product of the head costs nothing in fp32. The forward is bound with
    ``MethodType`` so that a deep copy of the model runs its own head, not the original's.
    """
    head = scalar_head(model)
    if head is None or getattr(head, "_rewardlab_fp32", False):
        return
    head.forward = types.MethodType(_fp32_head_forward, head)
    head._rewardlab_fp32 = True


def _fp32_head_forward(head: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    with torch.autocast(hidden.device.type, enabled=False):
        if isinstance(head, torch.nn.Linear):
            return row_invariant_linear(hidden.float(), head.weight.float(), head.bias)
        return type(head).forward(head, hidden.float())


def row_invariant_linear(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``hidden @ weight.T + bias`` computed the same way for every row, as a product and a sum.

    A matrix product with few outputs (a reward head has one) is computed by BLAS kernels that
    handle rows in blocks of four and the remainder otherwise: on MKL the reward of a text depended,
    in its last bits, on its row in the scoring pass (rows 0-3 vs row 4 of a 6-row pass). The
    elementwise product and the sum over the last axis reduce each row alone, so a text's reward is
    the same bit for bit at any row, in any pass (``tests/test_batch_invariance.py``).
    """
    out = (hidden.unsqueeze(-2) * weight).sum(-1)
    return out if bias is None else out + bias.float()


def ensure_pad_token(tokenizer) -> None:
    """Decoders often ship without a pad token; padding needs one (it is masked out)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token


@contextlib.contextmanager
def _quiet_transformers():
    """Hide the expected 'newly initialised weights: score/classifier' warning for a new head."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def inference_copy(model: RewardModel, precision: Precision = "auto") -> tuple[RewardModel, Precision]:
    """``model`` ready to score many times in ``precision``, and that precision resolved.

    ``score_ids`` in bf16 copies an fp32 model's weights to bf16 on every call; a server or a
    trainer's reward function scores thousands of times, so the copy is made once here. Scores
    are bit-identical to ``model.score(..., precision=precision)``; ``model`` is left as it is.
    """
    resolved = resolve_precision(precision, model.model.device)
    if resolved == "bf16" and model.model.dtype != torch.bfloat16:
        model = RewardModel(bf16_copy(model.model), model.tokenizer, model.info, model.users)
    return model, resolved
