"""``rewardlab diffusion``: preference alignment of image diffusion models.

Train a small base model on the embedded 8×8 digits (or a folder of PNGs) with the classifier that serves as
known reward (``diffusion train-base``), simulate image preference pairs (``diffusion simulate-pairs``) and
train an image reward model from pairs with the text objectives (``diffusion train-reward``), align the model
(``diffusion align --method d3po|diffusion-dpo|smpo|inpo|dragon|diff-instruct-star``) and search at inference
time (``diffusion sample --method dts|dts-star|best-of-n``). The work is in ``rewardlab.diffusion.runs``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from rewardlab.cli.base import app, out, user_errors

diffusion_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Diffusion models aligned with preferences: base model, image rewards, alignment, tree search.",
)
app.add_typer(diffusion_app, name="diffusion")

ALIGN_METHODS = "d3po, diffusion-dpo, smpo, inpo, dragon, prefpaint or diff-instruct-star"
RewardOption = Annotated[
    str,
    typer.Option(help="ink, digit:K (the classifier's log p(K|x)), model:PATH (an image reward model), mix:K=P,..."),
]
ClassifierOption = Annotated[
    Path | None, typer.Option(help="Digit classifier folder [default: the classifier/ beside the model]")
]
SeedOption = Annotated[int, typer.Option(help="Seed of the sampling and the training")]
ProgressOption = Annotated[bool, typer.Option(help="Show progress bars")]


def _options(pairs: list[str]) -> dict[str, Any]:
    """``--option key=value`` (repeated) → a dict; values read as JSON where they parse (numbers, true/false)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


@diffusion_app.command("train-base")
@user_errors
def diffusion_train_base(
    output: Annotated[
        Path, typer.Option(help="Run folder to write (denoiser/, classifier/, samples.png, report.json)")
    ],
    images: Annotated[Path | None, typer.Option(help="A folder of square PNGs [default: the embedded digits]")] = None,
    updates: Annotated[int, typer.Option(help="Optimiser updates")] = 2000,
    batch_size: Annotated[int, typer.Option(help="Images per update")] = 128,
    learning_rate: Annotated[float, typer.Option(help="AdamW learning rate (cosine decay to a tenth)")] = 2e-3,
    channels: Annotated[str, typer.Option(help="The UNet's two widths, e.g. 32,64")] = "32,64",
    class_conditional: Annotated[bool, typer.Option(help="Condition on the digit labels")] = False,
    mask: Annotated[
        str | None, typer.Option(help="Train an inpainting model with holes of this kind (bottom, right, centre...)")
    ] = None,
    classifier_epochs: Annotated[int, typer.Option(help="Epochs of the digit classifier (the known reward)")] = 80,
    seed: SeedOption = 0,
    progress: ProgressOption = True,
) -> None:
    """Train the base diffusion model alignment starts from (a diffusers UNet2DModel, DDPM loss) and, on the
    digits, the classifier whose probabilities are the known rewards."""
    from rewardlab.diffusion.base_training import BaseConfig
    from rewardlab.diffusion.runs import train_base_run

    try:
        widths = tuple(int(c) for c in channels.split(","))
    except ValueError:
        raise ValueError(f"--channels {channels!r}: expected two integers, e.g. 32,64") from None
    if len(widths) != 2:
        raise ValueError(f"--channels {channels!r}: expected two integers, e.g. 32,64")
    config = BaseConfig(
        updates, batch_size, learning_rate, widths, class_conditional=class_conditional, mask=mask, seed=seed
    )  # type: ignore[arg-type]
    report = train_base_run(output, config, images, classifier_epochs, progress)
    out.print(json.dumps(report, indent=2))


@diffusion_app.command("simulate-pairs")
@user_errors
def diffusion_simulate_pairs(
    output: Annotated[Path, typer.Option(help="Folder to write (pairs.jsonl and images/)")],
    reward: RewardOption = "ink",
    n: Annotated[int, typer.Option(help="Pairs")] = 1000,
    temperature: Annotated[float, typer.Option(help="Bradley-Terry temperature of the simulated annotator")] = 0.1,
    model: Annotated[Path | None, typer.Option(help="Pair samples of this model [default: real digits]")] = None,
    classifier: ClassifierOption = None,
    seed: SeedOption = 0,
) -> None:
    """Image preference pairs labelled by a simulated annotator whose utility is a known reward."""
    from rewardlab.diffusion.runs import simulate_pairs_run

    out.print(json.dumps(simulate_pairs_run(output, reward, n, temperature, model, classifier, seed), indent=2))


@diffusion_app.command("train-reward")
@user_errors
def diffusion_train_reward(
    pairs: Annotated[Path, typer.Argument(help="Image preference pairs (pairs.jsonl: chosen and rejected PNG paths)")],
    output: Annotated[Path, typer.Option(help="Folder of the image reward model (safetensors)")],
    objective: Annotated[str, typer.Option(help="A pairwise objective (rewardlab objectives)")] = "bradley_terry",
    option: Annotated[list[str], typer.Option(help="Objective option KEY=VALUE (repeatable)")] = [],  # noqa: B006
    epochs: Annotated[int, typer.Option(help="Passes over the pairs")] = 20,
    seed: SeedOption = 0,
    progress: ProgressOption = True,
) -> None:
    """Train an image reward model from image preference pairs with the same objectives as text reward models."""
    from rewardlab.diffusion.reward_model import ImageRewardConfig
    from rewardlab.diffusion.runs import train_reward_run

    config = ImageRewardConfig(objective=objective, objective_options=_options(option), epochs=epochs, seed=seed)
    out.print(json.dumps(train_reward_run(pairs, output, config, progress), indent=2))


