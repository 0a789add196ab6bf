"""The scoring server behind ``rewardlab serve MODEL``: rewards over HTTP, for RL trainers.

Endpoints: ``POST /score`` (items of prompt and response, optionally transformed),
``POST /get_reward`` (OpenRLHF's remote reward-model protocol), ``GET /health``, ``GET /info``,
and FastAPI's ``/openapi.json`` and ``/docs``. Requests are merged into batches across clients
(``rewardlab.serve.microbatch``), tokenised in one thread and scored in another, so the event loop
never waits on the model. Every mistake in a request gets a 4xx answer naming the field, and
every other error (a non-finite reward: 500 naming the item) the same body:
``{"error": "items[2].response: ...", "errors": [{"field": ..., "message": ...}]}``.
Limits on what one client may take (time, size, concurrency) are in ``rewardlab.serve.limits``;
the optional bearer token in ``rewardlab.serve.auth``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from jinja2 import TemplateError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rewardlab.data.records import DataError, Prompt
from rewardlab.data.schema import parse_prompt
from rewardlab.models.reward_model import RewardModel, inference_copy
from rewardlab.models.sequences import TILE_TOKENS, Encoded, scoring_tiles
from rewardlab.models.users import UserExamples
from rewardlab.precision import Precision, precision_problem
from rewardlab.rewards.direction import direction_problem
from rewardlab.rewards.transforms import RewardStats, TransformError, apply_transform, get_transform, transform_names
from rewardlab.runs.config import Checked
from rewardlab.serve.asgi import RequestError, add_error_handlers
from rewardlab.serve.auth import BearerToken, exposure_warning, read_token
from rewardlab.serve.docs import add_local_docs
from rewardlab.serve.limits import BodyLimits, ConcurrencyLimit, uvicorn_settings
from rewardlab.serve.microbatch import BatchStats, ClientGone, MicroBatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeConfig(Checked):
    """Batching and request limits of the scoring server (every limit answers a clear 4xx)."""

    max_batch_items: int = 256
    """Items scored together at most (one request's items are never split)."""
    max_wait_ms: float = 5.0
    """How long the first queued request waits for others to join its batch."""
    max_items: int = 512
    """Items per request (with their reference responses)."""
    max_text_chars: int = 32_768
    """Characters per prompt, response or query (texts are cut to the model's max_length tokens anyway)."""
    max_body_bytes: int = 8 * 1024 * 1024
    precision: Precision = "auto"
    tile_tokens: int = TILE_TOKENS
    """Tokens per forward pass (``RewardModel.score_ids``). A pass has a fixed shape per padded width,
    filled up with filler rows; with ``RewardModel.score``'s pass size (the default) a reply gets the
    offline reward bit for bit, whatever it is batched with."""
    warmup: bool = True
    """Score one dummy sequence of every padded width at start, so first requests pay no kernel set-up."""
    body_timeout_s: float = 30.0
    """A request body must arrive within this many seconds of its headers (408 and closed beyond)."""
    keep_alive_s: float = 60.0
    """An idle connection, or a new one that has not sent a whole request head, is closed after this."""
    max_concurrent_requests: int = 512
    """Requests in progress at most, counted once their body has arrived (503 and Retry-After beyond; /health apart)."""
    token_file: str | None = None
    """A file holding a bearer token: every request but /health must send ``Authorization: Bearer <token>``."""
    direction: list[float] | None = None
    """For a multi-attribute model: the weights that combine its attributes when a request gives none
    (default: the model's saved direction). Refused for a model without attributes, which would ignore it."""

    def problems(self) -> list[str]:
        positive = ("max_batch_items", "max_items", "max_text_chars", "max_body_bytes", "tile_tokens")
        positive += ("body_timeout_s", "keep_alive_s", "max_concurrent_requests")
        errors = [f"{name} must be positive (got {value})" for name in positive if (value := getattr(self, name)) <= 0]
        if self.max_wait_ms < 0:
            errors.append(f"max_wait_ms must not be negative (got {self.max_wait_ms})")
        if problem := precision_problem(self.precision):
            errors.append(problem)
        if self.direction is not None and (
            not self.direction or not all(math.isfinite(w) for w in self.direction) or not any(self.direction)
        ):
            errors.append(f"direction must be a finite, non-zero vector (got {list(self.direction)})")
        if self.token_file is not None:
            try:
                read_token(self.token_file)
            except (OSError, ValueError) as error:
                errors.append(str(error))
        return errors


# -- request and response bodies -------------------------------------------------------------------

PROMPT_SCHEMA = {
    "anyOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"role": {"enum": ["system", "user", "assistant"]}, "content": {"type": "string"}},
                "required": ["role", "content"],
            },
        },
    ]
}


class ScoreItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: Any = Field(
        description="The prompt: text, or a conversation as a list of {role, content} messages",
        json_schema_extra=PROMPT_SCHEMA,
    )
    response: str = Field(description="The reply to score")
    reference: list[str] | None = Field(
        None, description="Reference replies to the same prompt (one, or a list), for the lsc and par transforms"
    )

    @field_validator("reference", mode="before")
    @classmethod
    def _one_reference(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class TransformSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="One of: " + ", ".join(transform_names()))
    args: dict[str, Any] = Field(default_factory=dict, description="The transform's numeric options")


DIRECTION_HELP = (
    "For a multi-attribute model: one weight per attribute; the reward is the attributes' projection on "
    "this direction (default: the server's --direction, else the model's). Refused for other models"
)


class UserExample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: Any = Field(description="The prompt, as in items", json_schema_extra=PROMPT_SCHEMA)
    chosen: str = Field(description="The reply the new user preferred")
    rejected: str = Field(description="The reply the new user liked less")


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[ScoreItem] = Field(min_length=1)
    transform: TransformSpec | None = Field(
        None,
        description="Applied to this request's rewards; whiten uses the request as its batch, "
        "step_clip and step_delta read the items as the successive steps of one solution",
    )
    direction: list[float] | None = Field(None, description=DIRECTION_HELP)
    user: str | None = Field(None, description="Pluralistic model: score for this annotator id (GET /info: users)")
    user_examples: list[UserExample] | None = Field(
        None, min_length=1, description="Pluralistic model: a new user's labelled pairs; their row is fitted to them"
    )


class ScoreResponse(BaseModel):
    rewards: list[float] = Field(description="One reward per item, after the transform if one was asked for")
    raw_rewards: list[float] | None = Field(None, description="The model's rewards before the transform")
    truncated: list[bool] = Field(description="Whether an item was cut (from the left) to the model's max_length")
    scored_for: str | None = Field(
        None, description="Pluralistic model: whom the rewards are for, user, new_user or population; else null"
    )


