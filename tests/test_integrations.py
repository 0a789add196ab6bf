"""Rewards for other trainers: a real TRL GRPOTrainer run with our reward function, and verl's signature."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from datasets import Dataset

from rewardlab.models.reward_model import RewardModel
from rewardlab.rewards.transforms import apply_transform
from rewardlab.serve.integrations import trl_reward_function, verl_compute_score


@pytest.fixture(scope="module")
def reward_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64)
    model.model.classifier.weight.data *= 50
    model.info.reward_mean, model.info.reward_std = 0.5, 4.0
    return model.save_pretrained(tmp_path_factory.mktemp("rm") / "model")


@pytest.fixture(scope="module")
def offline(reward_dir) -> RewardModel:
    return RewardModel.from_pretrained(reward_dir)


def test_trl_function_takes_text_and_conversations(reward_dir, offline):
    reward = trl_reward_function(reward_dir)
    prompts, completions = ["question one", "question two"], ["a clear answer", "a vague answer"]
    assert reward(prompts, completions, trainer_state=None) == offline.score(prompts, completions)
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    replies = [[{"role": "assistant", "content": c}] for c in completions]
    assert reward(conversations, replies) == offline.score([tuple(c) for c in conversations], completions)
    assert reward.__name__ == "rewardlab"
    with pytest.raises(ValueError, match=r"completions\[1\]: expected text or a list"):
        reward(prompts, ["fine", 3])
    with pytest.raises(ValueError, match="2 prompts but 1 completions"):
        reward(prompts, completions[:1])


def test_trl_function_transforms_with_references_from_a_dataset_column(reward_dir, offline):
    prompts, completions, references = ["q1", "q2"], ["good answer", "bad answer"], ["the answer", "an answer"]
    par = trl_reward_function(reward_dir, transform="par")
    raw, reference_rewards = offline.score(prompts, completions), offline.score(prompts, references)
    expected = apply_transform("par", raw, references=[[r] for r in reference_rewards])
    assert par(prompts, completions, reference=references) == expected
    with pytest.raises(ValueError, match="add a dataset column 'reference'"):
        par(prompts, completions)
    normalized = trl_reward_function(reward_dir, transform="normalize")(prompts, completions)
    assert normalized == pytest.approx([(r - 0.5) / 4.0 for r in raw], abs=1e-12)


def test_verl_compute_score(reward_dir, offline):
    compute_score = verl_compute_score(reward_dir, prompt_key="question")
    score = compute_score("hh", "a kind and clear answer", None, extra_info={"question": "how are you?"})
    assert isinstance(score, float)
    assert score == offline.score(["how are you?"], ["a kind and clear answer"])[0]
    with pytest.raises(KeyError, match="extra_info has no 'question'"):
        compute_score("hh", "answer", None, extra_info={"index": 3})
    alone = verl_compute_score(reward_dir, prompt_key=None)(data_source="hh", solution_str="x", ground_truth="y")
    assert alone == offline.score([""], ["x"])[0]


def test_a_real_grpo_trainer_runs_two_steps_on_our_rewards(reward_dir, offline, tiny_decoder_dir, tmp_path):
    """TRL's GRPOTrainer, a tiny Llama policy, conversational prompts, our reward function.

    Beside ours, a second reward function that returns 0 records what TRL generated; the mean
    reward TRL logs for ours must be the mean our model gives to those completions.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    seen: list[tuple[list, list]] = []

    def recorder(prompts, completions, **kwargs):
        seen.append((prompts, completions))
        return [0.0] * len(prompts)

    questions = ["What is the answer?", "How do I bake bread?", "Say hello.", "Name a colour."]
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": q}] for q in questions]})
    config = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=8,
        max_steps=2,
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_decoder_dir),
        reward_funcs=[trl_reward_function(reward_dir), recorder],
        args=config,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(tiny_decoder_dir),
    )
    trainer.train()

    assert len(seen) == 2 and trainer.state.global_step == 2
    logged = [entry for entry in trainer.state.log_history if "rewards/rewardlab/mean" in entry]
    assert len(logged) == 2
    for (prompts, completions), entry in zip(seen, logged, strict=True):
        assert all(isinstance(c, list) and c[0]["role"] == "assistant" for c in completions)
        replies = ["\n".join(m["content"] for m in c) for c in completions]
        rewards = offline.score([tuple(p) for p in prompts], replies)
        assert all(math.isfinite(r) for r in rewards) and len(set(rewards)) > 1
        assert entry["rewards/rewardlab/mean"] == pytest.approx(sum(rewards) / len(rewards), rel=1e-5)