@diffusion_app.command("align")
@user_errors
def diffusion_align(
    model: Annotated[Path, typer.Argument(help="The base model's run folder (as train-base writes)")],
    output: Annotated[Path, typer.Option(help="Run folder to write (denoiser/ or generator/, PNGs, report.json)")],
    method: Annotated[str, typer.Option(help=ALIGN_METHODS)] = "diffusion-dpo",
    reward: RewardOption = "ink",
    classifier: ClassifierOption = None,
    updates: Annotated[int, typer.Option(help="Optimiser updates")] = 60,
    batch_size: Annotated[int, typer.Option(help="Pairs (or samples) gathered per update")] = 16,
    sampling_steps: Annotated[int, typer.Option(help="DDIM steps of each generation")] = 10,
    beta: Annotated[float, typer.Option(help="β of the preference losses (KL strength)")] = 500.0,
    learning_rate: Annotated[float, typer.Option(help="AdamW learning rate")] = 1e-4,
    temperature: Annotated[float, typer.Option(help="Bradley-Terry temperature of the simulated annotator")] = 0.1,
    pairs: Annotated[Path | None, typer.Option(help="Offline image preference pairs (pairs.jsonl)")] = None,
    option: Annotated[list[str], typer.Option(help="Method option KEY=VALUE (repeatable)")] = [],  # noqa: B006
    samples: Annotated[int, typer.Option(help="Samples measured before and after")] = 256,
    images: Annotated[
        Path | None, typer.Option(help="prefpaint: the images to inpaint, a folder of PNGs [default: the digits]")
    ] = None,
    seed: SeedOption = 0,
    progress: ProgressOption = True,
) -> None:
    """Align a diffusion model with a reward or with preferences, and report the reward before and after (with
    intervals), how far the samples moved from the base model's, their diversity and the wall time."""
    from dataclasses import fields

    from rewardlab.diffusion.align import AlignConfig
    from rewardlab.diffusion.diff_instruct import DiffInstructConfig
    from rewardlab.diffusion.runs import ONE_STEP_METHOD, align_run

    options = _options(option)
    diff_instruct = None
    if method == ONE_STEP_METHOD:
        known = {f.name for f in fields(DiffInstructConfig)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"diff-instruct-star has no option {unknown[0]!r}; its options: {', '.join(sorted(known))}"
            )
        settings = {"updates": updates, "batch_size": batch_size, "seed": seed,
                    "generator_learning_rate": learning_rate, "fake_learning_rate": learning_rate}  # fmt: skip
        diff_instruct = DiffInstructConfig(**{**settings, **options})
        diff_instruct.check()
        options = {}
    config = AlignConfig(method, updates, batch_size, sampling_steps, beta=beta, learning_rate=learning_rate,
                         seed=seed, options=options)  # fmt: skip
    report = align_run(
        model, output, config, reward, classifier, temperature, pairs, samples, diff_instruct, images, progress
    )
    out.print(json.dumps(report, indent=2))


@diffusion_app.command("sample")
@user_errors
def diffusion_sample(
    model: Annotated[Path, typer.Argument(help="A run folder (denoiser/ or generator/)")],
    output: Annotated[Path, typer.Option(help="PNG grid to write")],
    method: Annotated[
        str, typer.Option(help="plain, best-of-n, dts (tree sampling) or dts-star (tree search)")
    ] = "plain",
    reward: Annotated[str | None, typer.Option(help="The reward searched for (best-of-n, dts, dts-star)")] = None,
    n: Annotated[int, typer.Option(help="Images")] = 16,
    budget: Annotated[int, typer.Option(help="Denoiser calls for all images together (search methods)")] = 4000,
    sampling_steps: Annotated[int, typer.Option(help="DDIM steps")] = 20,
    lam: Annotated[float, typer.Option(help="λ of the target p·exp(λ·r) (dts, dts-star)")] = 10.0,
    max_children: Annotated[int, typer.Option(help="Children per tree node")] = 4,
    classifier: ClassifierOption = None,
    seed: SeedOption = 0,
) -> None:
    """Sample from a model, or search at inference time for high-reward samples: Diffusion Tree Sampling (dts),
    its greedy search (dts-star) or best-of-N, all at the same budget of denoiser calls."""
    from rewardlab.diffusion.runs import sample_run
    from rewardlab.diffusion.tree_search import TreeSearchConfig

    config = TreeSearchConfig(budget, sampling_steps, lam=lam, max_children=max_children, seed=seed)
    out.print(json.dumps(sample_run(model, output, n, method, reward, budget, config, classifier), indent=2))
