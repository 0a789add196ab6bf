"""Sharded training on CPU processes: one process, DDP, ZeRO-2 and ZeRO-3 (FSDP2, DeepSpeed).

Each setting trains for the same steps and global batch on the embedded pairs, launched as the docs say
(``accelerate launch --config_file configs/accelerate/...``): ``--command train`` the default reward
model (all-MiniLM-L6-v2), ``--command dpo`` the default policy (SmolLM2-135M-Instruct) with DPO.
Reported per setting: training-loop pairs/s (the run's own ``metrics.jsonl``), the peak resident
memory of every rank (each rank records its own at exit, through a ``sitecustomize`` on ``PYTHONPATH``),
and how far its final weights are from the one-process run's (‖a − b‖ / ‖a − start‖).

On a CPU the processes share the host's memory and cores: this checks that the settings run and give the
same model, and shows what each rank holds; the speed of sharding belongs to GPUs (issue 38).

    python benchmarks/sharded_training.py --steps 30 --output benchmarks/results/sharded_training.json
    python benchmarks/sharded_training.py --command dpo --steps 6 --batch-size 4 \
        --output benchmarks/results/sharded_dpo.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors.torch import load_file

from rewardlab.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PROBE = """import atexit, os, resource
def _record():  # a rank names itself; the launcher and torchrun's agent have no RANK (nor does a lone process)
    name = "rank-" + os.environ["RANK"] if "RANK" in os.environ else "process-" + str(os.getpid())
    with open(os.path.join(os.environ["PEAK_DIR"], name), "w") as f:
        f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
if os.environ.get("PEAK_DIR"):
    atexit.register(_record)
"""
SETTINGS = {
    "one process": None,
    "DDP, 2 processes": ["--multi_gpu", "--num_processes", "2", "--main_process_port", "0"],
    "ZeRO-2 (FSDP2), 2 processes": ["--config_file", str(ROOT / "configs/accelerate/fsdp-zero2.yaml")],
    "ZeRO-3 (FSDP2), 2 processes": ["--config_file", str(ROOT / "configs/accelerate/fsdp-zero3.yaml")],
    "DeepSpeed ZeRO-2, 2 processes": ["--config_file", str(ROOT / "configs/accelerate/deepspeed-zero2.yaml")],
    "DeepSpeed ZeRO-3, 2 processes": ["--config_file", str(ROOT / "configs/accelerate/deepspeed-zero3.yaml")],
}


def cpu_name() -> str:
    text = Path("/proc/cpuinfo").read_text()
    name = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = sorted(set(re.findall(r"\b(amx\w*|avx512_bf16|avx512f)\b", text)))
    return f"{name.group(1) if name else 'unknown'} ({', '.join(flags) or 'no AVX512/AMX'})"


def run(name: str, launcher: list[str] | None, command: str, args: list[str], work: Path) -> dict:
    peaks = work / "peaks"
    peaks.mkdir(parents=True)
    (work / "probe").mkdir()
    (work / "probe" / "sitecustomize.py").write_text(PROBE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PEAK_DIR": str(peaks)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work / "probe"), os.environ.get("PYTHONPATH")]))
    head = [sys.executable, "-m", "rewardlab"]
    if launcher is not None:
        head = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", *launcher, "-m", "rewardlab"]
    started = time.perf_counter()
    done = subprocess.run(
        [*head, command, *args, "--output", str(work / "run")], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    lines = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    return {
        "setting": name,
        "wall_s": round(time.perf_counter() - started, 1),
        "pairs_per_s": round(_pairs_per_s(lines, command, args), 2),
        "peak_rss_mb_per_rank": _peaks(peaks, launched=launcher is not None),
        "checkpoint": str(work / "run" / "checkpoint" / "model.safetensors"),
    }


def _pairs_per_s(lines: list[dict], command: str, args: list[str]) -> float:
    """A reward run's mean of its training windows' rate; a DPO run's pairs over its steps' seconds, the
    first step (warm-up) left out."""
    if command == "train":
        train = [w for w in lines if w.get("split") == "train"]
        return sum(w["pairs_per_s"] for w in train) / len(train)
    pairs = int(next(a for a in args if a.startswith("train.batch_pairs=")).split("=")[1])
    return pairs * (len(lines) - 1) / sum(line["seconds"] for line in lines[1:])


def _peaks(folder: Path, launched: bool) -> dict[str, int]:
    """Each rank's peak RSS (MB); a lone process's under rank-0. A launch's own processes are left out."""
    found = {p.name: round(float(p.read_text())) for p in sorted(folder.iterdir())}
    if launched:
        return {name: mb for name, mb in found.items() if name.startswith("rank-")}
    return {"rank-0": max(found.values())}


def relative_gap(a: dict, b: dict, start: dict) -> float:
    keys = [k for k in a if k != "classifier.bias"]
    start = {"lm_head.weight": start.get("model.embed_tokens.weight"), **start}  # a decoder's tied output layer
    gap = sum(((a[k] - b[k]).double() ** 2).sum().item() for k in keys) ** 0.5
    move = sum(((a[k] - start[k]).double() ** 2).sum().item() for k in keys) ** 0.5
    return gap / move


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--command", choices=("train", "dpo"), default="train")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/sharded_training.json")
    options = parser.parse_args()
    if options.command == "train":
        args = [f"max_steps={options.steps}", f"batch_size={options.batch_size}", "precision=fp32", "num_threads=1"]
        args += ["progress=false", "eval_every=100000", "log_every=5", "model.head_init=random"]
    else:
        args = [f"train.steps={options.steps}", f"train.batch_pairs={options.batch_size}", "train.precision=fp32"]
        args += ["train.max_prompt_tokens=128", "train.max_reply_tokens=64", "train.lr=1e-6", "num_threads=1"]
        args += ["progress=false", "eval.max_pairs=8", "eval.kl_prompts=0", f"train.save_every={options.steps}"]
    with tempfile.TemporaryDirectory() as tmp:
        settings = enumerate(SETTINGS.items())
        rows = [run(name, launcher, options.command, args, Path(tmp) / str(i)) for i, (name, launcher) in settings]
        first = load_file(rows[0]["checkpoint"])
        start = _start_weights(options.command)
        for row in rows:
            row["relative_gap_to_one_process"] = round(relative_gap(first, load_file(row.pop("checkpoint")), start), 6)
    result = {
        "cpu": cpu_name(),
        "date": time.strftime("%Y-%m-%d"),
        "command": options.command,
        "steps": options.steps,
        "batch_pairs": options.batch_size,
        "runs": rows,
    }
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


def _start_weights(command: str) -> dict:
    """The weights every run starts from: the reward model's (its random head seeded as the trainer
    seeds it) or the policy's."""
    if command == "dpo":
        from rewardlab.models.backbones import resolve_backbone
        from rewardlab.policy.run_config import DPORunConfig

        return load_file(Path(resolve_backbone(DPORunConfig().policy)) / "model.safetensors")
    from accelerate.utils import set_seed

    from rewardlab.models.reward_model import RewardModel

    set_seed(0)  # the trainer's seed before it builds the model: the same random head
    return RewardModel.from_backbone(TrainConfig().model.backbone).model.state_dict()


if __name__ == "__main__":
    main()
