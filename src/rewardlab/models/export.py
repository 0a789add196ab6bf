"""``rewardlab export``: a saved reward model as the folder one consumer scores the way rewardlab does.

A saved folder already serves plain transformers, TRL's ``GRPOTrainer`` (conversational prompts)
and OpenRLHF (decoders); RewardBench's pipeline differs in one point: it renders conversations
with the chat template and then lets the tokenizer add its special tokens
(``rewardbench/models/pipeline.py``: ``self.tokenizer(samples, truncation=..., padding=...)``), where
TRL tokenises with ``add_special_tokens=False``. Its folder gets a template without them. Each
target is checked first: a model that target cannot score as rewardlab does is refused, with why.
"""

from __future__ import annotations

from pathlib import Path

from rewardlab.atomic import atomic_directory, write_text_atomic
from rewardlab.models.model_card import CARD_NAME, model_card_text
from rewardlab.models.reward_model import RewardModel, scalar_head
from rewardlab.models.sequences import special_tokens_around

EXPORT_TARGETS = ("trl", "openrlhf", "rewardbench")


def export_problem(model: RewardModel, target: str) -> str | None:
    """Why ``target`` would not give ``model``'s rewards, or None when it would."""
    if target not in EXPORT_TARGETS:
        return f"unknown target {target!r}; choose one of {', '.join(EXPORT_TARGETS)}"
    if model.info.head != "reward" or model.model.config.num_labels != 1:
        return (
            f"this model's head is {model.info.head!r} with {model.model.config.num_labels} outputs; "
            f"{target} reads one output as the reward (score it with rewardlab, or serve it: `rewardlab serve`)"
        )
    if target == "openrlhf":
        head = getattr(model.model, "score", None)
        if head is None or scalar_head(model.model) is not head:
            return (
                "an encoder (its head reads the pooled first token); OpenRLHF builds its own value head on the "
                "last token's hidden state, so it would compute another reward: train a decoder backbone, or "
                "serve the model (`rewardlab serve`) and point OpenRLHF's --remote_rm_url at /get_reward"
            )
        if getattr(head, "bias", None) is not None:
            return "the score head has a bias, which OpenRLHF's value head (Linear without bias) would drop"
    if target == "rewardbench" and model.info.text_format == "chat":
        prefix, suffix = special_tokens_around(model.tokenizer)
        if prefix or suffix:
            return (
                "RewardBench tokenises the chat template's text with the tokenizer's special tokens added, "
                "so this tokenizer's would appear twice"
            )
    return None


def export_model(model_dir: str | Path, target: str, output: str | Path) -> Path:
    """Write ``model_dir`` as ``target`` reads it into ``output`` (replaced whole, atomically)."""
    model_dir, output = Path(model_dir), Path(output)
    if output.resolve() == model_dir.resolve():
        raise ValueError(f"--output {output} is the model folder itself; choose another folder")
    model = RewardModel.from_pretrained(model_dir)
    if problem := export_problem(model, target):
        raise ValueError(f"{model_dir}: cannot export to {target}: {problem}")
    with atomic_directory(output) as tmp:
        model.write_folder(tmp, template_special_tokens=target != "rewardbench")
        card = (model_dir / CARD_NAME).read_text(encoding="utf-8") if (model_dir / CARD_NAME).is_file() else None
        card = card if card is not None else model_card_text(model.info)
        write_text_atomic(tmp / CARD_NAME, card + EXPORT_NOTES[target])
    return output


EXPORT_NOTES = {
    "trl": "\n## Exported for TRL\n\nThe same folder as saved: pass it as `GRPOTrainer(reward_funcs=...)` "
    "with conversational prompts.\n",
    "openrlhf": "\n## Exported for OpenRLHF\n\nLoad with `--reward_pretrain DIR --value_head_prefix score`; "
    "`--normalize_reward` reads `config.mean`/`config.std`. OpenRLHF scores the policy's own token ids, so "
    "the policy must share this model's tokenizer and text format.\n",
    "rewardbench": "\n## Exported for RewardBench\n\nThe chat template here leaves the special tokens to the "
    "tokenizer, which RewardBench's pipeline calls with them added. RewardBench pads on the left: run an "
    "encoder (BERT-like, which reads the first position) with `--batch_size 1`.\n",
}
