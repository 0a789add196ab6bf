"""Sharded training (FSDP2) on 2 CPU processes, launched with the configs the repository ships:
the same update as one process, and a sharded run killed part-way resumes to the same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from synthetic import synthetic_pairs, write_jsonl
from test_training import cli, relative_gap
from transformers import AutoModelForSequenceClassification

import rewardlab
from rewardlab.training.sharding import Sharding, launch_sharding, shard_units

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"
FAST = ["eval_every=100", "precision=fp32", "num_threads=1", "progress=false", "optim.warmup_ratio=0", "optim.lr=1e-4"]


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory) -> Path:
    return write_jsonl(synthetic_pairs(600, seed=1), tmp_path_factory.mktemp("synthetic") / "pairs.jsonl")


def train_args(data: Path, backbone: Path) -> list[str]:
    """12 steps of 7 pairs in passes of at most 3, a checkpoint every 2 (the same for every run here)."""
    options = ["max_steps=12", "save_every=2", "batch_size=7", "micro_batch_size=3", *FAST]
    return ["train", "--data", str(data), "--backbone", str(backbone), *options]


@pytest.fixture(scope="module")
def one_process(synthetic_file, tmp_path_factory):
    """The one-process run every sharded run of a backbone is compared with (trained once a module)."""
    runs: dict[Path, Path] = {}

    def run(backbone: Path) -> Path:
        if backbone not in runs:
            out = tmp_path_factory.mktemp("one-process") / "run"
            done = cli(*train_args(synthetic_file, backbone), "--output", str(out), stdout=subprocess.DEVNULL)
            assert done.wait() == 0
            runs[backbone] = out
        return runs[backbone]

    return run


def launch(config: str, *args: str, **kwargs) -> subprocess.Popen:
    """``accelerate launch --config_file configs/accelerate/CONFIG -m rewardlab ...``, as the docs say."""
    command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--config_file"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*command, str(CONFIGS / config), "-m", "rewardlab", *args], env=env, **kwargs)


def gap(one: Path, two: Path, backbone: Path) -> tuple[float, float]:
    """(relative gap of the weights, relative gap of AdamW's first moments) between two checkpoints."""
    a, b = (load_file(run / "checkpoint" / "model.safetensors") for run in (one, two))
    start = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1).state_dict()
    moved = max((a[k] - start[k]).abs().max().item() for k in a if k not in ("classifier.bias", "score.bias"))
    assert moved > 1e-4, "training must have changed the weights for the comparison to mean anything"
    m, n = (load_file(run / "checkpoint" / "optimizer.safetensors") for run in (one, two))
    assert m.keys() == n.keys()
    first = [k for k in m if k.endswith("exp_avg")]
    zero = {k: 0 * m[k] for k in first}
    return relative_gap(a, b, start), relative_gap({k: m[k] for k in first}, {k: n[k] for k in first}, zero)


@pytest.mark.parametrize(
    ("config", "backbone"),
    [("fsdp-zero2.yaml", "tiny_decoder_dir"), ("deepspeed-zero3.yaml", "tiny_decoder_dir")],
)
def test_sharded_update_equals_one_process(config, backbone, synthetic_file, one_process, tmp_path, request):
    """ZeRO-3 and ZeRO-2 sharding, by FSDP2 and by DeepSpeed, over 2 processes give one process's update
    with the same global batch: 7 pairs, 4 and 3 a process in passes of at most 3, so one process runs two
    passes a step (whose gradients must add up: ZeRO-3 replaced one by the next until fixed) and the
    other repeats its pass at weight 0 (every pass is a collective).
    AdamW's moments are compared too: Adam's step barely changes if every gradient is halved (it divides
    by √v), so only the moments show gradients averaged across processes rather than summed. (The other
    two configs are compared with one process after a kill and resume, below.)"""
    model = request.getfixturevalue(backbone)
    sharded = launch(config, *train_args(synthetic_file, model), "--output", str(tmp_path), stdout=subprocess.PIPE)
    out, _ = sharded.communicate(timeout=300)
    assert sharded.returncode == 0
    assert "sharding the model across 2 processes" in out.decode()
    weights, moments = gap(one_process(model), tmp_path, model)
    assert weights < 0.05  # test_two_processes_match_one's tolerance, for its reason (Adam and rounding)
    assert moments < 1e-3  # every pass counted, summed over processes, not averaged (half as large)


