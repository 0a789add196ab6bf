"""Which layers a student cut from its teacher should keep: per-token NLL of held-out replies for each cut.

``rewardlab.distill.student`` builds a student from some of its teacher's layers; this measures how far
each way of cutting starts from the teacher (before any SFT), on the chosen replies of the first
``--pairs`` HH-RLHF training pairs, in fp32:

    OMP_NUM_THREADS=1 python benchmarks/student_cut.py --keep 10,20,25
"""

from __future__ import annotations

import argparse

import torch

from rewardlab.distill.student import outer_layers, student_from_teacher
from rewardlab.evaluate.data_split import load_pairs
from rewardlab.models.causal_lm import CausalLM


def evenly_spaced(total: int, keep: int) -> list[int]:
    return [round(i * (total - 1) / (keep - 1)) for i in range(keep)] if keep > 1 else [0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--teacher", default="smollm2")
    parser.add_argument("--keep", default="10,20,25", help="numbers of layers to keep")
    parser.add_argument("--pairs", type=int, default=12)
    args = parser.parse_args(argv)
    pairs = load_pairs("hh-harmless", split="train")[: args.pairs]
    prompts, replies = [p.prompt for p in pairs], [p.chosen for p in pairs]
    lm = CausalLM.from_pretrained(args.teacher, precision="fp32")
    teacher, total = lm.model, lm.model.config.num_hidden_layers

    def nll() -> float:
        with torch.no_grad():
            logps, tokens = lm.reply_logps(prompts, replies)
        return -sum(logps) / sum(tokens)

    print(f"| cut | layers | per-token NLL |\n|---|---|---|\n| teacher | {total} | {nll():.3f} |")
    for keep in (int(k) for k in args.keep.split(",")):
        for name, layers in (("outer", outer_layers(total, keep)), ("evenly spaced", evenly_spaced(total, keep))):
            lm.model = student_from_teacher(teacher, layers)
            print(f"| {name} | {keep} | {nll():.3f} |", flush=True)


if __name__ == "__main__":
    main()
