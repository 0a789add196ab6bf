"""The collect app in a real browser: Playwright drives the system Chromium against a real
``rewardlab collect serve`` process. An annotator logs in by the link, labels ten pairs (five by
mouse, five by keyboard), and ``rewardlab collect export`` holds exactly those ten labels with the
sides chosen; a reply holding ``<script>`` is shown as text and never runs.

``REWARDLAB_SCREENSHOTS=DIR`` also saves this test's annotator page and dashboard (its synthetic
questions) at 1280 px and 390 px wide to DIR; the docs' screenshots, of real labels, come from
``benchmarks/collect_simulated_annotator.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rewardlab.collect.project import Project

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs a system Chromium for Playwright: apt-get install -y chromium (Debian package)"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (a dev dependency)")

MOUSE = ["a3", "b2", "a1", "tie", "b3"]  # the buttons clicked, in turn
KEYS = {"1": "a3", "2": "a2", "3": "a1", "4": "tie", "5": "b1", "6": "b2", "7": "b3"}
KEYBOARD = ["7", "2", "4", "5", "1"]  # the keys pressed, in turn
STRENGTH = {"3": 1.0, "2": 0.875, "1": 0.75}  # collect.export's probabilities of the chosen side


def rewardlab(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "rewardlab", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def token_of(printed: str) -> str:
    return re.search(r"login\?token=([\w-]+)", printed).group(1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A pairwise project of 12 items (reply A of each carries a script), served on a free port."""
    work = tmp_path_factory.mktemp("collect-browser")
    items = work / "items.jsonl"
    rows = [
        {
            "id": f"q{i}",
            "prompt": f"Question {i}: name a colour.",
            "replies": [f"<script>window.pwned = {i}</script> Red, reply A{i}.", f"Blue, reply B{i}."],
        }
        for i in range(12)
    ]
    items.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    guidelines = work / "guidelines.md"
    guidelines.write_text("Prefer the reply that answers the question.\nCall it a tie when both do.\n")
    project = work / "project"
    printed = rewardlab(
        "collect", "init", str(project), "--items", str(items), "--selection", "random",
        "--guidelines", str(guidelines), "--title", "Which colour answer is better?",
    )  # fmt: skip
    owner = token_of(printed)
    alice = token_of(rewardlab("collect", "add-annotator", str(project), "alice"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rewardlab", "collect", "serve", str(project), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).json()["ok"]:
                break
        except httpx.TransportError:
            pass
        assert server.poll() is None, server.stderr.read()
        assert time.monotonic() < deadline, "the server did not start in 120 s"
        time.sleep(0.2)
    try:
        yield {"base": base, "project": project, "owner": owner, "alice": alice, "work": work, "rows": rows}
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def shoot(page: object, name: str) -> None:
    if folder := os.environ.get("REWARDLAB_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def submitted(page: object, n: int) -> None:
    """Wait for the page that follows the n-th label (its progress line says so)."""
    page.wait_for_function(
        "n => (document.getElementById('progress') || {}).textContent?.startsWith(n + ' labelled')", arg=n
    )


def test_ten_labels_by_mouse_and_keyboard_are_exported_exactly(served, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{served['base']}/login?token={served['alice']}")
    assert page.url.endswith("/task")
    assert page.locator("#progress").inner_text() == "0 labelled, 0 skipped, 12 left"
    assert "answers the question" in page.locator("details.guidelines").inner_text()
    shoot(page, "annotator-1280.png")
    chosen: dict[str, str] = {}  # prompt → the verdict given
    order: list[str] = []
    for n in range(10):
        prompt = page.locator("#prompt").inner_text()
        order.append(prompt)
        reply_a = page.locator("#reply-0 .text")
        assert reply_a.inner_text().startswith("<script>window.pwned")  # shown as text...
        assert page.locator("#reply-0 script").count() == 0  # ...not as an element
        if n < 5:
            page.click(f'button[value="{MOUSE[n]}"]')
            chosen[prompt] = MOUSE[n]
        else:
            if n == 5:  # a reason first: Enter leaves the box, then the key chooses
                page.fill("#reason", "it names the colour")
                page.press("#reason", "Enter")
            page.keyboard.press(KEYBOARD[n - 5])
            chosen[prompt] = KEYS[KEYBOARD[n - 5]]
        submitted(page, n + 1)
    assert page.locator("#progress").inner_text() == "10 labelled, 0 skipped, 2 left"
    assert page.evaluate("typeof window.pwned") == "undefined"  # no reply's script ever ran

    output = served["work"] / "labels.jsonl"
    rewardlab("collect", "export", str(served["project"]), "--output", str(output))
    exported = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(exported) == 10 and {row["prompt"] for row in exported} == set(chosen)
    replies = {row["prompt"]: row["replies"] for row in served["rows"]}
    for row in exported:
        verdict, (a, b) = chosen[row["prompt"]], replies[row["prompt"]]
        assert row["annotator"] == "alice"
        if verdict == "tie":
            assert row["tie"] and row["strength"] == 0.5
        else:
            assert not row["tie"] and row["strength"] == STRENGTH[verdict[1]]
            assert (row["chosen"], row["rejected"]) == ((a, b) if verdict[0] == "a" else (b, a))
    _, store = Project.open(served["project"])
    items = {item.id: item.prompt for item in store.items()}
    reasons = {items[label.item_id]: label.reason for label in store.labels() if label.reason}
    store.close()
    assert reasons == {order[5]: "it names the colour"}  # the reason typed on the sixth task, and only there
    context.close()


def test_the_page_fits_a_phone_and_the_dashboard_shows_the_labels(served, browser):
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = phone.new_page()
    page.goto(f"{served['base']}/login?token={served['alice']}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the screen
    a, b = page.locator("#reply-0").bounding_box(), page.locator("#reply-1").bounding_box()
    assert b["y"] >= a["y"] + a["height"]  # stacked, not side by side
    shoot(page, "annotator-390.png")
    assert page.goto(f"{served['base']}/dashboard").status == 403  # an annotator never sees it
    phone.close()

    for width in (1280, 390):
        owner = browser.new_context(viewport={"width": width, "height": 900})
        page = owner.new_page()
        page.goto(f"{served['base']}/login?token={served['owner']}")
        assert page.url.endswith("/dashboard")
        labels = httpx.get(f"{served['base']}/healthz").json()["labels"]
        if labels:  # after the test above: alice's ten
            row = page.locator("#annotators tbody tr", has_text="alice").inner_text()
            assert re.match(rf"alice\s+{labels}\s+0\s", row)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        shoot(page, f"dashboard-{width}.png")
        owner.close()


def test_a_login_link_followed_from_another_site_reaches_the_task(served, browser):
    """The link opened from a mail page on another site: the browser withholds a SameSite=Strict cookie
    from a redirect chain begun there, so the login must still land on the task."""
    context = browser.new_context()
    page = context.new_page()
    other_site = served["base"].replace("127.0.0.1", "localhost")
    page.goto(f"{other_site}/healthz")
    page.set_content(f'<a id="link" href="{served["base"]}/login?token={served["alice"]}">your link</a>')
    page.click("#link")
    page.wait_for_selector("#progress")
    assert page.url == f"{served['base']}/task"
    context.close()
