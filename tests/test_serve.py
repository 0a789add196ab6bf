"""The scoring server: a real uvicorn server on loopback, spoken to over real HTTP with httpx.

What must hold: the server's rewards are the offline ``RewardModel.score`` rewards bit for bit,
however requests are batched together; OpenRLHF's protocol has its shape; every bad request gets
a 4xx that names the field, and the server keeps serving after it.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from synthetic import synthetic_pairs
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.models.reward_model import RewardModel
from rewardlab.rewards.transforms import apply_transform
from rewardlab.serve.asgi import running_server
from rewardlab.serve.server import ServeConfig, create_app

CONFIG = ServeConfig(max_batch_items=16, max_wait_ms=20, max_items=64, max_text_chars=2000, max_body_bytes=100_000)


@pytest.fixture(scope="module")
def model_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    """A tiny reward model with saved reward statistics and a head scaled up so rewards differ clearly."""
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=48)
    model.model.classifier.weight.data *= 50
    model.info.reward_mean, model.info.reward_std = 0.25, 2.0
    return model.save_pretrained(tmp_path_factory.mktemp("served") / "model")


@pytest.fixture(scope="module")
def offline(model_dir) -> RewardModel:
    return RewardModel.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def url(model_dir) -> str:
    app = create_app(RewardModel.from_pretrained(model_dir), model_path=str(model_dir), config=CONFIG)
    with running_server(app) as base:
        yield base


def items(n: int, seed: int) -> list[dict]:
    rows = synthetic_pairs(n, seed=seed, words=3 + seed % 9)
    return [{"prompt": r["prompt"], "response": r["chosen" if i % 2 else "rejected"]} for i, r in enumerate(rows)]


def offline_scores(model: RewardModel, batch: list[dict]) -> list[float]:
    return model.score([b["prompt"] for b in batch], [b["response"] for b in batch])


def test_rewards_equal_offline_scores_bit_for_bit(url, offline):
    batch = [*items(40, seed=1), {"prompt": "hi " * 200, "response": "a long prompt is cut from the left"}]
    response = httpx.post(f"{url}/score", json={"items": batch}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rewards"] == offline_scores(offline, batch)
    assert body["truncated"] == [False] * 40 + [True]
    assert body["raw_rewards"] is None
    assert len(set(body["rewards"])) > 30  # the rewards really differ between items


def test_concurrent_clients_each_get_their_own_scores(url, offline):
    """48 clients at once, 1-9 items each: batches mix requests, answers must not."""
    requests = [items(1 + k % 9, seed=100 + k) for k in range(48)]
    expected = offline_scores(offline, [item for r in requests for item in r])
    before = httpx.get(f"{url}/health").json()

    async def client(batch: list[dict]) -> list[float]:
        async with httpx.AsyncClient(timeout=60) as session:
            await asyncio.sleep(random.random() * 0.02)
            response = await session.post(f"{url}/score", json={"items": batch})
            assert response.status_code == 200, response.text
            return response.json()["rewards"]

    async def everyone() -> list[list[float]]:
        return await asyncio.gather(*(client(r) for r in requests))

    answers = asyncio.run(everyone())
    start = 0
    for batch, answer in zip(requests, answers, strict=True):
        assert answer == expected[start : start + len(batch)]
        start += len(batch)
    after = httpx.get(f"{url}/health").json()
    batches, merged = after["batches"] - before["batches"], after["requests"] - before["requests"]
    assert merged == 48 and batches < merged, "requests were never merged into one batch"


def test_openrlhf_get_reward(url, offline):
    prompts = ["Human: what is two plus two?\n\nAssistant:", "Human: name a colour\n\nAssistant:"]
    responses = [" four, and that is correct", " blue"]
    query = [p + r for p, r in zip(prompts, responses, strict=True)]
    response = httpx.post(f"{url}/get_reward", json={"query": query, "prompts": prompts, "labels": ["4", ""]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"rewards", "scores", "extra_logs"}
    assert body["rewards"] == offline.score(prompts, responses) == body["scores"]
    assert body["extra_logs"] == {}
    # older OpenRLHF sends only the query: it is scored whole, as a reply to no prompt
    alone = httpx.post(f"{url}/get_reward", json={"query": query}).json()
    assert alone["rewards"] == offline.score(["", ""], query)
    # a query that does not start with its prompt
    bad = httpx.post(f"{url}/get_reward", json={"query": query, "prompts": [prompts[0], "Human: other"]})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query[1]"
    assert "does not start with prompts[1]" in bad.json()["error"]


def test_transforms_by_name_match_the_offline_functions(url, offline):
    batch = items(6, seed=7)
    raw = offline_scores(offline, batch)

    def post(transform: dict, payload: list[dict] = batch) -> dict:
        response = httpx.post(f"{url}/score", json={"items": payload, "transform": transform})
        assert response.status_code == 200, response.text
        return response.json()

    normalized = post({"name": "normalize"})
    assert normalized["raw_rewards"] == raw
    assert normalized["rewards"] == pytest.approx([(r - 0.25) / 2.0 for r in raw], abs=1e-12)
    clipped = post({"name": "clip", "args": {"low": -0.5, "high": 0.5}})["rewards"]
    assert clipped == [max(-0.5, min(0.5, r)) for r in raw]
    assert post({"name": "step_delta"})["rewards"] == apply_transform("step_delta", raw)
    with_reference = [{**item, "reference": "the answer is here"} for item in batch]
    reference_reward = offline.score([b["prompt"] for b in batch], ["the answer is here"] * len(batch))
    lsc = post({"name": "lsc"}, with_reference)["rewards"]
    assert lsc == apply_transform("lsc", raw, references=[[r] for r in reference_reward])
    two_references = [{**item, "reference": ["the answer is here", "maybe"]} for item in batch]
    maybe = offline.score([b["prompt"] for b in batch], ["maybe"] * len(batch))
    par = post({"name": "par"}, two_references)["rewards"]
    assert par == apply_transform("par", raw, references=[list(p) for p in zip(reference_reward, maybe, strict=True)])


def test_conversation_prompts(url, offline):
    conversation = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hi"}]
    conversation.append({"role": "user", "content": "what is the answer?"})
    body = {"items": [{"prompt": conversation, "response": "the answer is clear"}]}
    rewards = httpx.post(f"{url}/score", json=body).json()["rewards"]
    assert rewards == offline.score([tuple(conversation)], ["the answer is clear"])


GOOD = {"prompt": "p", "response": "r"}
BAD_REQUESTS = [
    # (path, body or raw text, status, field named)
    ("/score", '{"items": [', 400, "body"),
    ("/score", "[1, 2]", 422, "body"),
    ("/score", {"items": []}, 422, "items"),
    ("/score", {"items": [{"prompt": "p"}]}, 422, "items[0].response"),
    ("/score", {"items": [GOOD, {"prompt": 5, "response": "r"}]}, 422, "items[1].prompt"),
    ("/score", {"items": [{"prompt": "", "response": "r"}]}, 422, "items[0].prompt"),
    ("/score", {"items": [{"prompt": [{"role": "robot", "content": "x"}], "response": "r"}]}, 422, "items[0].prompt"),
    ("/score", {"items": [{"prompt": "p", "response": None}]}, 422, "items[0].response"),
    ("/score", {"items": [{"prompt": "p", "reponse": "typo"}]}, 422, "items[0].reponse"),
    ("/score", {"items": [GOOD] * 65}, 413, "items"),
    ("/score", {"items": [{"prompt": "p", "response": "x" * 2001}]}, 413, "items[0].response"),
    ("/score", {"items": [{"prompt": "p" * 2001, "response": "r"}]}, 413, "items[0].prompt"),
    ("/score", {"items": [GOOD] * 40, "padding": "y" * 100_000}, 413, "body"),
    ("/score", {"items": [GOOD], "transform": {"name": "sqrt"}}, 422, "transform.name"),
    ("/score", {"items": [GOOD], "transform": {"name": "clip", "args": {"lo": 1}}}, 422, "transform.args"),
    ("/score", {"items": [GOOD], "transform": {"name": "clip", "args": {"low": "a"}}}, 422, "transform.args"),
    ("/score", {"items": [GOOD], "transform": {"name": "lsc"}}, 422, "items.reference"),
    ("/score", {"items": [{**GOOD, "reference": "ref"}]}, 422, "items.reference"),
    ("/score", {"items": [{**GOOD, "reference": 3}]}, 422, "items[0].reference"),
    ("/get_reward", {"query": ["a", "b"], "prompts": ["a"]}, 422, "prompts"),
    ("/get_reward", {"query": ["a"], "labels": ["x", "y"]}, 422, "labels"),
    ("/get_reward", {"query": [1]}, 422, "query[0]"),
    ("/get_reward", {"prompts": ["a"]}, 422, "query"),
    ("/get_reward", {"query": ["q" * 2001]}, 413, "query[0]"),
]


@pytest.mark.parametrize(("path", "body", "status", "field"), BAD_REQUESTS)
def test_bad_requests_get_a_4xx_naming_the_field(url, path, body, status, field):
    content = body if isinstance(body, str) else json.dumps(body)
    response = httpx.post(f"{url}{path}", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    answer = response.json()
    assert field in [e["field"] for e in answer["errors"]], answer
    assert answer["error"].startswith(f"{answer['errors'][0]['field']}: ")


def test_server_is_healthy_after_bad_requests_and_describes_itself(url, model_dir):
    assert httpx.post(f"{url}/score", content="not json", headers={"content-type": "text/plain"}).status_code < 500
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    info = httpx.get(f"{url}/info").json()
    assert info["model"] == str(model_dir)
    assert info["max_length"] == 48 and info["text_format"] == "plain" and info["architecture"].startswith("Bert")
    assert (info["reward_mean"], info["reward_std"]) == (0.25, 2.0)
    assert info["limits"]["max_items"] == 64
    assert info["transforms"]["clip"]["options"] == {"low": "-inf", "high": "inf"}
    assert info["transforms"]["step_clip"]["options"] == {"eta": "required"}
    assert info["transforms"]["lsc"]["reference"] == "one" and info["transforms"]["par"]["reference"] == "many"
    schema = httpx.get(f"{url}/openapi.json").json()
    assert {"/score", "/get_reward", "/health", "/info"} <= set(schema["paths"])
    assert "ScoreRequest" in schema["components"]["schemas"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serve_command(model_dir, offline):
    """``rewardlab serve MODEL --port P`` in its own process answers like the library."""
    port = free_port()
    command = [sys.executable, "-m", "rewardlab", "serve", str(model_dir), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the server did not start in 90 s"
            time.sleep(0.2)
        batch = items(3, seed=5)
        response = httpx.post(f"http://127.0.0.1:{port}/score", json={"items": batch}, timeout=30)
        assert response.json()["rewards"] == offline_scores(offline, batch)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_cli_serve_refuses_a_folder_without_a_model(tmp_path):
    result = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a saved reward model (no config.json)" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'nowhere'}: no such folder" in " ".join(result.output.split())
    (tmp_path / "model.safetensors").write_bytes(b"")
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "model.safetensors")])
    assert result.exit_code == 2
    assert "model.safetensors: is a file; a saved reward model is a folder" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--max-batch-items", "0", "--max-wait-ms", "-1"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "max_batch_items must be positive (got 0)" in message and "max_wait_ms must not be negative" in message


def test_a_chat_model_server(tiny_decoder_dir, tmp_path):
    """A decoder with a chat template: conversations are rendered with it, and OpenRLHF's queries
    (already templated by the policy) lose the trailing eos before the reply is scored."""
    path = RewardModel.from_backbone(str(tiny_decoder_dir), max_length=64).save_pretrained(tmp_path / "chat")
    offline = RewardModel.from_pretrained(path)
    conversation = [{"role": "user", "content": "Say hello."}]
    with running_server(create_app(RewardModel.from_pretrained(path), config=CONFIG)) as base:
        body = {"items": [{"prompt": conversation, "response": "hello there"}]}
        assert httpx.post(f"{base}/score", json=body).json()["rewards"] == offline.score(
            [tuple(conversation)], ["hello there"]
        )
        prompt = "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n"
        answer = httpx.post(f"{base}/get_reward", json={"query": [prompt + "hello<|im_end|>"], "prompts": [prompt]})
        assert answer.json()["rewards"] == offline.score([prompt], ["hello"])
        assert httpx.get(f"{base}/info").json()["text_format"] == "chat"
