"""``rewardlab prm``: process reward models, trained on step-labelled chains (``prm train``), scoring
chains step by step (``prm score``), and step labels from a policy's rollouts (``prm label``)."""

from __future__ import annotations

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
    from rewardlab.models.step_scoring import step_logits
    from rewardlab.process.run import share
    from rewardlab.process.scoring import localisation
    from rewardlab.rewards.step_aggregation import chain_score

    if output is not None:
        check_jsonl_destination(output)
    chains = read_chains(data)
    chain_score(torch.ones(1), aggregate, shaping, eta)  # a wrong option is said before the model loads
    reward_model = RewardModel.from_pretrained(model)
    probabilities = [torch.sigmoid(t) for t in step_logits(reward_model, chains, progress=progress)]
    scores = [chain_score(p, aggregate, shaping, eta) for p in probabilities]
    if output is not None:
        from rewardlab.atomic import write_jsonl

        rows = [
            {"id": c.id, "steps": p.tolist(), "score": s} for c, p, s in zip(chains, probabilities, scores, strict=True)
        ]
        write_jsonl(output, rows)
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


@prm_app.command("search")
@user_errors
def prm_search(
    model: Annotated[Path, typer.Argument(help="The process reward model folder (rewardlab prm train's model/)")],
    data: Annotated[str, typer.Argument(help="Questions: rows with a prompt (and an answer, to report accuracy)")],
    output: Annotated[Path, typer.Option(help="JSONL to write: each prompt's chosen chain and its score")],
    policy: Annotated[str, typer.Option(help="The causal LM that writes the chains: smollm2 or a folder")] = "smollm2",
    n: Annotated[int, typer.Option(help="Best-of-N: chains sampled per prompt")] = 16,
    beam: Annotated[
        int | None, typer.Option(help="Beam search over steps with this many beams, instead of best-of-N")
    ] = None,
    expansions: Annotated[int, typer.Option(help="Beam search: next steps sampled per beam")] = 4,
    max_steps: Annotated[int, typer.Option(help="Beam search: steps at most")] = 8,
    aggregate: Annotated[
        str, typer.Option(help="Chain score from step probabilities: min, product, last, mean")
    ] = "min",
    temperature: Annotated[float, typer.Option(help="Sampling temperature")] = 0.7,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per chain (best-of-N) or per step (beam)")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the sampling")] = 0,
    limit: Annotated[int | None, typer.Option(help="Only the first this many questions")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Solve each question with the policy, choosing among its chains with a process reward model: best-of-N
    over whole chains, or (--beam) beam search over steps."""
    import torch

    from rewardlab.atomic import write_jsonl
    from rewardlab.data.arithmetic import stated_answer
    from rewardlab.data.chains import read_questions
    from rewardlab.destinations import check_jsonl_destination
    from rewardlab.models.causal_lm import CausalLM
    from rewardlab.models.reward_model import RewardModel
    from rewardlab.process.search import beam_search_all, best_of_n_chains
    from rewardlab.rewards.step_aggregation import chain_score
    from rewardlab.sampling.generation import SampleConfig

    check_jsonl_destination(output)
    chain_score(torch.ones(1), aggregate)  # a wrong option is said before the models load
    questions = read_questions(data, limit)
    prompts = [prompt for prompt, _ in questions]
    targets = [None if answer is None else _number(answer) for _, answer in questions]
    prm = RewardModel.from_pretrained(model)
    lm = CausalLM.from_pretrained(policy, precision="auto")
    if beam is None:
        config = SampleConfig(n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        config.check()
        chosen = best_of_n_chains(lm, prm, prompts, config, aggregate, progress)
    else:
        options = {"beam": beam, "expansions": expansions, "max_steps": max_steps, "step_tokens": max_new_tokens}
        chosen = beam_search_all(
            lm, prm, prompts, progress, **options, temperature=temperature, seed=seed, aggregation=aggregate
        )
    rows = []
    for (prompt, answer), target, pick in zip(questions, targets, chosen, strict=True):
        row = {"prompt": prompt, "steps": list(pick.steps), "score": pick.score if pick.steps else None}
        row |= {"candidates": pick.candidates, "policy_tokens": pick.policy_tokens}
        if answer is not None:
            row |= {"answer": answer, "right": stated_answer(pick.steps) == target}
        rows.append(row)
    write_jsonl(output, rows)
    how = f"beam search ({beam} beams)" if beam is not None else f"best-of-{n}"
    summary = f"{len(rows)} questions by {how}, chosen chains in {output}"
    answered = [r for r in rows if "right" in r]
    if answered:
        summary += f"; right: {sum(r['right'] for r in answered)} of {len(answered)}"
    out.print(summary, markup=False, highlight=False)


def _number(text: str):
    """An answer as the exact number chains state (``the answer is N``), or a ValueError saying which."""
    from rewardlab.data.arithmetic import parse_number

    try:
        return parse_number(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"answer {text!r} is not a number (chains state their answer as 'the answer is N')") from None
