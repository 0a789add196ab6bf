"""Training data of the proxy reward models of the over-optimisation study (benchmarks/overoptimization.md).

The gold model is trained on the whole training split of the embedded HH data; each proxy sees
only ``--pairs`` pairs drawn from that same training split (a different seeded sample per proxy),
so a proxy is a weaker, differently wrong reward, and neither ever sees a held-out test prompt.

    python benchmarks/overopt_proxy_data.py --pairs 300 --proxies 3 --output runs/overopt/data
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from rewardlab.atomic import write_text_atomic
from rewardlab.data import iter_rows, load_preferences, split_pairs
from rewardlab.data.split import content_key
from rewardlab.training.config import DataConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=300, help="training pairs per proxy")
    parser.add_argument("--proxies", type=int, default=3, help="how many proxies (different samples)")
    parser.add_argument("--output", type=Path, default=Path("runs/overopt/data"))
    args = parser.parse_args()
    d = DataConfig()  # the split `rewardlab train` uses by default, so the test split stays held out
    loaded = load_preferences(None)
    train = split_pairs(loaded.pairs, validation=d.validation_fraction, test=d.test_fraction, seed=d.split_seed).train
    # the proxies read the embedded rows as written (full HH transcripts), exactly as the gold model read them
    raw = [row for _, row in iter_rows(loaded.path)]
    if len(raw) != len(loaded.pairs):
        raise SystemExit(f"{loaded.path}: {len(raw)} rows but {len(loaded.pairs)} pairs; expected one pair per row")
    in_train = {content_key(p) for p in train}
    train_rows = [row for row, pair in zip(raw, loaded.pairs, strict=True) if content_key(pair) in in_train]
    if not 0 < args.pairs <= len(train_rows):
        raise SystemExit(f"--pairs must be between 1 and {len(train_rows)} (the training split)")
    for k in range(args.proxies):
        rows = random.Random(f"proxy:{k}").sample(train_rows, args.pairs)
        path = args.output / f"proxy-{k}.jsonl"
        write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"{path}: {len(rows)} of {len(train_rows)} training pairs")


if __name__ == "__main__":
    main()
