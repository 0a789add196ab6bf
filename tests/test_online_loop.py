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
from rewardlab.models.ensemble import RawEnsembleWarning, RewardEnsemble
from rewardlab.models.reward_model import RewardModel
from rewardlab.online import OnlineConfig, load_online_config, run_online
from rewardlab.online import rounds as rounds_module
from rewardlab.online.evaluation import eval_replies, length_controlled_win_rate
from rewardlab.online.judges import Judgement, PairwiseJudge, win_rate_scores
from rewardlab.online.pairs import best_random_pairs, best_worst_pairs, temporal_pairs
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


def perturbed_copy(decoder_dir, folder, seed, scale=0.05):
    """The tiny decoder with seeded noise on every weight: a reference the starting policy differs from."""
    model = AutoModelForCausalLM.from_pretrained(decoder_dir)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
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
        ([f"judge.members=[{tmp_path / 'none'}]"], "judge.members: "),
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
    (strength, the two scores as ratings, the policy-judge's probability) and takes finite steps."""
    out = tmp_path / loss
    judge = ["judge.kind=judge"] if "judge_probabilities" in get_policy_loss(loss).inputs else []
    run_online(
        load_online_config(
            setup / "online.yaml",
            [f"output_dir={out}", "rounds=1", f"train.loss={loss}", "train.loss_args={}", *judge],
        )
    )
    steps = read_jsonl(out / "round-1" / "metrics.jsonl")
    assert [s["step"] for s in steps] == [1, 2, 3] and all(math.isfinite(s["loss"]) for s in steps)


def test_the_online_losses_are_there():
    assert {"dno", "selm", "vpo", "p3o", "brain", "cream", "scir"} <= set(ONLINE_LOSSES)


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


def test_pf_ppo_best_random_and_the_ensemble_reliability_filter():
    """Scores [0.9, 0.1, 0.5, 0.3]: best 0; best_random draws its rejected among 1, 2, 3 with a generator
    seeded by (seed, round, prompt), the same on every call. Uncertainties [0.5, 0.0, 0.2, 0.9] with
    max_uncertainty 0.4 leave replies 1 and 2: best 2 (0.5) over worst 1 (0.1), σ(0.4) = 0.5986877."""
    judged = [Judgement([0.9, 0.1, 0.5, 0.3], uncertainties=[0.5, 0.0, 0.2, 0.9])]
    replies = [["a", "b", "c", "d"]]
    drawn = {best_random_pairs(["x"], replies, judged, 0.0, 1, seed)[0].rejected for seed in range(40)}
    assert drawn == {"b", "c", "d"}  # uniform over the others: each seen in 40 draws
    first = best_random_pairs(["x"], replies, judged, 0.0, 3, seed=7)
    assert first == best_random_pairs(["x"], replies, judged, 0.0, 3, seed=7) and first[0].chosen == "a"
    (pair,) = best_worst_pairs(["x"], replies, judged, 0.0, 1, max_uncertainty=0.4)
    assert (pair.chosen, pair.rejected, pair.id) == ("c", "b", "round-1/prompt-0/2-over-1")
    assert pair.strength == pytest.approx(0.5986877)
    (pair,) = best_random_pairs(["x"], replies, judged, 0.0, 1, seed=0, max_uncertainty=0.4)
    assert (pair.chosen, pair.rejected) == ("c", "b")  # one candidate left to draw
    assert best_worst_pairs(["x"], replies, judged, 0.0, 1, max_uncertainty=0.1) == []  # only reply 1 is trusted
    with pytest.raises(ValueError, match="needs an ensemble judge"):
        best_worst_pairs(["x"], replies, [Judgement([0.9, 0.1, 0.5, 0.3])], 0.0, 1, max_uncertainty=0.4)
    # a pairwise judge's σ(ℓ(best, worst)) is the pair's judge_probability when the policy judged (SCIR)
    comparisons = [(0, 1, math.log(3)), (0, 2, 0.0), (1, 2, 0.0)]
    judged = [Judgement(win_rate_scores(3, comparisons), comparisons)]
    (pair,) = best_worst_pairs(["x"], [["a", "b", "c"]], judged, 0.0, 1, judge_probability=True)
    assert (pair.chosen, pair.rejected) == ("a", "b") and pair.judge_probability == pytest.approx(0.75)
    assert best_worst_pairs(["x"], [["a", "b", "c"]], judged, 0.0, 1)[0].judge_probability is None


def test_pf_ppo_filter_in_the_loop_keeps_only_replies_the_ensemble_agrees_on(setup, tiny_encoder_dir, tmp_path):
    """judge.members: the round's scores are the ensemble's uwo reward and its variance is written beside them;
    with max_uncertainty at the round's median variance, every pair's replies are at most it, and a prompt
    whose best reply was too uncertain gets a different pair than without the filter."""
    torch.manual_seed(4)
    RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64).save_pretrained(tmp_path / "member")
    base = ["rounds=1", f"judge.members=[{tmp_path / 'member'}]", "judge.aggregation=uwo"]
    base += ["judge.uncertainty_weight=0.5", "pairs.strategy=best_random", "data.train_prompts=8", "generate.k=4"]
    with pytest.warns(RawEnsembleWarning):  # tiny members saved without reward statistics: aggregated raw
        run_online(load_online_config(setup / "online.yaml", [f"output_dir={tmp_path / 'all'}", *base]))
    generations = read_jsonl(tmp_path / "all" / "round-1" / "generations.jsonl")
    judged = read_jsonl(tmp_path / "all" / "round-1" / "judgements.jsonl")
    with pytest.warns(RawEnsembleWarning):
        ensemble = RewardEnsemble.from_pretrained(
            [setup / "judge", tmp_path / "member"], aggregation="uwo", uncertainty_weight=0.5
        )
    for g, j in zip(generations, judged, strict=True):
        scores, variances = ensemble.score_with_uncertainty([g["prompt"]] * 4, g["replies"], precision="fp32")
        assert j["scores"] == pytest.approx(scores, abs=1e-5) and j["uncertainties"] == pytest.approx(variances)
    threshold = sorted(u for j in judged for u in j["uncertainties"])[16]
    with pytest.warns(RawEnsembleWarning):
        run_online(
            load_online_config(
                setup / "online.yaml", [f"output_dir={tmp_path / 'kept'}", *base, f"pairs.max_uncertainty={threshold}"]
            )
        )
    unfiltered = {p["id"].split("/")[1]: p["id"] for p in read_jsonl(tmp_path / "all" / "round-1" / "pairs.jsonl")}
    kept = read_jsonl(tmp_path / "kept" / "round-1" / "pairs.jsonl")
    assert kept and read_jsonl(tmp_path / "kept" / "round-1" / "generations.jsonl") == generations
    for pair in kept:
        g = int(pair["id"].split("/")[1].removeprefix("prompt-"))
        best, other = (int(x) for x in pair["id"].split("/")[2].split("-over-"))
        assert max(judged[g]["uncertainties"][best], judged[g]["uncertainties"][other]) <= threshold
        trusted = [i for i in range(4) if judged[g]["uncertainties"][i] <= threshold]
        assert judged[g]["scores"][best] == max(judged[g]["scores"][i] for i in trusted)
    assert {p["id"] for p in kept} != set(unfiltered.values())  # the filter changed what the update learns from