class GetRewardRequest(BaseModel):
    """OpenRLHF's ``--remote_rm_url`` body; other fields it may send are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    query: list[str] = Field(min_length=1, description="Prompt and response, as one text each")
    prompts: list[str] | None = Field(None, description="The prompt that starts each query")
    labels: list[Any] | None = Field(None, description="Ground truths (not used by a reward model)")
    transform: TransformSpec | None = None
    direction: list[float] | None = Field(None, description=DIRECTION_HELP)
    user: str | None = Field(
        None, description="Pluralistic model: score for this annotator id (OpenRLHF sends none: the population)"
    )


class GetRewardResponse(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, Any]
    scored_for: str | None = Field(None, description="Pluralistic model: user or population; absent otherwise")


# -- the scoring service --------------------------------------------------------------------------------


class ScoringService:
    """One model, one tokenising thread, one scoring thread, and the micro-batcher between them.

    The tokenizer is used from its own thread only (fast tokenizers are not safe to share across
    threads); the scoring thread only reads its pad id. In bf16 the bf16 copy of the weights is
    made once (``inference_copy``), not for every batch.
    """

    def __init__(self, model: RewardModel, model_path: str, config: ServeConfig) -> None:
        config.check()
        check_scores_replies(model, model_path)
        self.attributes = model.info.head == "attributes"
        self.pluralistic = model.users is not None
        if problem := direction_problem(model.info.head, model.model.config.num_labels, config.direction):
            raise ValueError(f"{model_path + ': ' if model_path else ''}--direction {problem}")
        self.config = config
        self.model_path = model_path
        self.model, self.precision = inference_copy(model, config.precision)
        self.stats = RewardStats(model.info.reward_mean, model.info.reward_std)
        self.batcher: MicroBatcher[list[int]] = MicroBatcher(
            self._score_ids, max_batch_items=config.max_batch_items, max_wait_s=config.max_wait_ms / 1000
        )
        self._tokenize: ThreadPoolExecutor | None = None
        self.started = time.time()

    async def start(self) -> None:
        self._tokenize = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardlab-tokenize")
        await self.batcher.start()
        if self.config.warmup:
            await self.batcher.submit(self._warmup_ids())
            self.batcher.stats = BatchStats()

    def _warmup_ids(self) -> list[list[int]]:
        """One sequence per padded width up to ``max_length``: every forward shape the server will run."""
        token = self.model.tokenizer("reward", add_special_tokens=False)["input_ids"][:1] or [0]
        step = inspect.signature(scoring_tiles).parameters["granularity"].default
        return [token * width for width in range(step, self.model.info.max_length + step, step)]

    async def stop(self) -> None:
        await self.batcher.stop()
        if self._tokenize is not None:
            self._tokenize.shutdown(wait=True)

    def _score_ids(self, ids: list[list[int]]) -> list[Any]:
        """Rewards, or for a multi-attribute model each item's attributes: requests batched together may
        weigh them along different directions, so each request combines its own (``score``)."""
        if self.attributes or self.pluralistic:  # weighed by each request's direction, or for its user
            return self.model.outputs_ids(ids, precision=self.precision, tile_tokens=self.config.tile_tokens).tolist()
        return self.model.score_ids(ids, precision=self.precision, tile_tokens=self.config.tile_tokens)

    def direction(self, weights: list[float] | None) -> list[float] | None:
        """A request's direction, refused (naming the field) when the model has no attributes to weigh."""
        if problem := direction_problem(self.model.info.head, self.model.model.config.num_labels, weights):
            raise RequestError("direction", problem)
        return weights

    def user(self, user: str | None, examples: list[UserExample] | None) -> str | UserExamples | None:
        """Whom a request is scored for, checked: a known user id, a new user's examples, or None (the population)."""
        if user is None and examples is None:
            return None
        field = "user" if user is not None else "user_examples"
        if user is not None and examples is not None:
            raise RequestError("user_examples", "is given with user; give one of them")
        if self.model.users is None:
            raise RequestError(field, "is for a pluralistic model; this one gives one reward for everyone")
        if user is not None:
            try:
                self.model.users.row(user)
            except ValueError as error:
                raise RequestError("user", str(error)) from None
            return user
        check_count(2 * len(examples), "user_examples", self.config.max_items)
        prompts = []
        for index, example in enumerate(examples):
            where = f"user_examples[{index}]"
            try:
                prompts.append(parse_prompt(example.prompt, where, "prompt"))
            except DataError as error:
                raise RequestError(f"{where}.prompt", error.reason) from None
            for name in ("chosen", "rejected"):
                check_text(getattr(example, name), f"{where}.{name}", self.config.max_text_chars)
        return UserExamples(prompts, [e.chosen for e in examples], [e.rejected for e in examples])

    async def user_row(self, user: str | UserExamples | None, request: Request | None) -> torch.Tensor | None:
        """A pluralistic model's row for ``user``: a new user's is fitted to the outputs of their examples,
        which are computed in the scoring thread like any request's."""
        if not isinstance(user, UserExamples):
            return None if user is None else self.model.users.row(user).detach()
        k = len(user.prompts)
        pairs = list(zip([*user.prompts, *user.prompts], [*user.chosen, *user.rejected], strict=True))
        names = [f"user_examples[{i % k}].{'chosen' if i < k else 'rejected'}" for i in range(2 * k)]
        encoded = await asyncio.get_running_loop().run_in_executor(self._tokenize, self._encode, pairs, names)
        gone = request.is_disconnected if request is not None else None
        outputs = torch.tensor(await self.batcher.submit(encoded.ids, gone)).reshape(2 * k, -1)
        fit = self.model.users.user_model.fit
        return await asyncio.get_running_loop().run_in_executor(
            None, fit, outputs[:k], outputs[k:], self.model.users.rows.detach()
        )

    async def score(
        self,
        pairs: Sequence[tuple[Prompt, str]],
        names: Sequence[str],
        request: Request | None = None,
        direction: Sequence[float] | None = None,
        user: str | UserExamples | None = None,
    ) -> tuple[list[float], list[bool]]:
        """Rewards and truncation flags of (prompt, response) pairs, batched with other requests.

        ``names`` says where each pair is in the request, for errors and for a reward that is not a
        finite number (500: the model, not the request, is at fault). A ``request`` whose client has
        left, by now (then it is not even tokenised) or by the time its batch is formed, is not
        scored (``ClientGone``). ``direction`` weighs a multi-attribute model's attributes (default: the
        server's ``--direction``, else the model's own); ``user`` is whom a pluralistic model scores for.
        """
        if request is not None and await request.is_disconnected():
            self.batcher.stats.abandoned += 1
            raise ClientGone
        encoded = await asyncio.get_running_loop().run_in_executor(self._tokenize, self._encode, pairs, names)
        gone = request.is_disconnected if request is not None else None
        rewards = await self.batcher.submit(encoded.ids, gone)
        if self.attributes:
            weights = direction if direction is not None else self.config.direction
            rewards = self.model.reduce(torch.tensor(rewards), direction=weights)[0].tolist()
        elif self.pluralistic:
            row = await self.user_row(user, request)
            rewards = self.model.reduce(torch.tensor(rewards), user_row=row)[0].tolist()
        check_finite(rewards, names, "the model's reward")
        return rewards, encoded.truncated

    def _encode(self, pairs: Sequence[tuple[Prompt, str]], names: Sequence[str]) -> Encoded:
        """Token ids; a pair the text format cannot render (e.g. a chat template's rule) is named."""
        try:
            return self.model.encode([p for p, _ in pairs], [r for _, r in pairs])
        except (TemplateError, ValueError, TypeError):
            for name, (prompt, response) in zip(names, pairs, strict=True):
                try:
                    self.model.encode([prompt], [response])
                except (TemplateError, ValueError, TypeError) as error:
                    raise RequestError(name, f"cannot be formatted for this model: {error}") from None
            raise

    def info(self) -> dict[str, Any]:
        model, info = self.model, self.model.info
        return {
            "model": self.model_path,
            "architecture": (model.model.config.architectures or [type(model.model).__name__])[0],
            "backbone": info.backbone,
            "objective": info.objective,
            "max_length": info.max_length,
            "text_format": info.text_format,
            "reward_mean": info.reward_mean,
            "reward_std": info.reward_std,
            "temperature": info.temperature,
            "head": info.head,
            "users": len(model.users) if model.users is not None else None,
            "direction": self.config.direction or info.direction if self.attributes else None,
            "precision": self.precision,
            "device": str(model.model.device),
            "limits": {**asdict(self.config), "token_file": self.config.token_file and str(self.config.token_file)},
            "transforms": {name: describe_transform(name) for name in transform_names()},
            "pid": os.getpid(),
        }


