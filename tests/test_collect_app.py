"""The collect web app through HTTP: login, CSRF, who may see what, escaping, limits, duplicates,
and a form round trip for each kind of task (FastAPI's TestClient: the real app, in process)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rewardlab.collect.active import RandomSelector
from rewardlab.collect.app import create_app
from rewardlab.collect.items import CollectItem
from rewardlab.collect.project import ProjectConfig, create_project
from rewardlab.collect.web_auth import COOKIE

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTES = ["helpfulness", "harmlessness"]


def make_project(path: Path, kind: str = "pairwise", n_items: int = 3, n_replies: int = 2, **config: object):
    attributes = ATTRIBUTES if kind == "attributes" else []
    config = {"selection": "random", "guidelines": "Be <b>fair</b>.", **config}
    project, store, owner = create_project(path, ProjectConfig(kind=kind, attributes=attributes, **config))
    items = [
        CollectItem(f"prompt {i}", tuple(f"reply {i}.{r}" for r in range(n_replies)), key=f"k{i}")
        for i in range(n_items)
    ]
    store.add_items(items)
    return project, store, owner


def client_for(project, store, token: str | None) -> TestClient:
    client = TestClient(create_app(project, store, RandomSelector(), seed=0), follow_redirects=False)
    if token is not None:
        response = client.get("/login", params={"token": token})
        assert response.status_code == 303
    return client


def task_form(client: TestClient) -> dict[str, str]:
    """The hidden fields of the task page's form."""
    page = client.get("/task")
    assert page.status_code == 200, page.text
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))


@pytest.fixture
def pairwise(tmp_path):
    project, store, owner = make_project(tmp_path / "p")
    alice = store.add_annotator("alice")
    return project, store, owner, alice


def test_login_sets_a_strict_http_only_cookie_and_routes_by_role(pairwise):
    project, store, owner, alice = pairwise
    client = client_for(project, store, None)
    response = client.get("/login", params={"token": alice})
    assert response.status_code == 303 and response.headers["location"] == "/task"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and f"{COOKIE}=" in cookie
    assert client.get("/login", params={"token": owner}).headers["location"] == "/dashboard"
    assert client.get("/login", params={"token": "not-a-token"}).status_code == 403


def test_without_login_nothing_is_shown_or_written(pairwise):
    project, store, _, _ = pairwise
    client = client_for(project, store, None)
    assert client.get("/task").status_code == 401
    assert client.get("/dashboard").status_code == 401
    assert client.post("/label", data={"preference": "a3"}).status_code == 401
    assert store.label_count() == 0


def test_a_pairwise_label_round_trip_and_progress(pairwise):
    project, store, _, alice = pairwise
    client = client_for(project, store, alice)
    page = client.get("/task").text
    assert "0 labelled, 0 skipped, 3 left" in page
    form = task_form(client)
    response = client.post("/label", data={**form, "preference": "b2", "reason": "clearer"})
    assert response.status_code == 303 and response.headers["location"] == "/task"
    [label] = store.labels()
    assert label.item_id == int(form["item_id"]) and label.payload == {"choice": "b", "strength": 2}
    assert label.reason == "clearer" and label.selection == "random" and not label.skipped
    assert label.shown_at == float(form["shown_at"]) and label.annotator == "alice"
    assert "1 labelled, 0 skipped, 2 left" in client.get("/task").text


def test_a_reload_shows_the_same_task_and_skip_moves_on(pairwise):
    project, store, _, alice = pairwise
    client = client_for(project, store, alice)
    first, again = task_form(client), task_form(client)
    assert first == again  # same item, same submission id, same shown_at
    client.post("/label", data={**first, "action": "skip"})
    [label] = store.labels()
    assert label.skipped and label.payload == {}
    assert task_form(client)["item_id"] != first["item_id"]


