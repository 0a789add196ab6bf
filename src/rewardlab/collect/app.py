"""The collect web application: annotators label one task at a time; the owner watches a dashboard.

Server-rendered pages (Jinja2, autoescaping on: every prompt, reply, name and guideline is shown as
text, never as markup) and one small script for keyboard shortcuts; no external assets. Every page
also forbids inline scripts by its Content-Security-Policy, so a reply that slipped past escaping
still could not run.

The handlers never wait for the reward model: choosing the next item reads the selector's current
scores (swapped in by the background trainer), and a new label only ``notify()``s the trainer.
Database work runs in FastAPI's thread pool, so one slow write does not hold the other annotators.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from rewardlab.collect.dashboard_view import curve_svg, dashboard_data
from rewardlab.collect.labels import MAX_REASON, parse_form
from rewardlab.collect.store import Annotator, StoredItem
from rewardlab.collect.web_auth import COOKIE, COOKIE_SETTINGS, Ticket, csrf_token, csrf_valid
from rewardlab.serve.limits import BodyLimits

MAX_BODY_BYTES = 64 * 1024
HERE = Path(__file__).parent
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PAIRWISE_CHOICES = (
    ("a3", "A much better"),
    ("a2", "A better"),
    ("a1", "A slightly better"),
    ("tie", "Tie"),
    ("b1", "B slightly better"),
    ("b2", "B better"),
    ("b3", "B much better"),
)
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # the login link carries a token: never pass it on
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class Viewer:
    """The logged-in person and the session token their cookie carries."""

    annotator: Annotator
    token: str

    @property
    def name(self) -> str:
        return self.annotator.name


class PendingTasks:
    """The task each annotator was last shown, so a reload shows the same item (and keeps its
    ``shown_at``) rather than drawing another. In memory: a restart only means a fresh draw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tickets: dict[int, Ticket] = {}

    def get(self, annotator_id: int) -> Ticket | None:
        with self.lock:
            return self.tickets.get(annotator_id)

    def put(self, ticket: Ticket) -> None:
        with self.lock:
            self.tickets[ticket.annotator_id] = ticket

    def done(self, ticket: Ticket) -> None:
        with self.lock:
            if self.tickets.get(ticket.annotator_id) == ticket:
                del self.tickets[ticket.annotator_id]


