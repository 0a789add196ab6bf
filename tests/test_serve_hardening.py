"""The scoring server against clients that misbehave: a real uvicorn server on loopback, raw sockets
for clients that stall or leave, httpx for the others (issue 26, item 11).

What must hold: a client that stalls in its request head or body is answered 408 or closed within
the configured time, and takes no place from complete requests; past the concurrency limit a
request gets 503 at once; a request whose client left is not scored; a reward that is not a finite
number is refused (500 naming the item); every error, including those of FastAPI's own body
parser, has the documented body; ``/docs`` loads nothing from another host; a token, when set, is
required everywhere but ``/health``.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from rewardlab.cli import app as cli
from rewardlab.models.reward_model import RewardModel
from rewardlab.serve.asgi import running_server
from rewardlab.serve.auth import exposure_warning
from rewardlab.serve.server import ServeConfig, create_app

CONFIG = ServeConfig(
    max_batch_items=16,
    max_wait_ms=20,
    max_items=64,
    max_text_chars=2000,
    max_body_bytes=10_000,
    body_timeout_s=1.0,
    keep_alive_s=1.0,
    max_concurrent_requests=2,
)
ITEMS = [{"prompt": "What is two plus two?", "response": f"It is {n}."} for n in range(4)]
WAIT_S = 10  # the longest any socket here waits for an answer; the limits above are 1 s


@pytest.fixture(scope="module")
def model_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=48)
    model.model.classifier.weight.data *= 50
    return model.save_pretrained(tmp_path_factory.mktemp("hardened") / "model")


@pytest.fixture(scope="module")
def offline(model_dir) -> RewardModel:
    return RewardModel.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def url(model_dir) -> str:
    with running_server(create_app(RewardModel.from_pretrained(model_dir), config=CONFIG)) as base:
        yield base


def offline_scores(model: RewardModel, batch: list[dict]) -> list[float]:
    return model.score([b["prompt"] for b in batch], [b["response"] for b in batch])


# -- raw HTTP over a socket ----------------------------------------------------------------------------


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=WAIT_S)
    sock.settimeout(WAIT_S)
    return sock


def head(path: str, length: int | None = None, extra: str = "") -> bytes:
    size = f"content-length: {length}\r\n" if length is not None else "transfer-encoding: chunked\r\n"
    return f"POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n{size}{extra}\r\n".encode()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; ``socket.timeout`` after WAIT_S of silence."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def parse(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    header, _, body = reply.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def check_error_body(body: dict, field: str) -> None:
    """The documented format: ``{"error": "FIELD: MESSAGE", "errors": [{"field", "message"}]}``."""
    assert set(body) == {"error", "errors"}, body
    assert field in [e["field"] for e in body["errors"]], body
    assert body["error"].startswith(f"{body['errors'][0]['field']}: "), body


# -- stalled clients -----------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_that_stalls_gets_408_and_the_connection_is_closed(url, chunked):
    with connect(url) as sock:
        if chunked:
            sock.sendall(head("/score") + b"a\r\n" + b'{"items": ' + b"\r\n")
        else:
            sock.sendall(head("/score", 200) + b'{"items": ')
        start = time.monotonic()
        status, headers, body = parse(read_until_closed(sock))
        waited = time.monotonic() - start
    assert status == 408 and headers["connection"] == "close"
    check_error_body(json.loads(body), "body")
    assert "--body-timeout-s" in json.loads(body)["error"]
    assert 0.5 < waited < 5, waited


def test_a_connection_that_never_completes_its_request_head_is_closed(url):
    with connect(url) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nhost: test\r\n")
        start = time.monotonic()
        assert read_until_closed(sock) == b""
        assert time.monotonic() - start < 5


def test_stalled_clients_take_no_place_from_complete_requests(url, offline):
    """20 clients stall mid-body; the limit is 2 requests in progress, yet the others are answered."""
    stalled = [connect(url) for _ in range(20)]
    try:
        for sock in stalled:
            sock.sendall(head("/score", 500) + b'{"items": [')
        time.sleep(0.2)
        for _ in range(3):
            response = httpx.post(f"{url}/score", json={"items": ITEMS}, timeout=WAIT_S)
            assert response.status_code == 200, response.text
            assert response.json()["rewards"] == offline_scores(offline, ITEMS)
    finally:
        for sock in stalled:
            sock.close()


# -- a scorer held shut, to have requests in progress -----------------------------------------------------


class Gate:
    """Wraps the batcher's scoring function: records batch sizes, holds each batch until opened."""

    def __init__(self, score) -> None:
        self.score = score
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.sizes: list[int] = []

    def __call__(self, items: list) -> list[float]:
        self.sizes.append(len(items))
        self.entered.set()
        assert self.opened.wait(WAIT_S), "the test never opened the gate"
        return self.score(items)


