"""The fields other libraries read from a saved reward model folder, set so they score as rewardlab does.

Each consumer reads a different part of the folder (checked against their sources):

- plain transformers: ``tokenizer(text, truncation=True)`` cuts where ``truncation_side`` says, at
  ``model_max_length``; rewardlab cuts from the left at ``info.max_length``, so both are saved;
- TRL's ``GRPOTrainer`` with the folder as ``reward_funcs`` renders conversational prompts with the
  tokenizer's chat template and tokenises the result with ``add_special_tokens=False``
  (``trl/trainer/grpo_trainer.py``, ``_calculate_rewards``); a model scoring rewardlab's ``plain``
  format therefore gets a template that writes that format, special tokens included as text;
- OpenRLHF's ``get_llm_for_sequence_regression`` normalises with ``config.mean`` / ``config.std``
  (``openrlhf/models/model.py``); rewardlab keeps them as ``rewardlab.reward_mean`` / ``reward_std``;
- ``id2label`` names the one output, which text-classification pipelines print as the label.
"""

from __future__ import annotations

import copy
import json

from transformers import PretrainedConfig, PreTrainedTokenizerBase

from rewardlab.models.sequences import special_tokens_around

PLAIN_TEMPLATE_MARK = "{#- rewardlab plain format -#}"
"""Opens the chat templates rewardlab writes, so that loading a saved folder as a backbone does not
take them for a chat model's own template."""


def plain_chat_template(tokenizer: PreTrainedTokenizerBase, special_tokens: bool = True) -> str:
    """A Jinja chat template that writes a conversation in rewardlab's ``plain`` format.

    ``plain`` writes each message as ``role: content``, one per line (``formatting.format_text``),
    and the tokenizer adds its special tokens ([CLS] … [SEP] for BERT) around the text. With
    ``special_tokens`` those tokens are written by the template as text, for consumers that tokenise
    the rendered text with ``add_special_tokens=False`` (TRL); without, for those that let the
    tokenizer add them (RewardBench's pipeline).
    """
    prefix, suffix = special_tokens_around(tokenizer) if special_tokens else ([], [])
    before = "".join(tokenizer.convert_ids_to_tokens(prefix))
    after = "".join(tokenizer.convert_ids_to_tokens(suffix))
    return (
        PLAIN_TEMPLATE_MARK
        + f"{{{{ {json.dumps(before, ensure_ascii=False)} }}}}"
        + "{% for message in messages %}{% if not loop.first %}{{ '\\n' }}{% endif %}"
        + "{{ message['role'] + ': ' + message['content'] }}{% endfor %}"
        + f"{{{{ {json.dumps(after, ensure_ascii=False)} }}}}"
    )


def is_plain_template(template: str | None) -> bool:
    """Whether ``template`` is one that :func:`plain_chat_template` wrote."""
    return isinstance(template, str) and template.startswith(PLAIN_TEMPLATE_MARK)


def consumer_tokenizer(
    tokenizer: PreTrainedTokenizerBase, text_format: str, max_length: int, special_tokens: bool = True
) -> PreTrainedTokenizerBase:
    """A copy of ``tokenizer`` that cuts texts as rewardlab does and renders conversations in its format."""
    saved = copy.deepcopy(tokenizer)
    saved.truncation_side = "left"
    saved.model_max_length = max_length
    # save_pretrained writes init_kwargs (not every attribute): a tokenizer built in code has none of these
    saved.init_kwargs.update(truncation_side="left", model_max_length=max_length)
    if text_format == "plain":
        saved.chat_template = plain_chat_template(tokenizer, special_tokens)
    return saved


def set_consumer_config(
    config: PretrainedConfig, head: str, reward_mean: float | None, reward_std: float | None
) -> None:
    """``id2label`` for a one-reward head, and OpenRLHF's ``mean``/``std`` when the statistics are known."""
    if head == "reward" and config.num_labels == 1:
        config.id2label = {0: "reward"}
        config.label2id = {"reward": 0}
    if reward_mean is not None and reward_std is not None:
        config.mean, config.std = float(reward_mean), float(reward_std)
