"""Pluralistic reward models end to end: trained with a per-annotator table, saved, loaded, scored for a
known user, the population or a new user, from the library, the CLI and the HTTP server.

The data has a known answer: two groups of three annotators label the same kind of pairs in opposite
ways (group ``a`` prefers the reply with the higher ``synthetic.true_reward``, group ``b`` the other),
so after training each group's users must rank a clearly good reply against a clearly bad one their
own way, and a new user fitted from a few pairs labelled like one group must rank like it.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import load_file
from synthetic import synthetic_pairs, write_jsonl
from transformers import AutoModelForSequenceClassification
from typer.testing import CliRunner

import rewardlab
from rewardlab.cli import app
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.users import UserExamples, UserTable
from rewardlab.serve.asgi import running_server
from rewardlab.serve.server import ServeConfig, create_app

USERS = ["a0", "a1", "a2", "b0", "b1", "b2"]
TRAIN = {
    "objective": "pal",
    "precision": "fp32",
    "progress": False,
    "num_threads": 1,
    "batch_size": 16,
    "model.max_length": 32,
    "optim.lr": 3e-3,
    "optim.head_lr": 0.1,
}
GOOD, BAD = "helpful clear kind correct the answer", "rude wrong unsafe vague the answer"


def labelled(rows: list[dict], group: str) -> list[dict]:
    """Group ``a`` keeps the true-reward order, group ``b`` reverses it."""
    return rows if group == "a" else [{**r, "chosen": r["rejected"], "rejected": r["chosen"]} for r in rows]


def two_groups(n: int, seed: int) -> list[dict]:
    rows = synthetic_pairs(n, seed=seed)
    return [{**labelled([r], USERS[i % 6][0])[0], "annotator": USERS[i % 6]} for i, r in enumerate(rows)]


@pytest.fixture(scope="module")
def groups_file(tmp_path_factory) -> Path:
    return write_jsonl(two_groups(320, seed=7), tmp_path_factory.mktemp("groups") / "groups.jsonl")


@pytest.fixture(scope="module")
def model_dir(groups_file, tiny_encoder_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pluralistic") / "run"
    result = rewardlab.train(
        data=str(groups_file), backbone=str(tiny_encoder_dir), output_dir=out, max_steps=200, eval_every=100, **TRAIN
    )
    return result.model_dir


@pytest.fixture(scope="module")
def model(model_dir) -> RewardModel:
    return RewardModel.from_pretrained(model_dir)


def gap(model: RewardModel, user) -> float:
    """r(GOOD) − r(BAD) for ``user``."""
    good, bad = model.score(["question 1"] * 2, [GOOD, BAD], precision="fp32", user=user)
    return good - bad


def examples(group: str, k: int, seed: int) -> UserExamples:
    rows = labelled(synthetic_pairs(k, seed=seed), group)
    return UserExamples([r["prompt"] for r in rows], [r["chosen"] for r in rows], [r["rejected"] for r in rows])


def test_each_group_ranks_the_pair_its_own_way_and_the_population_averages_them(model):
    """PAL's population row is the log of the users' mean mixture weights, and a user's reward gap is
    linear in their weights, so the population's gap is the mean of the six users' gaps."""
    gaps = {user: gap(model, user) for user in USERS}
    assert all(gaps[u] > 0 for u in USERS[:3]) and all(gaps[u] < 0 for u in USERS[3:]), gaps
    assert gap(model, None) == pytest.approx(sum(gaps.values()) / len(gaps), abs=1e-4)
    assert min(gaps.values()) < gap(model, None) < max(gaps.values())


def test_a_new_user_is_fitted_from_a_few_pairs(model):
    """Eight fresh pairs labelled like group b make a new user rank like b; labelled like a, like a."""
    assert gap(model, examples("b", 8, seed=21)) < 0 < gap(model, examples("a", 8, seed=21))
    row = model.user_row(examples("b", 8, seed=21))
    assert torch.equal(row, model.user_row(examples("b", 8, seed=21)))  # the fit is deterministic


def test_the_folder_holds_the_table_and_still_loads_in_plain_transformers(model_dir, model):
    names = {p.name for p in model_dir.iterdir()}
    assert {"users.safetensors", "users.json", "model.safetensors"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)
    saved = json.loads((model_dir / "users.json").read_text())
    assert saved == {"user_model": "mixture", "ids": USERS}
    assert load_file(model_dir / "users.safetensors")["rows"].shape == (6, 2)
    plain = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    ids = model.encode(["question 1"], [GOOD]).ids
    with torch.no_grad():
        outputs = plain(input_ids=torch.tensor(ids)).logits
    assert outputs.shape == (1, 2)
    assert torch.allclose(outputs[0], model.outputs_ids(ids, precision="fp32")[0], atol=1e-5)
    assert model.info.users == "mixture" and model.info.head == "users"
    card = (model_dir / "README.md").read_text()
    assert "pluralistic reward model" in card and "each of the 6 users" in card


def test_an_unknown_user_is_refused_with_what_the_model_knows(model):
    with pytest.raises(ValueError, match=r"unknown user 'zz': this model knows 6 users .*population"):
        model.score(["q"], ["a reply"], user="zz")


def test_a_plain_model_is_untouched_and_refuses_a_user(tiny_encoder_dir, tmp_path):
    path = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=32).save_pretrained(tmp_path / "plain")
    assert not (path / "users.json").exists() and not (path / "users.safetensors").exists()
    plain = RewardModel.from_pretrained(path)
    assert plain.users is None and plain.info.users is None
    assert "pluralistic" not in (path / "README.md").read_text()
    with pytest.raises(ValueError, match="one reward for everyone"):
        plain.score(["q"], ["a reply"], user="a0")


def test_pairs_without_an_annotator_are_refused_naming_the_file_line_and_field(tiny_encoder_dir, tmp_path):
    data = write_jsonl(synthetic_pairs(40, seed=3), tmp_path / "anonymous.jsonl")
    with pytest.raises(ValueError, match=r"anonymous\.jsonl:\d+: field 'annotator' is missing"):
        rewardlab.train(data=str(data), backbone=str(tiny_encoder_dir), output_dir=tmp_path / "run", **TRAIN)


def test_a_missing_or_torn_table_is_named(model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"needs users\.safetensors"):
        UserTable.load(tmp_path)
    (tmp_path / "users.safetensors").write_bytes((model_dir / "users.safetensors").read_bytes())
    (tmp_path / "users.json").write_text(json.dumps({"user_model": "mixture", "ids": ["x"]}))
    with pytest.raises(ValueError, match=r"one row per id \(1\), got \(6, 2\)"):
        UserTable.load(tmp_path)


def test_cli_score_for_a_user_and_for_a_new_user(model_dir, model, tmp_path):
    rows = [{"prompt": "question 1", "response": GOOD}, {"prompt": "question 1", "response": BAD}]
    data = write_jsonl(rows, tmp_path / "rows.jsonl")
    new = labelled(synthetic_pairs(8, seed=21), "b")
    new_file = write_jsonl(new, tmp_path / "new_user.jsonl")
    for option, value, user in [
        ("--user", "b1", "b1"),
        ("--user-examples", str(new_file), examples("b", 8, seed=21)),
    ]:
        output = tmp_path / f"scored{option}.jsonl"
        result = CliRunner().invoke(app, ["score", str(model_dir), str(data), "--output", str(output), option, value])
        assert result.exit_code == 0, result.output
        rewards = [json.loads(line)["reward"] for line in output.read_text().splitlines()]
        expected = model.score([r["prompt"] for r in rows], [r["response"] for r in rows], user=user)
        assert rewards == pytest.approx(expected, abs=1e-5) and rewards[0] < rewards[1]
    refused = ["score", str(model_dir), str(data), "--output", str(tmp_path / "x.jsonl"), "--user", "nobody"]
    result = CliRunner().invoke(app, refused)
    assert result.exit_code == 2 and "this model knows 6 users" in " ".join(result.output.split())


def test_serve_scores_for_a_user_a_new_user_and_the_population(model_dir, model):
    """One real HTTP request each, on /score and OpenRLHF's /get_reward: the rewards are the library's for
    the same user."""
    config = ServeConfig(max_wait_ms=5, precision="fp32")
    app_ = create_app(RewardModel.from_pretrained(model_dir), model_path=str(model_dir), config=config)
    items = [{"prompt": "question 1", "response": GOOD}, {"prompt": "question 1", "response": BAD}]
    new = [
        {"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
        for r in labelled(synthetic_pairs(8, seed=21), "b")
    ]
    with running_server(app_) as url:
        for extra, scored_for, user in [
            ({"user": "a2"}, "user", "a2"),
            ({"user_examples": new}, "new_user", examples("b", 8, seed=21)),
            ({}, "population", None),
        ]:
            body = httpx.post(f"{url}/score", json={"items": items, **extra}, timeout=30).json()
            assert body["scored_for"] == scored_for, body
            expected = model.score(["question 1"] * 2, [GOOD, BAD], precision="fp32", user=user)
            assert body["rewards"] == pytest.approx(expected, abs=1e-5)
        unknown = httpx.post(f"{url}/score", json={"items": items, "user": "zz"}, timeout=30)
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "user"
        queries = {"query": [f"question 1{GOOD}", f"question 1{BAD}"], "prompts": ["question 1"] * 2}
        for extra, scored_for, user in [({"user": "a2"}, "user", "a2"), ({}, "population", None)]:
            body = httpx.post(f"{url}/get_reward", json=queries | extra, timeout=30).json()
            assert body["scored_for"] == scored_for, body
            expected = model.score(["question 1"] * 2, [GOOD, BAD], precision="fp32", user=user)
            assert body["rewards"] == pytest.approx(expected, abs=1e-5)
        unknown = httpx.post(f"{url}/get_reward", json=queries | {"user": "zz"}, timeout=30)
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "user"
        assert httpx.get(f"{url}/info", timeout=30).json()["users"] == 6


def run_killed_at_second_checkpoint(args: list[str]) -> int:
    """``rewardlab *args`` in a fork that dies (as kill -9 would) when it replaces its first checkpoint."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            torch.set_num_threads(1)  # the parent's OpenMP pool does not survive a fork
            real = os.replace

            def deadly(src, dst, *rest, **kw):
                if str(dst).endswith(".checkpoint.old"):
                    os._exit(137)
                return real(src, dst, *rest, **kw)

            os.replace = deadly
            code = CliRunner().invoke(app, args).exit_code
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_resume_after_a_kill_keeps_the_table(groups_file, tiny_encoder_dir, tmp_path):
    """A run killed after its first checkpoint and resumed ends with the uninterrupted run's table and weights."""
    options = [f"{k}={v}" for k, v in {**TRAIN, "max_steps": 6, "save_every": 3, "eval_every": 3}.items()]
    options = [o for o in options if not o.startswith("objective=")]

    def args(out: Path, *extra: str) -> list[str]:
        common = ["--data", str(groups_file), "--backbone", str(tiny_encoder_dir), "--objective", "pal"]
        return ["train", *common, "--output", str(out), *options, *extra]

    whole = CliRunner().invoke(app, args(tmp_path / "whole"))
    assert whole.exit_code == 0, whole.output
    assert run_killed_at_second_checkpoint(args(tmp_path / "killed")) == 137
    assert json.loads((tmp_path / "killed" / "checkpoint" / "state.json").read_text())["train_state"]["step"] == 3
    resumed = CliRunner().invoke(app, args(tmp_path / "killed", "--resume"))
    assert resumed.exit_code == 0, resumed.output
    a, b = (load_file(tmp_path / run / "checkpoint" / "model.safetensors") for run in ("whole", "killed"))
    assert "users.rows" in a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [load_file(tmp_path / run / "model" / "users.safetensors")["rows"] for run in ("whole", "killed")]
    assert torch.equal(*rows) and not torch.equal(rows[0], UserTable.new(USERS, 2, "mixture", 0).rows.detach())