def test_selm_reference_reply_joins_the_candidates(setup, tiny_decoder_dir, tmp_path):
    """pairs.reference_reply: each prompt's last reply is the reference policy's greedy reply (round 1: the
    start; round 2 with reference=previous: round 1's policy), ranked with the K samples, so it is chosen or
    rejected where the judge rates it best or worst. (The tiny decoder's own greedy replies are blank lines:
    a noisier copy of it, whose greedy replies are text, is the policy.)"""
    policy = perturbed_copy(tiny_decoder_dir, tmp_path / "policy", seed=5, scale=0.2)
    out = tmp_path / "selm"
    overrides = [f"output_dir={out}", f"policy={policy}", "pairs.reference_reply=true"]
    run_online(load_online_config(setup / "online.yaml", overrides))
    in_pairs = 0
    for n, model in ((1, policy), (2, out / "round-1" / "policy")):
        lm = CausalLM.from_pretrained(model, max_prompt_tokens=512, max_reply_tokens=512)
        generations = read_jsonl(out / f"round-{n}" / "generations.jsonl")
        greedy = eval_replies(lm, [g["prompt"] for g in generations], 6, 0.0, n - 1)
        assert [g["replies"][-1] for g in generations] == greedy and all(r.strip() for r in greedy)
        assert all(len(g["replies"]) == 4 and g["reference_index"] == 3 for g in generations)
        judged = read_jsonl(out / f"round-{n}" / "judgements.jsonl")
        pairs = read_jsonl(out / f"round-{n}" / "pairs.jsonl")
        assert len(pairs) == 4
        for pair in pairs:
            g = int(pair["id"].split("/")[1].removeprefix("prompt-"))
            scores = judged[g]["scores"]
            best, worst = (int(x) for x in pair["id"].split("/")[2].split("-over-"))
            assert (scores[best], scores[worst]) == (max(scores), min(scores))
            in_pairs += 3 in (best, worst)
    assert in_pairs >= 1  # the reference's reply was chosen or rejected (4 of 8 pairs with these seeds)
    # a blank reply (a greedy reply can be one) is no candidate: the prompt keeps a pair among the others
    judged = [Judgement([0.2, 0.1, 0.3, 0.9]), Judgement([0.2, 0.5, 0.3, -1.0])]
    replies = [["a", "b", "c", " "], ["d", "e", "f", "greedy y"]]
    pairs = best_worst_pairs(["x", "y"], replies, judged, 0.0, 1)
    assert [(p.chosen, p.rejected, p.id.split("/")[2]) for p in pairs] == [
        ("c", "b", "2-over-1"),
        ("e", "greedy y", "1-over-3"),
    ]


