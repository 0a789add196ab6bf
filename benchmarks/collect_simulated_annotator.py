"""A simulated annotator labels real HH-RLHF pairs through the real ``rewardlab collect serve``, so the
dashboard's held-out accuracy and learning curve come from real background retraining; then screenshots.

Creates a pairwise project under ``--work`` from ``--items`` pairs drawn (seeded) from the packaged
HH-RLHF harmless sample (``rewardlab collect init``, the app's defaults: active selection, the MiniLM
encoder, a fifth of the picks at random and held out), adds one annotator (``collect add-annotator``),
starts ``rewardlab collect serve`` on 127.0.0.1 and, over HTTP like a browser, logs in by the link and
repeats GET /task → POST /label ``--labels`` times with the page's own hidden fields (CSRF token, signed
ticket). The answer is the pair's recorded human preference: the replies shown are matched to the items
file as rewardlab reads it (``collect.items.read_items``, whose ``metadata["preferred"]`` is the side the
HH labeller chose), and that side is chosen with strength "better" (``a2``/``b2``). Nothing is written to
the database but by the server. Each answer waits ``--think`` seconds (exponential; the dashboard's time
per label is this simulated wait plus the server's latency, not a person's).

The ensemble retrains in the server's background thread every 10 labels; after the last label the
script waits until the learning curve stops growing, then (unless ``--no-screenshots``) saves, with
Playwright driving the system Chromium (no browser download), the owner's dashboard and the annotator's
task page at 1280 and 390 px wide into ``--screenshots`` (default ``docs/collect/``). Writes
``simulated_annotator.json`` (setup, the curve, timings) to ``--work``.

    taskset -c 1 nice -n 19 .venv/bin/python benchmarks/collect_simulated_annotator.py \
        --items 300 --labels 180 --work /tmp/collect-sim [--think 1.0] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import random
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collect_load import HIDDEN, PeakMemory, cpu_name, rewardlab, start_server

from rewardlab.atomic import write_text_atomic

HH = "hh-rlhf-harmless-1850.jsonl.gz"
REPLY = re.compile(r'<article class="reply" id="reply-(\d+)">\s*<h2>[^<]*</h2>\s*<div class="text">(.*?)</div>', re.S)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "collect"
GUIDELINES = (
    "Choose the reply a careful, harmless assistant would give: it declines to help with harm, "
    "and otherwise answers the question.\nCall it a tie only when neither is better."
)


def write_items(path: Path, n_items: int, seed: int) -> None:
    """``n_items`` pairs drawn without replacement (seeded) from the packaged HH-RLHF harmless sample."""
    source = Path(str(resources.files("rewardlab.data") / "embedded" / HH))
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    if n_items > len(rows):
        raise SystemExit(f"--items: at most {len(rows)} (the packaged HH-RLHF sample), got {n_items}")
    picked = sorted(random.Random(seed).sample(range(len(rows)), n_items))
    lines = [json.dumps({"id": f"hh-{i}", **{k: rows[i][k] for k in ("chosen", "rejected")}}) for i in picked]
    write_text_atomic(path, "\n".join(lines) + "\n")


def answer_key(items_file: Path) -> dict[tuple[str, ...], int]:
    """Replies as the app shows them → the index of the reply the HH labeller preferred."""
    from rewardlab.collect.items import read_items

    key: dict[tuple[str, ...], int] = {}
    for item in read_items(items_file):
        if item.metadata.get("preferred") is not None:
            key[item.replies] = int(item.metadata["preferred"])
    return key


def token_of(printed: str) -> str:
    found = re.search(r"login\?token=([\w-]+)", printed)
    if found is None:
        raise SystemExit(f"no login link in:\n{printed}")
    return found.group(1)


def label_through_http(
    url: str, token: str, key: dict[tuple[str, ...], int], labels: int, think: float, rng: random.Random
) -> dict[str, Any]:
    """Log in by the link and answer ``labels`` tasks from the recorded preference."""
    answered, agreed_sides, latencies = 0, {"a": 0, "b": 0}, []
    with httpx.Client(base_url=url, follow_redirects=False, timeout=120) as client:
        if client.get("/login", params={"token": token}).status_code != 303:
            raise SystemExit("the annotator's login link was refused")
        while answered < labels:
            start = time.perf_counter()
            page = client.get("/task")
            latencies.append(time.perf_counter() - start)
            page.raise_for_status()
            form = dict(HIDDEN.findall(page.text))
            if "item_id" not in form:
                break  # every item answered
            shown = tuple(html.unescape(text) for _, text in sorted(REPLY.findall(page.text)))
            if shown not in key:
                raise SystemExit(f"task {form['item_id']}: its replies match no item of the items file")
            side = "ab"[key[shown]]
            if think:
                time.sleep(rng.expovariate(1 / think))
            posted = client.post("/label", data={**form, "preference": f"{side}2"})
            if posted.status_code != 303:
                raise SystemExit(f"POST /label answered {posted.status_code}: {posted.text[:300]}")
            answered += 1
            agreed_sides[side] += 1
            if answered % 20 == 0:
                print(f"{answered} labels", flush=True)
    return {"labels": answered, "sides": agreed_sides, "get_task_s_median": sorted(latencies)[len(latencies) // 2]}


def settled_curve(url: str, owner: str, quiet_s: float, timeout_s: float) -> dict[str, Any]:
    """The dashboard's data once no new learning-curve point has appeared for ``quiet_s`` seconds."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=120) as client:
        client.get("/login", params={"token": owner})
        deadline, last, since = time.monotonic() + timeout_s, -1, time.monotonic()
        while True:
            data = client.get("/dashboard/data.json").json()
            points = len(data["learning_curve"])
            if points != last:
                last, since = points, time.monotonic()
            if points and time.monotonic() - since >= quiet_s:
                return data
            if time.monotonic() > deadline:
                raise SystemExit(f"the learning curve did not settle in {timeout_s:.0f} s ({points} points)")
            time.sleep(1.0)


