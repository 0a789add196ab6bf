"""DPO training: rewardlab's ``train_policy`` against TRL's ``DPOTrainer``, side by side in one run.

What is measured
----------------
(a) First-step loss on one batch with the same initial weights: both tools get the same policy and
    the same reference model (a copy of the policy with seeded Gaussian noise added to every weight,
    so the loss is not trivially log 2 as it is when policy = reference), the same pairs, β and
    max length. TRL's loss is ``DPOTrainer.compute_loss`` on its own collated batch; rewardlab's is
    the loss ``train_policy`` logs at its first step. The script also checks that both tools
    tokenised every pair into the same prompt and reply token ids.
(b) Speed: each tool trains ``--steps`` steps of ``--batch`` pairs in its own subprocess (threads
    fixed), runs alternating. Both see the same batches in the same order (TRL's sampler is made
    sequential over the pairs in rewardlab's batch order), both precompute the reference
    log-probabilities before the loop (TRL: ``precompute_ref_log_probs=True``), constant lr, no
    warmup, gradient clipping at 1.0, dropout off. Step time is taken between consecutive step ends
    (steps 2..N, so both exclude the first step's warm-up); throughput is pairs per second over
    those steps, and the ratio is rewardlab / TRL.
(c) Peak resident memory (``ru_maxrss``) of each subprocess, model loading included.

TRL runs at its CPU defaults (bf16 autocast and gradient checkpointing) and without gradient
checkpointing in fp32 and in bf16; "TRL best" is the fastest. rewardlab runs at its defaults
(``precision=auto``: bf16 passes on a bf16 copy with fp32 master weights and AdamW, where the CPU
has AMX or AVX512-BF16) and, as ``rewardlab-fp32``, in fp32. The first-step losses of (a) are
compared in fp32 in both tools, where they must agree to 1e-4; rewardlab's bf16 first-step loss on
the same batch is reported beside them.

Pairs: the embedded HH-RLHF harmless data, the training split of ``rewardlab train``'s split
(seed 0), keeping only pairs whose prompt + reply fits ``--max-length`` tokens for both replies
(TRL truncates prompt + reply from the end, rewardlab cuts prompt and reply separately, so only
pairs that need no truncation are the same work for both), then a seeded sample of
``steps x batch`` of them.

Usage
-----
    python benchmarks/dpo_vs_trl.py                       # SmolLM2-135M-Instruct, 10 steps of 8
    python benchmarks/dpo_vs_trl.py --model DIR --steps 4  # any local causal LM folder

Results: ``benchmarks/results/dpo_vs_trl.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TRL_SETTINGS = {
    "trl-defaults": {"bf16": True, "gradient_checkpointing": True},
    "trl-fp32": {"bf16": False, "gradient_checkpointing": False},
    "trl-bf16": {"bf16": True, "gradient_checkpointing": False},
}


# -- shared set-up ----------------------------------------------------------------------------------


def model_dir(name: str) -> Path:
    from rewardlab.models.backbones import resolve_backbone

    return resolve_backbone(name)


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    from rewardlab.models.reward_model import ensure_pad_token

    tokenizer = AutoTokenizer.from_pretrained(path)
    ensure_pad_token(tokenizer)
    return tokenizer


def select_pairs(tokenizer: Any, max_length: int, count: int, seed: int) -> tuple[list[Any], int]:
    """``count`` training-split pairs that fit ``max_length`` untruncated, and how many fit in all."""
    from rewardlab.data import load_preferences, split_pairs
    from rewardlab.models.formatting import choose_format
    from rewardlab.models.pair_encoding import encode_pairs

    train = split_pairs(load_preferences(None).pairs, validation=0.1, test=0.2, seed=0).train
    tokens = encode_pairs(tokenizer, train, choose_format(tokenizer), 10**6, 10**6)
    fits = [
        i
        for i in range(len(train))
        if len(tokens.prompts[i]) + max(len(tokens.chosen[i]), len(tokens.rejected[i])) <= max_length
    ]
    if len(fits) < count:
        raise SystemExit(f"only {len(fits)} pairs fit {max_length} tokens; fewer --steps or --batch")
    chosen = sorted(random.Random(seed).sample(fits, count))
    return [train[i] for i in chosen], len(fits)


def trl_rows(pairs: list[Any]) -> list[dict[str, Any]]:
    """The pairs in TRL's conversational preference format (prompt messages, one assistant reply)."""
    from rewardlab.models.causal_lm import as_messages

    return [
        {
            "prompt": [dict(m) for m in as_messages(p.prompt)],
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]


def trl_trainer(model: Any, ref_model: Any, tokenizer: Any, pairs: list[Any], args: dict[str, Any], out: str) -> Any:
    """A ``DPOTrainer`` that visits the pairs in the given order (sequential sampler)."""
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    class SequentialDPOTrainer(DPOTrainer):
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)

    config = DPOConfig(
        output_dir=out,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        dataloader_num_workers=0,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=1.0,
        seed=0,
        **args,
    )
    return SequentialDPOTrainer(
        model=model,
        ref_model=ref_model,
        args=config,
        train_dataset=Dataset.from_list(trl_rows(pairs)),
        processing_class=tokenizer,
    )


