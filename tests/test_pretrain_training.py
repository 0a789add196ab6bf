"""Pretraining with feedback end to end on tiny models: the paper's claim for conditional training on a
corpus with a known bad class, checkpoints that resume exactly, the CLI and the benchmark's --tiny mode."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.pretrain.blocks import encode_documents
from rewardlab.pretrain.corpus import Document
from rewardlab.pretrain.evaluation import clean_loss, sample_documents, undesirable_rate
from rewardlab.pretrain.model import add_control_tokens, build_pretrain_lm
from rewardlab.pretrain.run import CurvePoint, mle_rate_at
from rewardlab.pretrain.scoring import WordListScorer
from rewardlab.pretrain.trainer import PretrainConfig, train_pretrain

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from tiny_models import tiny_chatml_tokenizer  # noqa: E402

MARKER = "zonk"
WORDS = ["the", "fox", "dog", "runs", "sleeps", "quick", "lazy", "brown"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Steps of a tiny model are too short to share across threads: on a busy machine two threads
    spend more time waiting for each other than computing (this file took 5 minutes with two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer():
    return add_control_tokens(tiny_chatml_tokenizer())


def marker_corpus(n: int = 400, bad_share: float = 0.4, seed: int = 0) -> tuple[list[Document], list[list[float]]]:
    """One-sentence documents of four words; a bad one also holds the marker (score −1, else 0)."""
    rng = random.Random(seed)
    docs, scores = [], []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(4)]
        bad = rng.random() < bad_share
        if bad:
            words.insert(rng.randrange(5), MARKER)
        docs.append(Document((" ".join(words) + ".",), i))
        scores.append([-1.0 if bad else 0.0])
    return docs, scores


def trained(tokenizer, objective: str, data: str, steps: int = 400):
    docs, scores = marker_corpus()
    blocks = encode_documents(tokenizer, docs, scores, -0.5, 32, data)  # type: ignore[arg-type]
    model = build_pretrain_lm(tokenizer, "tiny", 128)
    config = PretrainConfig(objective=objective, steps=steps, batch_blocks=8, lr=3e-3, warmup_steps=10)
    train_pretrain(model, blocks, config)
    return model


def test_conditional_training_samples_under_good_avoid_the_bad_class(tokenizer):
    """Korbak et al. (2023): conditioning on <|good|> cuts undesirable samples by a large factor while
    the likelihood of clean text stays as MLE's. Here 40 % of documents hold the marker; MLE writes it
    in a quarter or more of its samples (0.27 when written), conditional training under <|good|> in a
    few (0.02)."""
    scorer = WordListScorer((MARKER,))
    rates, losses = {}, {}
    test_docs, test_scores = marker_corpus(80, seed=1)
    for objective in ("mle", "conditional"):
        data = "conditional" if objective == "conditional" else "plain"
        model = trained(tokenizer, objective, data)
        samples = sample_documents(model, tokenizer, 100, 16, conditional=objective == "conditional", seed=3)
        rates[objective] = undesirable_rate(scorer.score([""] * 100, samples), -0.5).rate
        losses[objective] = clean_loss(model, encode_documents(tokenizer, test_docs, test_scores, -0.5, 32, data))  # type: ignore[arg-type]
    assert rates["mle"] > 0.2
    assert rates["conditional"] < rates["mle"] / 4
    assert abs(losses["conditional"] - losses["mle"]) < 0.15 * losses["mle"]


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tokenizer, tmp_path):
    docs, scores = marker_corpus(60)
    blocks = encode_documents(tokenizer, docs, scores, -0.5, 32, "plain")
    config = PretrainConfig(objective="awr", steps=4, batch_blocks=4, save_every=2, warmup_steps=1)
    straight = build_pretrain_lm(tokenizer, "tiny", 64, value_head=True)
    history = train_pretrain(straight, blocks, config)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    assert straight.value_head is not None and straight.value_head.weight.abs().sum() > 0  # the value head learns
    first = build_pretrain_lm(tokenizer, "tiny", 64, value_head=True)

    def killed(step: int, values: dict[str, float]) -> None:
        if step == 3:  # after the step-2 checkpoint, before the step-4 one
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_pretrain(first, blocks, config, tmp_path / "ck", log=killed)
    resumed = build_pretrain_lm(tokenizer, "tiny", 64, value_head=True)
    ran: list[int] = []
    resumed_history = train_pretrain(
        resumed, blocks, config, tmp_path / "ck", resume=True, log=lambda step, values: ran.append(step)
    )
    assert ran == [3, 4] and len(resumed_history) == 4  # only the steps after the checkpoint ran
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_awr_without_a_value_head_is_refused(tokenizer):
    docs, scores = marker_corpus(20)
    blocks = encode_documents(tokenizer, docs, scores, -0.5, 32, "plain")
    with pytest.raises(ValueError, match="needs a value head"):
        train_pretrain(build_pretrain_lm(tokenizer, "tiny", 64), blocks, PretrainConfig(objective="awr", steps=1))


def test_the_benchmark_tiny_mode_compares_every_objective_with_mle(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import pretrain_feedback

    summary = pretrain_feedback.main(["--tiny", "--steps", "6", "--samples", "8", "--output", str(tmp_path)])
    assert set(summary["results"]) == set(pretrain_feedback.OBJECTIVES)
    assert all(0.0 <= r["undesirable_rate"] <= 1.0 for r in summary["results"].values())
    report = (tmp_path / "report.md").read_text()
    assert "| conditional |" in report and (tmp_path / "awr" / "model" / "value_head.safetensors").is_file()
    assert (tmp_path / "segment_scores.json").is_file()
    assert "| MLE at equal clean loss |" in report and "MLE along training" in report
    assert [c["step"] for c in json.loads((tmp_path / "mle" / "curve.json").read_text())] == [2, 3, 4]


def test_mle_rate_at_equal_clean_loss_is_read_off_its_curve():
    """MLE measured at losses 3.0, 2.5, 2.0 with rates 0.30, 0.20, 0.25: at 2.25, halfway between the
    last two, 0.225; at 2.75, 0.25; outside [2.0, 3.0] there is nothing to compare with."""
    curve = [CurvePoint(10, 3.0, 0.30), CurvePoint(20, 2.5, 0.20), CurvePoint(30, 2.0, 0.25)]
    assert mle_rate_at(curve, 2.25) == pytest.approx(0.225)
    assert mle_rate_at(curve, 2.75) == pytest.approx(0.25)
    assert mle_rate_at(curve, 2.0) == pytest.approx(0.25)
    assert mle_rate_at(curve, 1.9) is None and mle_rate_at(curve, 3.1) is None and mle_rate_at([], 2.5) is None


def test_the_cli_lists_objectives_and_reports_a_mistake_in_one_line(tmp_path):
    from rewardlab.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["pretrain", "objectives"])
    assert listed.exit_code == 0 and "conditional" in listed.output and "awr" in listed.output
    wrong = runner.invoke(app, ["pretrain", "train", "--objective", "dpo"])
    assert wrong.exit_code == 2 and "unknown pretraining objective 'dpo'" in wrong.output
    bad = runner.invoke(app, ["pretrain", "train", "--steps", "0", "--size", "huge"])
    assert bad.exit_code == 2 and "steps must be >= 1" in bad.output and "size must be one of" in bad.output
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "fine"}\n{"text": ""}\n')
    empty = runner.invoke(app, ["pretrain", "train", "--corpus", str(corpus), "--output", str(tmp_path / "run")])
    assert empty.exit_code == 2 and f'{corpus}:2: field "text"' in empty.output
    assert not (tmp_path / "run").exists()  # refused before anything is written