def screenshots(url: str, owner: str, annotator: str, out: Path) -> list[Path]:
    """The dashboard and the annotator's task page at 1280 and 390 px wide (whole pages)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on the PATH (apt-get install -y chromium); or pass --no-screenshots")
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for page_name, token in (("dashboard", owner), ("annotator", annotator)):
            for width in (1280, 390):
                phone = width < 600
                context = browser.new_context(
                    viewport={"width": width, "height": 844 if phone else 900}, is_mobile=phone, has_touch=phone
                )
                page = context.new_page()
                page.goto(f"{url}/login?token={token}")
                page.wait_for_load_state("networkidle")
                path = out / f"{page_name}-{width}.png"
                page.screenshot(path=str(path), full_page=True)
                saved.append(path)
                context.close()
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=300, help="HH-RLHF pairs in the project")
    parser.add_argument("--labels", type=int, default=180, help="labels the simulated annotator gives")
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds before each answer (exponential)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/collect-sim"))
    parser.add_argument("--screenshots", type=Path, default=DOCS, help="folder for the PNGs")
    parser.add_argument("--no-screenshots", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.items < 2 or not 1 <= args.labels <= args.items or args.think < 0:
        parser.error("need --items >= 2, 1 <= --labels <= --items and --think >= 0")
    args.work.mkdir(parents=True, exist_ok=True)
    project, items_file = args.work / "project", args.work / "items.jsonl"
    if project.exists():
        shutil.rmtree(project)
    write_items(items_file, args.items, args.seed)
    guidelines = args.work / "guidelines.md"
    write_text_atomic(guidelines, GUIDELINES + "\n")
    title = "Which reply is better? (HH-RLHF harmless)"
    owner = token_of(
        rewardlab("collect", "init", str(project), "--items", str(items_file), "--title", title,
                  "--guidelines", str(guidelines))
    )  # fmt: skip
    annotator = token_of(rewardlab("collect", "add-annotator", str(project), "sim-annotator"))
    key = answer_key(items_file)
    server, url = start_server(project, args.work / "server.log")
    memory = PeakMemory(server.pid)
    started = time.monotonic()
    try:
        labelled = label_through_http(url, annotator, key, args.labels, args.think, random.Random(args.seed))
        labelling_s = time.monotonic() - started
        data = settled_curve(url, owner, quiet_s=30.0, timeout_s=900.0)
        saved = [] if args.no_screenshots else screenshots(url, owner, annotator, args.screenshots)
        peak, _ = memory.peak()
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    result = {
        "setup": {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "cpu": cpu_name()},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "labelled": labelled,
        "labelling_s": round(labelling_s, 1),
        "total_s": round(time.monotonic() - started, 1),
        "server_peak_rss_mib": round(peak / 2**20),
        "heldout_accuracy": data["heldout_accuracy"],
        "heldout_n": data["heldout_n"],
        "selection": data["selection"],
        "learning_curve": data["learning_curve"],
        "screenshots": [str(p) for p in saved],
    }
    write_text_atomic(args.work / "simulated_annotator.json", json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "learning_curve"}, indent=2))
    for row in data["learning_curve"]:
        print(f"{row['n_labels']:>4} trained labels: {row['heldout_accuracy']:.3f} on {row['heldout_n']} held out")


if __name__ == "__main__":
    main()
