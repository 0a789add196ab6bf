"""HTTP plumbing for the scoring server: errors as JSON that name the field, a body size limit,
and uvicorn in a background thread (for tests, benchmarks and notebooks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class RequestError(Exception):
    """A request the server cannot serve as asked; becomes ``{"error": ..., "errors": [...]}``."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        self.field = field
        self.message = message
        self.status = status
        super().__init__(f"{field}: {message}")


def error_body(errors: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {
        "error": "; ".join(f"{field}: {message}" for field, message in errors),
        "errors": [{"field": field, "message": message} for field, message in errors],
    }


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(_: Request, error: RequestError) -> JSONResponse:
        return JSONResponse(error_body([(error.field, error.message)]), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        errors, status = [], 422
        for problem in error.errors():
            if problem.get("type") == "json_invalid":
                status = 400
                errors.append(("body", f"is not valid JSON ({problem.get('ctx', {}).get('error', 'parse error')})"))
                continue
            errors.append((field_name(problem.get("loc", ())), str(problem.get("msg", "is invalid"))))
        return JSONResponse(error_body(list(dict.fromkeys(errors))), status_code=status)


def field_name(loc: Sequence[Any]) -> str:
    """``("body", "items", 2, "response")`` → ``items[2].response``."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


class BodySizeLimit:
    """ASGI middleware: bodies over ``max_bytes`` get 413 before they are read whole.

    A declared ``Content-Length`` is checked first; a chunked body is counted as it arrives.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0

        async def counting_receive() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            await self._reject(send)

    async def _reject(self, send: Any) -> None:
        limit = f"the request body is over the limit of {self.max_bytes} bytes (--max-body-bytes)"
        response = JSONResponse(error_body([("body", limit)]), status_code=413)
        await response({"type": "http"}, _no_receive, send)


class _BodyTooLarge(Exception):
    pass


async def _no_receive() -> dict:
    return {"type": "http.disconnect"}


@contextlib.contextmanager
def running_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 60.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yields its base URL, stops on exit.

    ``port=0`` takes a free port: the socket is bound here and handed to uvicorn, so no other
    process can take the port in between.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="rewardlab-server")
    bound = sock.getsockname()[1]
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=timeout_s)
            sock.close()
            raise RuntimeError(f"the scoring server did not start on {host}:{bound}")
        time.sleep(0.01)
    try:
        yield f"http://[{host}]:{bound}" if family == socket.AF_INET6 else f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)
        sock.close()
