"""A preference direction (DPA, Wang et al. 2024) in `serve`, the trainer adapters and `sample-pairs`.

Known answers: a two-attribute model's reward along u is its attributes' projection on u, so along
(1, 0) it is attribute 1 and along (1, 1) it is (a₁ + a₂)/√2; a direction given to a model without
attributes is refused, never ignored.
"""

from __future__ import annotations

import json
import math

import httpx
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.models.reward_model import RewardModel
from rewardlab.serve.asgi import running_server
from rewardlab.serve.integrations import TRLRewardFunction, verl_compute_score
from rewardlab.serve.server import ServeConfig, create_app

PROMPTS = ["Tell me about cats.", "Tell me about rain.", "What is tea?"]
REPLIES = ["Cats purr.", "It falls.", "A drink made from leaves, loved in many countries."]
ITEMS = [{"prompt": p, "response": r} for p, r in zip(PROMPTS, REPLIES, strict=True)]


@pytest.fixture(scope="module")
def attributes_dir(tiny_encoder_dir, tmp_path_factory):
    torch.manual_seed(0)
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=48, outputs=2, head="attributes")
    model.model.classifier.weight.data *= 50  # attributes that differ clearly between replies
    return model.save_pretrained(tmp_path_factory.mktemp("direction") / "attributes")


@pytest.fixture(scope="module")
def scalar_dir(tiny_encoder_dir, tmp_path_factory):
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=48)
    return model.save_pretrained(tmp_path_factory.mktemp("direction") / "scalar")


@pytest.fixture(scope="module")
def attributes(attributes_dir):
    """(a₁, a₂) of each item, the head's raw outputs."""
    model = RewardModel.from_pretrained(attributes_dir)
    return model.outputs_ids(model.encode(PROMPTS, REPLIES).ids, precision="fp32").tolist()


def along(attributes, direction):
    norm = math.hypot(*direction)
    return [(a * direction[0] + b * direction[1]) / norm for a, b in attributes]


def test_server_scores_along_the_request_and_server_direction(attributes_dir, attributes):
    config = ServeConfig(max_wait_ms=20, precision="fp32", direction=[0.0, 1.0])
    model = RewardModel.from_pretrained(attributes_dir)
    with running_server(create_app(model, model_path=str(attributes_dir), config=config)) as url:
        default = httpx.post(f"{url}/score", json={"items": ITEMS}, timeout=60).json()["rewards"]
        first = httpx.post(f"{url}/score", json={"items": ITEMS, "direction": [1, 0]}, timeout=60).json()["rewards"]
        both = httpx.post(f"{url}/score", json={"items": ITEMS, "direction": [2, 2]}, timeout=60).json()["rewards"]
        openrlhf = httpx.post(
            f"{url}/get_reward",
            json={
                "query": [p + r for p, r in zip(PROMPTS, REPLIES, strict=True)],
                "prompts": PROMPTS,
                "direction": [1, 0],
            },
            timeout=60,
        ).json()["rewards"]
        wrong = httpx.post(f"{url}/score", json={"items": ITEMS, "direction": [1, 0, 0]}, timeout=60)
        info = httpx.get(f"{url}/info").json()
    assert default == pytest.approx([b for _, b in attributes], abs=1e-5)  # the server's --direction 0,1
    assert first == pytest.approx([a for a, _ in attributes], abs=1e-5)
    assert both == pytest.approx([(a + b) / math.sqrt(2) for a, b in attributes], abs=1e-5)
    assert openrlhf == pytest.approx(first, abs=1e-5)
    assert len({round(x, 4) for x in default + first}) > 3  # the directions really rank differently
    assert wrong.status_code == 422
    assert wrong.json()["errors"] == [{"field": "direction", "message": "needs one weight per attribute (2), got 3"}]
    assert info["head"] == "attributes" and info["direction"] == [0.0, 1.0]


def test_server_refuses_a_direction_for_a_model_without_attributes(scalar_dir, attributes_dir):
    model = RewardModel.from_pretrained(scalar_dir)
    with running_server(create_app(model, model_path=str(scalar_dir))) as url:
        response = httpx.post(f"{url}/score", json={"items": ITEMS, "direction": [1, 0]}, timeout=60)
        plain = httpx.post(f"{url}/score", json={"items": ITEMS}, timeout=60)
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["field"] == "direction" and "head 'attributes'" in body["errors"][0]["message"]
    assert body["error"].startswith("direction: weighs the attributes")
    assert plain.status_code == 200
    with pytest.raises(ValueError, match="--direction weighs the attributes"):
        create_app(model, model_path=str(scalar_dir), config=ServeConfig(direction=[1.0, 0.0]))
    with pytest.raises(ValueError, match="one weight per attribute"):
        create_app(RewardModel.from_pretrained(attributes_dir), config=ServeConfig(direction=[1.0]))


