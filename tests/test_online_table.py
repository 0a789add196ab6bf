"""Offline DPO as a round (``pairs.strategy=recorded``), prompts shared between sources, and
``benchmarks/online_table.py`` end to end on tiny models (1 round, 2 methods, then continued)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from rewardlab.data.records import PreferencePair
from rewardlab.data.source_names import tag_source
from rewardlab.evaluate.metrics import wilson_interval
from rewardlab.models.reward_model import RewardModel
from rewardlab.online import load_online_config, run_online
from rewardlab.online.prompts import balanced_prompts, recorded_pairs
from rewardlab.runs.config import ConfigError
from rewardlab.runs.data import load_split

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "online_table.py"


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def setup(tiny_decoder_dir, tiny_encoder_dir, tmp_path_factory):
    """Two sources (a: 8 prompts with two recorded pairs each; b: 8 with one), a judge and a held-out evaluator."""
    root = tmp_path_factory.mktemp("table")
    a = [
        {"prompt": f"Tell me about {t}.", "chosen": f"Sure, {t} {j}.", "rejected": f"No {j}."}
        for t in ("bread", "the sea", "France", "rain", "cats", "music", "tea", "stars")
        for j in range(2)
    ]
    b = [
        {"prompt": f"How do I {t}?", "chosen": f"You {t} slowly.", "rejected": "Never."}
        for t in ("swim", "cook", "read", "sing", "draw", "run", "sew", "ski")
    ]
    for name, rows in (("a", a), ("b", b)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for name, seed in (("judge", 1), ("evaluator", 2)):
        torch.manual_seed(seed)
        RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64).save_pretrained(root / name)
    (root / "online.yaml").write_text(
        f"policy: {tiny_decoder_dir}\nrounds: 1\nprogress: false\nnum_threads: 1\n"
        f"data:\n  sources:\n    - {{data: {root / 'a.jsonl'}, name: a}}\n    - {{data: {root / 'b.jsonl'}, name: b}}\n"
        "  train_prompts: 4\n  test_fraction: 0.3\n"
        "generate:\n  k: 3\n  max_new_tokens: 6\n"
        f"judge:\n  kind: rm\n  model: {root / 'judge'}\n"
        "train:\n  steps: 2\n  batch_pairs: 2\n  lr: 0.003\n  loss_args: {beta: 0.5}\n"
        f"eval:\n  evaluator: {root / 'evaluator'}\n  prompts: 4\n  max_new_tokens: 6\n  kl_prompts: 2\n"
        "  kl_samples: 2\n",
        encoding="utf-8",
    )
    return root


def test_prompts_are_taken_in_turn_from_each_source():
    """a: x, x (a second pair of x), y, z; b: u, v → in turn: x, u, y, v, z; one source: its first N, in order."""
    pair = lambda prompt, source: tag_source(PreferencePair(prompt, "c", "r"), source)  # noqa: E731
    pairs = [pair("x", "a"), pair("x", "a"), pair("y", "a"), pair("z", "a"), pair("u", "b"), pair("v", "b")]
    assert balanced_prompts(pairs, 4) == ["x", "u", "y", "v"]
    assert balanced_prompts(pairs, 10) == ["x", "u", "y", "v", "z"]
    assert balanced_prompts([PreferencePair(p, "c", "r") for p in "xxyz"], 2) == ["x", "y"]
    tie = PreferencePair("y", "c", "d", tie=True)
    kept = recorded_pairs([*pairs, tie], ["x", "y"], 2)
    assert [(p.prompt, p.id) for p in kept] == [("x", "round-2/recorded-0"), ("x", "round-2/recorded-1"),
                                                 ("y", "round-2/recorded-2")]  # fmt: skip


def test_recorded_pairs_are_offline_dpo_on_the_same_prompts_and_nothing_is_generated(setup, tmp_path):
    """pairs.strategy=recorded: round 1's pairs are exactly the data's training pairs of the 4 training prompts
    (2 from each source; source a's prompts bring both their pairs), with no generation or judge, and the round
    is measured like any other."""
    out = tmp_path / "offline"
    config = load_online_config(setup / "online.yaml", [f"output_dir={out}", "pairs.strategy=recorded"])
    report = run_online(config).report
    folder = out / "round-1"
    assert not any((folder / n).exists() for n in ("generations.jsonl", "judgements.jsonl", "sampling.json"))
    pairs = read_jsonl(folder / "pairs.jsonl")
    prompts = list(dict.fromkeys(p["prompt"] for p in pairs))
    assert len(prompts) == 4 and sum(p.startswith("Tell") for p in prompts) == 2
    source_rows = read_jsonl(setup / "a.jsonl") + read_jsonl(setup / "b.jsonl")
    train = load_split(config.data, say=lambda m: None).splits.train
    expected = [(p.prompt, p.chosen, p.rejected) for p in train if p.prompt in prompts]
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in pairs] == expected
    assert all({"prompt": p, "chosen": c, "rejected": r} in source_rows for p, c, r in expected)
    assert len(pairs) == 2 * 2 + 2  # two prompts of a (two pairs each), two of b (one each)
    assert [m["step"] for m in read_jsonl(folder / "metrics.jsonl")] == [1, 2]
    row = report["rounds"][1]
    assert row["pairs"] == 6 and row["win_rate"]["n"] == 4 and row["generate_tokens_per_s"] is None
    assert "generate" not in row["seconds"] and report["pairs"] == "recorded"
    with pytest.raises(ConfigError, match=r"pairs\.strategy=recorded judges nothing: unset pairs\.reference_reply"):
        load_online_config(setup / "online.yaml", ["pairs.strategy=recorded", "pairs.reference_reply=true"])
    load_online_config(setup / "online.yaml", ["pairs.strategy=recorded", "judge.model=null"])  # no judge needed


def test_the_table_script_runs_two_methods_and_continues(setup, tmp_path):
    spec = importlib.util.spec_from_file_location("online_table", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    work = tmp_path / "work"
    argv = [
        "--judge", str(setup / "judge"), "--evaluator", str(setup / "evaluator"), "--work", str(work),
        "--prompts", "4", "--rounds", "1", "--methods", "offline_dpo,iterative_dpo", "--config",
        str(setup / "online.yaml"), "--set", "train.steps=1",
    ]  # fmt: skip
    result = script.main(argv)
    assert [(r["method"], r["round"]) for r in result["rows"]] == [
        ("offline_dpo", 0), ("offline_dpo", 1), ("iterative_dpo", 0), ("iterative_dpo", 1)
    ]  # fmt: skip
    assert result["errors"] == {}
    for method in ("offline_dpo", "iterative_dpo"):
        assert [m["step"] for m in read_jsonl(work / method / "round-1" / "metrics.jsonl")] == [1]  # --set reached it
    assert (work / "iterative_dpo" / "round-1" / "judgements.jsonl").is_file()
    assert not (work / "offline_dpo" / "round-1" / "judgements.jsonl").exists()
    # the paired comparison, recomputed from the two runs' evaluation files
    ours = json.loads((work / "iterative_dpo" / "round-1" / "evaluation.json").read_text())
    theirs = json.loads((work / "offline_dpo" / "round-1" / "evaluation.json").read_text())
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(ours["rewards"], theirs["rewards"], strict=True)]
    versus = result["versus_offline_dpo"]["iterative_dpo"]
    low, high = wilson_interval(sum(wins), len(wins))
    assert versus["win_rate"] == pytest.approx({"rate": sum(wins) / 4, "low": low, "high": high, "n": 4})
    assert versus["beats"] == (low > 0.5) and 0 < versus["length_controlled_win_rate"] < 1
    markdown = (work / "table.md").read_text()
    assert "| iterative_dpo | 1 |" in markdown and "paired win rate vs offline DPO" in markdown
    assert json.loads((work / "table.json").read_text()) == json.loads(json.dumps(result))
    # run again: finished runs are read back, not redone; the table comes out the same
    policy = work / "iterative_dpo" / "round-1" / "policy" / "model.safetensors"
    mtime = policy.stat().st_mtime_ns
    again = script.main(argv)
    assert policy.stat().st_mtime_ns == mtime and again["versus_offline_dpo"] == result["versus_offline_dpo"]
    with pytest.raises(SystemExit):
        script.main([*argv[:-2], "--methods", "dno"])  # dno without --gpm