# -- (a) first-step loss --------------------------------------------------------------------------------


def perturbed(model: Any, scale: float, seed: int) -> Any:
    import torch

    reference = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)
    return reference.eval()


def first_step_losses(args: argparse.Namespace, pairs: list[Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    from rewardlab.models.formatting import choose_format
    from rewardlab.models.pair_encoding import encode_pairs
    from rewardlab.policy.trainer import PolicyTrainConfig, train_policy

    torch.manual_seed(0)
    path = model_dir(args.model)
    tokenizer = load_tokenizer(path)
    batch = pairs[: args.batch]
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    reference = perturbed(policy, args.reference_noise, seed=1)

    ours_tokens = encode_pairs(tokenizer, batch, choose_format(tokenizer), args.max_length, args.max_length)
    config = PolicyTrainConfig(
        loss="dpo",
        loss_args={"beta": args.beta},
        steps=1,
        batch_pairs=len(batch),
        lr=args.lr,
        max_prompt_tokens=args.max_length,
        max_reply_tokens=args.max_length,
    )
    config.precision = "fp32"
    ours = train_policy(copy.deepcopy(policy), tokenizer, batch, config, reference_model=reference).history[0]
    config.precision = "auto"
    auto = train_policy(copy.deepcopy(policy), tokenizer, batch, config, reference_model=reference)

    with tempfile.TemporaryDirectory() as out:
        trainer = trl_trainer(
            copy.deepcopy(policy),
            reference,
            tokenizer,
            batch,
            {"beta": args.beta, "max_length": args.max_length, "bf16": False, "gradient_checkpointing": False},
            out,
        )
        rows = [trainer.train_dataset[i] for i in range(len(batch))]
        same_tokens = all(
            (r["prompt_ids"], r["chosen_ids"], r["rejected_ids"])
            == (ours_tokens.prompts[i], ours_tokens.chosen[i], ours_tokens.rejected[i])
            for i, r in enumerate(rows)
        )
        trainer.model.train()
        with torch.no_grad():
            theirs = float(trainer.compute_loss(trainer.model, trainer._prepare_inputs(trainer.data_collator(rows))))
    return {
        "pairs": len(batch),
        "reference_noise": args.reference_noise,
        "same_token_ids": same_tokens,
        "rewardlab_loss": ours["loss"],
        "trl_loss": theirs,
        "abs_difference": abs(ours["loss"] - theirs),
        "within_1e-4": abs(ours["loss"] - theirs) <= 1e-4,
        "rewardlab_default_precision": auto.precision,
        "rewardlab_default_loss": auto.history[0]["loss"],
    }


# -- (b, c) one timed run per subprocess ----------------------------------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, TrainerCallback

    from rewardlab.data.records import PreferencePair
    from rewardlab.policy.trainer import PolicyTrainConfig, batches, train_policy
    from rewardlab.tuning import tune_cpu

    tune_cpu()  # rewardlab's CPU settings, for both tools alike (they used to come with the import)
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    path = model_dir(spec["model"])
    tokenizer = load_tokenizer(path)
    pairs = [PreferencePair(**p) for p in spec["pairs"]]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    ends: list[float] = []
    losses: list[float] = []
    steps, batch = spec["steps"], spec["batch"]
    if spec["tool"].startswith("rewardlab"):
        config = PolicyTrainConfig(
            loss="dpo",
            loss_args={"beta": spec["beta"]},
            steps=steps,
            batch_pairs=batch,
            lr=spec["lr"],
            max_prompt_tokens=spec["max_length"],
            max_reply_tokens=spec["max_length"],
            precision="fp32" if spec["tool"] == "rewardlab-fp32" else "auto",
        )

        def log(step: int, values: dict[str, float]) -> None:
            ends.append(time.perf_counter())
            losses.append(values["loss"])

        train_policy(model, tokenizer, pairs, config, log=log)
    else:
        order = [i for step in batches(len(pairs), batch, steps, 0) for i in step]  # rewardlab's batches, in order

        class StepEnds(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                ends.append(time.perf_counter())

        options = {
            "beta": spec["beta"],
            "max_length": spec["max_length"],
            "learning_rate": spec["lr"],
            "per_device_train_batch_size": batch,
            "max_steps": steps,
            "precompute_ref_log_probs": True,
            **TRL_SETTINGS[spec["tool"]],
        }
        with tempfile.TemporaryDirectory() as out:
            trainer = trl_trainer(model, None, tokenizer, [pairs[i] for i in order], options, out)
            trainer.add_callback(StepEnds())
            trainer.train()
            losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    step_seconds = [b - a for a, b in itertools.pairwise(ends)]
    return {
        "tool": spec["tool"],
        "steps": len(ends),
        "step_seconds": step_seconds,
        "median_step_s": statistics.median(step_seconds),
        "pairs_per_s": batch * len(step_seconds) / sum(step_seconds),
        "losses": losses,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def run_child(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    spec_path, result_path = work / f"{spec['tool']}-{spec['repeat']}.json", work / f"{spec['tool']}-result.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    env = os.environ | CHILD_ENV | {"OMP_NUM_THREADS": str(spec["threads"]), "MKL_NUM_THREADS": str(spec["threads"])}
    command = [sys.executable, __file__, "--child", str(spec_path), "--child-result", str(result_path)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{spec['tool']} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    return result | {"repeat": spec["repeat"], "wall_s": time.perf_counter() - started, "load_1min": os.getloadavg()[0]}


# -- report ------------------------------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    a = report["first_step"]
    lines = [
        f"# DPO: rewardlab vs TRL `DPOTrainer` ({report['model']})",
        "",
        f"Command: `{report['command']}`",
        f"{report['steps']} steps x {report['batch']} pairs, max length {report['max_length']}, β {report['beta']}, "
        f"lr {report['lr']}, {report['threads']} threads; {report['pairs_fitting']} training pairs fit the max length.",
        f"Load average before/after: {report['load_before']} / {report['load_after']}.",
        "",
        "## (a) First-step loss, same batch and initial weights",
        "",
        f"- pairs: {a['pairs']}; reference = policy + N(0, {a['reference_noise']}²) noise per weight",
        f"- same prompt/reply token ids in both tools: {a['same_token_ids']}",
        f"- rewardlab {a['rewardlab_loss']:.6f}, TRL {a['trl_loss']:.6f}, |difference| {a['abs_difference']:.2e} "
        f"({'within' if a['within_1e-4'] else 'NOT within'} 1e-4), both in fp32",
        f"- rewardlab at its default precision ({a['rewardlab_default_precision']}): {a['rewardlab_default_loss']:.6f}",
        "",
        "## (b, c) Speed and memory (one subprocess per run, alternating)",
        "",
        "| run | repeat | median step s | pairs/s (steps 2..N) | ratio to TRL best | peak RSS GB | loss 1st → last |",
        "|---|---|---|---|---|---|---|",
    ]
    best = report["trl_best_pairs_per_s"]
    for r in report["runs"]:
        lines.append(
            f"| {r['tool']} | {r['repeat']} | {r['median_step_s']:.2f} | {r['pairs_per_s']:.3f} | "
            f"{r['pairs_per_s'] / best:.2f} | {r['peak_rss_gb']:.2f} | {r['losses'][0]:.4f} → {r['losses'][-1]:.4f} |"
        )
    lines += ["", f"TRL best: {report['trl_best']}; rewardlab (defaults) / TRL best throughput: {report['ratio']:.2f}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--reference-noise", type=float, default=2e-3)
    parser.add_argument("--trl", default="trl-fp32,trl-bf16,trl-defaults", help="TRL settings to time")
    parser.add_argument("--rewardlab", default="rewardlab,rewardlab-fp32", help="rewardlab settings to time")
    parser.add_argument("--name", default="dpo_vs_trl")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(json.loads(args.child.read_text(encoding="utf-8")))
        args.child_result.write_text(json.dumps(result), encoding="utf-8")
        return

    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    tokenizer = load_tokenizer(model_dir(args.model))
    pairs, fitting = select_pairs(tokenizer, args.max_length, args.steps * args.batch, seed=0)
    first = first_step_losses(args, pairs)
    print(json.dumps(first), flush=True)
    tools = [*[t for t in args.rewardlab.split(",") if t], *[t for t in args.trl.split(",") if t]]
    runs = []
    settings = {name: getattr(args, name) for name in ("steps", "batch", "max_length", "beta", "lr", "threads")}
    with tempfile.TemporaryDirectory() as work:
        for repeat in range(args.repeats):
            for tool in tools if repeat % 2 == 0 else tools[::-1]:
                spec = {
                    "tool": tool,
                    "repeat": repeat,
                    "model": args.model,
                    "pairs": [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs],
                    **settings,
                }
                runs.append(run_child(spec, Path(work)))
                print(json.dumps({k: v for k, v in runs[-1].items() if k != "step_seconds"}), flush=True)
    trl_runs = [r for r in runs if r["tool"].startswith("trl")]
    best = max(trl_runs, key=lambda r: r["pairs_per_s"])
    ours = statistics.median(r["pairs_per_s"] for r in runs if r["tool"] == "rewardlab")
    report = {
        "command": "python " + " ".join([f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
        "model": args.model,
        **settings,
        "pairs_fitting": fitting,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "first_step": first,
        "runs": runs,
        "trl_best": best["tool"],
        "trl_best_pairs_per_s": best["pairs_per_s"],
        "ratio": ours / best["pairs_per_s"],
        "torch": torch.__version__,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (RESULTS / f"{args.name}.md").write_text(render(report), encoding="utf-8")
    print(render(report))


if __name__ == "__main__":
    main()
