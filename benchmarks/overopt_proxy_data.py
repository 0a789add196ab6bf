"""Training data of the proxy reward models of the over-optimisation study (benchmarks/overoptimization.md).

The gold model is trained on the whole training split of the embedded HH data; each proxy sees
only ``--pairs`` pairs drawn from that same training split (a different seeded sample per proxy),
so a proxy is a weaker, differently wrong reward, and neither ever sees a held-out test prompt.

``--length-noise F`` replaces the human label of a seeded fraction F of each proxy's pairs by
"the longer reply is better": systematic label noise of the kind reward hacking exploits (length
is the best documented one), where plain subsampling gives only random error.

    python benchmarks/overopt_proxy_data.py --pairs 300 --proxies 3 --output runs/overopt/data
    python benchmarks/overopt_proxy_data.py --pairs 300 --proxies 3 --length-noise 0.5 --output runs/overopt/data-length
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
    parser.add_argument("--length-noise", type=float, default=0.0, help="fraction of labels set to 'longer wins'")
    parser.add_argument("--output", type=Path, default=Path("runs/overopt/data"))
    args = parser.parse_args()
    if not 0 <= args.length_noise <= 1:
        raise SystemExit(f"--length-noise must be a fraction in [0, 1] (got {args.length_noise})")
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
        noisy = random.Random(f"length-noise:{k}")
        relabelled = 0
        for i, row in enumerate(rows):
            if noisy.random() < args.length_noise:
                longer_first = len(row["chosen"]) >= len(row["rejected"])
                rows[i] = row if longer_first else {**row, "chosen": row["rejected"], "rejected": row["chosen"]}
                relabelled += not longer_first
        path = args.output / f"proxy-{k}.jsonl"
        write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"{path}: {len(rows)} of {len(train_rows)} training pairs, {relabelled} labels flipped to 'longer wins'")


if __name__ == "__main__":
    main()
