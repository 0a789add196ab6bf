"""``trainer=trl_grpo``: a round of ``rewardlab online`` whose update is TRL's GRPO with the judge reward model,
measured, reported and resumed like a pairwise round (tiny models, 2 steps)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from rewardlab.models.reward_model import RewardModel
from rewardlab.online import load_online_config, run_online
from rewardlab.online.grpo import grpo_config, trl_prompts
from rewardlab.runs.config import ConfigError

TOPICS = ["bread", "the sea", "France", "rain", "cats", "music", "tea", "stars"]


@pytest.fixture(scope="module")
def setup(tiny_decoder_dir, tiny_encoder_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("grpo")
    rows = [
        {"prompt": f"Tell me about {t} ({i}).", "chosen": f"Sure, {t}.", "rejected": "No."}
        for i, t in enumerate(TOPICS * 3)
    ]
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for name, seed in (("judge", 1), ("evaluator", 2)):
        torch.manual_seed(seed)
        model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64)
        model.model.classifier.weight.data *= 50  # rewards spread out, so GRPO's advantages are not all 0
        model.save_pretrained(root / name)
    (root / "online.yaml").write_text(
        f"policy: {tiny_decoder_dir}\nrounds: 1\nprogress: false\nnum_threads: 1\ntrainer: trl_grpo\n"
        f"data:\n  path: {root / 'pairs.jsonl'}\n  train_prompts: 4\n"
        "generate:\n  k: 2\n  max_new_tokens: 6\n"
        f"judge:\n  kind: rm\n  model: {root / 'judge'}\n"
        "train:\n  steps: 2\n  batch_pairs: 2\n  lr: 0.005\n  loss_args: {beta: 0.1}\n"
        "lora:\n  enabled: true\n  r: 4\n  target_modules: q_proj,v_proj\n"
        f"eval:\n  evaluator: {root / 'evaluator'}\n  prompts: 3\n  max_new_tokens: 6\n  kl_prompts: 2\n"
        "  kl_samples: 2\n",
        encoding="utf-8",
    )
    return root


def test_a_grpo_round_trains_on_the_judge_and_is_measured_and_reported(setup, tiny_decoder_dir, tmp_path):
    """Two GRPO steps of 2 prompts x 2 replies: every step (loss, the judge's mean reward, KL) is in metrics.jsonl,
    the merged policy moved, and the report has the round with its win rate and KL like a pairwise round."""
    out = tmp_path / "run"
    result = run_online(load_online_config(setup / "online.yaml", [f"output_dir={out}"]))
    steps = [json.loads(line) for line in (out / "round-1" / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2]
    assert all(math.isfinite(s["loss"]) and "rewards/rewardlab/mean" in s and "kl" in s for s in steps)
    start = load_file(tiny_decoder_dir / "model.safetensors")
    after = load_file(out / "round-1" / "policy" / "model.safetensors")
    assert start.keys() == after.keys() and any(not torch.equal(start[k], after[k]) for k in after)
    assert not any("lora" in k for k in after)  # merged
    rounds = result.report["rounds"]
    assert [r["round"] for r in rounds] == [0, 1]
    last = rounds[1]
    assert last["pairs"] is None and last["win_rate"]["n"] == 3 and math.isfinite(last["kl"]["kl"])
    assert last["last_loss"] == pytest.approx(steps[-1]["loss"]) and set(last["seconds"]) == {"update", "evaluate"}
    assert "| 1 |" in (out / "report.md").read_text()
    # resumed with one more round: round 1 is kept as it was, round 2 starts from its policy
    more = run_online(load_online_config(setup / "online.yaml", [f"output_dir={out}", "rounds=2"]), resume=True)
    assert [r["round"] for r in more.report["rounds"]] == [0, 1, 2]
    assert load_file(out / "round-1" / "policy" / "model.safetensors").keys() == after.keys()
    assert more.report["rounds"][1]["mean_reward"] == last["mean_reward"]


def test_grpo_settings_follow_the_online_config(setup, tiny_decoder_dir):
    """batch_pairs 2 prompts x k 2 replies = 4 completions a step; round 3 seeds with seed + 2; β from loss_args;
    the chat tokenizer gets conversations, the oldest turns dropped to fit max_prompt_tokens (48: the last user
    turn alone renders to 41 tiny-tokenizer tokens, with the assistant's "ok" before it 52), then a lone message
    too long cut from the left."""
    config = load_online_config(setup / "online.yaml", ["train.seed=5", "generate.temperature=0.7"])
    args = grpo_config(config, 3, setup / "unused")
    assert (args.per_device_train_batch_size, args.num_generations, args.max_completion_length) == (4, 2, 6)
    assert (args.seed, args.beta, args.max_steps, args.temperature) == (7, 0.1, 2, 0.7)
    assert args.use_vllm is False and args.learning_rate == 0.005
    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder_dir)
    transcript = "\n\nHuman: " + "long " * 60 + "\n\nAssistant: ok\n\nHuman: and now?"
    cut = load_online_config(setup / "online.yaml", ["train.max_prompt_tokens=48"])
    (short,) = trl_prompts([transcript], tokenizer, cut)
    assert short == [{"role": "user", "content": "and now?"}]
    (whole,) = trl_prompts([transcript], tokenizer, config)
    assert [m["role"] for m in whole] == ["user", "assistant", "user"]
    (one,) = trl_prompts(["word " * 80 + "end?"], tokenizer, cut)  # one message too long: cut from the left
    rendered = tokenizer.apply_chat_template(one, tokenize=False, add_generation_prompt=True)
    assert one[0]["content"].endswith("end?") and 40 <= len(tokenizer(rendered)["input_ids"]) <= 48


def test_grpo_refuses_what_it_does_not_read(setup):
    with pytest.raises(ConfigError) as info:
        load_online_config(setup / "online.yaml", ["judge.kind=gpm", "pairs.strategy=temporal", "reference=start"])
    message = str(info.value)
    assert "set judge.kind=rm" in message and "unset pairs.strategy=temporal" in message
    assert "reference: trainer=trl_grpo" in message
    with pytest.raises(ConfigError, match="trainer must be one of rewardlab, trl_grpo"):
        load_online_config(setup / "online.yaml", ["trainer=ppo"])
