"""The model card (``README.md``) of a saved reward model folder: Hub metadata, what the reward means,
how texts are formatted, held-out results, and a transformers snippet that reproduces ``rewardlab score``.

The snippet is executed by ``tests/test_model_card.py`` and must give rewardlab's scores (1e-5, fp32),
also for a text longer than ``max_length``: keep the two in step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rewardlab.atomic import write_text_atomic


class RewardModelInfo(Protocol):
    """What the card reads of ``reward_model.RewardModelInfo`` (which imports this module)."""

    text_format: str
    max_length: int
    backbone: str
    objective: str
    head: str
    reward_mean: float | None
    reward_std: float | None
    temperature: float | None


CARD_NAME = "README.md"
EMBEDDED_DATA = "embedded HH-RLHF harmless"
HUB_BACKBONES = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
}
"""rewardlab's backbone names and the Hub models they are copies of."""
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class HeldOutMetric:
    """One held-out number with its 95 % interval, as the card's results table shows it."""

    name: str
    value: float
    low: float | None
    high: float | None
    n: int


PLAIN_SNIPPET = """\
from transformers import AutoModelForSequenceClassification, AutoTokenizer

model_dir = "."  # this folder
prompt, reply = "How do I boil an egg?", "Put it in boiling water for eight minutes."
tokenizer = AutoTokenizer.from_pretrained(model_dir)  # truncation_side="left", as rewardlab cuts
model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
text = prompt.rstrip() + "\\n" + reply.lstrip() if prompt.strip() else reply
reward = model(**tokenizer(text, truncation=True, return_tensors="pt")).logits[0, 0].item()
"""

CHAT_SNIPPET = """\
from transformers import AutoModelForSequenceClassification, AutoTokenizer

model_dir = "."  # this folder
prompt, reply = "How do I boil an egg?", "Put it in boiling water for eight minutes."
tokenizer = AutoTokenizer.from_pretrained(model_dir)  # truncation_side="left", as rewardlab cuts
model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
messages = [{"role": "user", "content": prompt.strip()}, {"role": "assistant", "content": reply}]
text = tokenizer.apply_chat_template(messages, tokenize=False)  # the template writes the special tokens
inputs = tokenizer(text, add_special_tokens=False, truncation=True, return_tensors="pt")
reward = model(**inputs).logits[0, 0].item()
"""


def transformers_snippet(text_format: str) -> str:
    """Python that scores one (prompt, reply) with plain transformers as ``rewardlab score`` does."""
    return CHAT_SNIPPET if text_format == "chat" else PLAIN_SNIPPET


def card_snippet(card: str) -> str:
    """The transformers snippet of a card (its first ``python`` code block)."""
    found = re.search(r"```python\n(.*?)```", card, re.DOTALL)
    if found is None:
        raise ValueError("the model card has no ```python code block")
    return found.group(1)


def base_model(backbone: str) -> str | None:
    """The Hub name of the backbone, when it has one (a local folder has none)."""
    key = backbone.strip().lower()
    if key in HUB_BACKBONES:
        return HUB_BACKBONES[key]
    return backbone if HUB_NAME.match(backbone) and not Path(backbone).exists() else None


def hub_dataset(data: str | None) -> str | None:
    """The Hub name of the training data, when it has one (``org/name`` or ``org/name:split``)."""
    if not data:
        return None
    if data == EMBEDDED_DATA:
        return "Anthropic/hh-rlhf"
    name = data.split(":", 1)[0]
    return name if HUB_NAME.match(name) and not Path(data).exists() else None


def front_matter(info: RewardModelInfo, data: str | None, metrics: Sequence[HeldOutMetric]) -> str:
    lines = ["---", "library_name: transformers", "pipeline_tag: text-classification"]
    if base := base_model(info.backbone):
        lines.append(f"base_model: {base}")
    if dataset := hub_dataset(data):
        lines += ["datasets:", f"- {dataset}"]
    tags = ["reward-model", "rewardlab", *([info.objective.replace("_", "-")] if info.objective else [])]
    lines += ["tags:", *(f"- {tag}" for tag in tags)]
    if names := sorted({m.name for m in metrics}):
        lines += ["metrics:", *(f"- {name}" for name in names)]
    return "\n".join([*lines, "---"])


def text_format_section(info: RewardModelInfo) -> str:
    cut = (
        f"Texts longer than {info.max_length} tokens lose tokens from the left (the start of the conversation), "
        "so the reply is what is kept; the saved tokenizer says so (`truncation_side: left`, "
        f"`model_max_length: {info.max_length}`)."
    )
    if info.text_format == "chat":
        return (
            "The conversation, ending with the reply as an `assistant` message, is rendered with the saved "
            "chat template and tokenised with `add_special_tokens=False` (the template writes them). A plain-text "
            "prompt is one `user` message (stripped); rewardlab splits HH transcripts (`Human:` / `Assistant:`) "
            "into turns first (`rewardlab.data.prompts.transcript_to_messages`), which the snippet below leaves "
            "out. " + cut + " The template's own markers are cut like words."
        )
    return (
        'A text prompt and its reply are read as `prompt.rstrip() + "\\n" + reply.lstrip()` (the reply alone '
        "when the prompt is empty); a conversation as one `role: content` line per message, ending with "
        "`assistant: REPLY`. The tokenizer adds its special tokens around the text. " + cut + " Special tokens "
        "are kept. The saved chat template writes this format, special tokens included, for consumers that "
        "render conversations with it and tokenise with `add_special_tokens=False` (TRL)."
    )