def test_cli_serve_passes_the_direction(monkeypatch, attributes_dir, scalar_dir):
    seen = {}
    monkeypatch.setattr("rewardlab.serve.server.serve", lambda model, **kw: seen.update(kw))
    result = CliRunner().invoke(app, ["serve", str(attributes_dir), "--direction", "1,0.5", "--no-warmup"])
    assert result.exit_code == 0, result.output
    assert seen["config"].direction == [1.0, 0.5]
    bad = CliRunner().invoke(app, ["serve", str(attributes_dir), "--direction", "1,x"])
    assert bad.exit_code != 0 and "numbers separated by commas" in bad.output


def test_adapters_score_along_the_direction(attributes_dir, scalar_dir, attributes):
    trl = TRLRewardFunction(attributes_dir, direction="1,0", precision="fp32")
    assert trl(PROMPTS, REPLIES) == pytest.approx([a for a, _ in attributes], abs=1e-5)
    verl = verl_compute_score(attributes_dir, direction=[3.0, 4.0], precision="fp32")
    expected = along(attributes, [3.0, 4.0])
    for prompt, reply, value in zip(PROMPTS, REPLIES, expected, strict=True):
        assert verl("src", reply, None, {"prompt": prompt}) == pytest.approx(value, abs=1e-5)
    with pytest.raises(ValueError, match="head 'attributes'"):
        TRLRewardFunction(scalar_dir, direction=[1.0, 0.0])
    with pytest.raises(ValueError, match="one weight per attribute"):
        verl_compute_score(attributes_dir, direction=[1.0, 0.0, 1.0])


def write_prompts(path) -> None:
    topics = ["cats", "rain", "tea", "maps", "bread", "rivers"]
    rows = [{"prompt": f"Tell me about {t}.", "chosen": f"Sure, {t}.", "rejected": "No."} for t in topics]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def sample_pairs(policy, reward_model, tmp_path, name: str, *extra: str):
    write_prompts(tmp_path / "prefs.jsonl")
    args = ["sample-pairs", "--policy", str(policy), "--reward-model", str(reward_model)]
    args += ["--data", str(tmp_path / "prefs.jsonl"), "--split", "all", "--prompts", "6", "--n", "8"]
    args += ["--accept", "6", "--max-new-tokens", "6", "--precision", "fp32", "--output", str(tmp_path / name)]
    return CliRunner().invoke(app, [*args, *extra])


def test_sample_pairs_ranks_along_the_direction(tiny_decoder_dir, attributes_dir, scalar_dir, tmp_path):
    """Each pair's chosen reply has the higher reward along the direction, and its ratings are those rewards;
    along (1, 0) and (0, 1) the same candidates are ranked by different attributes."""
    model = RewardModel.from_pretrained(attributes_dir)
    flipped = 0
    for direction, name in (([1.0, 0.0], "first.jsonl"), ([0.0, 1.0], "second.jsonl")):
        text = ",".join(str(w) for w in direction)
        result = sample_pairs(tiny_decoder_dir, attributes_dir, tmp_path, name, "--direction", text, "--beta", "5")
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
        assert len(rows) >= 6
        out = model.outputs_ids(
            model.encode(
                [r["prompt"] for r in rows] * 2, [r["chosen"] for r in rows] + [r["rejected"] for r in rows]
            ).ids,
            precision="fp32",
        ).tolist()
        chosen, rejected = along(out[: len(rows)], direction), along(out[len(rows) :], direction)
        for row, c, r in zip(rows, chosen, rejected, strict=True):
            assert c > r
            assert row["chosen_rating"] == pytest.approx(c, abs=1e-4)
            assert row["rejected_rating"] == pytest.approx(r, abs=1e-4)
        other = along(out, direction[::-1])
        flipped += sum(o_c < o_r for o_c, o_r in zip(other[: len(rows)], other[len(rows) :], strict=True))
    assert flipped > 0  # some pairs would be labelled the other way along the other attribute

    refused = sample_pairs(tiny_decoder_dir, scalar_dir, tmp_path, "no.jsonl", "--direction", "1,0")
    assert refused.exit_code == 2 and "head 'attributes'" in refused.output
    assert not (tmp_path / "no.jsonl").exists()
