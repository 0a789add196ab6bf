"""Aligning a small student through an aligned teacher (Gao et al. 2025): plain DPO on the student, plain
logit distillation (kd), DCKD, ADPA and ADPA+DCKD, each judged against the student's SFT start.

1. Teacher: ``rewardlab dpo`` on the embedded HH-RLHF pairs from ``--teacher`` (SmolLM2-135M-Instruct);
   its reference (the teacher before DPO) is ``--teacher`` itself.
2. Student: the ``--layers`` outer layers of ``--teacher`` (same tokenizer; ``distill/student.py`` says
   why), then SFT on the chosen replies at ``--sft-lr`` (``method=sft``): the SFT start. A cut student
   starts far from fluent (20 of SmolLM2's 30 layers: per-token NLL 5.7 against 2.85), so its SFT needs a
   higher rate than the comparison: a first reduced run with 10 evenly spaced layers and SFT at 1e-5 was
   still at NLL 11-13 after 12 steps and was stopped.
3. The SFT start samples one reply per training prompt (``rewardlab distill samples``: the batched
   decoder, temperature ``--sample-temperature``, at most ``--sample-tokens`` tokens, seeded per prompt).
4. From the SFT start, with the same prompts, steps and learning rate: DPO (``rewardlab dpo``), kd, dckd,
   adpa, adpa+dckd (``rewardlab distill train``). DPO, kd and dckd train on the data's pairs; adpa and
   adpa+dckd on (the data's chosen reply, the SFT student's sample) as in the paper, where the advantage
   is read on the student's own states (in adpa+dckd the rejected-side KL then reads those states too).
5. Each trained student and the SFT start answer the first ``--prompts`` distinct prompts of the held-out
   test split greedily; ``--judge``, a reward model trained on held-out human labels (``rewardlab train``),
   scores both; the win rate (ties 1/2) with its 95 % interval.

    rewardlab train --data hh-harmless --output /tmp/hh-rm
    nice python benchmarks/distill_alignment.py --judge /tmp/hh-rm/model --output /tmp/distill-alignment
    python benchmarks/distill_alignment.py --tiny --output /tmp/distill-tiny   # tiny models, a smoke test

Resumable: a finished stage (its report.json, or the samples file) is not redone, and an interrupted
sampling keeps the prompts it finished. Writes ``results.json`` in ``--output``.

Cost (measured, not run in full). One thread (``OMP_NUM_THREADS=1 nice -n 5``) on an AMD EPYC (2 cores
shared with two other benchmarks: wall time was 1.5-2x the CPU time given here, which is what one idle
core would take), teacher SmolLM2-135M-Instruct (30 layers), student a 10-layer cut (the default is
now 20 layers: student steps cost up to twice these, not timed), HH-RLHF
harmless pairs; CPU seconds of one step of 8 pairs (micro-batches of 2), prompts <= 256 and replies
<= 128 tokens: teacher DPO 30.0 (+1.0 per pair for its reference log-probs, read once), SFT 10.5,
student DPO 10.6 (+0.4 per pair), kd 19.8, dckd 18.7, adpa 30.5, adpa+dckd 29.2 (adpa reads two
teachers); sampling 1.1 per prompt (128 tokens: the raw cut student never ended a reply, so an upper
bound); win rate 4.8 per prompt and method (two greedy 64-token replies, the MiniLM judge). The
defaults therefore take about 15 hours: teacher 3.2 (2400 reference pairs + 300 steps), SFT 0.6,
samples 0.7, student DPO 1.1, kd 1.7, dckd 1.6, adpa 2.5, adpa+dckd 2.4, win rates 1.3.

About 55 minutes on one core (per-step costs measured at these lengths, batch 4: teacher DPO 10.4,
SFT 4.4, student DPO 4.7, kd 8.1, dckd 8.6, adpa 12.2, adpa+dckd 12.0; sampling 0.5 per prompt, win
rate 2.9 per prompt and method), at the full run's learning rate, so every method moves the student
far less than in the full run, and 40 prompts give a win-rate interval of about +-0.15:

    nice python benchmarks/distill_alignment.py --judge /tmp/hh-rm/model --output /tmp/distill-60min \
        --teacher-steps 40 --sft-steps 40 --steps 40 --batch-pairs 4 --max-train-pairs 160 \
        --max-prompt-tokens 128 --max-reply-tokens 64 --sample-tokens 64 --prompts 40 --max-new-tokens 32 \
        --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DISTILLED = ("kd", "dckd", "adpa", "adpa+dckd")
METHODS = ("dpo", *DISTILLED)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--teacher", default="smollm2", help="smollm2, or a causal LM folder")
    parser.add_argument("--judge", help="a reward model trained on held-out human labels (a saved rewardlab model)")
    parser.add_argument("--layers", type=int, default=20, help="layers the student keeps (its outer ones)")
    parser.add_argument("--teacher-steps", type=int, default=300)
    parser.add_argument("--sft-steps", type=int, default=200)
    parser.add_argument("--steps", type=int, default=300, help="steps of each compared method")
    parser.add_argument("--batch-pairs", type=int, default=8)
    parser.add_argument("--micro-pairs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-5, help="learning rate of the teacher and each method")
    parser.add_argument("--sft-lr", type=float, default=1e-4, help="learning rate of the cut student's SFT")
    parser.add_argument("--max-train-pairs", type=int, default=2400)
    parser.add_argument("--max-prompt-tokens", type=int, default=256)
    parser.add_argument("--max-reply-tokens", type=int, default=128)
    parser.add_argument("--sample-tokens", type=int, default=128, help="most tokens of a student sample (adpa)")
    parser.add_argument("--sample-temperature", type=float, default=1.0)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", required=True)
    parser.add_argument("--tiny", action="store_true", help="tiny models and data: a smoke test (tests run it)")
    args = parser.parse_args(argv)
    if not args.tiny and not args.judge:
        parser.error("--judge is needed (or --tiny)")
    return args


def tiny_setup(args: argparse.Namespace, out: Path) -> None:
    """Tiny models from ``tests/tiny_models.py`` (an untrained judge: the numbers mean nothing)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from tiny_models import build_tiny_decoder, build_tiny_encoder, built_once

    from rewardlab.models.reward_model import RewardModel

    models = out / "tiny"
    if not (models / "judge" / "config.json").is_file():
        RewardModel.from_backbone(str(build_tiny_encoder(models / "encoder")), max_length=64).save_pretrained(
            models / "judge"
        )
    built_once(build_tiny_decoder, models / "decoder")
    args.teacher, args.judge, args.layers = str(models / "decoder"), str(models / "judge"), 1
    args.teacher_steps = args.sft_steps = args.steps = 2
    args.batch_pairs, args.lr, args.max_train_pairs, args.prompts, args.max_new_tokens = 4, 1e-3, 8, 3, 4
    args.max_prompt_tokens, args.max_reply_tokens, args.threads, args.sample_tokens = 64, 16, 1, 4


