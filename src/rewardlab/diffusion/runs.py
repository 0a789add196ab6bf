"""What each ``rewardlab diffusion`` command does, as functions: the command line parses, calls one and prints.

A run folder holds ``denoiser/`` (or ``generator/`` for Diff-Instruct*'s one-step model), ``classifier/`` (the
digit classifier trained beside a base model on the digits: the known reward and the feature encoder of the
measures), PNG sample grids and ``report.json``. Each folder is written whole or not at all.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rewardlab.atomic import atomic_directory
from rewardlab.diffusion.align import AlignConfig, Feedback, ImageReward, SetReward, align
from rewardlab.diffusion.base_training import BaseConfig, train_base
from rewardlab.diffusion.classifier import ImageNet, train_classifier
from rewardlab.diffusion.denoiser import Condition, Denoiser
from rewardlab.diffusion.diff_instruct import DiffInstructConfig, OneStepGenerator, train_diff_instruct
from rewardlab.diffusion.distribution import class_mix_distance
from rewardlab.diffusion.evaluation import measure
from rewardlab.diffusion.image_pairs import read_image_pairs, simulate_pairs, write_image_pairs
from rewardlab.diffusion.images import digits, read_png, write_grid
from rewardlab.diffusion.inpainting import box_mask, inpaint
from rewardlab.diffusion.known_rewards import class_log_prob_reward, class_probabilities, ink_reward
from rewardlab.diffusion.reward_model import ImageRewardConfig, image_reward, train_image_reward
from rewardlab.diffusion.sampling import sample
from rewardlab.diffusion.tree_search import TreeSearchConfig, best_of_n, tree_sample

DENOISER, GENERATOR, CLASSIFIER, REPORT = "denoiser", "generator", "classifier", "report.json"
ONE_STEP_METHOD = "diff-instruct-star"
REWARD_SPECS = "ink, digit:K[,K...], model:PATH (an image reward model), mix:K=P,... (a class mix, DRAGON only)"


def load_images(folder: Path | None) -> tuple[Tensor, Tensor | None]:
    """The embedded digits (with labels) or every PNG of ``folder`` (one shape, no labels)."""
    if folder is None:
        return digits()
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise ValueError(f"{folder}: no .png images")
    images = [read_png(p) for p in paths]
    for path, image in zip(paths, images, strict=True):
        if image.shape != images[0].shape:
            raise ValueError(
                f"{path}: shape {tuple(image.shape)} differs from {paths[0].name}'s {tuple(images[0].shape)}"
            )
        if image.shape[-1] != image.shape[-2]:
            raise ValueError(f"{path}: the images must be square (got {tuple(image.shape[-2:])})")
    return torch.stack(images), None


def train_base_run(
    output: Path,
    config: BaseConfig,
    images_folder: Path | None = None,
    classifier_epochs: int = 80,
    progress: bool = True,
) -> dict:
    """Train a base denoiser (and, on the digits, the classifier that is the known reward); save samples."""
    images, labels = load_images(images_folder)
    start = time.perf_counter()
    denoiser, losses = train_base(images, config, labels, progress)
    report: dict[str, Any] = {
        "images": len(images),
        "config": asdict(config),
        "final_loss": sum(losses[-50:]) / len(losses[-50:]),
    }
    report["train_seconds"] = round(time.perf_counter() - start, 1)
    shown, report["samples"] = preview(denoiser, images, labels, config)
    with atomic_directory(output) as folder:
        denoiser.save(folder / DENOISER)
        if labels is not None:
            trained = train_classifier(images, labels, classifier_epochs, seed=config.seed, progress=progress)
            trained.model.save(folder / CLASSIFIER)
            report["classifier"] = {"train_accuracy": trained.train_accuracy, "test_accuracy": trained.test_accuracy,
                                    "test_size": trained.test_size}  # fmt: skip
        write_grid(folder / "samples.png", shown)
        (folder / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


def preview(denoiser: Denoiser, images: Tensor, labels: Tensor | None, config: BaseConfig) -> tuple[Tensor, str]:
    """The samples a base run shows (samples.png) and what they are."""
    generator = torch.Generator().manual_seed(config.seed)
    if config.mask is not None:
        shown = images[:32]
        holes = box_mask(shown.shape, config.mask, torch.Generator().manual_seed(config.seed))
        filled = inpaint(denoiser, shown, holes, 20, generator=generator)
        return torch.cat([torch.where(holes.bool(), -1.0, shown), filled]), "32 images with holes, then filled"
    if config.class_conditional and labels is not None:
        condition = Condition(labels=torch.arange(64) % (int(labels.max()) + 1))
        return sample(denoiser, 64, 20, condition=condition, generator=generator).images, "classes 0, 1, … in turn"
    return sample(denoiser, 64, 20, generator=generator).images, "64 samples"


def load_classifier(path: Path | None, model: Path) -> ImageNet:
    """``path``, else the ``classifier/`` beside the base model (``model``'s run folder or its parents)."""
    if path is not None:
        return ImageNet.load(path)
    for folder in (model, *model.parents[:2]):
        if (folder / CLASSIFIER).is_dir():
            return ImageNet.load(folder / CLASSIFIER)
    raise ValueError(f"{model}: no {CLASSIFIER}/ beside the model; give --classifier (a digit classifier folder)")


def load_denoiser(path: Path) -> Denoiser:
    """A run folder's ``denoiser/``, or a denoiser folder itself."""
    return Denoiser.load(path / DENOISER if (path / DENOISER).is_dir() else path)


def parse_reward(spec: str, classifier: ImageNet | None) -> tuple[ImageReward | None, SetReward | None]:
    """``--reward``: a per-image reward or (``mix:``) a set-level one."""
    kind, _, value = spec.partition(":")
    if kind == "ink" and not value:
        return ink_reward, None
    if kind == "digit" and value and all(part.isdigit() for part in value.split(",")):
        if classifier is None:
            raise ValueError("--reward digit:K needs a classifier (--classifier)")
        return class_log_prob_reward(classifier, [int(part) for part in value.split(",")]), None
    if kind == "model" and value:
        return image_reward(ImageNet.load(value)), None
    if kind == "mix" and value:
        if classifier is None:
            raise ValueError("--reward mix:... needs a classifier (--classifier)")
        return None, class_mix_reward(classifier, parse_mix(value, classifier.config["outputs"]))
    raise ValueError(f"--reward {spec!r}: expected one of {REWARD_SPECS}")


def parse_mix(text: str, classes: int) -> list[float]:
    """``3=0.5,8=0.5`` → a distribution over ``classes`` classes."""
    mix = [0.0] * classes
    for part in text.split(","):
        key, _, weight = part.partition("=")
        try:
            k, p = int(key), float(weight)
        except ValueError:
            raise ValueError(f"--reward mix: {part!r} is not CLASS=WEIGHT") from None
        if not 0 <= k < classes or p < 0:
            raise ValueError(f"--reward mix: {part!r}: class must be in [0, {classes}) and weight >= 0")
        mix[k] += p
    if sum(mix) <= 0:
        raise ValueError("--reward mix: the weights must not all be zero")
    return [p / sum(mix) for p in mix]


def class_mix_reward(classifier: ImageNet, target: list[float]) -> SetReward:
    """DRAGON's distribution-to-distribution reward: minus the total variation between a set's class mix (read by
    the classifier) and the target mix."""

    def reward(images: Tensor) -> float:
        return -class_mix_distance(class_probabilities(classifier, images), target)

    return reward


def align_run(
    model: Path,
    output: Path,
    config: AlignConfig,
    reward_spec: str,
    classifier_path: Path | None = None,
    temperature: float = 0.1,
    pairs_file: Path | None = None,
    samples: int = 256,
    diff_instruct: DiffInstructConfig | None = None,
    images_folder: Path | None = None,
    progress: bool = True,
) -> dict:
    """Align the base model in ``model`` with ``config.method`` and report what moved: the reward before and after
    (with intervals), the distance of its samples to the base model's, diversity, the class mix, wall time."""
    base = load_denoiser(model)
    classifier = load_classifier(classifier_path, model)
    reward, set_reward = parse_reward(reward_spec, classifier)
    pairs = None
    if pairs_file is not None:
        read = read_image_pairs(pairs_file)
        pairs = (read.chosen, read.rejected)
    feedback = Feedback(reward, temperature, set_reward, pairs)
    sources = None
    if is_inpainting(base) or config.method == "prefpaint":
        if not is_inpainting(base) or config.method != "prefpaint":
            raise ValueError("an inpainting model (train-base --mask) aligns with --method prefpaint, and only it")
        sources = load_images(images_folder)[0]
        config = replace(config, options={"images": sources, "mask": "bottom", **config.options})
    before = generate(base, samples, config, config.seed + 1, sources)
    start = time.perf_counter()
    if config.method == ONE_STEP_METHOD:
        if reward is None:
            raise ValueError(f"{ONE_STEP_METHOD} needs a per-image reward (--reward ink, digit:K or model:PATH)")
        one_step, history = train_diff_instruct(base, reward, diff_instruct or DiffInstructConfig(), progress)
        seconds = time.perf_counter() - start
        after = one_step.sample(samples, torch.Generator().manual_seed(config.seed + 2))
        trained: Denoiser | OneStepGenerator = one_step
    else:
        result = align(base.copy(), feedback, config, progress)
        seconds = time.perf_counter() - start
        history = result.history
        after = generate(result.policy, samples, config, config.seed + 1, sources)  # the same noise as before
        trained = result.policy
    report = {
        "method": config.method,
        "reward": reward_spec,
        "before": measure(before, before, reward, classifier),
        "after": measure(after, before, reward, classifier),
        "align_seconds": round(seconds, 1),
        "updates": len(history),
        "final_loss": history[-1]["loss"] if history and "loss" in history[-1] else None,
    }
    if set_reward is not None:
        report["before"]["set_reward"], report["after"]["set_reward"] = set_reward(before), set_reward(after)
    with atomic_directory(output) as folder:
        trained.save(folder / (GENERATOR if isinstance(trained, OneStepGenerator) else DENOISER))
        classifier.save(folder / CLASSIFIER)
        write_grid(folder / "before.png", before[:64])
        write_grid(folder / "after.png", after[:64])
        (folder / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


def is_inpainting(denoiser: Denoiser) -> bool:
    """Whether the denoiser reads condition channels beside x_t (an inpainting model: masked image and mask)."""
    return denoiser.unet.config.in_channels > denoiser.image_shape[0]


def generate(denoiser: Denoiser, n: int, config: AlignConfig, seed: int, sources: Tensor | None = None) -> Tensor:
    """``n`` samples of an ordinary model; for an inpainting model, the first ``n`` sources with holes of the
    method's mask kind filled (the same holes and noise for every model given the same seed, so that before and
    after compare the same inpaintings)."""
    generator = torch.Generator().manual_seed(seed)
    if sources is None:
        return sample(denoiser, n, config.sampling_steps, config.eta, generator=generator).images
    images = sources[:n]
    masks = box_mask(images.shape, config.options["mask"], torch.Generator().manual_seed(seed))
    return inpaint(denoiser, images, masks, config.sampling_steps, config.eta, generator)


def simulate_pairs_run(
    output: Path,
    reward_spec: str,
    n: int,
    temperature: float,
    model: Path | None,
    classifier_path: Path | None,
    seed: int,
) -> dict:
    """Image preference pairs labelled by a simulated annotator with a known reward: ``n`` pairs of real digits,
    or of samples from ``model`` when given; written as PNGs and ``pairs.jsonl``."""
    generator = torch.Generator().manual_seed(seed)
    classifier = load_classifier(classifier_path, model) if model is not None or classifier_path else None
    reward, _ = parse_reward(reward_spec, classifier)
    if reward is None:
        raise ValueError("simulate-pairs needs a per-image reward (ink, digit:K or model:PATH)")
    if model is None:
        images, _ = digits()
        a, b = (images[torch.randint(0, len(images), (n,), generator=generator)] for _ in range(2))
    else:
        denoiser = load_denoiser(model)
        drawn = sample(denoiser, 2 * n, 20, generator=generator).images
        a, b = drawn[:n], drawn[n:]
    pairs = simulate_pairs(a, b, reward, temperature, generator)
    write_image_pairs(output, pairs.chosen, pairs.rejected)
    return {"pairs": n, "output": str(output / "pairs.jsonl"), "reward": reward_spec, "temperature": temperature}


def train_reward_run(pairs_file: Path, output: Path, config: ImageRewardConfig, progress: bool = True) -> dict:
    """An image reward model trained from image preference pairs with a pairwise objective of the text models."""
    pairs = read_image_pairs(pairs_file)
    model, report = train_image_reward(pairs, config, progress)
    model.save(output)
    return {"pairs": len(pairs), "objective": config.objective, **report}


def sample_run(
    model: Path,
    output: Path,
    n: int,
    method: str,
    reward_spec: str | None,
    budget: int,
    config: TreeSearchConfig,
    classifier_path: Path | None = None,
) -> dict:
    """``n`` samples by plain sampling, best-of-N or tree search (``dts``, ``dts-star``) at ``budget`` denoiser calls,
    written as a PNG grid; the report gives their reward and the calls spent."""
    if method == "plain":
        denoiser = load_denoiser(model) if not (model / GENERATOR).is_dir() else None
        if denoiser is None:
            images = OneStepGenerator.load(model / GENERATOR).sample(n, torch.Generator().manual_seed(config.seed))
        else:
            images = sample(denoiser, n, config.sampling_steps, config.eta,
                            generator=torch.Generator().manual_seed(config.seed)).images  # fmt: skip
        write_grid(output, images)
        return {"method": method, "samples": n, "output": str(output)}
    denoiser = load_denoiser(model)
    if reward_spec is None:
        raise ValueError(f"--method {method} searches for a reward: give --reward ({REWARD_SPECS.rsplit(',', 1)[0]})")
    classifier = load_classifier(classifier_path, model) if reward_spec.split(":")[0] in ("digit", "mix") else None
    reward, _ = parse_reward(reward_spec, classifier)
    if reward is None:
        raise ValueError("tree search and best-of-N need a per-image reward, not a class mix")
    if method == "best-of-n":
        result = best_of_n(denoiser, reward, n, budget, config.sampling_steps, config.eta, config.seed)
    elif method in ("dts", "dts-star"):
        from dataclasses import replace

        result = tree_sample(denoiser, reward, n, replace(config, budget=budget, greedy=method == "dts-star"))
    else:
        raise ValueError(f"--method {method!r}: expected plain, best-of-n, dts or dts-star")
    write_grid(output, result.images)
    return {"method": method, "samples": n, "calls": result.calls, "reward_mean": float(result.rewards.mean()),
            "reward_max": float(result.rewards.max()), "output": str(output)}  # fmt: skip