def test_a_missing_or_forged_csrf_token_is_refused(pairwise):
    project, store, _, alice = pairwise
    client = client_for(project, store, alice)
    form = task_form(client)
    for token in ("", "0" * 64):
        response = client.post("/label", data={**form, "csrf_token": token, "preference": "a1"})
        assert response.status_code == 403 and "CSRF" in response.text
    bob = store.add_annotator("bob")  # another session's token is not this one's
    bob_form = task_form(client_for(project, store, bob))
    forged = {**form, "csrf_token": bob_form["csrf_token"], "preference": "a1"}
    assert client.post("/label", data=forged).status_code == 403
    assert store.label_count() == 0


def test_a_tampered_task_is_refused_and_a_bad_field_is_named(pairwise):
    project, store, _, alice = pairwise
    client = client_for(project, store, alice)
    form = task_form(client)
    other = str(({1, 2, 3} - {int(form["item_id"])}).pop())
    for change in ({"item_id": other}, {"selection": "active"}, {"shown_at": "1.0"}):
        response = client.post("/label", data={**form, **change, "preference": "a1"})
        assert response.status_code == 400 and "ticket" in response.text
    response = client.post("/label", data={**form, "preference": "a9"})
    assert response.status_code == 400 and "preference" in response.text
    assert store.label_count() == 0


def test_a_duplicate_submission_is_written_once(pairwise):
    project, store, _, alice = pairwise
    client = client_for(project, store, alice)
    form = task_form(client)
    for _ in range(3):
        assert client.post("/label", data={**form, "preference": "a3"}).status_code == 303
    assert store.label_count() == 1


def test_annotators_see_only_their_own_work_and_not_the_dashboard(pairwise):
    project, store, owner, alice = pairwise
    bob = store.add_annotator("bob")
    alice_client, bob_client = client_for(project, store, alice), client_for(project, store, bob)
    alice_client.post("/label", data={**task_form(alice_client), "preference": "a3", "reason": "ALICE-REASON"})
    bob_page = bob_client.get("/task").text
    assert "0 labelled" in bob_page and "ALICE-REASON" not in bob_page and "alice" not in bob_page
    assert bob_client.get("/dashboard").status_code == 403
    assert bob_client.get("/dashboard/data.json").status_code == 403
    owner_client = client_for(project, store, owner)
    data = owner_client.get("/dashboard/data.json").json()
    assert data["labels"] == 1 and data["annotators"][0]["name"] == "alice"
    assert owner_client.get("/dashboard").status_code == 200


def test_every_text_is_escaped(tmp_path):
    project, store, _ = make_project(tmp_path / "p", n_items=0, title=f"T {SCRIPT}")
    store.add_items([CollectItem(f"P {SCRIPT}", (SCRIPT, "fine"), key="x")])
    token = store.add_annotator(f"eve {SCRIPT}")
    client = client_for(project, store, token)
    page = client.get("/task")
    assert SCRIPT not in page.text
    # the title twice (tab and header), the prompt, the reply and the annotator's name
    assert page.text.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 5
    assert "Be &lt;b&gt;fair&lt;/b&gt;." in page.text  # guidelines are text too
    assert "script-src 'self'" in page.headers["content-security-policy"]  # and inline scripts could not run


def test_a_body_over_64_kib_is_refused(pairwise):
    project, store, _, alice = pairwise
    client = client_for(project, store, alice)
    form = task_form(client)
    response = client.post("/label", data={**form, "preference": "a1", "reason": "x" * 70_000})
    assert response.status_code == 413
    assert store.label_count() == 0


def test_healthz_counts_labels(pairwise):
    project, store, _, alice = pairwise
    client = client_for(project, store, None)
    assert client.get("/healthz").json() == {"ok": True, "labels": 0}
    alice_client = client_for(project, store, alice)
    alice_client.post("/label", data={**task_form(alice_client), "preference": "tie"})
    assert client.get("/healthz").json() == {"ok": True, "labels": 1}
    assert store.labels()[0].payload == {"choice": "tie"}