def dpo_stage(args: argparse.Namespace, policy: str, out: Path, steps: int) -> Path:
    from rewardlab.policy.run import run_dpo
    from rewardlab.policy.run_config import load_dpo_config

    if not (out / "report.json").is_file():
        overrides = {
            "policy": policy,
            "output_dir": str(out),
            "data.max_train_pairs": args.max_train_pairs,
            "train.steps": steps,
            "train.batch_pairs": args.batch_pairs,
            "train.lr": args.lr,
            "train.max_prompt_tokens": args.max_prompt_tokens,
            "train.max_reply_tokens": args.max_reply_tokens,
            "train.precision": "fp32",
            "eval.max_pairs": 32,
            "eval.kl_prompts": 0,
            "num_threads": args.threads,
        }
        run_dpo(load_dpo_config(None, overrides), resume=True)
    return out / "policy"


def samples_stage(args: argparse.Namespace, student: Path, out: Path) -> Path:
    """The SFT student's own reply to each training prompt: ADPA's rejected replies."""
    from rewardlab.distill.run import run_student_samples
    from rewardlab.policy.run_config import DPODataConfig
    from rewardlab.sampling.generation import SampleConfig

    if not out.is_file():
        sampling = SampleConfig(n=1, max_new_tokens=args.sample_tokens, temperature=args.sample_temperature, seed=0)
        run_student_samples(
            str(student),
            out,
            DPODataConfig(max_train_pairs=args.max_train_pairs),
            sampling,
            max_prompt_tokens=args.max_prompt_tokens,
            progress=not args.tiny,
        )
    return out