def results_section(metrics: Sequence[HeldOutMetric], split: str) -> str:
    if not metrics:
        return "No held-out evaluation was recorded with this folder (`rewardlab eval` measures one)."
    rows = ["| metric | value | 95 % interval | pairs |", "|---|---|---|---|"]
    for m in metrics:
        interval = f"{m.low:.3f} – {m.high:.3f}" if m.low is not None and m.high is not None else "–"
        rows.append(f"| {m.name} | {m.value:.3f} | {interval} | {m.n} |")
    return f"On the {split} split, held out from training:\n\n" + "\n".join(rows)


def pluralistic_section(user_model: str, users: int) -> str:
    """What a pluralistic model's outputs are, and that plain transformers gives them, not a reward."""
    return (
        f"This is a pluralistic reward model: its head gives several outputs per reply, and `users.safetensors` "
        f"(with `users.json`) holds one row of parameters for each of the {users} users (annotators) it was "
        f"trained on; the user model `{user_model}` (`rewardlab.rewards.pluralistic`) turns a user's row and "
        "the outputs into that user's reward. `rewardlab score MODEL DATA --user ID` scores for one of them, "
        "`--user-examples FILE.jsonl` for a new user from their labelled pairs, and without either for the "
        "population. Plain transformers reads the outputs (`logits[0]`), not the reward: the snippet below "
        "gives the first output only."
    )


def saved_users(folder: str | Path) -> int | None:
    """How many users the table saved in ``folder`` has (``users.json``), or None without one."""
    path = Path(folder) / "users.json"
    if not path.is_file():
        return None
    return len(json.loads(path.read_text(encoding="utf-8")).get("ids", []))


def model_card_text(
    info: RewardModelInfo,
    *,
    data: str | None = None,
    metrics: Sequence[HeldOutMetric] = (),
    split: str = "test",
    users: int | None = None,
) -> str:
    """The whole card, Markdown with YAML front matter."""
    scale = []
    if info.reward_mean is not None and info.reward_std is not None:
        scale.append(
            f"On training replies the reward has mean {info.reward_mean:.4g} and standard deviation "
            f"{info.reward_std:.4g}, saved as `config.mean` / `config.std` (read by OpenRLHF's "
            "`--normalize_reward`) and in `config.rewardlab`."
        )
    if info.temperature is not None:
        scale.append(f"P(a preferred to b) ≈ σ((r_a − r_b) / {info.temperature:.4g}), fitted on validation pairs.")
    sections = [
        front_matter(info, data, metrics),
        "# Reward model",
        f"A scalar reward model trained with rewardlab from pairwise preferences: objective "
        f"`{info.objective or 'unknown'}`, backbone `{info.backbone or 'unknown'}`"
        + (f", data `{data}`" if data else "")
        + f". One output (`{info.head}`): a higher value means a better reply to the prompt. "
        + " ".join(scale),
        *([pluralistic_section(getattr(info, "users", None) or "unknown", users)] if users is not None else []),
        "## Held-out results\n\n" + results_section(metrics, split),
        "## Text format\n\n" + text_format_section(info),
        "## Scoring with transformers alone\n\nThis gives `rewardlab score --precision fp32`'s reward:\n\n"
        f"```python\n{transformers_snippet(info.text_format)}```",
        "## Other consumers\n\n"
        "- TRL `GRPOTrainer(reward_funcs=<this folder>)`: the same reward for conversational prompts up to "
        f"{info.max_length} tokens (TRL cuts nothing); for text prompts TRL joins prompt and completion with no "
        "separator or special tokens: use `rewardlab.serve.integrations.trl_reward_function` instead.\n"
        "- OpenRLHF: decoder models, with `--value_head_prefix score`; `rewardlab export --to openrlhf` checks.\n"
        "- RewardBench: `rewardlab export <this folder> --to rewardbench --output DIR`, then run it on DIR.",
    ]
    return "\n\n".join(sections) + "\n"


def write_model_card(
    folder: str | Path,
    info: RewardModelInfo,
    *,
    data: str | None = None,
    metrics: Sequence[HeldOutMetric] = (),
    split: str = "test",
) -> Path:
    """Write (or refresh) ``folder/README.md`` atomically; a pluralistic model's user count is read from
    the folder's ``users.json`` (written before the card)."""
    path = Path(folder) / CARD_NAME
    users = saved_users(folder)
    write_text_atomic(path, model_card_text(info, data=data, metrics=metrics, split=split, users=users))
    return path