@pytest.mark.parametrize(
    ("kind", "fields", "payload"),
    [
        ("ranking", {"rank_0": "2", "rank_1": "3", "rank_2": "1"}, {"order": [2, 0, 1]}),
        ("rating", {"rating_0": "7", "rating_1": "1", "rating_2": "4"}, {"ratings": [7, 1, 4]}),
        (
            "attributes",
            {f"rating_{name}_{i}": str(1 + i + 3 * j) for j, name in enumerate(ATTRIBUTES) for i in range(3)},
            {"ratings": {"helpfulness": [1, 2, 3], "harmlessness": [4, 5, 6]}},
        ),
    ],
)
def test_each_kind_of_form_round_trips(tmp_path, kind, fields, payload):
    project, store, _ = make_project(tmp_path / kind, kind=kind, n_replies=3)
    client = client_for(project, store, store.add_annotator("alice"))
    page = client.get("/task").text
    assert all(f'name="{name}"' in page for name in fields)  # the page asks for exactly these fields
    form = task_form(client)
    bad = dict(fields, **{next(iter(fields)): "9"})
    response = client.post("/label", data={**form, **bad})
    assert response.status_code == 400 and next(iter(fields)) in response.text
    assert client.post("/label", data={**form, **fields}).status_code == 303
    assert store.labels()[0].payload == payload


def test_a_ranking_must_give_each_place_once(tmp_path):
    project, store, _ = make_project(tmp_path / "r", kind="ranking", n_replies=3)
    client = client_for(project, store, store.add_annotator("alice"))
    form = task_form(client)
    response = client.post("/label", data={**form, "rank_0": "1", "rank_1": "1", "rank_2": "2"})
    assert response.status_code == 400 and "rank_0" in response.text


def test_the_last_task_leads_to_a_done_page(tmp_path):
    project, store, _ = make_project(tmp_path / "p", n_items=1)
    client = client_for(project, store, store.add_annotator("alice"))
    client.post("/label", data={**task_form(client), "preference": "a1"})
    page = client.get("/task")
    assert page.status_code == 200 and "Nothing left" in page.text and "1 labelled" in page.text


def test_the_trainer_starts_stops_and_hears_of_each_new_label(pairwise):
    project, store, _, alice = pairwise

    class CountingTrainer:  # records the calls the app makes; the real trainer is tested in test_collect_active
        def __init__(self) -> None:
            self.calls: list[str] = []

        def start(self) -> None:
            self.calls.append("start")

        def stop(self) -> None:
            self.calls.append("stop")

        def notify(self) -> None:
            self.calls.append("notify")

    trainer = CountingTrainer()
    app = create_app(project, store, RandomSelector(), trainer, seed=0)
    with TestClient(app, follow_redirects=False) as client:
        client.get("/login", params={"token": alice})
        form = task_form(client)
        client.post("/label", data={**form, "preference": "a1"})
        client.post("/label", data={**form, "preference": "a1"})  # a duplicate: no new label, no notice
    assert trainer.calls == ["start", "notify", "stop"]


def test_the_dashboard_draws_the_learning_curve(pairwise):
    project, store, owner, _ = pairwise
    store.add_metric(10, 0.6, 5)
    store.add_metric(20, 0.8, 8)
    page = client_for(project, store, owner).get("/dashboard").text
    points = re.search(r'<polyline points="([^"]+)"', page).group(1).split()
    # x: 48 + 576 * n / 20; y: 228 - 216 * accuracy
    assert points == ["336.0,98.4", "624.0,55.2"]
    assert "80.0%" in page


def test_serving_an_active_project_runs_its_trainer_with_the_app(tmp_path, tiny_encoder_dir):
    from rewardlab.collect.server import build_app

    make_project(tmp_path / "p", n_items=4, encoder=str(tiny_encoder_dir), selection="active")
    app, store = build_app(tmp_path / "p")
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"ok": True, "labels": 0}
        threads = {thread.name for thread in threading.enumerate()}
        assert "rewardlab-collect-trainer" in threads
    assert "rewardlab-collect-trainer" not in {thread.name for thread in threading.enumerate()}
    store.close()


def test_serving_beyond_loopback_warns():
    from rewardlab.collect.server import exposure_warning

    assert exposure_warning("127.0.0.1") is None and exposure_warning("localhost") is None
    assert "unencrypted" in exposure_warning("0.0.0.0")
