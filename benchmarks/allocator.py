"""What keeping freed memory in glibc's heap (``rewardlab/allocator.py``) does to training speed and memory.

``rewardlab.train`` at its defaults (MiniLM unless ``--backbone``, max length 384, 8 pairs a step,
a random head, no validation) for ``--steps`` steps, in a fresh process each time, alternating
between rewardlab's allocator setting and glibc's default (kept by setting a neutral glibc tunable,
which rewardlab takes as the user's own allocator choice). Reports the training loop's pairs/s and peak RSS.

    python benchmarks/allocator.py [--backbone minilm] [--steps 60] [--rounds 3] [--max-length 384]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

RUN = """
import json, resource, sys, tempfile, rewardlab
steps, max_length, backbone = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
overrides = {"model.backbone": backbone, "model.head_init": "random", "model.max_length": max_length,
             "data.validation_fraction": 0.0, "data.test_fraction": 0.0, "keep_best": False,
             "eval_every": 10**9, "save_every": 10**9}
with tempfile.TemporaryDirectory() as out:
    r = rewardlab.train(output_dir=out, overwrite=True, max_steps=steps, progress=False, num_threads=2, **overrides)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
print(json.dumps({"pairs_per_s": 8 * steps / r.loop_seconds, "peak_rss_gb": peak}))
"""
SETTINGS = {"rewardlab's (freed blocks reused)": {}, "glibc's default": {"GLIBC_TUNABLES": "glibc.malloc.perturb=0"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=384)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, env in SETTINGS.items():
            command = [sys.executable, "-c", RUN, str(args.steps), str(args.max_length), args.backbone]
            out = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(name, results[name][-1], flush=True)
    print("| allocator | pairs/s (each round) | peak RSS (largest) |\n|---|---|---|")
    for name, runs in results.items():
        speeds = ", ".join(f"{r['pairs_per_s']:.2f}" for r in runs)
        print(f"| {name} | {speeds} | {max(r['peak_rss_gb'] for r in runs):.2f} GB |")


if __name__ == "__main__":
    main()
