"""Process reward models (``process/``, issue 34): the step loss and chain scores against hand-computed
values, the properties Gao et al. 2024 claim for Clip and Delta, first-wrong-step localisation, and the
trainer and ``rewardlab prm`` on a tiny encoder."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data.arithmetic import make_chains, reply_steps
from rewardlab.data.chains import StepChain
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.step_scoring import step_logits
from rewardlab.process.rollouts import monte_carlo_labels, rollout_label
from rewardlab.process.scoring import localisation
from rewardlab.process.search import best_of_n_chains, step_beam_search
from rewardlab.process.steps import batch_step_loss, first_flagged_step, step_bce_loss
from rewardlab.process.trainer import ProcessTrainConfig, chain_batches, train_process_model
from rewardlab.rewards.step_aggregation import chain_score
from rewardlab.sampling.batched import sample_replies_batched
from rewardlab.sampling.generation import SampleConfig


def test_step_loss_hand_computed():
    """r = 0, y = 1: −log σ(0) = log 2 = 0.693147. r = log 3 (σ = 0.75), y = 0.75: the entropy
    −(0.75 log 0.75 + 0.25 log 0.25) = 0.215762 + 0.346574 = 0.562335. r = log 3, y = 0: −log 0.25 = 1.386294."""
    losses = step_bce_loss(torch.tensor([0.0, math.log(3), math.log(3)]), torch.tensor([1.0, 0.75, 0.0]))
    assert losses.tolist() == pytest.approx([0.693147, 0.562335, 1.386294], abs=1e-6)


def test_step_loss_is_least_where_the_probability_is_the_label():
    """Math-Shepherd's soft labels: the loss's gradient vanishes at σ(r) = y, the MC estimate."""
    for label in (0.1, 0.5, 0.8):
        logit = torch.tensor([math.log(label / (1 - label))], requires_grad=True)
        step_bce_loss(logit, torch.tensor([label])).sum().backward()
        assert abs(logit.grad.item()) < 1e-6
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        step_bce_loss(torch.zeros(1), torch.tensor([1.5]))


def test_batch_loss_weighs_each_chain_once():
    """Chain 0 has one step (loss log 2), chain 1 three steps at r = log 3, y = 0 (loss 1.386294 each):
    (0.693147 + 1.386294) / 2 = 1.039721, not the step mean (0.693147 + 3·1.386294) / 4 = 1.213008."""
    logits = torch.tensor([0.0, math.log(3), math.log(3), math.log(3)])
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert batch_step_loss(logits, labels, torch.tensor([0, 1, 1, 1]), 2).item() == pytest.approx(1.039721, abs=1e-6)


def test_chain_scores_hand_computed():
    """p = (0.9, 0.6, 0.8): min 0.6, product 0.432, last 0.8, mean 0.766667, sum 2.3; clip at η = 0.7 gives
    (0, −0.1, 0), sum −0.1; delta gives (0.3, −0.2, 0), sum 0.1 = p₁ − p_T."""
    p = torch.tensor([0.9, 0.6, 0.8], dtype=torch.float64)
    expected = {"min": 0.6, "product": 0.432, "last": 0.8, "mean": 0.766667, "sum": 2.3}
    for how, value in expected.items():
        assert chain_score(p, how) == pytest.approx(value, abs=1e-6)
    assert chain_score(p, "sum", "clip", eta=0.7) == pytest.approx(-0.1)
    assert chain_score(p, "sum", "delta") == pytest.approx(0.1)
    with pytest.raises(ValueError, match="aggregation"):
        chain_score(p, "median")


def test_clip_and_delta_returns_do_not_grow_with_the_steps():
    """Gao et al. 2024: under Clip the return is at most 0 whatever the length, and under Delta it is
    p₁ − p_T; so a policy gains nothing by adding steps that look right (raw sums grow with them)."""
    generator = torch.Generator().manual_seed(0)
    for length in (1, 5, 50, 500):
        p = torch.rand(length, generator=generator, dtype=torch.float64) * 0.2 + 0.8  # steps that look right
        assert chain_score(p, "sum", "clip", eta=0.9) <= 0.0
        assert chain_score(p, "sum", "delta") == pytest.approx(float(p[0] - p[-1]))
    assert chain_score(torch.full((500,), 0.9), "sum") > 400


def test_localisation_counts_the_first_flagged_step():
    """Chain A is wrong from step 2 (index 1) and flagged there: a hit. Chain B is wrong from step 1 but
    first flagged at step 2: a miss. Chain C is right and never flagged: a hit. 2 of 3; steps: A 3/3,
    B 1/2 (step 1 scored 0.7 for label 0), C 2/2, so 6/7."""
    chains = [
        StepChain("A", ("a", "b", "c"), (1.0, 0.0, 0.0)),
        StepChain("B", ("a", "b"), (0.0, 0.0)),
        StepChain("C", ("a", "b"), (1.0, 1.0)),
    ]
    scores = [torch.tensor([0.9, 0.2, 0.1]), torch.tensor([0.7, 0.3]), torch.tensor([0.8, 0.6])]
    found = localisation(chains, scores)
    assert (found.accuracy, found.accuracy_on_wrong, found.accuracy_on_right) == (2 / 3, 0.5, 1.0)
    assert found.step_accuracy == pytest.approx(6 / 7)
    assert first_flagged_step(torch.tensor([0.9, 0.8])) is None


def test_batches_visit_every_chain_once_an_epoch():
    config = ProcessTrainConfig(epochs=2, batch_chains=4)
    batches = chain_batches(10, config)
    assert len(batches) == config.steps(10) == 5 and all(len(b) == 4 for b in batches)
    first_epoch = [c for b in batches[:2] for c in b]
    assert len(set(first_epoch)) == 8
    assert chain_batches(10, config) == batches


def small_model(tiny_encoder_dir) -> RewardModel:
    torch.manual_seed(0)
    return RewardModel.from_backbone(str(tiny_encoder_dir), max_length=96)


def test_training_fits_the_step_labels(tiny_encoder_dir):
    """Six chains, 40 steps at lr 3e-3: the tiny encoder fits their step labels (process supervision)."""
    chains = make_chains(6, wrong_fraction=0.5, seed=0)
    model = small_model(tiny_encoder_dir)
    history = train_process_model(model, chains, ProcessTrainConfig(epochs=40, batch_chains=6, lr=3e-3))
    assert history[-1]["loss"] < 0.2 * history[0]["loss"]
    found = localisation(chains, [torch.sigmoid(t) for t in step_logits(model, chains)])
    assert found.step_accuracy == 1.0 and found.accuracy == 1.0


def test_outcome_supervision_reads_only_the_whole_chain(tiny_encoder_dir):
    """An ORM's first loss is the mean over chains of the BCE of the whole chain's logit against its
    last label, computed here from the untrained model's scores (bf16 passes where the CPU has them)."""
    chains = make_chains(6, wrong_fraction=0.5, seed=0)
    whole = torch.stack([t[-1] for t in step_logits(small_model(tiny_encoder_dir), chains, precision="fp32")])
    expected = step_bce_loss(whole, torch.tensor([c.labels[-1] for c in chains])).mean().item()
    config = ProcessTrainConfig(supervision="outcome", epochs=1, batch_chains=6)
    history = train_process_model(small_model(tiny_encoder_dir), chains, config)
    assert history[0]["loss"] == pytest.approx(expected, abs=0.01)


