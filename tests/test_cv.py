"""``rewardlab cv``: the folds (a partition by prompt group, deterministic, test never in validation or
training), the estimates (exact on hand-made predictions), per-fold peak memory, and the command end
to end on a tiny model, with --resume and bad --folds."""

from __future__ import annotations

import json
import mmap
import random

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.records import DataError, PreferencePair, Ranking
from rewardlab.data.split import content_key, kfold_splits
from rewardlab.evaluate.cv_report import FoldPredictions, summarise_folds, t_interval
from rewardlab.runs.peak_memory import peak_mb, reset_peak


def grouped_pairs() -> list[PreferencePair]:
    """60 pairs: 12 groups of 1 to 4 pairs (one prompt's replies), and 30 pairs of their own."""
    pairs = []
    for g in range(12):
        for j in range(1 + g % 4):
            pairs.append(PreferencePair(f"prompt {g}", f"good {g}.{j}", f"bad {g}.{j}", group=f"g{g}"))
    pairs += [PreferencePair(f"single {i}", f"yes {i}", f"no {i}", id=f"s{i}") for i in range(60 - len(pairs))]
    return pairs


def unit(pair: PreferencePair) -> str:
    return pair.group or pair.id


def test_folds_partition_the_data_by_group_and_are_deterministic():
    pairs = grouped_pairs()
    folds = kfold_splits(pairs, 4, validation=0.1, seed=0)
    tested = [content_key(p) for fold in folds for p in fold.test]
    assert sorted(tested) == sorted(content_key(p) for p in pairs)  # every pair tested exactly once
    owner = {}
    for i, fold in enumerate(folds):
        for p in fold.test:
            assert owner.setdefault(unit(p), i) == i  # a group's pairs are all in one test fold
        parts = [{unit(p) for p in part} for part in (fold.train, fold.validation, fold.test)]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])  # no group straddles
        assert len(fold.train) + len(fold.validation) + len(fold.test) == len(pairs)
        assert 6 <= len(fold.validation) < 6 + 4  # round(0.1 * 60) pairs, whole groups (at most 4 pairs)
    sizes = [len(fold.test) for fold in folds]
    assert max(sizes) - min(sizes) <= 4  # dealt to the smallest part: within one group's size
    again = kfold_splits(list(reversed(pairs)), 4, validation=0.1, seed=0)  # file order does not matter
    assert [{content_key(p) for p in f.test} for f in again] == [{content_key(p) for p in f.test} for f in folds]
    other = kfold_splits(pairs, 4, validation=0.1, seed=1)
    assert [f.test for f in other] != [f.test for f in folds]


def test_rankings_follow_their_group():
    pairs = grouped_pairs()
    rankings = [Ranking(f"prompt {g}", ("a", "b", "c"), group=f"g{g}") for g in range(12)]
    for fold in kfold_splits(pairs, 3, seed=0, rankings=rankings):
        for name in ("train", "validation", "test"):
            groups = {p.group for p in getattr(fold, name) if p.group}
            assert {r.group for r in getattr(fold, f"{name}_rankings")} == groups


