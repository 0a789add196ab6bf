"""``rewardlab prm``: process reward models, trained on step-labelled chains (``prm train``), scoring
chains step by step (``prm score``), and step labels from a policy's rollouts (``prm label``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import app, out, user_errors

prm_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode="markdown", help="Process reward models: a score for every step."
)
app.add_typer(prm_app, name="prm")


@prm_app.command("train")
@user_errors
def prm_train(
    data: Annotated[str, typer.Argument(help="Chains file: prompt, steps, labels (rewardlab data chains writes one)")],
    output: Annotated[Path, typer.Option(help="Run folder: model/, report.md, checkpoint/")] = Path("runs/prm"),
    backbone: Annotated[str, typer.Option(help="Packaged name (minilm) or local model folder")] = "minilm",
    supervision: Annotated[
        str, typer.Option(help="process (every step's label: a PRM) or outcome (an ORM)")
    ] = "process",
    epochs: Annotated[float, typer.Option(help="Passes over the training chains")] = 2.0,
    batch_chains: Annotated[int, typer.Option(help="Chains per optimiser step")] = 8,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 3e-5,
    max_length: Annotated[int, typer.Option(help="Tokens per scored prefix")] = 256,
    test_fraction: Annotated[float, typer.Option(help="Share of the chains held out for the report")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split and of the chains' order")] = 0,
    max_chains: Annotated[int | None, typer.Option(help="Read only the first this many chains")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --output from its checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace the run in --output")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Train a process reward model: each step's score is the logit that the chain is still right after it."""
    from rewardlab.process.run import ProcessRunConfig, render_report, run_process_training
    from rewardlab.process.trainer import ProcessTrainConfig

    train = ProcessTrainConfig(supervision=supervision, epochs=epochs, batch_chains=batch_chains, lr=lr, seed=seed)
    config = ProcessRunConfig(
        data=data,
        output_dir=str(output),
        backbone=backbone,
        max_length=max_length,
        test_fraction=test_fraction,
        split_seed=seed,
        max_chains=max_chains,
        train=train,
        progress=progress,
    )
    report = run_process_training(config, overwrite=overwrite, resume=resume)
    out.print(render_report(report), markup=False, highlight=False)


@prm_app.command("score")
@user_errors
def prm_score(
    model: Annotated[Path, typer.Argument(help="A reward model folder (rewardlab prm train's model/)")],
    data: Annotated[str, typer.Argument(help="Chains file: prompt and steps (labels, if any, are evaluated)")],
    output: Annotated[Path | None, typer.Option(help="JSONL: each chain's step probabilities and score")] = None,
    aggregate: Annotated[str, typer.Option(help="Chain score: min, product, last, mean or sum")] = "min",
    shaping: Annotated[str | None, typer.Option(help="clip or delta (Gao et al. 2024) before aggregating")] = None,
    eta: Annotated[float, typer.Option(help="clip: the threshold η in min(p − η, 0)")] = 0.5,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Score every step of every chain; with labels, report how often the first low step is the first wrong one."""
    import torch

    from rewardlab.data.chains import read_chains
    from rewardlab.destinations import check_jsonl_destination
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.process.run import share
    from rewardlab.process.scoring import localisation, step_logits
    from rewardlab.process.steps import chain_score

    if output is not None:
        check_jsonl_destination(output)
    chains = read_chains(data)
    chain_score(torch.ones(1), aggregate, shaping, eta)  # a wrong option is said before the model loads
    reward_model = RewardModel.from_pretrained(model)
    probabilities = [torch.sigmoid(t) for t in step_logits(reward_model, chains, progress=progress)]
    scores = [chain_score(p, aggregate, shaping, eta) for p in probabilities]
    if output is not None:
        from rewardlab.atomic import write_text_atomic

        rows = [
            {"id": c.id, "steps": p.tolist(), "score": s} for c, p, s in zip(chains, probabilities, scores, strict=True)
        ]
        write_text_atomic(output, "".join(json.dumps(row) + "\n" for row in rows))
    if all(c.labels is not None for c in chains):
        found = localisation(chains, probabilities)
        low, high = found.interval
        out.print(
            f"first wrong step found in {found.accuracy:.3f} ({low:.3f}–{high:.3f}) of {found.n} chains: "
            f"{share(found.accuracy_on_wrong)} of {found.wrong_chains} with a wrong step, "
            f"{share(found.accuracy_on_right)} of {found.right_chains} without; "
            f"step accuracy {found.step_accuracy:.3f}",
            markup=False,
            highlight=False,
        )
    mean = sum(scores) / len(scores)
    out.print(f"{len(chains)} chains scored ({aggregate}): mean score {mean:.4f}", markup=False, highlight=False)


@prm_app.command("label")
@user_errors
def prm_label(
    data: Annotated[str, typer.Argument(help="Chains file: prompt, steps and answer (a number)")],
    output: Annotated[Path, typer.Option(help="JSONL to write: the chains with a label per step")],
    policy: Annotated[
        str, typer.Option(help="The causal LM that completes the chains: smollm2 or a folder")
    ] = "smollm2",
    rollouts: Annotated[int, typer.Option(help="Completions from each step")] = 8,
    estimate: Annotated[str, typer.Option(help="soft (share of right completions) or hard (any right)")] = "soft",
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the completions")] = 0.7,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per completion")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the completions")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Label every step by Monte-Carlo rollouts (Math-Shepherd): the share of the policy's completions from
    that step that reach the chain's answer."""
    from rewardlab.data.chains import read_chains, write_chains
    from rewardlab.destinations import check_jsonl_destination
    from rewardlab.models.causal_lm import CausalLM
    from rewardlab.process.rollouts import monte_carlo_labels, reference_answer

    check_jsonl_destination(output)
    chains = read_chains(data)
    for chain in chains:
        reference_answer(chain)  # a missing or non-numeric answer is said before the policy loads
    lm = CausalLM.from_pretrained(policy, precision="auto")
    labelled = monte_carlo_labels(
        lm,
        chains,
        rollouts=rollouts,
        estimate=estimate,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
        progress=progress,
    )
    write_chains(labelled, output)
    steps = sum(len(c.steps) for c in labelled)
    out.print(f"labelled {steps} steps of {len(labelled)} chains into {output}", markup=False, highlight=False)