def test_resumed_training_ends_with_the_uninterrupted_weights(tiny_encoder_dir, tmp_path):
    chains = make_chains(8, seed=1)
    whole = small_model(tiny_encoder_dir)
    train_process_model(whole, chains, ProcessTrainConfig(epochs=2, batch_chains=4, lr=1e-3))
    first = small_model(tiny_encoder_dir)
    train_process_model(first, chains, ProcessTrainConfig(epochs=1, batch_chains=4, lr=1e-3), checkpoint_dir=tmp_path)
    resumed = small_model(tiny_encoder_dir)
    history = train_process_model(
        resumed, chains, ProcessTrainConfig(epochs=2, batch_chains=4, lr=1e-3), checkpoint_dir=tmp_path, resume=True
    )
    assert len(history) == 4
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_training_refuses_unlabelled_chains(tiny_encoder_dir):
    with pytest.raises(ValueError, match="no step labels"):
        train_process_model(small_model(tiny_encoder_dir), [StepChain("Q", ("a",))], ProcessTrainConfig())


def test_prm_train_and_score_commands(tiny_encoder_dir, tmp_path):
    runner = CliRunner()
    chains = tmp_path / "chains.jsonl"
    assert runner.invoke(app, ["data", "chains", "--output", str(chains), "--count", "30"]).exit_code == 0
    run = tmp_path / "run"
    args = [
        "prm",
        "train",
        str(chains),
        "--output",
        str(run),
        "--backbone",
        str(tiny_encoder_dir),
        "--max-length",
        "96",
    ]
    result = runner.invoke(app, [*args, "--epochs", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((run / "report.json").read_text())
    assert report["test_chains"] == 6 and report["train_chains"] == 24 and report["localisation"]["n"] == 6
    assert "first wrong step found" in (run / "report.md").read_text()
    again = runner.invoke(app, [*args, "--no-progress"])
    assert again.exit_code == 2 and "--resume" in again.output
    scored = tmp_path / "scored.jsonl"
    shown = runner.invoke(
        app, ["prm", "score", str(run / "model"), str(chains), "--output", str(scored), "--no-progress"]
    )
    assert shown.exit_code == 0, shown.output
    rows = [json.loads(line) for line in scored.read_text().splitlines()]
    assert len(rows) == 30 and all(row["score"] == min(row["steps"]) for row in rows)
    assert "first wrong step found in" in shown.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "Q", "steps": ["a", "b"], "labels": [1]}) + "\n")
    refused = runner.invoke(app, ["prm", "score", str(run / "model"), str(bad)])
    assert refused.exit_code == 2 and f"{bad}:1" in refused.output and "labels" in refused.output


