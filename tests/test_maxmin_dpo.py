"""``maxmin_dpo``: MaxMin-RLHF's policy step as a smooth maximum of the groups' DPO losses (issue 33)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.data import split_pairs
from rewardlab.data.records import PreferencePair
from rewardlab.policy import get_policy_loss
from rewardlab.policy.evaluation import held_out_accuracy
from rewardlab.policy.group_losses import maxmin_dpo_loss
from rewardlab.policy.losses import dpo_loss
from rewardlab.policy.trainer import pair_groups

torch.set_num_threads(1)

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "maxmin_dpo.py"


def smooth_max(chosen, rejected, groups, beta, temperature):
    """τ·log Σ_g exp(L_g/τ), written directly from the groups' mean DPO losses."""
    pair = -torch.nn.functional.logsigmoid(beta * (chosen - rejected))
    means = torch.stack([pair[groups == g].mean() for g in groups.unique()])
    return temperature * torch.logsumexp(means / temperature, dim=0)


def test_two_groups_hand_computed():
    """β = 1, reference 0. Group 5: h = 0, 0, so ℓ = log 2 each and L_5 = log 2; group 9: h = −log 3,
    ℓ = log(1 + e^{log 3}) = log 4, L_9 = 2·log 2. With τ = log 2, L_g/τ = 1 and 2, so
    L = log 2·log(e + e²) = log 2·(1 + log(1 + e)), p = softmax(1, 2) = (1, e)/(1 + e), and
    w = 3·p_g/n_g: 3/(2(1 + e)) for each of group 5's pairs, 3e/(1 + e) for group 9's. The mean of the
    returned losses is L, and each is w_i·ℓ_i plus the same constant c = L − log 2·(1 + 2e)/(1 + e)."""
    e, log2 = math.e, math.log(2)
    chosen = torch.tensor([0.0, 0.0, -math.log(3)])
    zeros = torch.zeros(3)
    out = maxmin_dpo_loss(chosen, zeros, zeros, zeros, torch.tensor([5, 5, 9]), beta=1.0, temperature=log2)
    total = log2 * (1 + math.log(1 + e))
    weights = [3 / (2 * (1 + e)), 3 / (2 * (1 + e)), 3 * e / (1 + e)]
    c = total - log2 * (1 + 2 * e) / (1 + e)
    expected = [weights[0] * log2 + c, weights[1] * log2 + c, weights[2] * 2 * log2 + c]
    assert out.losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert out.losses.mean().item() == pytest.approx(total, rel=1e-6)
    assert out.extras["group_weight"].tolist() == pytest.approx(weights, rel=1e-6)
    assert out.extras["worst_group_loss"].tolist() == pytest.approx([2 * log2] * 3, rel=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([0.0, 0.0, -math.log(3)])


def test_one_group_is_dpo():
    g = torch.Generator().manual_seed(1)
    logps = [torch.randn(7, generator=g) for _ in range(4)]
    plain = dpo_loss(*logps, beta=0.3).losses
    for groups in (None, torch.full((7,), 4)):
        out = maxmin_dpo_loss(*logps, groups, beta=0.3, temperature=0.05)
        assert torch.allclose(out.losses, plain, atol=1e-6)


@pytest.mark.parametrize("temperature", [0.01, 0.3, 5.0])
def test_the_mean_of_the_losses_has_the_smooth_maximum_s_value_and_gradient(temperature):
    g = torch.Generator().manual_seed(2)
    chosen, rejected = torch.randn(10, generator=g) * 3, torch.randn(10, generator=g) * 3
    ref_chosen, ref_rejected = torch.randn(10, generator=g), torch.randn(10, generator=g)
    groups = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    grads = []
    for reduce in ("losses", "direct"):
        c, r = chosen.clone().requires_grad_(True), rejected.clone().requires_grad_(True)
        if reduce == "losses":
            value = maxmin_dpo_loss(c, r, ref_chosen, ref_rejected, groups, beta=0.5, temperature=temperature)
            value = value.losses.mean()
        else:
            value = smooth_max(c - ref_chosen, r - ref_rejected, groups, 0.5, temperature)
        value.backward()
        grads.append((value.item(), c.grad, r.grad))
    (v1, c1, r1), (v2, c2, r2) = grads
    assert v1 == pytest.approx(v2, rel=1e-5)
    assert torch.allclose(c1, c2, atol=1e-6) and torch.allclose(r1, r2, atol=1e-6)


def test_temperature_moves_the_weight_from_every_group_alike_to_the_worst_group():
    """Per group, Σ_{i∈g} w_i / B = p_g: τ large gives each of the 3 groups 1/3 whatever its size (6, 2,
    2 pairs; plain DPO would give 6/10, 2/10, 2/10), τ small gives the worst group (largest L_g) all."""
    g = torch.Generator().manual_seed(3)
    chosen, rejected = torch.randn(10, generator=g), torch.randn(10, generator=g)
    zeros = torch.zeros(10)
    groups = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    pair = -torch.nn.functional.logsigmoid(chosen - rejected)
    worst = int(torch.stack([pair[groups == k].mean() for k in range(3)]).argmax())
    for temperature, expected in ((1e4, [1 / 3] * 3), (1e-3, [float(k == worst) for k in range(3)])):
        weights = maxmin_dpo_loss(chosen, rejected, zeros, zeros, groups, beta=1.0, temperature=temperature)
        shares = [weights.extras["group_weight"][groups == k].sum().item() / 10 for k in range(3)]
        assert shares == pytest.approx(expected, abs=1e-3)


def test_options_and_batch_fields_are_checked():
    loss = get_policy_loss("maxmin")
    assert loss.name == "maxmin_dpo" and "groups" in loss.inputs
    assert loss.options == {"beta": 0.1, "temperature": 0.1}
    zeros = torch.zeros(2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        maxmin_dpo_loss(zeros, zeros, zeros, zeros, temperature=0.0)
    with pytest.raises(ValueError, match="groups must have one entry per pair"):
        maxmin_dpo_loss(zeros, zeros, zeros, zeros, torch.zeros(3, dtype=torch.long))


def test_a_pair_s_group_is_its_annotator_group_else_its_annotator_and_one_without_is_refused():
    pairs = [
        PreferencePair("p", "a", "b", annotator="u2", annotator_group="minority"),
        PreferencePair("p", "a", "b", annotator="u1"),
        PreferencePair("p", "a", "b", annotator="u3", annotator_group="majority"),
        PreferencePair("p", "a", "b", annotator="u1", annotator_group="minority"),
    ]
    assert pair_groups(pairs, "maxmin_dpo").tolist() == [1, 2, 0, 1]  # sorted: majority, minority, u1
    unlabelled = [*pairs, PreferencePair("p", "a", "b", source="data.jsonl:7"), PreferencePair("p", "a", "b")]
    expected = r"^data.jsonl:7: policy loss 'maxmin_dpo' needs .*annotator_group or annotator; 2 of 6"
    with pytest.raises(ValueError, match=expected):
        pair_groups(unlabelled, "maxmin_dpo")


TOPICS = ["bread", "the sea", "France", "rain", "cats", "music", "tea", "stars", "trees", "rivers", "snow", "bikes"]
TOPICS += ["maps", "owls", "jazz"]


def write_two_groups(path: Path) -> list[PreferencePair]:
    """A majority (annotators maj-0..2) and a minority (min-0, min-1). On 3 prompts both groups judge the
    same two replies, in opposite orders: two majority annotators prefer the long one, one minority
    annotator the short one. Elsewhere each group prefers a polite answer to "No.". Majority: 9 + 6
    pairs; minority: 3 + 3, half of them opposed to the majority."""
    rows = []

    def add(i: int, chosen: str, rejected: str, annotator: str, group: str, topic: str) -> None:
        prompt = f"Tell me about {topic}, please."
        rows.append({"id": f"r{len(rows)}", "prompt": prompt, "chosen": chosen, "rejected": rejected})
        rows[-1] |= {"annotator": annotator, "annotator_group": group, "group": f"prompt-{i}"}

    for i, topic in enumerate(TOPICS):
        polite, no = f"Sure! Here is something about {topic}.", "No."
        if i < 9:
            add(i, polite, no, f"maj-{i % 3}", "majority", topic)
        elif i < 12:
            add(i, polite, no, f"min-{i % 2}", "minority", topic)
        else:
            long, short = f"Here is a long answer about {topic}, with many details and words.", f"{topic}: brief."
            add(i, long, short, "maj-0", "majority", topic)
            add(i, long, short, "maj-1", "majority", topic)
            add(i, short, long, "min-0", "minority", topic)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return [
        PreferencePair(r["prompt"], r["chosen"], r["rejected"], id=r["id"], group=r["group"], annotator=r["annotator"])
        for r in rows
    ]


SPLIT = {"validation": 0.0, "test": 0.1}


def dpo_run(data: Path, policy: Path, out: Path, loss: str) -> None:
    args = ["dpo", "--data", str(data), "--policy", str(policy), "--output", str(out), "--loss", loss]
    args += ["train.steps=14", "train.batch_pairs=32", "train.lr=3e-3", "train.loss_args.beta=0.5", "num_threads=1"]
    args += [f"data.validation_fraction={SPLIT['validation']}", f"data.test_fraction={SPLIT['test']}"]
    args += ["eval.kl_prompts=0", "progress=false", "train.precision=fp32"]
    if loss == "maxmin_dpo":
        args.append("train.loss_args.temperature=0.05")
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_maxmin_dpo_raises_the_minority_s_accuracy_on_its_pairs_over_dpo(tiny_decoder_dir, tmp_path):
    """Same data, steps and settings: plain DPO weights pairs alike, so where the groups disagree the two
    majority votes beat the one minority vote and the minority's opposed pairs end up wrong; maxmin_dpo
    weights the minority's loss as much as the majority's, and gets more of the minority's pairs right."""
    pairs = write_two_groups(tmp_path / "groups.jsonl")
    trained = split_pairs(pairs, validation=SPLIT["validation"], test=SPLIT["test"], seed=0).train
    minority = [p for p in trained if p.annotator.startswith("min-")]
    assert any("brief" in p.chosen for p in minority)  # the minority trains on at least one opposed pair
    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir)
    accuracy = {}
    for loss in ("dpo", "maxmin_dpo"):
        dpo_run(tmp_path / "groups.jsonl", tiny_decoder_dir, tmp_path / loss, loss)
        report = json.loads((tmp_path / loss / "report.json").read_text())
        assert report["loss"] == loss
        policy = AutoModelForCausalLM.from_pretrained(tmp_path / loss / "policy")
        held = held_out_accuracy(policy, base, tokenizer, minority, "chat", 64, 64, 16)
        accuracy[loss] = held.implicit_accuracy.accuracy
    assert accuracy["maxmin_dpo"] > accuracy["dpo"], accuracy


def test_a_pair_without_a_group_is_refused_naming_the_line_and_fields(tiny_decoder_dir, tmp_path):
    write_two_groups(tmp_path / "groups.jsonl")
    lines = (tmp_path / "groups.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    del row["annotator"], row["annotator_group"]
    lines[1] = json.dumps(row)
    (tmp_path / "groups.jsonl").write_text("\n".join(lines) + "\n")
    args = ["dpo", "--data", str(tmp_path / "groups.jsonl"), "--policy", str(tiny_decoder_dir), "--loss", "maxmin_dpo"]
    args += ["--output", str(tmp_path / "run"), "data.test_fraction=0.1", "train.steps=1", "progress=false"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "groups.jsonl:2: policy loss 'maxmin_dpo' needs each pair's group" in result.output
    assert "annotator_group or annotator" in result.output and "Traceback" not in result.output


def test_benchmark_tiny_mode_runs_and_resumes(tmp_path):
    spec = importlib.util.spec_from_file_location("maxmin_dpo_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "bench"
    results = module.main(["--tiny", "--output", str(out)])
    saved = json.loads((out / "results.json").read_text())
    assert saved == results
    assert {(r["policy"], r["group"]) for r in saved["rows"]} == {
        (policy, group) for policy in ("dpo", "maxmin_dpo") for group in ("majority", "minority")
    }
    for row in saved["rows"]:
        assert 0 <= row["low"] <= row["win_rate"] <= row["high"] <= 1 and row["prompts"] == saved["prompts"]
    stamp = (out / "dpo" / "report.json").stat().st_mtime_ns
    assert module.main(["--tiny", "--output", str(out)]) == results  # resumed: nothing retrained
    assert (out / "dpo" / "report.json").stat().st_mtime_ns == stamp
