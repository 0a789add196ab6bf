"""ReMoDetect on ASQA: does a reward model's score detect SmolLM2's answers among human ones, and does
continual preference tuning (with and without human/LM mixed text) make it a better detector?

Human text: the ``gold`` long-form answers of FineGrainedRLHF's QA file (ASQA, written by people). LM
text: SmolLM2-135M-Instruct's sampled reply to each question (rewardlab's batched decoder). Mixed
text: the first half of the human answer's sentences, continued by SmolLM2. Prompts are split once:
tuning sees the training prompts' texts only, and every AUROC (DeLong's 95 % interval) is on the
held-out prompts. Rows: the raw reward model (by default the HH-harmless reward model of the default
recipe), tuned on LM ≻ human pairs, and tuned on LM ≻ mixed ≻ human pairs, both with the anchor to the
starting rewards (λ = ``--anchor-coef``).

    python benchmarks/remodetect.py --work /tmp/m25/detect          # real run
    python benchmarks/remodetect.py --work /tmp/x --tiny            # tiny test models (smoke run)

Each stage is kept in ``--work`` once done (``data.jsonl``, ``tuned-*/``), so a rerun continues.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from rewardlab.atomic import write_text_atomic
from rewardlab.detect.auroc import paired_auroc_difference
from rewardlab.detect.records import DetectionRecord, read_detection, write_detection
from rewardlab.detect.scoring import detection_aurocs, score_records
from rewardlab.detect.texts import detection_records, human_answers, split_prompts
from rewardlab.detect.tuning import TuneConfig, tune_detector
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel

ANSWERS = "/work/shared/data/finegrained-rlhf-qa-feedback-dev.json"


@dataclass
class Settings:
    model: str = "/tmp/m22/hh-rm/model"
    lm: str = "smollm2"
    answers: str = ANSWERS
    limit: int = 300
    max_new_tokens: int = 96
    temperature: float = 0.7
    test_fraction: float = 0.3
    anchor_coef: float = 1.0
    epochs: float = 2.0
    lr: float = 2e-5
    batch_size: int = 8
    seed: int = 0


def detection_data(work: Path, settings: Settings) -> list[DetectionRecord]:
    """The detection file in ``work``, generated once."""
    path = work / "data.jsonl"
    if not path.exists():
        pairs = human_answers(settings.answers)[: settings.limit]
        lm = CausalLM.from_pretrained(settings.lm)
        started = time.perf_counter()
        records = detection_records(
            pairs,
            lm,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            seed=settings.seed,
            progress=True,
        )
        write_detection(path, records)
        print(f"{len(records)} texts generated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return read_detection(path)


def tuned(work: Path, name: str, train: list[DetectionRecord], settings: Settings, mixed: bool) -> Path:
    """The tuned detector's model folder, trained once."""
    model_dir = work / name / "model"
    if finished(model_dir):
        return model_dir
    config = TuneConfig(
        output_dir=str(work / name),
        anchor_coef=settings.anchor_coef,
        mixed=mixed,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        seed=settings.seed,
        progress=True,
    )
    tune_detector(settings.model, train, config, data_name=str(work / "data.jsonl"), overwrite=True)
    return model_dir


def finished(model_dir: Path) -> bool:
    """Whether a tuning run saved its model to the end (an interrupted one is marked unfinished)."""
    config = model_dir / "config.json"
    return config.exists() and json.loads(config.read_text()).get("rewardlab", {}).get("status") == "complete"