def describe_transform(name: str) -> dict[str, Any]:
    """What ``/info`` says of a transform: its formula, its options (defaults, or what they need), references."""
    transform = get_transform(name)
    options: dict[str, Any] = {}
    for key, default in transform.options.items():
        if default is None:
            options[key] = "the model's saved value" if transform.uses_stats else "required"
        else:
            options[key] = default if math.isfinite(default) else str(default)  # JSON has no infinity
    return {"summary": transform.summary, "options": options, "reference": transform.reference}


# -- checks ------------------------------------------------------------------------------------------


def check_scores_replies(model: RewardModel, model_path: str = "") -> None:
    """Refuse a model that has no reward for one reply, before any server starts.

    A preference-embedding model (head ``preference``, e.g. GPM) gives the log-odds of one reply
    against another; the server answers one reward per reply, so it would fail only at its first
    forward pass, inside the server's start-up, as a traceback. A ``ValueError`` here is one line.
    """
    check_head_scores_replies(model.info.head, model.info.objective, model_path)


def check_head_scores_replies(head: str, objective: str = "", model_path: str = "") -> None:
    """``check_scores_replies`` from a saved head alone, so ``--replicas`` refuses before loading weights."""
    if head == "preference":
        name = f"{model_path}: " if model_path else ""
        objective = f", objective {objective}" if objective else ""
        raise ValueError(
            f"{name}a preference model (head 'preference'{objective}) scores pairs of replies, not single "
            "replies, so it cannot serve one reward per reply; use it with `rewardlab eval` or `rewardlab compare`"
        )


def check_text(value: str, field: str, limit: int) -> None:
    if len(value) > limit:
        raise RequestError(field, f"is {len(value)} characters, over the limit of {limit} (--max-text-chars)", 413)


