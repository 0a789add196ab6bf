"""Commands that sample replies from a policy: ``overopt`` (best-of-N), ``daa-overopt`` (DPO-family
training), ``sample-pairs`` (RSO)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import app, note, out, user_errors
from rewardlab.cli.options import (
    ChunkOption,
    ColumnsOption,
    GoldOption,
    MaxNewTokensOption,
    PolicyOption,
    PrecisionOption,
    PromptCountOption,
    PromptDataOption,
    SkipOption,
    SplitOption,
    TemperatureOption,
)


@app.command()
@user_errors
def overopt(
    gold: GoldOption,
    proxy: Annotated[
        list[Path] | None, typer.Option(help="Proxy reward model folder that picks the reply; repeat for an ensemble")
    ] = None,
    output: Annotated[Path, typer.Option(help="Folder for overopt.json, overopt.md and overopt.png")] = Path(
        "runs/overopt"
    ),
    policy: PolicyOption = "smollm2",
    data: PromptDataOption = "default",
    split: SplitOption = "test",
    prompts: PromptCountOption = 32,
    n: Annotated[int, typer.Option("--n", help="Replies sampled per prompt: best-of-N for every N up to it")] = 64,
    temperature: TemperatureOption = 1.0,
    max_new_tokens: MaxNewTokensOption = 64,
    seed: Annotated[int, typer.Option(help="Sampling seed (combined with each prompt)")] = 0,
    chunk: ChunkOption = 64,
    precision: PrecisionOption = "auto",
    uncertainty_weight: Annotated[float, typer.Option(help="Ensembles: λ of uwo (mean − λ·variance)")] = 1.0,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where sampled replies are cached (default: OUTPUT/generations)")
    ] = None,
) -> None:
    """Best-of-N against proxy reward models, judged by a gold one: the over-optimisation curves vs KL.

    Replies are cached on disk, so a rerun with other reward models samples nothing again.
    """
    from rewardlab.evaluate.data_split import load_pairs
    from rewardlab.policy.evaluation import distinct_prompts
    from rewardlab.sampling.generation import SampleConfig
    from rewardlab.sampling.overopt import OveroptConfig, run_overopt
    from rewardlab.sampling.overopt_report import write_overopt_report

    if prompts < 1:
        raise ValueError(f"--prompts must be at least 1 (got {prompts})")
    sampling = SampleConfig(n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, chunk=chunk)
    sampling.check()
    chosen = distinct_prompts(load_pairs(data, split=split, log=note), prompts)
    config = OveroptConfig(
        policy=policy,
        gold=str(gold),
        proxies=[str(p) for p in proxy or []],
        prompts=chosen,
        sampling=sampling,
        precision=precision,  # type: ignore[arg-type]  # checked by check()
        uncertainty_weight=uncertainty_weight,
        cache_dir=str(cache_dir or output / "generations"),
        progress=True,
    )
    result = run_overopt(config)
    paths = write_overopt_report(result, output)
    cache = result["cache"]
    out.print(f"{len(chosen)} prompts × {n} replies; {cache['reused_prompts']} prompts read from {cache['path']}")
    for name, curve in result["curves"].items():
        out.print(f"{name}: gold {curve['gold'][0]:.3f} at N=1 → {curve['gold'][-1]:.3f} at N={n}", highlight=False)
    out.print("report: {}, {}, {}".format(*paths))


@app.command("daa-overopt")
@user_errors
def daa_overopt(
    gold: GoldOption,
    losses: Annotated[str, typer.Option(help="Policy losses, comma-separated; +ra: on reward-augmented pairs")] = (
        "dpo,ipo,slic"
    ),
    betas: Annotated[str, typer.Option(help="β values, comma-separated: one curve per loss and β")] = "0.01,0.1,0.5",
    policy: PolicyOption = "smollm2",
    data: Annotated[str, typer.Option(help="Preference data file or folder ('default': embedded HH-RLHF)")] = "default",
    columns: ColumnsOption = None,
    skip_bad_rows: SkipOption = False,
    max_train_pairs: Annotated[int | None, typer.Option(help="Train on the first N training pairs only")] = None,
    steps: Annotated[int, typer.Option(help="Training steps per curve")] = 40,
    eval_every: Annotated[int, typer.Option(help="Measure KL and gold reward every this many steps (and at 0)")] = 10,
    batch_pairs: Annotated[int, typer.Option(help="Pairs per step")] = 8,
    lr: Annotated[float, typer.Option(help="Learning rate")] = 5e-6,
    lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters instead of every weight")] = False,
    lora_r: Annotated[int, typer.Option(help="LoRA rank (with --lora)")] = 16,
    max_prompt_tokens: Annotated[int, typer.Option(help="Prompt tokens at most (cut from the left)")] = 256,
    max_reply_tokens: Annotated[int, typer.Option(help="Reply tokens at most in training")] = 128,
    prompts: Annotated[int, typer.Option(help="Distinct held-out prompts sampled at each checkpoint")] = 8,
    samples: Annotated[int, typer.Option(help="Replies per prompt at each checkpoint")] = 4,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per sampled reply at most")] = 48,
    split: Annotated[str, typer.Option(help="Held-out split the prompts come from: test or validation")] = "test",
    seed: Annotated[int, typer.Option(help="Seed of the batches, the adapters and the sampling")] = 0,
    precision: PrecisionOption = "auto",
    output: Annotated[Path, typer.Option(help="Folder for daa_overopt.json, .md and .png")] = Path("runs/daa-overopt"),
) -> None:
    """Gold reward against KL along DPO/IPO/SLiC training at several β (Rafailov et al. 2024), with fits."""
    from rewardlab.policy.daa_overopt import DAAOveroptConfig, run_daa_overopt
    from rewardlab.policy.daa_overopt_report import write_daa_overopt_report
    from rewardlab.policy.lora import LoraSettings
    from rewardlab.policy.trainer import PolicyTrainConfig
    from rewardlab.runs.data import SplitDataConfig

    try:
        beta_values = [float(b) for b in betas.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"--betas must be numbers separated by commas (got {betas!r})") from None
    train = PolicyTrainConfig(
        steps=steps, batch_pairs=batch_pairs, lr=lr, seed=seed, max_prompt_tokens=max_prompt_tokens,
        max_reply_tokens=max_reply_tokens, precision=precision, cache_dir=str(output / "cache"),
    )  # fmt: skip
    config = DAAOveroptConfig(
        gold=str(gold), policy=policy, losses=[x.strip() for x in losses.split(",") if x.strip()], betas=beta_values,
        data=SplitDataConfig(path=data, columns=columns, skip_bad_rows=skip_bad_rows), max_train_pairs=max_train_pairs,
        train=train, lora=LoraSettings(enabled=lora, r=lora_r, alpha=2.0 * lora_r), eval_every=eval_every,
        prompts=prompts, samples=samples, max_new_tokens=max_new_tokens, seed=seed, split=split,
        gold_precision=precision, progress=True,  # type: ignore[arg-type]  # checked by check()
    )  # fmt: skip
    result = run_daa_overopt(config)
    paths = write_daa_overopt_report(result, output)
    for name, curve in result["curves"].items():
        first, last = curve["points"][0], curve["points"][-1]
        fit = curve["fit"]
        fitted = "no fit" if fit is None else f"fit α {fit['alpha']:.3f}, β {fit['beta']:.3f}"
        out.print(
            f"{name}: gold {first['gold']:.3f} → {last['gold']:.3f} at KL {last['kl']:.3f} ({fitted})", highlight=False
        )
    out.print("report: {}, {}, {}".format(*paths))


@app.command("sample-pairs")
@user_errors
def sample_pairs(
    policy: Annotated[str, typer.Option(help="The policy candidates are sampled from: smollm2 or a causal LM folder")],
    output: Annotated[Path, typer.Option(help="Where to write the pairs (JSONL that `rewardlab dpo --data` reads)")],
    reward_model: Annotated[
        Path | None, typer.Option(help="Reward model folder: the tilt exp(r/β) and each pair's label")
    ] = None,
    scorer: Annotated[
        str | None, typer.Option(help="Instead of --reward-model, a scorer needing no folder: r3 (preference-free)")
    ] = None,
    data: PromptDataOption = "default",
    split: SplitOption = "train",
    prompts: PromptCountOption = 32,
    n: Annotated[int, typer.Option("--n", help="Candidates sampled from the policy per prompt")] = 64,
    accept: Annotated[int, typer.Option(help="Draws of the tilted policy per prompt at most (pairs: half)")] = 8,
    beta: Annotated[float, typer.Option(help="β of π_sft·exp(r/β): large keeps the policy, small the best")] = 0.5,
    temperature: TemperatureOption = 1.0,
    max_new_tokens: MaxNewTokensOption = 64,
    seed: Annotated[int, typer.Option(help="Sampling and acceptance seed (combined with each prompt)")] = 0,
    chunk: ChunkOption = 64,
    precision: PrecisionOption = "auto",
    direction: Annotated[
        str | None,
        typer.Option(help="Multi-attribute reward model: rank along these attribute weights, e.g. 1,0.5 (DPA)"),
    ] = None,
) -> None:
    """DPO pairs by statistical rejection sampling (RSO, Liu et al. 2023): draws of π_sft·exp(r/β), ranked by reward.

    N candidates per prompt are sampled from the policy and scored; rejection sampling accepts up to
    --accept of them as draws of the reward-tilted policy, which are paired as drawn and labelled by
    the reward (each reply's reward kept as chosen_rating / rejected_rating). With --direction and a
    multi-attribute reward model the reward is the attributes' projection on that direction, so DPO on
    the pairs moves the policy toward it (directional rejection-sampling fine-tuning, DPA).
    """
    from rewardlab.atomic import write_text_atomic
    from rewardlab.destinations import check_file_destination
    from rewardlab.evaluate.data_split import load_pairs
    from rewardlab.policy.evaluation import distinct_prompts
    from rewardlab.rewards.direction import direction_weights
    from rewardlab.sampling.generation import SampleConfig
    from rewardlab.sampling.rso_pairs import RSOPairsConfig, build_rso_pairs, pair_rows

    if prompts < 1:
        raise ValueError(f"--prompts must be at least 1 (got {prompts})")
    check_file_destination(output)  # before sampling, not after
    sampling = SampleConfig(n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, chunk=chunk)
    config = RSOPairsConfig(
        policy=policy,
        reward_model=None if reward_model is None else str(reward_model),
        scorer=scorer,
        prompts=distinct_prompts(load_pairs(data, split=split, log=note), prompts),
        sampling=sampling,
        beta=beta,
        accept=accept,
        precision=precision,  # type: ignore[arg-type]  # checked by check()
        progress=True,
        direction=direction_weights(direction),
    )
    config.check()
    result = build_rso_pairs(config)
    write_text_atomic(output, pair_rows(result.pairs))
    s = result.stats
    out.print(f"{s['prompts']} prompts × {n} candidates → {s['pairs']} pairs → {output}", highlight=False)
    out.print(
        f"mean reward: candidates {s['mean_candidate_reward']:.3f}, paired replies {s['mean_paired_reward']:.3f}",
        highlight=False,
    )