def run(work: Path, settings: Settings) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    records = detection_data(work, settings)
    train_prompts, test_prompts = split_prompts([r.prompt for r in records], settings.test_fraction, settings.seed)
    train = [r for r in records if r.prompt in train_prompts]
    test = [r for r in records if r.prompt in test_prompts]
    models = {
        "raw reward model": Path(settings.model),
        "tuned: LM ≻ human": tuned(work, "tuned-plain", train, settings, mixed=False),
        "tuned: LM ≻ mixed ≻ human": tuned(work, "tuned-mixed", train, settings, mixed=True),
    }
    rows, scores = {}, {}
    for name, folder in models.items():
        scores[name] = score_records(RewardModel.from_pretrained(folder), test)
        rows[name] = {k: v.as_dict() for k, v in detection_aurocs(test, scores[name]).items()}
    lm, human = ([i for i, r in enumerate(test) if r.source == s] for s in ("lm", "human"))
    raw = scores["raw reward model"]
    paired = {  # LM vs human, each tuned detector against the raw model on the same texts
        name: paired_auroc_difference(
            [s[i] for i in lm], [s[i] for i in human], [raw[i] for i in lm], [raw[i] for i in human]
        ).as_dict()
        for name, s in scores.items()
        if name != "raw reward model"
    }
    results = {
        "settings": asdict(settings),
        "texts": {s: sum(r.source == s for r in records) for s in ("human", "lm", "mixed")},
        "prompts": {"train": len(train_prompts), "test": len(test_prompts)},
        "rows": rows,
        "paired_vs_raw": paired,
    }
    write_text_atomic(work / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(work / "results.md", render(results))
    return results


def render(results: dict[str, Any]) -> str:
    comparisons = list(next(iter(results["rows"].values())))
    lines = [
        f"held-out prompts: {results['prompts']['test']} (tuned on {results['prompts']['train']})",
        "",
        "| detector | " + " | ".join(f"AUROC {c}" for c in comparisons) + " |",
        "|---|" + "---|" * len(comparisons),
    ]
    for name, row in results["rows"].items():
        cells = [f"{row[c]['auroc']:.3f} ({row[c]['ci_low']:.3f}–{row[c]['ci_high']:.3f})" for c in comparisons]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "LM vs human, tuned against raw on the same texts (DeLong's paired test):", ""]
    for name, d in results["paired_vs_raw"].items():
        interval = f"{d['ci_low']:+.3f} to {d['ci_high']:+.3f}"
        lines.append(f"- {name}: {d['difference']:+.3f} ({interval}), p = {d['p_value']:.3f}")
    return "\n".join(lines) + "\n"


def tiny_settings(work: Path) -> Settings:
    """The tiny test models and a dozen made-up questions: the numbers mean nothing."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from tiny_models import build_tiny_decoder, build_tiny_encoder, built_once

    decoder = built_once(build_tiny_decoder, work / "tiny" / "decoder")
    encoder = built_once(build_tiny_encoder, work / "tiny" / "encoder")
    start = work / "tiny" / "reward-model"
    if not (start / "config.json").exists():
        RewardModel.from_backbone(str(encoder), max_length=64).save_pretrained(start)
    answers = work / "tiny" / "answers.json"
    rng = random.Random(0)
    words = ["river", "stone", "garden", "window", "music", "paper", "city", "story", "light", "forest"]
    rows = [
        {"question": f"What is {rng.choice(words)} {i}?", "gold": f"It is {' '.join(rng.choices(words, k=6))}. Yes."}
        for i in range(12)
    ]
    write_text_atomic(answers, json.dumps(rows))
    return Settings(
        model=str(start), lm=str(decoder), answers=str(answers), limit=12, max_new_tokens=8, epochs=1.0, lr=1e-3
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--work", type=Path, required=True, help="folder of the data, detectors and results")
    parser.add_argument("--tiny", action="store_true", help="tiny test models and a dozen questions (smoke run)")
    for item in fields(Settings):
        parser.add_argument(f"--{item.name.replace('_', '-')}", type=type(item.default), default=item.default)
    args = parser.parse_args(argv)
    settings = (
        tiny_settings(args.work) if args.tiny else Settings(**{f.name: getattr(args, f.name) for f in fields(Settings)})
    )
    results = run(args.work, settings)
    print(render(results))
    return results


if __name__ == "__main__":
    main()