def test_scir_consistency_penalty_reads_the_policy_judges_probability(setup, tmp_path, monkeypatch):
    """pairs.agree_with=judge beside an rm judge, train.loss=scir: every kept pair carries σ of the policy-judge's
    log-odds of chosen over rejected (above 1/2: it agreed), as JudgeScorer gives it, and the update reads it."""
    out = tmp_path / "scir"
    overrides = [f"output_dir={out}", "rounds=1", "pairs.agree_with=judge", "train.loss=scir"]
    run_online(load_online_config(setup / "online.yaml", [*overrides, "data.train_prompts=8", "generate.k=4"]))
    pairs = read_jsonl(out / "round-1" / "pairs.jsonl")
    assert pairs
    lm = CausalLM.from_pretrained(load_online_config(setup / "online.yaml").policy, max_prompt_tokens=512)
    chosen, rejected = [p["chosen"] for p in pairs], [p["rejected"] for p in pairs]
    logodds = JudgeScorer(lm).compare([p["prompt"] for p in pairs], chosen, rejected)
    for pair, value in zip(pairs, logodds, strict=True):
        assert pair["judge_probability"] == pytest.approx(1 / (1 + math.exp(-value)), abs=1e-5) and value > 0
    steps = read_jsonl(out / "round-1" / "metrics.jsonl")
    assert all(s["judged"] == 1.0 and math.isfinite(s["inconsistency"]) for s in steps)
    with pytest.raises(ConfigError, match=r"set judge\.kind=judge or pairs\.agree_with=judge"):
        load_online_config(setup / "online.yaml", ["train.loss=scir"])
    with pytest.raises(ConfigError, match=r"pairs\.max_uncertainty needs judge\.members"):
        load_online_config(setup / "online.yaml", ["pairs.max_uncertainty=0.1"])