def test_rollout_labels_hand_computed():
    """Rollout answers (2, none, 2, 3) for answer 2: soft 2/4 = 0.5, hard 1; (3, none): 0 and 0."""
    two = Fraction(2)
    assert rollout_label([two, None, two, Fraction(3)], two) == 0.5
    assert rollout_label([two, None, two, Fraction(3)], two, "hard") == 1.0
    assert rollout_label([Fraction(3), None], two) == rollout_label([Fraction(3), None], two, "hard") == 0.0


def test_monte_carlo_labels_from_a_real_decoder(tiny_decoder_dir):
    """The last step's label is the chain's own verdict (right answer stated or not); the others are
    shares of 3 rollouts; the same seed gives the same labels."""
    lm = CausalLM.from_pretrained(tiny_decoder_dir)
    chains = make_chains(4, wrong_fraction=0.5, seed=2, level="simple")
    labelled = monte_carlo_labels(lm, chains, rollouts=3, max_new_tokens=6)
    for before, after in zip(chains, labelled, strict=True):
        assert after.steps == before.steps and len(after.labels) == len(before.labels)
        assert after.labels[-1] == before.labels[-1]
        assert all(label in (0.0, 1 / 3, 2 / 3, 1.0) for label in after.labels)
    assert monte_carlo_labels(lm, chains, rollouts=3, max_new_tokens=6) == labelled
    with pytest.raises(ValueError, match='"answer" is missing'):
        monte_carlo_labels(lm, [StepChain("Q", ("a", "b"))])