def distill_stage(
    args: argparse.Namespace,
    method: str,
    student: Path,
    teacher: Path | None,
    out: Path,
    steps: int,
    student_samples: Path | None = None,
    lr: float | None = None,
) -> Path:
    from rewardlab.distill.run import load_distill_config, run_distill

    if not (out / "report.json").is_file():
        overrides = {
            "student": str(student),
            "teacher": str(teacher) if teacher else None,
            "teacher_reference": args.teacher,
            "student_samples": str(student_samples) if student_samples else None,
            "output_dir": str(out),
            "data.max_train_pairs": args.max_train_pairs,
            "train.method": method,
            "train.steps": steps,
            "train.batch_pairs": args.batch_pairs,
            "train.micro_pairs": args.micro_pairs,
            "train.lr": lr or args.lr,
            "train.max_prompt_tokens": args.max_prompt_tokens,
            "train.max_reply_tokens": args.max_reply_tokens,
            "num_threads": args.threads,
        }
        run_distill(load_distill_config(None, {k: v for k, v in overrides.items() if v is not None}), resume=True)
    return out / "student"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        tiny_setup(args, out)
    from rewardlab.atomic import write_text_atomic
    from rewardlab.distill.student import build_student
    from rewardlab.models.causal_lm import CausalLM
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.policy.evaluation import distinct_prompts, win_rate
    from rewardlab.runs.data import SplitDataConfig, load_split

    teacher = dpo_stage(args, args.teacher, out / "teacher", args.teacher_steps)
    if not (out / "student-init" / "config.json").is_file():
        build_student(args.teacher, out / "student-init", args.layers)
    sft = distill_stage(args, "sft", out / "student-init", None, out / "sft", args.sft_steps, lr=args.sft_lr)
    samples = samples_stage(args, sft, out / "student-samples.jsonl")
    trained = {"dpo": dpo_stage(args, str(sft), out / "dpo", args.steps)}
    for method in DISTILLED:
        own = samples if method.startswith("adpa") else None
        trained[method] = distill_stage(args, method, sft, teacher, out / method.replace("+", "-"), args.steps, own)
    prompts = distinct_prompts(load_split(SplitDataConfig(), say=lambda m: None).part("test"), args.prompts)
    judge = RewardModel.from_pretrained(args.judge)
    start = CausalLM.from_pretrained(sft, max_prompt_tokens=args.max_prompt_tokens)
    rows = []
    for method, folder in trained.items():
        lm = CausalLM.from_pretrained(folder, max_prompt_tokens=args.max_prompt_tokens)
        outcome = win_rate(lm, start, judge, prompts, args.max_new_tokens).win_rate
        rows.append(
            {
                "method": method,
                "win_rate": outcome.accuracy,
                "low": outcome.ci_low,
                "high": outcome.ci_high,
                "prompts": outcome.n,
            }
        )
    results = {"settings": {k: v for k, v in vars(args).items() if k != "output"}, "rows": rows}
    write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    for row in rows:
        print(
            f"{row['method']:>10}: win rate {row['win_rate']:.3f} "
            f"({row['low']:.3f}–{row['high']:.3f}, n={row['prompts']})"
        )
    return json.loads((out / "results.json").read_text())


if __name__ == "__main__":
    main()
