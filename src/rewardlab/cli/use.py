"""Commands that use a reward model: ``score``, ``export``, ``serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import app, out, user_errors
from rewardlab.cli.options import PrecisionOption


@app.command()
@user_errors
def score(
    model: Annotated[Path, typer.Argument(help="Saved reward model folder")],
    input: Annotated[Path, typer.Argument(help="Rows with a prompt and a response (JSONL, JSON, CSV, Parquet)")],
    output: Annotated[
        Path,
        typer.Option(help="Where to write the rows with a 'reward' field (JSONL; with --workers, a folder of Parquet)"),
    ],
    prompt_field: str = "prompt",
    response_field: str = "response",
    precision: PrecisionOption = "auto",
    member: Annotated[
        list[Path] | None, typer.Option(help="Another model to score as one ensemble with MODEL (repeatable)")
    ] = None,
    aggregation: Annotated[
        str | None, typer.Option(help="Ensembles: mean, wco (worst member) or uwo (mean − λ·variance)")
    ] = None,
    uncertainty_weight: Annotated[float | None, typer.Option(help="Ensembles: λ of uwo")] = None,
    direction: Annotated[str | None, typer.Option(help="Multi-attribute models: attribute weights, e.g. 1,0.5")] = None,
    user: Annotated[str | None, typer.Option(help="Pluralistic models: score for this annotator id")] = None,
    user_examples: Annotated[
        Path | None, typer.Option(help="Pluralistic models: a new user's labelled pairs (JSONL) to score for")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Score over Ray with N workers, one model each; --output is a folder of shards")
    ] = None,
    shard_rows: Annotated[
        int | None, typer.Option(help="With --workers: rows per Parquet shard (a rerun scores the missing ones)")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="With --workers: a Ray cluster to join (auto, ray://host:port); default local")
    ] = None,
) -> None:
    """Score each (prompt, response) row; the output is written whole or not at all.

    An ensemble (several --member models, or a model trained with an ensemble objective) also
    writes each reward's 'uncertainty': the variance across members. A pluralistic model scores for
    the population, or for --user, or for a new user fitted from --user-examples. With --workers,
    the same rewards are scored on a Ray cluster into Parquet shards, each written whole or not at all.
    """
    options = dict(locals())  # the command's parameters are score_file's keywords, bar --workers' own
    distributed = {key: options.pop(key) for key in ("workers", "shard_rows", "ray_address")}
    if workers is not None:
        from rewardlab.evaluate.score_ray import score_file_ray

        given = {key: value for key, value in distributed.items() if value is not None}  # else the defaults
        sharded = score_file_ray(output_dir=options.pop("output"), **options, **given, progress=True)
        out.print(sharded.summary())
        return
    if given := [key for key, value in distributed.items() if value is not None]:
        raise ValueError(f"--{given[0].replace('_', '-')} is for --workers (scoring over Ray); add --workers N")
    from rewardlab.evaluate.score_file import score_file

    scored = score_file(**options, progress=True)
    whom = f" for user {user}" if user else (f" for the new user of {user_examples}" if user_examples else "")
    out.print(f"scored {len(scored)} rows{whom} → {output}")


@app.command()
@user_errors
def export(
    model: Annotated[Path, typer.Argument(help="Saved reward model folder")],
    to: Annotated[str, typer.Option("--to", help="trl, openrlhf or rewardbench")],
    output: Annotated[Path, typer.Option(help="Folder to write (replaced whole)")],
) -> None:
    """Write MODEL as the folder TRL, OpenRLHF or RewardBench scores as `rewardlab score` does.

    A model that consumer would score differently is refused, with why (e.g. OpenRLHF and encoders).
    """
    from rewardlab.models.export import export_model

    out.print(f"exported for {to} → {export_model(model, to, output)}")


SERVER_PLACE = ("model", "port", "host", "replicas", "replica_timeout")
"""``serve``'s parameters that are not ``ServeConfig``'s."""


@app.command("serve")
@user_errors
def serve_command(
    model: Annotated[Path, typer.Argument(help="Saved reward model folder")],
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 for every interface")] = "127.0.0.1",
    precision: PrecisionOption = "auto",
    max_batch_items: Annotated[int, typer.Option(help="Items scored together at most")] = 256,
    max_wait_ms: Annotated[float, typer.Option(help="How long a request waits for others to batch with")] = 5.0,
    max_items: Annotated[int, typer.Option(help="Items per request at most (413 beyond)")] = 512,
    max_text_chars: Annotated[int, typer.Option(help="Characters per text at most (413 beyond)")] = 32_768,
    max_body_bytes: Annotated[int, typer.Option(help="Request body size at most (413 beyond)")] = 8 * 1024 * 1024,
    tile_tokens: Annotated[
        int | None, typer.Option(help="Tokens per forward pass (default: `rewardlab score`'s, so the same rewards)")
    ] = None,
    warmup: Annotated[bool, typer.Option(help="Run every forward shape once before serving")] = True,
    body_timeout_s: Annotated[
        float, typer.Option(help="Seconds a request body may take to arrive after its headers (408 beyond)")
    ] = 30.0,
    keep_alive_s: Annotated[
        float, typer.Option(help="Seconds an idle connection, or one still sending its request head, stays open")
    ] = 60.0,
    max_concurrent_requests: Annotated[
        int, typer.Option(help="Requests in progress at most (503 with Retry-After beyond; /health apart)")
    ] = 512,
    token_file: Annotated[
        Path | None,
        typer.Option(help="File with a bearer token: requests but /health must send 'Authorization: Bearer <token>'"),
    ] = None,
    direction: Annotated[
        str | None,
        typer.Option(help="Multi-attribute model: its attributes' weights, e.g. 1,0.5 (a request's direction wins)"),
    ] = None,
    replicas: Annotated[
        int,
        typer.Option(help="Server processes on the port, each with its own model, batcher and share of the cores"),
    ] = 1,
    replica_timeout: Annotated[
        float | None,
        typer.Option(help="With --replicas: seconds a replica may leave /health unanswered before it is replaced [30]"),
    ] = None,
) -> None:
    """Serve rewards over HTTP: POST /score, POST /get_reward (OpenRLHF), GET /health, GET /info, /docs."""
    options = dict(locals())  # the command's parameters: ServeConfig's fields, and where and how many to serve
    settings = {k: v for k, v in options.items() if k not in SERVER_PLACE and v is not None}
    from rewardlab.rewards.direction import direction_weights
    from rewardlab.serve.server import ServeConfig, serve

    if direction is not None:
        settings["direction"] = direction_weights(direction)

    config = ServeConfig(**settings)  # the options left are ServeConfig's fields (tile_tokens unset: its default)

    config.check()
    from rewardlab.models.reward_model import saved_model_problem

    if problem := saved_model_problem(model):
        raise FileNotFoundError(f"{model}: {problem}")
    if replicas != 1:
        from rewardlab.serve.replicas import serve_replicas

        watch = {"hang_s": replica_timeout} if replica_timeout is not None else {}
        serve_replicas(str(model), replicas=replicas, host=host, port=port, config=config, **watch)
        return
    if replica_timeout is not None:
        raise ValueError("--replica-timeout is for --replicas N (several server processes)")
    serve(str(model), host=host, port=port, config=config)
