"""How long ``import rewardlab`` and ``rewardlab --help`` take, each in a fresh process.

Start-up time is what a user pays for every command, and what a TRL or verl worker pays for
importing the reward adapter: issue 25 measured 9.2 s and 5.6 s before the imports became lazy.
Each command runs ``--runs`` times after one untimed warm-up (which fills the file cache) and the
median wall time is reported. ``--src`` puts a checkout's ``src`` first on ``PYTHONPATH``, so the
same interpreter and packages time another rewardlab (the CLI is run as ``python -m rewardlab --help``
for that reason: the console script would import the installed one); given more than once, the
checkouts take turns run by run, so that a machine whose speed drifts treats them alike.
``--importtime`` adds the slowest third-party imports that rewardlab's own modules make
(``python -X importtime``), to show what is still loaded eagerly.

    python benchmarks/import_time.py [--src /tmp/before/src --src src] [--runs 7] [--importtime]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import rewardlab": ["-c", "import rewardlab"],
    "rewardlab --help": ["-m", "rewardlab", "--help"],
}


def environment(src: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def wall_seconds(python: str, args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([python, *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def slowest_imports(python: str, args: list[str], env: dict[str, str], top: int) -> list[tuple[str, float]]:
    """Third-party modules imported directly by a rewardlab module, by cumulative seconds."""
    command = [python, "-X", "importtime", *args]
    stderr = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stderr
    entries = []  # (depth, name, cumulative seconds) in the order printed: children before their parent
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        entries.append(((len(name) - len(name.lstrip()) - 1) // 2, name.strip(), int(cumulative) / 1e6))
    ancestors: dict[int, str] = {}
    found = []
    for depth, name, seconds in reversed(entries):  # reversed: each parent comes before its children
        ancestors[depth] = name
        parent = ancestors.get(depth - 1, "")  # none: imported at run time, not by a module
        package = name.partition(".")[0]
        if package != "rewardlab" and package not in sys.stdlib_module_names and parent.startswith("rewardlab"):
            found.append((f"{name} (from {parent})", seconds))
    return sorted(found, key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--src", action="append", help="src folder of a checkout to time; repeatable (default: the installed one)"
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter to time (default: this one)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--importtime", action="store_true", help="also list the slowest imports rewardlab makes")
    args = parser.parse_args()
    sources = args.src or [None]
    print("| rewardlab from | command | median s | min s | max s | runs |\n|---|---|---|---|---|---|")
    for label, command in COMMANDS.items():
        times: dict[str | None, list[float]] = {src: [] for src in sources}
        for src in sources:
            wall_seconds(args.python, command, environment(src))  # warm-up: file cache
        for _ in range(args.runs):
            for src in sources:
                times[src].append(wall_seconds(args.python, command, environment(src)))
        for src, runs in times.items():
            summary = f"{statistics.median(runs):.2f} | {min(runs):.2f} | {max(runs):.2f} | {len(runs)}"
            print(f"| {src or 'installed'} | `{label}` | {summary} |", flush=True)
    for src in sources if args.importtime else []:
        for label, command in COMMANDS.items():
            print(f"\n| `{label}` ({src or 'installed'}): imported by rewardlab | cumulative s |\n|---|---|")
            for name, seconds in slowest_imports(args.python, command, environment(src), top=8):
                print(f"| `{name}` | {seconds:.2f} |")


if __name__ == "__main__":
    main()
