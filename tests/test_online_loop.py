"""``rewardlab online`` on tiny models: rounds end to end, resume after a kill, the judge's calls, bad configs."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.evaluate.judge import JudgeScorer
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel
from rewardlab.online import OnlineConfig, load_online_config, run_online
from rewardlab.online import rounds as rounds_module
from rewardlab.online.evaluation import length_controlled_win_rate
from rewardlab.online.judges import Judgement, PairwiseJudge, win_rate_scores
from rewardlab.online.pairs import best_worst_pairs, temporal_pairs
from rewardlab.policy.online_losses import ranking_consistency
from rewardlab.policy.registry import get_policy_loss, policy_loss_names
from rewardlab.policy.trainer import train_policy
from rewardlab.runs.config import ConfigError
from rewardlab.runs.config_docs import undocumented_keys
from rewardlab.runs.folder import RunExists

TOPICS = ["bread", "the sea", "France", "rain", "cats", "music", "tea", "stars", "trees", "rivers", "snow", "bikes"]


@pytest.fixture(scope="module")
def setup(tiny_decoder_dir, tiny_encoder_dir, tmp_path_factory):
    """A prompt file, a judge reward model and a held-out evaluator (two differently seeded heads)."""
    root = tmp_path_factory.mktemp("online")
    rows = [
        {"prompt": f"Tell me about {t} ({i}).", "chosen": f"Sure, {t}.", "rejected": "No."}
        for i, t in enumerate(TOPICS * 2)
    ]
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for name, seed in (("judge", 1), ("evaluator", 2)):
        torch.manual_seed(seed)
        RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64).save_pretrained(root / name)
    (root / "online.yaml").write_text(
        f"policy: {tiny_decoder_dir}\n"
        "rounds: 2\nprogress: false\nnum_threads: 1\n"
        f"data:\n  path: {root / 'pairs.jsonl'}\n  train_prompts: 4\n"
        "generate:\n  k: 3\n  max_new_tokens: 6\n"
        f"judge:\n  kind: rm\n  model: {root / 'judge'}\n"
        "train:\n  steps: 3\n  batch_pairs: 2\n  lr: 0.003\n  save_every: 1\n  loss_args: {beta: 0.5}\n"
        f"eval:\n  evaluator: {root / 'evaluator'}\n  prompts: 3\n  max_new_tokens: 6\n  kl_prompts: 2\n"
        "  kl_samples: 2\n  temperature: 1.0\n",
        encoding="utf-8",
    )
    return root


def perturbed_copy(decoder_dir, folder, seed):
    """The tiny decoder with seeded noise on every weight: a reference the starting policy differs from."""
    model = AutoModelForCausalLM.from_pretrained(decoder_dir)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(decoder_dir).save_pretrained(folder)
    return folder


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_two_rounds_end_to_end_through_the_cli(setup, tiny_decoder_dir, tmp_path):
    out = tmp_path / "run"
    args = ["online", str(setup / "online.yaml"), "--output", str(out), "generate.batch_rows=null"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "round 2:" in result.output and "win rate" in result.output
    for n in (1, 2):
        folder = out / f"round-{n}"
        for name in ("generations.jsonl", "judgements.jsonl", "pairs.jsonl", "metrics.jsonl", "evaluation.json"):
            assert (folder / name).is_file(), (n, name)
        assert (folder / "policy" / "model.safetensors").is_file()
        generations = read_jsonl(folder / "generations.jsonl")
        assert len(generations) == 4 and all(len(g["replies"]) == 3 for g in generations)
        judged = read_jsonl(folder / "judgements.jsonl")
        pairs = read_jsonl(folder / "pairs.jsonl")
        for pair in pairs:  # each pair is its prompt's best reply over its worst, with σ(gap) as strength
            g = int(pair["id"].split("/")[1].removeprefix("prompt-"))
            scores, replies = judged[g]["scores"], generations[g]["replies"]
            assert pair["chosen"] == replies[scores.index(max(scores))]
            assert pair["rejected"] == replies[scores.index(min(scores))]
            assert pair["strength"] == pytest.approx(1 / (1 + math.exp(min(scores) - max(scores))))
        assert [m["step"] for m in read_jsonl(folder / "metrics.jsonl")] == [1, 2, 3]
    # round 2 starts from round 1's policy: its replies differ from round 1's (new seed, new weights)
    assert read_jsonl(out / "round-1" / "generations.jsonl") != read_jsonl(out / "round-2" / "generations.jsonl")
    report = json.loads((out / "report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [0, 1, 2]
    start, last = report["rounds"][0], report["rounds"][2]
    assert start["win_rate"] is None and start["kl"] is None
    win = last["win_rate"]
    assert win["n"] == 3 and win["low"] <= win["rate"] <= win["high"]
    assert 0 < last["length_controlled_win_rate"] < 1 and math.isfinite(last["kl"]["kl"])
    evaluator = RewardModel.from_pretrained(setup / "evaluator")
    evaluation = json.loads((out / "round-2" / "evaluation.json").read_text())
    start_eval = json.loads((out / "round-0" / "evaluation.json").read_text())["evaluation"]
    assert evaluation["mean_reward"] == pytest.approx(sum(evaluation["rewards"]) / 3)
    assert all(evaluation["replies"]) and evaluation["mean_reply_tokens"] > 0
    weights = [load_file(folder / "model.safetensors") for folder in (tiny_decoder_dir, out / "round-1" / "policy")]
    weights.append(load_file(out / "round-2" / "policy" / "model.safetensors"))
    for before, after in itertools.pairwise(weights):  # each round's update moved the policy it started from
        assert any(not torch.equal(before[k], after[k]) for k in after)
    wins = sum(
        1.0 if a > b else 0.5 if a == b else 0.0
        for a, b in zip(evaluation["rewards"], start_eval["rewards"], strict=True)
    )
    assert win["rate"] == pytest.approx(wins / 3)
    assert evaluator.info.head == "reward"
    assert "| 2 |" in (out / "report.md").read_text()


def test_a_round_killed_mid_way_resumes_to_the_same_state(setup, tmp_path, monkeypatch):
    config = lambda out: load_online_config(setup / "online.yaml", [f"output_dir={out}"])  # noqa: E731
    whole = tmp_path / "whole"
    run_online(config(whole))

    class Killed(Exception):
        pass

    calls = {"n": 0}

    def killed_in_round_two(*args, log=None, **kwargs):
        calls["n"] += 1

        def log_then_die(step, values):
            log(step, values)
            if calls["n"] == 2 and step == 2:  # round 2, after its second step's checkpoint
                raise Killed

        return train_policy(*args, log=log_then_die, **kwargs)

    killed = tmp_path / "killed"
    monkeypatch.setattr(rounds_module, "train_policy", killed_in_round_two)
    with pytest.raises(Killed):
        run_online(config(killed))
    assert not (killed / "round-2" / "done.json").exists() and (killed / "round-2" / "checkpoint").is_dir()
    monkeypatch.setattr(rounds_module, "train_policy", train_policy)
    with pytest.raises(RunExists, match="already holds a run"):
        run_online(config(killed))
    run_online(config(killed), resume=True)
    for name in ("generations.jsonl", "judgements.jsonl", "pairs.jsonl"):
        assert (killed / "round-2" / name).read_text() == (whole / "round-2" / name).read_text()
    assert [m["step"] for m in read_jsonl(killed / "round-2" / "metrics.jsonl")] == [1, 2, 3]
    a = load_file(whole / "round-2" / "policy" / "model.safetensors")
    b = load_file(killed / "round-2" / "policy" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    same = lambda path: json.loads(path.read_text())["rounds"]  # noqa: E731
    assert [r["mean_reward"] for r in same(killed / "report.json")] == [
        r["mean_reward"] for r in same(whole / "report.json")
    ]


def test_self_rewarding_judge_is_called_on_exactly_the_pairs_it_claims(setup, tmp_path, monkeypatch):
    """judge.kind=judge: the policy judges its own replies; every order it was shown is recorded."""
    seen: list[tuple[str, str, str]] = []
    original = JudgeScorer.order_logodds

    def recording(self, items):
        seen.extend((str(p), a, b) for p, a, b in items)
        return original(self, items)

    monkeypatch.setattr(JudgeScorer, "order_logodds", recording)
    out = tmp_path / "self"
    config = load_online_config(setup / "online.yaml", [f"output_dir={out}", "rounds=1", "judge.kind=judge"])
    run_online(config)
    generations = read_jsonl(out / "round-1" / "generations.jsonl")
    judged = read_jsonl(out / "round-1" / "judgements.jsonl")
    claimed = []
    for g, j in zip(generations, judged, strict=True):
        assert sorted((i, k) for i, k, _ in j["comparisons"]) == [(0, 1), (0, 2), (1, 2)]
        for i, k, _ in j["comparisons"]:
            a, b = g["replies"][i], g["replies"][k]
            claimed += [(str(g["prompt"]), a, b), (str(g["prompt"]), b, a)]  # both orders: position bias averaged
        assert j["scores"] == pytest.approx(win_rate_scores(3, [tuple(c) for c in j["comparisons"]]))
    assert sorted(seen) == sorted(claimed)


def test_bad_config_names_every_key_at_once(setup, tmp_path):
    with pytest.raises(ConfigError) as info:
        load_online_config(
            setup / "online.yaml",
            ["judge.kind=oracle", "generate.k=1", "train.loss=nope", "pairs.strategy=random", "rounds=0"],
        )
    message = str(info.value)
    for key in ("judge.kind", "generate.k", "train.loss", "pairs.strategy", "rounds"):
        assert key in message, key
    result = CliRunner().invoke(app, ["online", str(setup / "online.yaml"), "judge.model=null"])
    assert result.exit_code == 2 and "judge.model" in result.output and "Traceback" not in result.output
    gpm = CliRunner().invoke(app, ["online", str(setup / "online.yaml"), "judge.kind=gpm", f"output_dir={tmp_path}/g"])
    assert gpm.exit_code == 2 and "judge.model" in gpm.output and "scores single replies" in gpm.output
    assert not (tmp_path / "g").exists()  # refused before anything was written
    for args, expected in (
        ([f"eval.evaluator={tmp_path / 'none'}"], "eval.evaluator: "),
        (["judge.kind=self"], "judge.reference: judge.kind=self needs"),
        (["judge.kind=self", f"judge.reference={tmp_path / 'none'}"], "judge.reference: "),
        (["pairs.consistency=true"], "pairs.consistency needs judge.kind=self"),
    ):
        result = CliRunner().invoke(app, ["online", str(setup / "online.yaml"), *args, f"output_dir={tmp_path}/h"])
        assert result.exit_code == 2 and expected in result.output, result.output
        assert not (tmp_path / "h").exists()


def test_every_config_key_is_documented_and_print_config_reads_back(setup):
    assert undocumented_keys(OnlineConfig()) == []
    result = CliRunner().invoke(app, ["online", str(setup / "online.yaml"), "rounds=5", "--print-config"])
    assert result.exit_code == 0, result.output
    assert "# Replies sampled per prompt per round" in result.output
    printed = yaml.safe_load(result.output)
    assert printed == dataclasses.asdict(load_online_config(setup / "online.yaml", ["rounds=5"]))


def test_pairs_best_over_worst_and_temporal_anchor():
    """Scores [0.1, 0.9, 0.5]: best 1, worst 0, gap 0.8, strength σ(0.8) = 0.68997; a tie gives no pair."""
    judged = [Judgement([0.1, 0.9, 0.5]), Judgement([0.3, 0.3, 0.3])]
    replies = [["a", "b", "c"], ["d", "e", "f"]]
    pairs = best_worst_pairs(["x", "y"], replies, judged, 0.0, 1)
    assert [(p.chosen, p.rejected) for p in pairs] == [("b", "a")]
    assert pairs[0].strength == pytest.approx(0.6899745)
    assert best_worst_pairs(["x", "y"], replies, judged, 0.8, 1) == []  # gap 0.8 is not > min_gap 0.8
    # temporal: this round's best over round 1's worst: 2.0 vs the anchor's 0.1 → σ(1.9) = 1/(1 + 0.14957) = 0.86989;
    # prompt y's best now (0.2) is below its anchor's worst (0.3): gap −0.1, no pair
    now = [Judgement([2.0, 1.0, 0.0]), Judgement([0.0, 0.2, 0.1])]
    pairs = temporal_pairs(["x", "y"], [["g", "h", "i"], ["j", "k", "l"]], now, replies, judged, 0.0, 2)
    assert [(p.chosen, p.rejected) for p in pairs] == [("g", "a")]
    assert pairs[0].strength == pytest.approx(0.86989, abs=1e-5)


def test_pairwise_scores_are_win_rates_and_the_judges_logodds_give_the_strength():
    """ℓ(0,1) = 0, ℓ(0,2) = ln 3, ℓ(1,2) = −ln 3: σ = 1/2, 3/4, 1/4.
    Reply 0: (1/2 + 3/4)/2 = 0.625; reply 1: (1/2 + 1/4)/2 = 0.375; reply 2: (1/4 + 3/4)/2 = 0.5."""
    comparisons = [(0, 1, 0.0), (0, 2, math.log(3)), (1, 2, -math.log(3))]
    assert win_rate_scores(3, comparisons) == pytest.approx([0.625, 0.375, 0.5])
    judged = Judgement(win_rate_scores(3, comparisons), comparisons)
    (pair,) = best_worst_pairs(["x"], [["a", "b", "c"]], [judged], 0.0, 1)
    assert (pair.chosen, pair.rejected) == ("a", "b") and pair.strength == pytest.approx(0.5)  # σ(ℓ(0,1)) = σ(0)
    # strength from the scores (DNO's win-rate target): σ(0.625 − 0.375) = σ(0.25) = 0.5621765
    (pair,) = best_worst_pairs(["x"], [["a", "b", "c"]], [judged], 0.0, 1, strength_from="scores")
    assert pair.strength == pytest.approx(0.5621765) and (pair.chosen_rating, pair.rejected_rating) == (0.625, 0.375)


def test_length_controlled_win_rate_removes_a_win_explained_by_length():
    """Wins independent of length keep their rate; wins that only the longer reply gets go to 1/2."""
    rng = torch.Generator().manual_seed(0)
    difference = (torch.rand(400, generator=rng) * 40 - 20).tolist()
    wins = (torch.rand(400, generator=rng) < 0.7).float().tolist()
    assert length_controlled_win_rate(wins, difference, 10.0) == pytest.approx(0.7, abs=0.06)
    by_length = [1.0 if d > 0 else 0.0 for d in difference]
    raw = sum(by_length) / len(by_length)
    assert length_controlled_win_rate(by_length, difference, 10.0) == pytest.approx(0.5, abs=0.05)
    # symmetric lengths: the raw rate is about 1/2 too, so shift them all longer: raw ~0.9, controlled ~1/2
    shifted = [d + 16 for d in difference]
    longer = [1.0 if d > 0 else 0.0 for d in shifted]
    assert sum(longer) / len(longer) > 0.85 > raw
    assert length_controlled_win_rate(longer, shifted, 10.0) == pytest.approx(0.5, abs=0.1)


def test_gpm_judge_compares_every_two_replies_with_the_models_own_logodds(tiny_encoder_dir):
    """A tiny GPM (preference head): each comparison is its preference_logits, scores are the win rates."""
    torch.manual_seed(3)
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64, outputs=4, head="preference")
    model.info.objective, model.info.objective_args = "gpm", {"dim": 2, "beta": 1.0}
    replies = [["Sure, bread.", "No.", "Bread is baked."], ["Tea is hot.", "Maybe.", "I like tea."]]
    (first, second) = PairwiseJudge(model).judge(["Bread?", "Tea?"], replies)
    for prompt, group, judged in (("Bread?", replies[0], first), ("Tea?", replies[1], second)):
        assert [(i, j) for i, j, _ in judged.comparisons] == [(0, 1), (0, 2), (1, 2)]
        for i, j, value in judged.comparisons:
            a, b = model.encode([prompt], [group[i]]).ids, model.encode([prompt], [group[j]]).ids
            assert value == pytest.approx(model.preference_logits(a, b, precision="fp32")[0], abs=1e-5)
        assert judged.scores == pytest.approx(win_rate_scores(3, judged.comparisons))


def test_self_rewarding_implicit_reward_with_cream_consistency(setup, tiny_decoder_dir, tmp_path):
    """judge.kind=self with a reference the start differs from: round 1 scores are β·(log π − log π_ref);
    from round 2 each pair's consistency is (τ + 1)/2 against the previous round's policy, and cream trains on it."""
    reference = perturbed_copy(tiny_decoder_dir, tmp_path / "reference", seed=5)
    out = tmp_path / "cream"
    overrides = [f"output_dir={out}", "judge.kind=self", f"judge.reference={reference}", "judge.beta=0.5"]
    overrides += ["pairs.consistency=true", "train.loss=cream"]
    run_online(load_online_config(setup / "online.yaml", overrides))

    start = CausalLM.from_pretrained(tiny_decoder_dir, max_prompt_tokens=512, max_reply_tokens=512)
    ref = CausalLM.from_pretrained(reference, max_prompt_tokens=512, max_reply_tokens=512)
    generations = read_jsonl(out / "round-1" / "generations.jsonl")
    judged = read_jsonl(out / "round-1" / "judgements.jsonl")
    for g, j in zip(generations, judged, strict=True):
        prompts = [g["prompt"]] * len(g["replies"])
        pi, _ = start.reply_logps(prompts, g["replies"])
        pr, _ = ref.reply_logps(prompts, g["replies"])
        assert j["scores"] == pytest.approx([0.5 * (a - b) for a, b in zip(pi, pr, strict=True)], abs=1e-4)
    assert all(p["consistency"] is None for p in read_jsonl(out / "round-1" / "pairs.jsonl"))
    # round 2: the previous iteration is the start policy, whose implicit rewards are round 1's formula
    generations = read_jsonl(out / "round-2" / "generations.jsonl")
    judged = read_jsonl(out / "round-2" / "judgements.jsonl")
    pairs = read_jsonl(out / "round-2" / "pairs.jsonl")
    assert pairs
    for pair in pairs:
        g = int(pair["id"].split("/")[1].removeprefix("prompt-"))
        prompts = [generations[g]["prompt"]] * 3
        pi, _ = start.reply_logps(prompts, generations[g]["replies"])
        pr, _ = ref.reply_logps(prompts, generations[g]["replies"])
        before = torch.tensor([0.5 * (a - b) for a, b in zip(pi, pr, strict=True)])
        expected = ranking_consistency(torch.tensor(judged[g]["scores"]), before)
        assert pair["consistency"] == pytest.approx(expected) and 0 <= expected <= 1
    report = json.loads((out / "report.json").read_text())
    assert report["loss"] == "cream" and all(math.isfinite(r["last_loss"]) for r in report["rounds"][1:])


def test_gpm_oracle_dno_with_lora_against_the_start_then_more_rounds_and_overwrite(setup, tiny_encoder_dir, tmp_path):
    """DNO's setting: a GPM oracle ranks by win rate, each pair's strength is σ(ℓ(best, worst)) as judged,
    the update is the dno loss with LoRA against the starting policy; a finished run grows by a round on
    --resume without redoing round 1, and --overwrite replaces it."""
    torch.manual_seed(3)
    gpm = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64, outputs=4, head="preference")
    gpm.info.objective, gpm.info.objective_args = "gpm", {"dim": 2, "beta": 1.0}
    gpm.save_pretrained(tmp_path / "gpm")
    out = tmp_path / "dno"
    overrides = [f"output_dir={out}", "rounds=1", "judge.kind=gpm", f"judge.model={tmp_path / 'gpm'}"]
    overrides += ["train.loss=dno", "lora.enabled=true", "lora.r=4", "train.lr=0.01", "reference=start"]
    run_online(load_online_config(setup / "online.yaml", overrides))
    judged = read_jsonl(out / "round-1" / "judgements.jsonl")
    pairs = read_jsonl(out / "round-1" / "pairs.jsonl")
    assert pairs
    for pair in pairs:
        g = int(pair["id"].split("/")[1].removeprefix("prompt-"))
        best, worst = (int(x) for x in pair["id"].split("/")[2].split("-over-"))
        assert judged[g]["scores"][best] == max(judged[g]["scores"])
        logodds = Judgement(judged[g]["scores"], [tuple(c) for c in judged[g]["comparisons"]]).logodds(best, worst)
        assert pair["strength"] == pytest.approx(1 / (1 + math.exp(-logodds)))
    assert [m["step"] for m in read_jsonl(out / "round-1" / "metrics.jsonl")] == [1, 2, 3]
    round_one = (out / "round-1" / "policy" / "model.safetensors").stat().st_mtime_ns
    report = run_online(
        load_online_config(setup / "online.yaml", [*overrides[:1], "rounds=2", *overrides[2:]]), resume=True
    )
    assert [r["round"] for r in report.report["rounds"]] == [0, 1, 2] and report.report["loss"] == "dno"
    assert (out / "round-1" / "policy" / "model.safetensors").stat().st_mtime_ns == round_one  # not redone
    with pytest.raises(RunExists, match=r"--resume needs the same ones: train\.lr"):
        run_online(load_online_config(setup / "online.yaml", [*overrides, "train.lr=0.02"]), resume=True)
    run_online(load_online_config(setup / "online.yaml", overrides), overwrite=True)
    assert not (out / "round-2").exists() and (out / "round-1" / "done.json").is_file()


ONLINE_LOSSES = sorted(
    name for name in policy_loss_names() if get_policy_loss(name).fn.__module__ == "rewardlab.policy.online_losses"
)


@pytest.mark.parametrize("loss", ONLINE_LOSSES)
def test_every_online_update_rule_runs_a_round_by_name(setup, tmp_path, loss):
    """The loop passes the loss name through; each rule finds the fields it reads on the loop's pairs
    (strength, the two scores as ratings) and takes finite steps."""
    out = tmp_path / loss
    run_online(
        load_online_config(
            setup / "online.yaml", [f"output_dir={out}", "rounds=1", f"train.loss={loss}", "train.loss_args={}"]
        )
    )
    steps = read_jsonl(out / "round-1" / "metrics.jsonl")
    assert [s["step"] for s in steps] == [1, 2, 3] and all(math.isfinite(s["loss"]) for s in steps)


def test_the_online_losses_are_there():
    assert {"dno", "selm", "vpo", "p3o", "brain", "cream"} <= set(ONLINE_LOSSES)


def test_scir_keeps_only_the_pairs_the_second_internal_judge_ranks_alike(setup, tiny_decoder_dir, tmp_path):
    """pairs.agree_with=self beside an rm judge: every kept pair has β·(log π − log π_ref) of its chosen reply
    above its rejected one's under the round's policy, and every best-vs-worst pair left out does not."""
    reference = perturbed_copy(tiny_decoder_dir, tmp_path / "reference", seed=7)
    out = tmp_path / "scir"
    overrides = [f"output_dir={out}", "rounds=1", "pairs.agree_with=self", f"judge.reference={reference}"]
    overrides += ["generate.k=4", "data.train_prompts=8"]
    run_online(load_online_config(setup / "online.yaml", overrides))
    start = CausalLM.from_pretrained(tiny_decoder_dir, max_prompt_tokens=512, max_reply_tokens=512)
    ref = CausalLM.from_pretrained(reference, max_prompt_tokens=512, max_reply_tokens=512)
    generations = read_jsonl(out / "round-1" / "generations.jsonl")
    judged = read_jsonl(out / "round-1" / "judgements.jsonl")
    kept = {p["id"] for p in read_jsonl(out / "round-1" / "pairs.jsonl")}
    agree = disagree = 0
    for g, (gen, j) in enumerate(zip(generations, judged, strict=True)):
        best = max(range(4), key=lambda i: (j["scores"][i], -i))
        worst = min(range(4), key=lambda i: (j["scores"][i], i))
        chosen, rejected = gen["replies"][best], gen["replies"][worst]
        if chosen == rejected or j["scores"][best] == j["scores"][worst]:
            continue
        pi, _ = start.reply_logps([gen["prompt"]] * 2, [chosen, rejected])
        pr, _ = ref.reply_logps([gen["prompt"]] * 2, [chosen, rejected])
        implicit_agrees = (pi[0] - pr[0]) > (pi[1] - pr[1])
        assert (f"round-1/prompt-{g}/{best}-over-{worst}" in kept) == implicit_agrees
        agree += implicit_agrees
        disagree += not implicit_agrees
    assert agree >= 1 and disagree >= 1  # both sides of the filter exercised (6 and 2 with these seeds)
