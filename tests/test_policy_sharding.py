"""Policy training (``rewardlab dpo``) on 2 CPU processes: data parallel, and sharded with the configs the
repository ships (LoRA too), gives one process's update; a checkpoint resumes on another number of
processes; what cannot be split across processes is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from test_dpo_cli import write_pairs
from test_policy_trainer import PAIRS, load
from test_sharding import launch
from test_training import cli, relative_gap

from rewardlab.models.formatting import choose_format
from rewardlab.models.pair_encoding import encode_pairs
from rewardlab.models.reference import cached_reference_logps
from rewardlab.policy.data_parallel import Processes, first_visit_logps, split_problems
from rewardlab.policy.registry import BATCH_FIELDS, get_policy_loss, policy_loss_names
from rewardlab.training.sharding import Sharding

torch.set_num_threads(1)


def dpo_args(data, policy, steps: int) -> list[str]:
    """7 pairs a step (4 and 3 a process), fp32, a checkpoint every 2 steps and at the last."""
    options = ["train.batch_pairs=7", "train.lr=3e-3", "train.precision=fp32", "train.save_every=2"]
    quiet = ["eval.kl_prompts=0", "num_threads=1", "progress=false"]
    return ["dpo", "--data", str(data), "--policy", str(policy), f"train.steps={steps}", *options, *quiet]


@pytest.fixture(scope="module")
def one_process(tiny_decoder_dir, tmp_path_factory):
    """The one-process run of 5 steps every launch is compared with."""
    root = tmp_path_factory.mktemp("policy-one")
    data = root / "pairs.jsonl"
    write_pairs(data)
    done = cli(*dpo_args(data, tiny_decoder_dir, 5), "--output", str(root / "run"), stdout=subprocess.DEVNULL)
    assert done.wait() == 0
    return data, root / "run"


def gaps(one, two, start) -> tuple[float, float]:
    """(relative gap of the weights, of AdamW's first moments) between two runs' checkpoints."""
    a, b = (load_file(run / "checkpoint" / "model.safetensors") for run in (one, two))
    m, n = (load_file(run / "checkpoint" / "optimizer.safetensors") for run in (one, two))
    assert m.keys() == n.keys()
    first = [k for k in m if k.endswith("exp_avg")]
    zero = {k: 0 * m[k] for k in first}
    return relative_gap(a, b, start), relative_gap({k: m[k] for k in first}, {k: n[k] for k in first}, zero)


def data_parallel(*args: str) -> subprocess.Popen:
    """``accelerate launch --multi_gpu --num_processes 2``: every process holds the whole policy (on CPU too)."""
    options = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", *options]
    command += ["--dynamo_backend", "no", "--main_process_port", "0", "-m", "rewardlab", *args]
    return subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE)


@pytest.mark.parametrize("config", [None, "fsdp-zero3.yaml", "deepspeed-zero2.yaml"])
def test_two_processes_give_one_process_update(config, tiny_decoder_dir, one_process, tmp_path):
    """Each process trains on its share of every batch of 7 pairs (4 and 3), the reference read the same
    way: the weights, AdamW's first moments (which show gradients averaged rather than summed), the
    logged losses are one process's, and the saved policy is the last checkpoint's weights (its tied
    embedding and output layer one tensor)."""
    data, one = one_process
    args = [*dpo_args(data, tiny_decoder_dir, 5), "--output", str(tmp_path)]
    run = data_parallel(*args) if config is None else launch(config, *args, stdout=subprocess.PIPE)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0
    assert out.decode().count("held-out implicit-reward accuracy") == 1  # the main process alone reports
    start = {"lm_head.weight": load_file(tiny_decoder_dir / "model.safetensors")["model.embed_tokens.weight"]}
    start |= load_file(tiny_decoder_dir / "model.safetensors")
    weights, moments = gaps(one, tmp_path, start)
    assert weights < 0.05 and moments < 1e-3  # test_sharding.py's tolerances, for their reasons
    losses = [
        [json.loads(line)["loss"] for line in (r / "metrics.jsonl").read_text().splitlines()] for r in (one, tmp_path)
    ]
    assert losses[1] == pytest.approx(losses[0], abs=1e-4) and losses[0][-1] < losses[0][0] - 0.2
    policy, last = (load_file(tmp_path / name / "model.safetensors") for name in ("policy", "checkpoint"))
    assert torch.equal(policy["model.embed_tokens.weight"], last["lm_head.weight"])  # saved tied, as trained


def test_a_checkpoint_resumes_on_another_number_of_processes(tiny_decoder_dir, one_process, tmp_path):
    """2 steps in one process, ``--resume train.steps=4`` sharded by DeepSpeed ZeRO-3 over 2 processes
    (the one-process checkpoint read into slices), then ``--resume train.steps=5`` in one process again
    (the gathered checkpoint read whole): the run ends where the unbroken one-process run does."""
    data, one = one_process
    output = ["--output", str(tmp_path)]
    assert cli(*dpo_args(data, tiny_decoder_dir, 2), *output, stdout=subprocess.DEVNULL).wait(timeout=300) == 0
    sharded = launch(
        "deepspeed-zero3.yaml", *dpo_args(data, tiny_decoder_dir, 4), *output, "--resume", stdout=subprocess.DEVNULL
    )
    assert sharded.wait(timeout=300) == 0
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["train_state"]["step"] == 4
    last = cli(*dpo_args(data, tiny_decoder_dir, 5), *output, "--resume", stdout=subprocess.DEVNULL)
    assert last.wait(timeout=300) == 0
    start = {"lm_head.weight": load_file(tiny_decoder_dir / "model.safetensors")["model.embed_tokens.weight"]}
    start |= load_file(tiny_decoder_dir / "model.safetensors")
    weights, moments = gaps(one, tmp_path, start)
    assert weights < 0.05 and moments < 1e-3  # test_sharding.py's tolerances, for their reasons
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_lora_adapters_train_sharded_as_in_one_process(tiny_decoder_dir, one_process, tmp_path):
    """LoRA over DeepSpeed ZeRO-3, where the frozen base is sliced too: the adapters and their AdamW
    moments end as in one process, the frozen base is gathered unchanged, and the saved merged policy is the same."""
    data, _ = one_process
    args = [*dpo_args(data, tiny_decoder_dir, 5), "lora.enabled=true", "lora.r=4"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli(*args, "--output", str(one), stdout=subprocess.DEVNULL).wait(timeout=300) == 0
    assert launch("deepspeed-zero3.yaml", *args, "--output", str(two), stdout=subprocess.DEVNULL).wait(timeout=300) == 0
    a, b = (load_file(run / "checkpoint" / "model.safetensors") for run in (one, two))
    assert a.keys() == b.keys()
    grown = {k: 0 * a[k] for k in a if "lora_B" in k}  # B starts at 0
    assert grown and relative_gap({k: a[k] for k in grown}, {k: b[k] for k in grown}, grown) < 0.05
    assert all(torch.equal(a[k], b[k]) for k in a if "lora_" not in k)
    m, n = (load_file(run / "checkpoint" / "optimizer.safetensors") for run in (one, two))
    first = {k: 0 * m[k] for k in m if k.endswith("exp_avg")}
    assert relative_gap({k: m[k] for k in first}, {k: n[k] for k in first}, first) < 1e-3
    merged = [load_file(run / "policy" / "model.safetensors") for run in (one, two)]
    assert all(torch.allclose(merged[0][k], merged[1][k], atol=1e-5) for k in merged[0])


def test_every_loss_not_marked_as_coupling_pairs_is_computed_pair_by_pair():
    """A batch split across processes is only right for a loss whose pair losses do not depend on the
    other pairs: on random inputs, each such loss gives the same per-pair losses on a batch of 6 as on
    its two halves; MaxMin DPO, which weighs its groups within the batch, does not, and is marked."""
    generator = torch.Generator().manual_seed(0)
    mask = torch.ones(6, 5, dtype=torch.bool)
    mask[:, 4] = False
    batch = {}
    for side in ("chosen", "rejected"):
        for prefix in ("", "reference_"):
            batch[f"{prefix}{side}_token_logps"] = -3 * torch.rand(6, 5, generator=generator) * mask
            batch[f"{prefix}{side}_logps"] = batch[f"{prefix}{side}_token_logps"].sum(-1)
        batch[f"{side}_token_mask"] = mask
        batch[f"old_{side}_logps"] = batch[f"{side}_logps"] + 0.1
        batch[f"{side}_lengths"] = mask.sum(-1).float()
        batch[f"{side}_token_rewards"] = torch.rand(6, 5, generator=generator) * mask
        batch[f"{side}_scores"] = torch.rand(6, generator=generator)
    for name in ("strengths", "consistencies", "judge_probabilities"):
        batch[name] = torch.rand(6, generator=generator)
    batch["groups"] = torch.tensor([0, 1, 0, 1, 1, 0])
    assert set(batch) == set(BATCH_FIELDS), "every field a loss may read"
    for name in policy_loss_names():
        loss = get_policy_loss(name)
        whole = loss(batch).losses
        halves = torch.cat(
            [loss({k: v[:3] for k, v in batch.items()}).losses, loss({k: v[3:] for k, v in batch.items()}).losses]
        )
        assert torch.allclose(whole, halves, atol=1e-6) != loss.couples_pairs, name
    assert [n for n in policy_loss_names() if get_policy_loss(n).couples_pairs] == ["maxmin_dpo"]


def test_what_cannot_be_split_is_refused_with_the_reason():
    two, one = Processes(0, 2), Processes()
    fsdp = Sharding("fsdp", 3)
    dpo, maxmin = get_policy_loss("dpo"), get_policy_loss("maxmin_dpo")
    assert split_problems(dpo, 7, two, fsdp) == []
    assert split_problems(maxmin, 7, one, None) == []
    (message,) = split_problems(maxmin, 7, two, None)
    assert "'maxmin_dpo' compares the pairs of a batch" in message and "this launch started 2" in message
    (message,) = split_problems(dpo, 1, two, None)
    assert "batch_pairs must be at least the number of processes (2; got 1" in message
    (message,) = split_problems(dpo, 7, one, fsdp)
    assert message == "FSDP2, ZeRO-3 (FULL_SHARD) shards across processes, and this launch started one"


def test_first_visit_logps_are_the_references_at_each_pairs_first_batch(tiny_decoder_dir):
    """Alone, ``first_visit_logps`` reads each batch in one pass: the rows equal those of the reference
    read batch by batch, rows of pairs no batch holds are NaN, and the token tables are as wide as the
    widest reply read."""
    model, tokenizer = load(tiny_decoder_dir)
    tokens = encode_pairs(tokenizer, PAIRS, choose_format(tokenizer, "auto"), 64, 64)
    read = first_visit_logps(model, tokens, tokenizer.pad_token_id, [[2, 0], [3]], None, Processes())
    for batch in ([2, 0], [3]):
        expected = cached_reference_logps(model, tokens.select(batch), tokenizer.pad_token_id, None, 2).logps
        assert torch.equal(read.chosen_logps[batch], expected.chosen_logps)
        width = expected.rejected_token_logps.shape[1]
        assert torch.equal(read.rejected_token_logps[batch, :width], expected.rejected_token_logps)
        assert torch.equal(
            read.chosen_token_mask[batch, : expected.chosen_token_mask.shape[1]], expected.chosen_token_mask
        )
    assert read.chosen_logps[1].isnan() and read.rejected_token_logps[1].isnan().all()
    assert read.chosen_token_mask.shape[1] == max(len(tokens.chosen[i]) for i in (0, 2, 3))