def test_prm_label_command(tiny_decoder_dir, tmp_path):
    runner = CliRunner()
    chains, labelled = tmp_path / "chains.jsonl", tmp_path / "labelled.jsonl"
    assert runner.invoke(app, ["data", "chains", "--output", str(chains), "--count", "3"]).exit_code == 0
    args = ["prm", "label", str(chains), "--output", str(labelled), "--policy", str(tiny_decoder_dir)]
    result = runner.invoke(app, [*args, "--rollouts", "2", "--max-new-tokens", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in labelled.read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["labels"]) == len(r["steps"]) for r in rows)
    no_answer = tmp_path / "no-answer.jsonl"
    no_answer.write_text(json.dumps({"prompt": "Q", "steps": ["a"], "answer": "seven"}) + "\n")
    refused = runner.invoke(app, ["prm", "label", str(no_answer), "--output", str(tmp_path / "x.jsonl")])
    assert refused.exit_code == 2 and f"{no_answer}:1" in refused.output and "expected a number" in refused.output


def test_best_of_n_keeps_the_chain_the_prm_scores_highest(tiny_encoder_dir, tiny_decoder_dir):
    lm, prm = CausalLM.from_pretrained(tiny_decoder_dir), small_model(tiny_encoder_dir)
    prompts = ["What is 2 + 3?", "Ana has 4 cards and gets 5 more. How many now?"]
    config = SampleConfig(n=4, max_new_tokens=12, temperature=1.0, seed=3)
    chosen = best_of_n_chains(lm, prm, prompts, config)
    for prompt, pick, samples in zip(prompts, chosen, sample_replies_batched(lm, prompts, config), strict=True):
        chains = [StepChain(prompt, steps) for steps in (reply_steps(s.text) for s in samples) if steps]
        scores = [chain_score(torch.sigmoid(t), "min") for t in step_logits(prm, chains)]
        assert pick.candidates == len(chains) and pick.score == max(scores)
        assert pick.steps == chains[scores.index(max(scores))].steps


def test_beam_search_returns_a_scored_chain(tiny_encoder_dir, tiny_decoder_dir):
    """The kept chain's score is its own chain score (recomputed), at most beam × expansions candidates
    are scored a step, and the search is deterministic for a seed."""
    lm, prm = CausalLM.from_pretrained(tiny_decoder_dir), small_model(tiny_encoder_dir)
    options = {"beam": 2, "expansions": 3, "max_steps": 3, "step_tokens": 8, "seed": 1}
    pick = step_beam_search(lm, prm, "What is 2 + 3?", **options)
    assert 1 <= len(pick.steps) <= 3 and pick.candidates <= 2 * 3 * 3
    recomputed = chain_score(torch.sigmoid(step_logits(prm, [StepChain("What is 2 + 3?", pick.steps)])[0]), "min")
    assert pick.score == pytest.approx(recomputed, abs=1e-6)
    assert step_beam_search(lm, prm, "What is 2 + 3?", **options) == pick


def test_prm_search_command(tiny_encoder_dir, tiny_decoder_dir, tmp_path):
    runner = CliRunner()
    model = small_model(tiny_encoder_dir).save_pretrained(tmp_path / "prm")
    questions = tmp_path / "questions.jsonl"
    assert runner.invoke(app, ["data", "chains", "--output", str(questions), "--count", "3"]).exit_code == 0
    base = ["prm", "search", str(model), str(questions), "--policy", str(tiny_decoder_dir), "--no-progress"]
    for how in (["--n", "2"], ["--beam", "2", "--expansions", "2", "--max-steps", "2"]):
        found = tmp_path / f"found-{len(how)}.jsonl"
        result = runner.invoke(app, [*base, *how, "--max-new-tokens", "8", "--output", str(found)])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in found.read_text().splitlines()]
        assert len(rows) == 3 and all(isinstance(r["right"], bool) for r in rows)
        assert "right: " in result.output