def check_finite(values: Sequence[float], names: Sequence[str], what: str) -> None:
    """A NaN or infinite reward is refused (500 naming the item), never sent as JSON ``null``."""
    for name, value in zip(names, values, strict=False):
        if not math.isfinite(value):
            raise RequestError(name, f"{what} is {value}, not a finite number; the server refuses to send it", 500)


def check_count(count: int, field: str, limit: int) -> None:
    if count > limit:
        raise RequestError(field, f"has {count} items, over the limit of {limit} per request (--max-items)", 413)


def score_pairs(items: Sequence[ScoreItem], config: ServeConfig) -> list[tuple[Prompt, str]]:
    """Validated (prompt, response) pairs of ``/score`` items, within the text limits."""
    pairs = []
    for index, item in enumerate(items):
        where = f"items[{index}]"
        try:
            prompt = parse_prompt(item.prompt, where, "prompt")
        except DataError as error:
            raise RequestError(f"{where}.prompt", error.reason) from None
        texts = [prompt] if isinstance(prompt, str) else [m["content"] for m in prompt]
        check_text("".join(texts), f"{where}.prompt", config.max_text_chars)
        check_text(item.response, f"{where}.response", config.max_text_chars)
        for position, reference in enumerate(item.reference or []):
            check_text(reference, f"{where}.reference[{position}]", config.max_text_chars)
        pairs.append((prompt, item.response))
    return pairs


def split_queries(query: Sequence[str], prompts: Sequence[str] | None, strip: Sequence[str]) -> list[tuple[str, str]]:
    """OpenRLHF sends prompt + response as one text; the response is what follows the prompt.

    Without ``prompts`` (older OpenRLHF) each query is scored whole, as a response to no prompt.
    Trailing ``strip`` strings (the reward model's own eos and pad tokens) are removed from the
    response, as OpenRLHF's own server does.
    """
    if prompts is None:
        return [("", _strip_end(q, strip)) for q in query]
    if len(prompts) != len(query):
        raise RequestError("prompts", f"has {len(prompts)} entries but query has {len(query)} (one prompt per query)")
    pairs = []
    for index, (text, prompt) in enumerate(zip(query, prompts, strict=True)):
        if not text.startswith(prompt):
            at = next((i for i, (a, b) in enumerate(zip(text, prompt, strict=False)) if a != b), len(text))
            raise RequestError(
                f"query[{index}]",
                f"does not start with prompts[{index}] (they differ from character {at}); "
                "the response is taken as the query after its prompt",
            )
        pairs.append((prompt, _strip_end(text[len(prompt) :], strip)))
    return pairs


def _strip_end(text: str, tokens: Sequence[str]) -> str:
    changed = True
    while changed:
        changed = False
        for token in tokens:
            if token and text.endswith(token):
                text, changed = text[: -len(token)], True
    return text


def transformed(
    spec: TransformSpec | None, rewards: list[float], references: list[list[float]] | None, stats: RewardStats
) -> list[float]:
    if spec is None:
        return rewards
    try:
        return apply_transform(spec.name, rewards, args=spec.args, references=references, stats=stats)
    except TransformError as error:
        raise RequestError(error.field, str(error).removeprefix(f"{error.field}: ")) from None


# -- the application ---------------------------------------------------------------------------------------