@pytest.fixture
def gated(model_dir):
    """A server whose scoring waits for ``gate.opened``; yields (base URL, gate, app)."""
    app = create_app(RewardModel.from_pretrained(model_dir), config=CONFIG)
    with running_server(app) as base:
        batcher = app.state.service.batcher
        gate = Gate(batcher._score)  # after the warm-up: only requests pass the gate
        batcher._score = gate
        try:
            yield base, gate, app
        finally:
            gate.opened.set()


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"waited {WAIT_S} s for {what}"
        time.sleep(0.02)


def test_requests_past_the_concurrency_limit_get_503_at_once(gated, offline):
    base, gate, app = gated
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.post, f"{base}/score", json={"items": ITEMS[:1]}, timeout=WAIT_S)
        assert gate.entered.wait(WAIT_S)
        second = pool.submit(httpx.post, f"{base}/score", json={"items": ITEMS[1:2]}, timeout=WAIT_S)
        wait_for(lambda: app.state.service.batcher._queue.qsize() == 1, "the second request to queue")
        start = time.monotonic()
        third = httpx.post(f"{base}/score", json={"items": ITEMS}, timeout=WAIT_S)
        assert time.monotonic() - start < 2
        assert third.status_code == 503 and third.headers["retry-after"] == "1"
        check_error_body(third.json(), "request")
        assert httpx.get(f"{base}/health", timeout=WAIT_S).status_code == 200  # not counted
        gate.opened.set()
        assert first.result().json()["rewards"] == offline_scores(offline, ITEMS[:1])
        assert second.result().json()["rewards"] == offline_scores(offline, ITEMS[1:2])
    assert httpx.post(f"{base}/score", json={"items": ITEMS}, timeout=WAIT_S).status_code == 200


def test_a_request_whose_client_left_is_not_scored(gated, offline):
    base, gate, app = gated
    batcher = app.state.service.batcher
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(httpx.post, f"{base}/score", json={"items": ITEMS[:1]}, timeout=WAIT_S)
        assert gate.entered.wait(WAIT_S)
        body = json.dumps({"items": ITEMS * 2}).encode()
        with connect(base) as sock:  # a client that sends a whole request, then gives up
            sock.sendall(head("/score", len(body)) + body)
            wait_for(lambda: batcher._queue.qsize() == 1, "the abandoned request to queue")
        time.sleep(0.3)  # the server sees the connection close
        gate.opened.set()
        assert first.result().json()["rewards"] == offline_scores(offline, ITEMS[:1])
    health = httpx.get(f"{base}/health", timeout=WAIT_S).json()
    assert health["abandoned"] == 1
    assert gate.sizes == [1]  # the first request's item only: the 8 abandoned ones never scored
    assert httpx.post(f"{base}/score", json={"items": ITEMS}, timeout=WAIT_S).json()["rewards"] == offline_scores(
        offline, ITEMS
    )


# -- rewards that are not numbers -----------------------------------------------------------------------


def test_a_non_finite_reward_is_refused_naming_the_item(tiny_encoder_dir):
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=48)
    model.model.classifier.bias.data.fill_(float("nan"))
    with running_server(create_app(model, config=CONFIG)) as base:
        response = httpx.post(f"{base}/score", json={"items": ITEMS[:2]}, timeout=WAIT_S)
        assert response.status_code == 500, response.text
        check_error_body(response.json(), "items[0]")
        assert "nan, not a finite number" in response.json()["error"]
        response = httpx.post(f"{base}/get_reward", json={"query": ["a question and its answer"]}, timeout=WAIT_S)
        assert response.status_code == 500, response.text
        check_error_body(response.json(), "query[0]")
        assert httpx.get(f"{base}/health", timeout=WAIT_S).json()["status"] == "ok"


# -- one error format ------------------------------------------------------------------------------------


