"""GRPO through TRL with a rewardlab reward, as the online comparison runs it: LoRA on the policy, a KL
term to the adapter-free base, text prompts, CPU, no vLLM; the result loads back as a rewardlab policy.

``tests/test_integrations.py`` runs the full-weight, conversational case; this is the LoRA one.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel
from rewardlab.serve.integrations import trl_reward_function

QUESTIONS = ("What is the answer?", "How do I bake bread?", "Say hello.", "Name a colour.")


@pytest.fixture(scope="module")
def reward_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64)
    model.model.classifier.weight.data *= 50  # rewards spread out, so GRPO's advantages are not all 0
    return model.save_pretrained(tmp_path_factory.mktemp("rm") / "model")


def test_grpo_with_lora_trains_on_our_rewards_and_loads_back(reward_dir, tiny_decoder_dir, tmp_path):
    """Two GRPO steps (2 prompts x 2 generations each, β = 0.1): the reward TRL logs is our model's
    mean reward of what TRL generated, only the adapters move, and the merged policy loads in rewardlab
    with log-probabilities that differ from the starting policy's."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    seen: list[tuple[list, list]] = []

    def recorder(prompts, completions, **kwargs):
        seen.append((list(prompts), list(completions)))
        return [0.0] * len(prompts)

    config = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        max_steps=2,
        learning_rate=5e-3,
        beta=0.1,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        use_vllm=False,
        dataloader_num_workers=0,
        seed=0,
    )
    policy = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=[trl_reward_function(reward_dir, precision="fp32"), recorder],
        args=config,
        train_dataset=Dataset.from_dict({"prompt": list(QUESTIONS)}),
        processing_class=AutoTokenizer.from_pretrained(tiny_decoder_dir),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    )
    start = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()

    assert trainer.state.global_step == 2 and len(seen) == 2
    logged = [e for e in trainer.state.log_history if "rewards/rewardlab/mean" in e]
    offline = RewardModel.from_pretrained(reward_dir)
    for (prompts, completions), entry in zip(seen, logged, strict=True):
        assert all(isinstance(p, str) for p in prompts) and all(isinstance(c, str) for c in completions)
        rewards = offline.score(prompts, completions, precision="fp32")
        assert all(math.isfinite(r) for r in rewards) and len(set(rewards)) > 1
        assert entry["rewards/rewardlab/mean"] == pytest.approx(sum(rewards) / len(rewards), rel=1e-5)
        assert "kl" in entry and math.isfinite(entry["kl"])
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), start[n])}
    assert moved and all("lora_" in n for n in moved)

    merged = tmp_path / "policy"
    trainer.model.merge_and_unload().save_pretrained(merged)
    trainer.processing_class.save_pretrained(merged)
    before, after = CausalLM.from_pretrained(tiny_decoder_dir), CausalLM.from_pretrained(merged)
    reply = seen[-1][1][0] or "hello"
    logps_before, _ = before.reply_logps([QUESTIONS[0]], [reply])
    logps_after, _ = after.reply_logps([QUESTIONS[0]], [reply])
    assert math.isfinite(logps_after[0]) and logps_after[0] != pytest.approx(logps_before[0], abs=1e-6)