def create_app(model: RewardModel, *, model_path: str = "", config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI application serving ``model`` (started and stopped by the ASGI lifespan)."""
    config = config or ServeConfig()
    service = ScoringService(model, model_path, config)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="rewardlab scoring server",
        description="Rewards from a rewardlab reward model, batched across concurrent requests.",
        lifespan=lifespan,
        docs_url=None,  # add_local_docs: FastAPI's page loads Swagger UI from a CDN
        redoc_url=None,
    )
    app.state.service = service
    app.state.uvicorn_options = uvicorn_settings(config.keep_alive_s)
    # the last added runs first: the token, then the body read whole, then the concurrency limit
    app.add_middleware(ConcurrencyLimit, max_requests=config.max_concurrent_requests)
    app.add_middleware(BodyLimits, max_bytes=config.max_body_bytes, timeout_s=config.body_timeout_s)
    if config.token_file is not None:
        app.add_middleware(BearerToken, token=read_token(config.token_file))
    add_error_handlers(app)
    add_local_docs(app)

    @app.post("/score", response_model=ScoreResponse)
    async def score(body: ScoreRequest, request: Request) -> ScoreResponse:
        """Rewards for (prompt, response) items, optionally transformed (see ``GET /info``)."""
        check_count(len(body.items) + sum(len(i.reference or []) for i in body.items), "items", config.max_items)
        pairs = score_pairs(body.items, config)
        wants_reference = body.transform is not None and get_transform_or_error(body.transform).reference
        reference_pairs = [(p, r) for (p, _), i in zip(pairs, body.items, strict=True) for r in i.reference or []]
        if reference_pairs and not wants_reference:
            raise RequestError("items.reference", "is given but the transform uses none (give it with lsc or par)")
        names = [f"items[{k}]" for k in range(len(pairs))]
        names += [f"items[{k}].reference[{j}]" for k, i in enumerate(body.items) for j in range(len(i.reference or []))]
        direction = service.direction(body.direction)
        user = service.user(body.user, body.user_examples)
        rewards, truncated = await service.score(pairs + reference_pairs, names, request, direction, user)
        own, reference_rewards = rewards[: len(pairs)], iter(rewards[len(pairs) :])
        references = [[next(reference_rewards) for _ in i.reference or []] for i in body.items]
        final = transformed(body.transform, own, references if wants_reference else None, service.stats)
        check_finite(final, names, "the transformed reward")
        raw = own if body.transform is not None else None
        scored_for = scored_for_name(user) if service.pluralistic else None
        return ScoreResponse(rewards=final, raw_rewards=raw, truncated=truncated[: len(pairs)], scored_for=scored_for)

    @app.post("/get_reward", response_model=GetRewardResponse, response_model_exclude_none=True)
    async def get_reward(body: GetRewardRequest, request: Request) -> GetRewardResponse:
        """OpenRLHF's remote reward model: ``{"query", "prompts", "labels"}`` → rewards and scores."""
        check_count(len(body.query), "query", config.max_items)
        if body.labels is not None and len(body.labels) != len(body.query):
            raise RequestError("labels", f"has {len(body.labels)} entries but query has {len(body.query)}")
        for index, text in enumerate(body.query):
            check_text(text, f"query[{index}]", config.max_text_chars)
        tokenizer = service.model.tokenizer
        pairs = split_queries(body.query, body.prompts, [t for t in (tokenizer.eos_token, tokenizer.pad_token) if t])
        names = [f"query[{k}]" for k in range(len(pairs))]
        user = service.user(body.user, None)
        rewards, _ = await service.score(pairs, names, request, service.direction(body.direction), user)
        rewards = transformed(body.transform, rewards, None, service.stats)
        check_finite(rewards, names, "the transformed reward")
        scored_for = scored_for_name(user) if service.pluralistic else None
        return GetRewardResponse(rewards=rewards, scores=rewards, extra_logs={}, scored_for=scored_for)

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 while the scoring loop runs, 503 otherwise; with batching counters."""
        running = service.batcher.running
        stats = asdict(service.batcher.stats)
        body = {"status": "ok" if running else "stopped", "uptime_s": round(time.time() - service.started, 1), **stats}
        body["pid"] = os.getpid()  # which process answered, under `rewardlab serve --replicas N`
        return JSONResponse(body, status_code=200 if running else 503)

    @app.get("/info")
    async def info() -> dict[str, Any]:
        """The model (path, backbone, max length, text format, reward statistics) and the server's limits."""
        return service.info()

    return app


def scored_for_name(user: str | UserExamples | None) -> str:
    """What a pluralistic model's response says it scored for: ``user``, ``new_user`` or ``population``."""
    if user is None:
        return "population"
    return "new_user" if isinstance(user, UserExamples) else "user"


def get_transform_or_error(spec: TransformSpec):
    try:
        return get_transform(spec.name)
    except TransformError as error:
        raise RequestError("transform.name", str(error).removeprefix("transform: ")) from None


# -- running it ----------------------------------------------------------------------------------------


def serve(model_path: str, *, host: str = "127.0.0.1", port: int = 8000, config: ServeConfig | None = None) -> None:
    """Load the model and serve it until interrupted (what ``rewardlab serve`` runs)."""
    config = config or ServeConfig()
    if warning := exposure_warning(host, config.token_file is not None):
        log.warning("warning: %s", warning)
    app = create_app(RewardModel.from_pretrained(model_path), model_path=str(model_path), config=config)
    uvicorn.run(app, host=host, port=port, log_level="info", **app.state.uvicorn_options)
