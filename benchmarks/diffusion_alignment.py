"""Issue 37's table: every alignment method on the same base diffusion model toward the same known reward.

A UNet2DModel is trained on the 8×8 digits (``--base-updates``), with the digit classifier ``train-base`` trains
beside it (seed 0): its log p(K|x) is the reward each method optimises (``--target``). A second classifier
(seed 1, another split) is the evaluator, so that what a method gains is measured by a judge it never saw:
its rate of images read as K, with a 95% interval over samples. Each method starts from the same base model;
the row reports the reward before and after (mean and t-interval over ``--samples`` samples), the evaluator's
K-rate, the Fréchet distance to the base model's samples and the Vendi diversity (evaluator features), and
the wall time. Inference-time rows (best-of-N, DTS, DTS*) spend the same denoiser calls per output. The DRAGON
rows aim at a class mix (``--mix``) that no per-sample reward expresses, beside Diffusion-DPO on the per-sample
reward log p(K1 or K2 | x): the measure is the total variation between the samples' class mix and the target.

    python benchmarks/diffusion_alignment.py --output /tmp/m27/bench --docs docs/diffusion
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rewardlab.atomic import write_text_atomic
from rewardlab.diffusion.align import AlignConfig, Feedback, align
from rewardlab.diffusion.base_training import BaseConfig, train_base
from rewardlab.diffusion.classifier import ImageNet, train_classifier
from rewardlab.diffusion.denoiser import Denoiser
from rewardlab.diffusion.diff_instruct import DiffInstructConfig, train_diff_instruct
from rewardlab.diffusion.distribution import class_mix_distance
from rewardlab.diffusion.evaluation import measure
from rewardlab.diffusion.images import digits, write_grid
from rewardlab.diffusion.inpainting import box_mask, inpaint
from rewardlab.diffusion.known_rewards import class_log_prob_reward, class_probabilities
from rewardlab.diffusion.runs import class_mix_reward, parse_mix
from rewardlab.diffusion.sampling import sample
from rewardlab.diffusion.tree_search import TreeSearchConfig, best_of_n, tree_sample
from rewardlab.evaluate.cv_report import t_interval


@dataclass
class Settings:
    base_updates: int = 2000
    target: int = 3
    mix: str = "3=0.5,8=0.5"
    samples: int = 512
    updates: int = 60
    batch_size: int = 16
    sampling_steps: int = 10
    temperature: float = 0.1
    search_outputs: int = 64
    search_budget_per_output: int = 320
    search_steps: int = 20
    threads: int = 2
    seed: int = 0
    methods: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "diffusion-dpo": {"beta": 500.0, "learning_rate": 3e-4},
            "d3po": {"beta": 10.0, "learning_rate": 3e-4, "options": {"steps_per_update": 3}},
            "smpo": {"beta": 500.0, "learning_rate": 3e-4},
            "inpo": {"beta": 500.0, "learning_rate": 3e-4},
            "dragon": {"beta": 500.0, "learning_rate": 3e-4, "batch_size": 32},
        }
    )
    diff_instruct: dict[str, Any] = field(default_factory=lambda: {"updates": 300, "batch_size": 32})
    diff_instruct_alphas: tuple[float, ...] = (0.0, 0.03)
    inpainting_updates: int = 1000
    prefpaint: dict[str, Any] = field(
        default_factory=lambda: {
            "learning_rate": 1e-4,
            "batch_size": 32,
            "options": {"mask": "bottom", "group_size": 4},
        }
    )


def row(
    name: str, images: Tensor, base_images: Tensor, reward, evaluator: ImageNet, target: int, seconds: float
) -> dict:
    """One line of the table (see the module docstring): ``measure``'s row, with the judge's target rate."""
    with torch.no_grad():
        read = class_probabilities(evaluator, images).argmax(1)
    return {
        "method": name,
        **measure(images, base_images, reward, evaluator),
        "target_rate": asdict(t_interval((read == target).float().tolist())),
        "seconds": round(seconds, 1),
    }


def run(settings: Settings, output: Path, docs: Path | None) -> dict[str, Any]:
    torch.set_num_threads(settings.threads)
    images, labels = digits()
    started = time.perf_counter()
    base_path = output / "base"
    if (base_path / "config.json").is_file():
        base = Denoiser.load(base_path)
        base_seconds = json.loads((output / "base-seconds.json").read_text())["seconds"]
    else:
        base, _ = train_base(images, BaseConfig(updates=settings.base_updates, seed=settings.seed))
        base_seconds = time.perf_counter() - started
        base.save(base_path)
        write_text_atomic(output / "base-seconds.json", json.dumps({"seconds": base_seconds}))
    rewarder = train_classifier(images, labels, seed=0)
    evaluator = train_classifier(images, labels, seed=1)
    reward = class_log_prob_reward(rewarder.model, settings.target)
    sample_seed = torch.Generator().manual_seed(settings.seed + 100)
    base_images = sample(base, settings.samples, settings.sampling_steps, generator=sample_seed).images
    rows = [row("base", base_images, base_images, reward, evaluator.model, settings.target, base_seconds)]
    grids = {"base": base_images[:64]}

    def after(policy: Denoiser) -> Tensor:
        seed = torch.Generator().manual_seed(settings.seed + 200)
        return sample(policy, settings.samples, settings.sampling_steps, generator=seed).images

    for method, overrides in settings.methods.items():
        config = AlignConfig(method, settings.updates, overrides.get("batch_size", settings.batch_size),
                             settings.sampling_steps, beta=overrides["beta"], learning_rate=overrides["learning_rate"],
                             seed=settings.seed, options=overrides.get("options", {}))  # fmt: skip
        start = time.perf_counter()
        policy = align(base.copy(), Feedback(reward, settings.temperature), config).policy
        seconds = time.perf_counter() - start
        aligned = after(policy)
        rows.append(row(method, aligned, base_images, reward, evaluator.model, settings.target, seconds))
        grids[method] = aligned[:64]
        print(json.dumps(rows[-1]), flush=True)

    for alpha in settings.diff_instruct_alphas:
        start = time.perf_counter()
        config = DiffInstructConfig(**settings.diff_instruct, reward_weight=alpha, seed=settings.seed)
        one_step, _ = train_diff_instruct(base, reward, config)
        seconds = time.perf_counter() - start
        produced = one_step.sample(settings.samples, torch.Generator().manual_seed(settings.seed + 200))
        name = f"diff-instruct-star, 1 step, α={alpha}" + (" (distillation only)" if alpha == 0 else "")
        rows.append(row(name, produced, base_images, reward, evaluator.model, settings.target, seconds))
        grids[f"diff-instruct-star-alpha{alpha}"] = produced[:64]

    budget = settings.search_outputs * settings.search_budget_per_output
    search = TreeSearchConfig(budget, settings.search_steps, lam=10.0, seed=settings.seed)
    searches = {
        "best-of-N": lambda: best_of_n(
            base, reward, settings.search_outputs, budget, settings.search_steps, seed=settings.seed
        ),
        "DTS (λ=10)": lambda: tree_sample(base, reward, settings.search_outputs, search),
        "DTS* (greedy)": lambda: tree_sample(base, reward, settings.search_outputs, replace(search, greedy=True)),
    }
    for name, run_search in searches.items():
        start = time.perf_counter()
        found = run_search()
        seconds = time.perf_counter() - start
        rows.append({**row(name, found.images, base_images, reward, evaluator.model, settings.target, seconds),
                     "calls_per_output": found.calls / settings.search_outputs})  # fmt: skip

    target_mix = parse_mix(settings.mix, 10)
    mix_digits = [k for k, p in enumerate(target_mix) if p > 0]
    mix_rows = [
        {
            "method": "base",
            "tv_to_target": class_mix_distance(
                class_probabilities(evaluator.model, base_images), target_mix, hard=True
            ),
        }
    ]
    per_sample = class_log_prob_reward(rewarder.model, mix_digits)
    for name, feedback, method in (
        ("diffusion-dpo, per-sample log p(K1 or K2)", Feedback(per_sample, settings.temperature), "diffusion-dpo"),
        ("dragon, per-sample log p(K1 or K2)", Feedback(per_sample, settings.temperature), "dragon"),
        ("dragon, class-mix reward", Feedback(set_reward=class_mix_reward(rewarder.model, target_mix)), "dragon"),
    ):
        overrides = settings.methods[method]
        config = AlignConfig(method, settings.updates, overrides.get("batch_size", settings.batch_size),
                             settings.sampling_steps, beta=overrides["beta"], learning_rate=overrides["learning_rate"],
                             seed=settings.seed)  # fmt: skip
        start = time.perf_counter()
        aligned = after(align(base.copy(), feedback, config).policy)
        probabilities = class_probabilities(evaluator.model, aligned)
        mix_rows.append({
            "method": name,
            "tv_to_target": class_mix_distance(probabilities, target_mix, hard=True),
            "mix": [round(float(p), 3) for p in probabilities.argmax(1).bincount(minlength=10) / len(aligned)],
            "seconds": round(time.perf_counter() - start, 1),
        })  # fmt: skip
        if method == "dragon" and "class-mix" in name:
            grids["dragon-mix"] = aligned[:64]
        print(json.dumps(mix_rows[-1]), flush=True)

    inpainting_rows = prefpaint_rows(settings, output, images, labels, rewarder.model, evaluator.model, grids)

    if docs is not None:
        for name, grid_images in grids.items():
            write_grid(docs / f"{name}.png", grid_images)
    result = {
        "settings": asdict(settings),
        "classifiers": {
            "reward_test_accuracy": rewarder.test_accuracy,
            "evaluator_test_accuracy": evaluator.test_accuracy,
        },
        "rows": rows,
        "mix_rows": mix_rows,
        "inpainting_rows": inpainting_rows,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    write_text_atomic(output / "results.json", json.dumps(result, indent=2))
    write_text_atomic(output / "table.md", markdown(result))
    return result


def prefpaint_rows(settings: Settings, output: Path, images: Tensor, labels: Tensor, rewarder: ImageNet,
                   evaluator: ImageNet, grids: dict[str, Tensor]) -> list[dict]:  # fmt: skip
    """PrefPaint on an inpainting model (bottom halves): the reward is log p(true digit | inpainted image), so a
    completion scores when it finishes the digit it belongs to; before and after inpaint the same held-out digits
    with the same holes and noise (a paired comparison)."""
    path = output / "inpainting-base"
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(settings.seed))
    train, held = order[: len(images) - 256], order[len(images) - 256 :]
    start = time.perf_counter()
    if (path / "config.json").is_file():
        inpainter = Denoiser.load(path)
    else:
        mask = settings.prefpaint["options"]["mask"]
        inpainter, _ = train_base(
            images[train], BaseConfig(settings.inpainting_updates, 64, mask=mask, seed=settings.seed)
        )
        inpainter.save(path)
    base_seconds = time.perf_counter() - start
    source_labels = labels[train]

    def source_reward(filled: Tensor, index: Tensor) -> Tensor:
        return torch.log_softmax(rewarder(filled), 1).gather(1, source_labels[index].unsqueeze(1)).squeeze(1)

    masks = box_mask(images[held].shape, settings.prefpaint["options"]["mask"], torch.Generator().manual_seed(1))

    def measured(name: str, model: Denoiser, seconds: float) -> dict:
        filled = inpaint(
            model, images[held], masks, settings.sampling_steps, generator=torch.Generator().manual_seed(2)
        )
        with torch.no_grad():
            true = torch.log_softmax(rewarder(filled), 1).gather(1, labels[held].unsqueeze(1)).squeeze(1)
            judged = (class_probabilities(evaluator, filled).argmax(1) == labels[held]).float()
        grids[f"prefpaint-{name.replace(' ', '-')}"] = filled[:64]
        return {"method": name, "reward": asdict(t_interval(true.tolist())),
                "evaluator_accuracy": asdict(t_interval(judged.tolist())), "seconds": round(seconds, 1)}  # fmt: skip

    rows = [measured("inpainting base", inpainter, base_seconds)]
    options = {**settings.prefpaint["options"], "images": images[train], "source_reward": source_reward}
    config = AlignConfig(
        "prefpaint",
        settings.updates,
        settings.prefpaint["batch_size"],
        settings.sampling_steps,
        learning_rate=settings.prefpaint["learning_rate"],
        seed=settings.seed,
        options=options,
    )
    start = time.perf_counter()
    aligned = align(inpainter.copy(), Feedback(), config).policy
    rows.append(measured("prefpaint", aligned, time.perf_counter() - start))
    print(json.dumps(rows[-1]), flush=True)
    return rows


def interval(value: dict) -> str:
    return f"{value['mean']:.3f} ({value['low']:.3f}–{value['high']:.3f})"


def markdown(result: dict) -> str:
    lines = [
        "| method | reward log p(K) | evaluator K-rate | Fréchet to base | Vendi | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['method']} | {interval(r['reward'])} | {interval(r['target_rate'])} | "
                     f"{r['frechet_to_base']:.2f} | {r['vendi']:.2f} | {r['seconds']} |")  # fmt: skip
    lines += [
        "",
        "| method (target mix) | TV to target mix | class mix read by the evaluator | seconds |",
        "|---|---|---|---|",
    ]
    for r in result["mix_rows"]:
        lines.append(f"| {r['method']} | {r['tv_to_target']:.3f} | {r.get('mix', '')} | {r.get('seconds', '')} |")
    lines += [
        "",
        "| inpainting (bottom half) | reward log p(true digit) | evaluator accuracy | seconds |",
        "|---|---|---|---|",
    ]
    for r in result["inpainting_rows"]:
        lines.append(
            f"| {r['method']} | {interval(r['reward'])} | {interval(r['evaluator_accuracy'])} | {r['seconds']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--docs", type=Path, default=None, help="Folder for the PNG grids")
    parser.add_argument("--updates", type=int, default=Settings.updates)
    parser.add_argument("--samples", type=int, default=Settings.samples)
    parser.add_argument("--base-updates", type=int, default=Settings.base_updates)
    args = parser.parse_args()
    settings = Settings(base_updates=args.base_updates, updates=args.updates, samples=args.samples)
    print(markdown(run(settings, args.output, args.docs)))


if __name__ == "__main__":
    main()
