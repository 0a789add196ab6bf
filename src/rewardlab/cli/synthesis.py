"""``rewardlab data synthesize``: preference pairs from a policy and a tool-using judge (Anyprefer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import data_app, out, user_errors
from rewardlab.cli.options import MaxNewTokensOption, PolicyOption, PrecisionOption


@data_app.command("synthesize")
@user_errors
def data_synthesize(
    prompts: Annotated[
        str, typer.Argument(help="A file whose rows have a prompt field, or preference data (its distinct prompts)")
    ],
    output: Annotated[Path, typer.Option(help="The pairs (.jsonl; beside it .low-quality.jsonl and .summary.json)")],
    policy: PolicyOption = "smollm2",
    judge_model: Annotated[Path | None, typer.Option(help="Saved reward model folder: the judge's reward tool")] = None,
    tools: Annotated[str, typer.Option(help="The judge's tools: reward, length, repetition, refusal, judge")] = (
        "reward,length,repetition,refusal"
    ),
    check_model: Annotated[
        Path | None, typer.Option(help="A held-out reward model folder: its accuracy on the pairs, in the summary")
    ] = None,
    lm_judge: Annotated[str | None, typer.Option(help="The judge tool's LM: a causal LM folder or smollm2")] = None,
    weights: Annotated[str | None, typer.Option(help="Tool weights as name=w pairs, e.g. reward=2,length=0.5")] = None,
    k: Annotated[int, typer.Option("--k", help="Candidates sampled per prompt and round")] = 4,
    rounds: Annotated[int, typer.Option(help="Rounds: later ones re-sample only the low-quality prompts")] = 2,
    limit: Annotated[int | None, typer.Option(help="The first N distinct prompts only")] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the first round")] = 0.7,
    temperature_step: Annotated[float, typer.Option(help="Added to the temperature at each re-sampling round")] = 0.3,
    min_margin: Annotated[float, typer.Option(help="Low quality below this judge margin (standardised units)")] = 1.0,
    min_agreement: Annotated[float, typer.Option(help="Low quality below this share of tools preferring chosen")] = 0.5,
    max_new_tokens: MaxNewTokensOption = 128,
    seed: Annotated[int, typer.Option(help="Sampling seed of the first round (round r: seed + r − 1)")] = 0,
    precision: PrecisionOption = "auto",
) -> None:
    """Synthesise preference pairs: the policy samples --k replies a prompt, tools score them, the judge
    pairs the best with the worst, and prompts whose pair is weak are sampled again (Anyprefer)."""
    from rewardlab.curation.synthesis import SynthesisConfig
    from rewardlab.curation.synthesis_data import read_prompts, synthesize_data
    from rewardlab.curation.synthesis_tools import build_tools, parse_tools
    from rewardlab.destinations import check_jsonl_destination
    from rewardlab.models.causal_lm import CausalLM
    from rewardlab.sampling.synthesis_sampler import policy_sampler

    config = SynthesisConfig(
        k=k, rounds=rounds, temperature=temperature, temperature_step=temperature_step, seed=seed,
        min_margin=min_margin, min_agreement=min_agreement, weights=parse_weights(weights),
    )  # fmt: skip
    config.check()
    names = parse_tools(tools)
    unknown = set(config.weights) - set(names)
    if unknown:
        raise ValueError(f"--weights names {', '.join(sorted(unknown))}, not among --tools {tools}")
    check_jsonl_destination(output)
    chosen = read_prompts(prompts, limit)  # a bad file fails before any model loads
    judge = build_tools(names, reward_model=judge_model, lm_judge=lm_judge, precision=precision)  # type: ignore[arg-type]
    check = None
    if check_model is not None:
        if not (check_model / "config.json").is_file():
            raise FileNotFoundError(f"--check-model {check_model}: not a saved reward model folder (no config.json)")
        check = build_tools(["reward"], reward_model=check_model, precision=precision)["reward"]  # type: ignore[arg-type]
    lm = CausalLM.from_pretrained(policy, precision=precision)  # type: ignore[arg-type]
    sampler = policy_sampler(lm, max_new_tokens=max_new_tokens, progress=True)
    result = synthesize_data(
        chosen, sampler, judge, output, config, policy=policy, check=check, progress=True
    )  # fmt: skip
    out.print(result.summary_line(), markup=False, highlight=False)
    counts = result.counts()
    shown = {k: counts[k] for k in ("tool_agreement", "held_out_accuracy", "rounds") if k in counts}
    out.print(json.dumps(shown), markup=False, highlight=False)
    out.print("written: " + ", ".join(map(str, result.files)), markup=False, highlight=False)


def parse_weights(text: str | None) -> dict[str, float]:
    """``"reward=2,length=0.5"`` as {tool: weight}."""
    weights: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"--weights: {item!r} is not name=number (e.g. reward=2,length=0.5)")
    return weights
