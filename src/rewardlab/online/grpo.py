"""``trainer=trl_grpo``: a round's update is TRL's ``GRPOTrainer`` with the judge reward model as its reward.

Why TRL and not a trainer of our own: Ivison et al. 2024, "Unpacking DPO and PPO: Disentangling Best
Practices for Learning from Preference Feedback" (from the abstract) find PPO-family training with a learned
reward model ahead of DPO, and the issue asks for it through TRL's trainers, which rewardlab's rewards plug
into (:func:`rewardlab.serve.integrations.trl_reward_function`). GRPO (Shao et al. 2024, DeepSeekMath) is
that family without a value model: each prompt's ``generate.k`` replies are scored, and a reply's advantage
is its reward minus the group's mean over the group's standard deviation.

The mapping from the online config (so that GRPO spends the prompt budget the pairwise rounds do):

- prompts: the round's training prompts (``data.train_prompts``), ``train.batch_pairs`` of them per step,
  each answered ``generate.k`` times (``num_generations``) with at most ``generate.max_new_tokens`` tokens
  at ``generate.temperature``; a chat tokenizer gets conversational prompts (HH transcripts split into
  turns, the oldest turns dropped until the prompt fits ``train.max_prompt_tokens``, then the beginning of a
  message still too long cut), a plain one the text cut from the left to that many tokens and ended with a
  newline, as rewardlab's own generation sees it;
- reward: ``judge.model`` (``judge.kind=rm``) in fp32;
- update: ``train.steps`` steps of AdamW at a constant ``train.lr`` (rewardlab's policy trainer's schedule),
  ``train.weight_decay``, ``train.max_grad_norm``, seed ``train.seed + n − 1``, β of the KL term
  ``train.loss_args.beta`` (default 0.1), TRL's ``loss_type="grpo"``, one policy update per generation;
- LoRA from ``lora`` (the KL is then to the adapter-free model, the round's starting policy, ``reference=previous``),
  merged into the saved ``policy/``; CPU, no vLLM.

TRL's log (reward, KL, loss, completion lengths per step) is saved as ``metrics.jsonl``. A round killed
during its GRPO update is run again from the round's start when resumed (no TRL checkpoint is kept):
rounds already finished are kept, and the rerun starts from the same policy with the same seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from rewardlab.atomic import atomic_directory, write_text_atomic
from rewardlab.data.prompts import transcript_to_messages
from rewardlab.data.records import Prompt
from rewardlab.models.formatting import choose_format
from rewardlab.online.config import OnlineConfig
from rewardlab.policy.lora import LoraSettings
from rewardlab.serve.integrations import trl_reward_function

DEFAULT_BETA = 0.1


def grpo_update(
    config: OnlineConfig,
    n: int,
    folder: Path,
    policy_dir: Path,
    prompts: list[Prompt],
    tokenizer: PreTrainedTokenizerBase,
) -> torch.nn.Module:
    """Round ``n``'s GRPO update of the policy in ``policy_dir``; the result saved (merged) in ``folder/policy``."""
    from datasets import Dataset

    trl = _trl()
    model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32)
    processing = AutoTokenizer.from_pretrained(policy_dir)  # TRL may change its padding side: not the run's own
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=[trl_reward_function(config.judge.model, precision="fp32")],
        args=grpo_config(config, n, folder / "trl"),
        train_dataset=Dataset.from_dict({"prompt": trl_prompts(prompts, tokenizer, config)}),
        processing_class=processing,
        peft_config=peft_config(config.lora) if config.lora.enabled else None,
    )
    trainer.train()
    logged = [_numbers(e) for e in trainer.state.log_history if "loss" in e]
    write_text_atomic(folder / "metrics.jsonl", "".join(json.dumps(e) + "\n" for e in logged))
    trained = trainer.model.merge_and_unload() if config.lora.enabled else trainer.model
    trained.eval()
    with atomic_directory(folder / "policy") as tmp:
        trained.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return trained


def _trl() -> Any:
    """TRL, an optional dependency: only ``trainer=trl_grpo`` needs it."""
    try:
        import trl
    except ImportError:
        raise ImportError("trainer=trl_grpo needs TRL: pip install 'rewardlab[trl]'") from None
    return trl


def grpo_config(config: OnlineConfig, n: int, output_dir: Path) -> Any:
    """TRL's ``GRPOConfig`` for round ``n`` (the mapping of the module's docstring)."""
    t, g = config.train, config.generate
    return _trl().GRPOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=t.batch_pairs * g.k,
        num_generations=g.k,
        max_completion_length=g.max_new_tokens,
        temperature=g.temperature,
        max_steps=t.steps,
        learning_rate=t.lr,
        lr_scheduler_type="constant",
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm or 0.0,
        beta=float(t.loss_args.get("beta", DEFAULT_BETA)),
        loss_type="grpo",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        use_vllm=False,
        dataloader_num_workers=0,
        seed=t.seed + n - 1,
        disable_tqdm=not config.progress,
    )


def peft_config(settings: LoraSettings) -> Any:
    """The ``lora`` section as PEFT's ``LoraConfig`` (as :func:`rewardlab.policy.lora.add_lora` builds it)."""
    from peft import LoraConfig

    names = settings.target_modules.strip()
    targets: str | list[str] = names if names == "all-linear" else [x.strip() for x in names.split(",") if x.strip()]
    return LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM"
    )


def trl_prompts(prompts: list[Prompt], tokenizer: PreTrainedTokenizerBase, config: OnlineConfig) -> list[Any]:
    """The prompts as TRL reads them: conversations for a chat tokenizer, text otherwise (module docstring)."""
    limit = config.train.max_prompt_tokens
    if choose_format(tokenizer, config.train.text_format) == "plain":
        return [_plain_prompt(p, tokenizer, limit) for p in prompts]
    return [_chat_prompt(p, tokenizer, limit) for p in prompts]


def _plain_prompt(prompt: Prompt, tokenizer: PreTrainedTokenizerBase, limit: int) -> str:
    text = prompt if isinstance(prompt, str) else "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
    ids = tokenizer(text.rstrip() + "\n", add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[-limit:]) if len(ids) > limit else text.rstrip() + "\n"


def _chat_prompt(prompt: Prompt, tokenizer: PreTrainedTokenizerBase, limit: int) -> list[dict[str, str]]:
    messages = [dict(m) for m in (transcript_to_messages(prompt) if isinstance(prompt, str) else prompt)]
    first = 1 if messages and messages[0]["role"] == "system" else 0  # a system message stays
    while len(messages) > first + 1 and _chat_tokens(messages, tokenizer) > limit:
        del messages[first]
    excess = _chat_tokens(messages, tokenizer) - limit
    if excess > 0:  # one message too long on its own: its beginning goes, as rewardlab cuts from the left
        ids = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        messages[-1] = {**messages[-1], "content": tokenizer.decode(ids[min(excess, len(ids) - 1) :])}
    return messages


def _chat_tokens(messages: list[dict[str, str]], tokenizer: PreTrainedTokenizerBase) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _numbers(entry: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in entry.items() if isinstance(v, int | float)}