def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every {{ value }} is escaped, whatever the template's name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def create_app(project: Any, store: Any, selector: Any, trainer: Any = None, *, seed: int | None = None) -> FastAPI:
    """The web app for ``project``'s ``store``; ``selector.pick`` chooses each task; ``trainer``
    (a ``BackgroundTrainer``, optional) is started with the app, stopped with it and notified of
    every new label. ``seed`` fixes the random draws (tests)."""
    config = project.config
    secret: bytes = project.secret
    env = templates()
    pending = PendingTasks()
    rng = random.Random(seed)
    rng_lock = threading.Lock()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if trainer is not None:
            trainer.start()
        try:
            yield
        finally:
            if trainer is not None:
                await run_in_threadpool(trainer.stop)

    app = FastAPI(title=f"rewardlab collect: {config.title}", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.openapi_url = None
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(name: str, status: int = 200, viewer: Viewer | None = None, **values: Any) -> HTMLResponse:
        csrf = csrf_token(secret, viewer.token) if viewer else ""
        html = env.get_template(name).render(title=config.title, viewer=viewer, csrf=csrf, **values)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def message(status: int, heading: str, text: str, viewer: Viewer | None = None, back: str = "") -> HTMLResponse:
        tone = "error" if status >= 400 else ""
        return page("message.html", status, viewer, heading=heading, message=text, tone=tone, back=back)

    def viewer_of(request: Request) -> Viewer | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        annotator = store.annotator_for_token(token)
        return None if annotator is None else Viewer(annotator, token)

    def not_logged_in() -> HTMLResponse:
        return message(401, "Please log in", "Open the personal login link the project owner gave you.")

    def see_other(path: str) -> RedirectResponse:
        return RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"ok": True, "labels": store.label_count()})

    @app.get("/")
    def home(request: Request) -> Response:
        viewer = viewer_of(request)
        if viewer is None:
            return not_logged_in()
        return see_other("/dashboard" if viewer.annotator.is_owner else "/task")

    @app.get("/login")
    def login(request: Request, token: str = "") -> Response:
        annotator = store.annotator_for_token(token) if token else None
        if annotator is None:
            return message(403, "Unknown login link", "This link is not valid; ask the project owner for yours.")
        target = "/dashboard" if annotator.is_owner else "/task"
        if request.headers.get("sec-fetch-site") == "cross-site":
            # a link opened from another site (a mail page): the browser would withhold the SameSite=Strict
            # cookie from a redirect chain begun there, so continue from a page of this site instead
            response: Response = page("continue.html", target=target)
        else:
            response = see_other(target)
        response.set_cookie(COOKIE, token, **COOKIE_SETTINGS)
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        viewer = viewer_of(request)
        form = await request.form()
        if viewer is not None and not csrf_valid(secret, viewer.token, _text(form, "csrf_token")):
            return message(403, "Refused", "The form's CSRF token is missing or wrong; reload the page.", viewer)
        response = message(200, "Logged out", "Open your personal login link to come back.")
        response.delete_cookie(COOKIE, path="/")
        return response

    def progress(annotator_id: int, left: int) -> dict[str, int]:
        own = store.labels(annotator_id)  # only this annotator's own labels, ever
        skipped = sum(label.skipped for label in own)
        return {"labelled": len(own) - skipped, "skipped": skipped, "left": left}

    def next_ticket(annotator_id: int) -> tuple[Ticket | None, int]:
        candidates = store.candidates_for(annotator_id, config.labels_per_item, config.overlap_share)
        if not candidates:
            return None, 0
        shown = pending.get(annotator_id)
        if shown is not None and shown.item_id in candidates:
            return shown, len(candidates)
        with rng_lock:
            item_id, selection = selector.pick(candidates, rng)
        ticket = Ticket(annotator_id, int(item_id), uuid.uuid4().hex, round(time.time(), 3), selection)
        pending.put(ticket)
        return ticket, len(candidates)

    @app.get("/task")
    def task(request: Request) -> Response:
        viewer = viewer_of(request)
        if viewer is None:
            return not_logged_in()
        ticket, left = next_ticket(viewer.annotator.id)
        item = store.item(ticket.item_id) if ticket is not None else None
        if ticket is None or item is None:
            return page("done.html", viewer=viewer, progress=progress(viewer.annotator.id, 0))
        return page(
            "task.html",
            viewer=viewer,
            item=item,
            kind=config.kind,
            attributes=list(config.attributes or []),
            guidelines=config.guidelines or "",
            progress=progress(viewer.annotator.id, left),
            ticket=ticket,
            signature=ticket.sign(secret),
            shown_at_text=repr(ticket.shown_at),
            letters=LETTERS,
            pairwise_choices=PAIRWISE_CHOICES,
            max_reason=MAX_REASON,
        )

    def record(viewer: Viewer, form: Mapping[str, Any]) -> Response:
        try:
            ticket = Ticket(
                viewer.annotator.id,
                int(_text(form, "item_id")),
                _text(form, "submission_id"),
                float(_text(form, "shown_at")),
                _text(form, "selection"),
            )
        except ValueError:
            return message(400, "Bad form", "item_id and shown_at must be numbers; reload the task.", viewer, "/task")
        if not ticket.valid(secret, _text(form, "ticket")):
            return message(400, "Bad form", "ticket: this task was not shown to you so; reload it.", viewer, "/task")
        item: StoredItem | None = store.item(ticket.item_id)
        if item is None:
            return message(400, "Bad form", f"item_id: no item {ticket.item_id}", viewer, "/task")
        try:
            answer = parse_form(config.kind, form, len(item.replies), list(config.attributes or []))
        except ValueError as error:
            return message(400, "Bad form", str(error), viewer, "/task")
        new = store.record_label(
            annotator_id=viewer.annotator.id,
            item_id=item.id,
            submission_id=ticket.submission_id,
            payload=answer.payload,
            skipped=answer.skipped,
            reason=answer.reason,
            shown_at=ticket.shown_at,
            selection=ticket.selection,
        )
        pending.done(ticket)
        if new and trainer is not None:
            trainer.notify()
        return see_other("/task")  # a duplicate too: it is already written once

    @app.post("/label")
    async def label(request: Request) -> Response:
        viewer = await run_in_threadpool(viewer_of, request)
        if viewer is None:
            return not_logged_in()
        form = await request.form()
        if not csrf_valid(secret, viewer.token, _text(form, "csrf_token")):
            return message(403, "Refused", "The form's CSRF token is missing or wrong; reload the task.", viewer)
        return await run_in_threadpool(record, viewer, form)

    def owner_only(request: Request) -> Viewer | Response:
        viewer = viewer_of(request)
        if viewer is None:
            return not_logged_in()
        if not viewer.annotator.is_owner:
            return message(403, "Owner only", "The dashboard is for the project owner.", viewer, "/task")
        return viewer

    def current_data() -> dict[str, Any]:
        return dashboard_data(store, config)

    @app.get("/dashboard")
    def dashboard(request: Request) -> Response:
        viewer = owner_only(request)
        if not isinstance(viewer, Viewer):
            return viewer
        data = current_data()
        return page("dashboard.html", viewer=viewer, **_dashboard_view(data))

    @app.get("/dashboard/data.json")
    def dashboard_json(request: Request) -> Response:
        viewer = owner_only(request)
        if not isinstance(viewer, Viewer):
            return viewer
        return JSONResponse(current_data(), headers={"cache-control": "no-store"})

    # the body limit wraps everything: a form over 64 KiB is refused before it is parsed
    app.add_middleware(BodyLimits, max_bytes=MAX_BODY_BYTES, timeout_s=30.0)
    return app


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _dashboard_view(data: dict[str, Any]) -> dict[str, Any]:
    """What the dashboard template shows, formatted from the JSON the dashboard also serves."""
    accuracy = data.get("heldout_accuracy")
    agreement = data.get("agreement") or {}
    alpha, overlap = agreement.get("alpha"), agreement.get("items")
    return {
        "data": data,
        "annotator_rows": [
            {**row, "median_s": _seconds(row.get("median_seconds")), "p90_s": _seconds(row.get("p90_seconds"))}
            for row in data.get("annotators", [])
        ],
        "accuracy_text": "–" if accuracy is None else f"{accuracy:.1%}",
        "heldout_n": data.get("heldout_n") or 0,
        "alpha_text": "–" if alpha is None else f"{alpha:.2f}",
        "overlap_text": f"{overlap} shared items" if overlap else "",
        "curve": curve_svg(data.get("learning_curve") or []),
    }


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"