@pytest.mark.parametrize(
    ("folds", "message"),
    [(1, "folds must be at least 2 (got 1)"), (43, "at most the number of prompt groups in the data, 42 (got 43)")],
)
def test_bad_fold_counts(folds, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        kfold_splits(grouped_pairs(), folds)  # 12 groups + 30 single pairs = 42 units


def fold(correct_longer: int, correct_shorter: int, wrong_longer: int, wrong_shorter: int) -> FoldPredictions:
    """Pairs scored right (1 > 0) or wrong (0 > 1) with the chosen reply longer (20 vs 10) or shorter."""
    kinds = (
        [(1, 20)] * correct_longer + [(1, 5)] * correct_shorter + [(0, 20)] * wrong_longer + [(0, 5)] * wrong_shorter
    )
    return FoldPredictions(
        chosen_scores=[float(right) for right, _ in kinds],
        rejected_scores=[float(1 - right) for right, _ in kinds],
        chosen_lengths=[length for _, length in kinds],
        rejected_lengths=[10] * len(kinds),
        seconds=1.0,
        peak_memory_mb=100.0,
    )


def test_estimates_on_hand_made_predictions():
    """Three folds: 4 of 5, 5 of 10 and 4 of 5 right (accuracies 0.8, 0.5, 0.8).

    Across folds: mean 0.7; s² = (0.1² + 0.2² + 0.1²) / 2 = 0.03, s = 0.173205, s/√3 = 0.1 exactly;
    t_{0.975, 2} = 4.302653, so the interval is 0.7 ± 0.430265 = 0.269735–1.130265 (unclipped: the
    t-interval of three folds is that wide).
    Pooled: 13 of 20 = 0.65; Wilson with z² = 3.841459: centre = (0.65 + z²/40) / (1 + z²/20)
    = 0.746036 / 1.192073 = 0.625831, half = z/1.192073 · √(0.2275/20 + z²/1600) = 1.644164 · 0.117371
    = 0.192977, so 0.432854–0.818808.
    Length: pooled 10 right of 12 chosen-longer (0.833333) and 3 right of 8 chosen-shorter (0.375),
    gap 0.458333; fold 0 is 4 of 4 and 0 of 1, gap 1.
    """
    folds = [fold(4, 0, 0, 1), fold(4, 1, 2, 3), fold(2, 2, 0, 1)]
    summary = summarise_folds(folds)
    assert [f.accuracy.accuracy for f in summary.folds] == pytest.approx([0.8, 0.5, 0.8])
    mean = summary.mean
    assert (mean.mean, mean.std, mean.k) == (pytest.approx(0.7), pytest.approx(0.173205, abs=1e-6), 3)
    assert (mean.low, mean.high) == (pytest.approx(0.269735, abs=1e-6), pytest.approx(1.130265, abs=1e-6))
    pooled = summary.pooled
    assert (pooled.accuracy, pooled.n) == (pytest.approx(0.65), 20)
    assert (pooled.ci_low, pooled.ci_high) == (pytest.approx(0.432854, abs=1e-5), pytest.approx(0.818808, abs=1e-5))
    length = summary.pooled_length
    assert length.chosen_longer.accuracy == pytest.approx(10 / 12) and length.chosen_longer.n == 12
    assert length.chosen_shorter.accuracy == pytest.approx(3 / 8) and length.chosen_shorter.n == 8
    assert length.gap == pytest.approx(0.458333, abs=1e-6) and summary.folds[0].length.gap == 1.0
    assert length.reward_length_spearman is not None and length.reward_length_spearman > 0
    text = summary.markdown()
    assert "mean over 3 folds: 0.700** (95 % t-interval 0.270–1.130" in text
    assert "pooled over all 20 test pairs: 0.650 (0.433–0.819, n=20)" in text
    assert t_interval([0.7]).low != t_interval([0.7]).low  # one fold: no interval (NaN)


def test_peak_memory_is_per_stretch():
    if not reset_peak():
        pytest.skip("this system cannot reset the peak resident size")
    before = peak_mb()
    block = mmap.mmap(-1, 120 * 2**20)  # its own mapping: unmapped on close, whatever malloc keeps
    for offset in range(0, len(block), mmap.PAGESIZE):
        block[offset] = 1  # touch every page: resident
    grown = peak_mb()
    block.close()
    reset_peak()
    assert grown - before > 100 and peak_mb() < grown - 100


def write_pairs(path, n: int = 24) -> None:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        good = " ".join(rng.choice(["kind", "clear", "helpful", "safe"]) for _ in range(1 + i % 5))
        rows.append({"id": f"p{i}", "prompt": f"Question {i}?", "chosen": f"A {good} answer.", "rejected": "No."})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_cv_command_end_to_end_and_resume(tiny_encoder_dir, tmp_path):
    write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "cv"
    args = ["cv", "--folds", "3", "--data", str(tmp_path / "pairs.jsonl"), "--backbone", str(tiny_encoder_dir)]
    args += ["--output", str(out), "max_steps=2", "precision=fp32", "progress=false", "num_threads=1"]
    args += ["model.max_length=32"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "mean over 3 folds" in result.output and "pooled over all 24 test pairs" in result.output
    report = json.loads((out / "cv.json").read_text())
    assert report["pooled"]["n"] == 24 and len(report["folds"]) == 3 and report["setup"]["pairs"] == 24
    ids = []
    for i in range(3):
        folder = out / f"fold-{i}"
        done = json.loads((folder / "fold.json").read_text())
        assert done["accuracy"] == pytest.approx(report["folds"][i]["accuracy"]["accuracy"])  # the trainer's own eval
        assert done["seconds"] > 0 and done["peak_memory_mb"] > 0
        ids += [json.loads(line)["id"] for line in (folder / "predictions.jsonl").read_text().splitlines()]
        assert (folder / "report" / "eval.md").is_file() and (folder / "config.yaml").is_file()
        assert not (folder / "model").exists() and not (folder / "checkpoint").exists()  # weights dropped
    assert sorted(ids) == sorted(f"p{i}" for i in range(24))  # each pair tested by exactly one fold

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already holds a run; pass --resume" in again.output

    (out / "fold-2" / "fold.json").unlink()  # as if killed before fold 3 finished
    stamps = [(out / f"fold-{i}" / "fold.json").stat().st_mtime_ns for i in range(2)]
    resumed = CliRunner().invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.count("finished before") == 2 and "fold 3/3: " in resumed.output
    assert [(out / f"fold-{i}" / "fold.json").stat().st_mtime_ns for i in range(2)] == stamps
    assert json.loads((out / "cv.json").read_text())["pooled"]["n"] == 24

    other = CliRunner().invoke(app, [*args[:2], "2", *args[3:], "--resume"])
    assert other.exit_code == 2 and "--resume needs the same --folds, data and data.split_seed" in other.output


@pytest.mark.parametrize(
    ("folds", "message"),
    [
        ("1", "error: folds must be at least 2 (got 1)"),
        ("25", "error: folds must be at most the number of prompt groups in the data, 24 (got 25)"),
        ("3 data.bootstrap_seed=1", "error: data.bootstrap_seed is not supported by cv"),
    ],
)
def test_bad_folds_is_one_line(folds, message, tmp_path):
    write_pairs(tmp_path / "pairs.jsonl")
    args = ["cv", "--folds", *folds.split(), "--data", str(tmp_path / "pairs.jsonl"), "--output", str(tmp_path / "cv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "cv").exists()


def test_python_entry_point_checks_folds_before_reading_data(tmp_path):
    """``rewardlab.cross_validate`` resolves its arguments as ``rewardlab.train`` does; a bad fold count
    fails before the (missing) data file is read."""
    import rewardlab

    with pytest.raises(ValueError, match=r"^folds must be at least 2 \(got 1\)$"):
        rewardlab.cross_validate(folds=1, data=str(tmp_path / "absent.jsonl"), output_dir=tmp_path / "cv", epochs=1)
    with pytest.raises(DataError, match=r"absent\.jsonl: no such file or directory"):
        rewardlab.cross_validate(folds=2, data=str(tmp_path / "absent.jsonl"), output_dir=tmp_path / "cv")