@pytest.mark.parametrize("config", ["fsdp-zero3.yaml", "deepspeed-zero2.yaml"])
def test_sharded_run_killed_part_way_resumes(config, tiny_encoder_dir, synthetic_file, one_process, tmp_path):
    """A sharded run killed after a checkpoint resumes (sharded again) to the weights and moments of an
    unbroken one-process run: the checkpoint holds the gathered weights and moments, not one process's slice."""
    args = train_args(synthetic_file, tiny_encoder_dir)
    victim = launch(config, *args, "--output", str(tmp_path), stdout=subprocess.DEVNULL, start_new_session=True)
    state = tmp_path / "checkpoint" / "state.json"
    deadline = time.monotonic() + 600
    while not state.exists() and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.01)
    os.killpg(victim.pid, signal.SIGKILL)  # the launcher and both ranks
    victim.wait()
    killed_at = json.loads(state.read_text())["train_state"]["step"]
    assert 0 < killed_at < 12, "the run must be killed part-way"
    resumed = launch(config, *args, "--output", str(tmp_path), "--resume", stdout=subprocess.PIPE)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0
    assert "sharding the model across 2 processes" in out.decode()
    weights, moments = gap(one_process(tiny_encoder_dir), tmp_path, tiny_encoder_dir)
    assert weights < 0.05 and moments < 1e-3
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps), "a resumed run logs each step once, in order"


def test_launch_settings_are_read_or_refused():
    """The variables ``accelerate launch`` sets from the shipped configs, FSDP1 spellings included; a
    setting rewardlab would not honour is refused, never ignored."""
    assert launch_sharding({}) is None
    fsdp = {"ACCELERATE_USE_FSDP": "true"}
    assert launch_sharding(fsdp) == Sharding("fsdp", 3)
    assert launch_sharding({**fsdp, "FSDP_RESHARD_AFTER_FORWARD": "false"}) == Sharding("fsdp", 2)
    assert launch_sharding({**fsdp, "FSDP_SHARDING_STRATEGY": "SHARD_GRAD_OP"}) == Sharding("fsdp", 2)
    assert launch_sharding({**fsdp, "FSDP_SHARDING_STRATEGY": "1"}) == Sharding("fsdp", 3)
    deepspeed = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}
    assert launch_sharding(deepspeed) == Sharding("deepspeed", 3)
    refused = {
        "NO_SHARD": {**fsdp, "FSDP_SHARDING_STRATEGY": "NO_SHARD"},
        "offload_params": {**fsdp, "FSDP_OFFLOAD_PARAMS": "true"},
        "zero_stage 1": {**deepspeed, "ACCELERATE_DEEPSPEED_ZERO_STAGE": "1"},
        "offload_optimizer_device": {**deepspeed, "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "cpu"},
        "zero3_init_flag": {**deepspeed, "ACCELERATE_DEEPSPEED_ZERO3_INIT": "true"},
        "deepspeed_config_file": {**deepspeed, "ACCELERATE_DEEPSPEED_CONFIG_FILE": "ds.json"},
    }
    for words, environ in refused.items():
        with pytest.raises(ValueError, match=words):
            launch_sharding(environ)


def test_one_process_asked_to_shard_is_refused(tiny_encoder_dir, synthetic_file, tmp_path, monkeypatch):
    """An FSDP launch with one process would shard nothing: a clear error, before any training."""
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ValueError, match="this launch started one"):
        rewardlab.train(data=str(synthetic_file), backbone=str(tiny_encoder_dir), output_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_units_are_the_blocks_then_the_parts_called_apart(tiny_decoder_dir):
    """A decoder's blocks, its backbone and its head (called apart for packed pairs), then the root."""
    model = AutoModelForSequenceClassification.from_pretrained(tiny_decoder_dir, num_labels=1)
    units = shard_units(model)
    blocks = list(model.model.layers)
    assert units == [*blocks, model.model, model.score, model]