def test_a_chunked_body_over_the_limit_gets_413_in_the_documented_format(url):
    with connect(url) as sock:
        sock.sendall(head("/score"))
        for _ in range(3):  # 12,000 bytes, over the 10,000-byte limit; then nothing more
            sock.sendall(b"fa0\r\n" + b" " * 4000 + b"\r\n")
        status, headers, body = parse(read_until_closed(sock))
    assert status == 413 and headers["content-type"] == "application/json"
    check_error_body(json.loads(body), "body")
    assert "--max-body-bytes" in json.loads(body)["error"]


DEEP = b'{"items": ' + b"[" * 3000 + b"]" * 3000 + b"}"
MALFORMED = [
    # (method, path, body, status, field, words in the message)
    ("POST", "/score", b'{"items": [{"prompt": "\xff\xfe", "response": "r"}]}', 400, "body", "not valid UTF-8"),
    ("POST", "/score", DEEP, 400, "body", "nested too deeply"),
    ("POST", "/get_reward", DEEP, 400, "body", "nested too deeply"),
    ("GET", "/score", b"", 405, "method", "GET is not allowed"),
    ("GET", "/nowhere", b"", 404, "path", "/nowhere is not an endpoint"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field", "words"), MALFORMED)
def test_errors_of_fastapi_itself_have_the_documented_format(url, method, path, body, status, field, words):
    response = httpx.request(
        method, f"{url}{path}", content=body, headers={"content-type": "application/json"}, timeout=WAIT_S
    )
    assert response.status_code == status, response.text
    check_error_body(response.json(), field)
    assert words in response.json()["error"]


# -- docs offline ------------------------------------------------------------------------------------------


def test_docs_load_nothing_from_another_host(url):
    page = httpx.get(f"{url}/docs", timeout=WAIT_S)
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert not re.search(r"https?://|//[a-z]", page.text.replace("window.location.origin", "")), page.text
    links = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert {"/openapi.json"} < set(links)
    for link in links:
        assert link.startswith("/"), link
        asset = httpx.get(f"{url}{link}", timeout=WAIT_S)
        assert asset.status_code == 200 and asset.content, link
    script = next(link for link in links if link.endswith("swagger-ui-bundle.js"))
    assert len(httpx.get(f"{url}{script}", timeout=WAIT_S).content) > 100_000
    assert httpx.get(f"{url}/redoc", timeout=WAIT_S).status_code == 404  # ReDoc's page loads from a CDN too


# -- the bearer token ----------------------------------------------------------------------------------------


def test_a_token_is_required_everywhere_but_health(model_dir, offline, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    config = ServeConfig(max_batch_items=16, max_wait_ms=5, token_file=str(token_file))
    with running_server(create_app(RewardModel.from_pretrained(model_dir), config=config)) as base:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret-token"}):
            response = httpx.post(f"{base}/score", json={"items": ITEMS}, headers=headers, timeout=WAIT_S)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
            check_error_body(response.json(), "authorization")
        assert httpx.get(f"{base}/docs", timeout=WAIT_S).status_code == 401
        assert httpx.get(f"{base}/health", timeout=WAIT_S).status_code == 200
        good = {"authorization": "Bearer s3cret-token"}
        response = httpx.post(f"{base}/score", json={"items": ITEMS}, headers=good, timeout=WAIT_S)
        assert response.json()["rewards"] == offline_scores(offline, ITEMS)
        info = httpx.get(f"{base}/info", headers=good, timeout=WAIT_S).json()
        assert "s3cret" not in json.dumps(info)


def test_a_server_bound_beyond_loopback_without_a_token_is_warned_about():
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert exposure_warning(host, has_token=False) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        assert "--token-file" in exposure_warning(host, has_token=False)
        assert exposure_warning(host, has_token=True) is None


def test_cli_checks_the_new_options_before_loading(tmp_path):
    (tmp_path / "empty").write_text("  \n")
    arguments = ["serve", str(tmp_path), "--body-timeout-s", "0", "--max-concurrent-requests", "0"]
    result = CliRunner().invoke(cli, [*arguments, "--token-file", str(tmp_path / "empty")])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "body_timeout_s must be positive (got 0.0)" in message
    assert "max_concurrent_requests must be positive (got 0)" in message
    assert "the token file is empty" in message
    result = CliRunner().invoke(cli, ["serve", str(tmp_path), "--token-file", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no such token file" in " ".join(result.output.split())
