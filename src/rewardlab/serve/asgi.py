"""HTTP plumbing for the scoring server: every error as the one JSON body that names the field, a
body size limit, and uvicorn in a background thread (for tests, benchmarks and notebooks).

Every answer that is not a 2xx, from a route, a middleware or FastAPI itself (404, 405, a body
that is not UTF-8 or is nested past the parser's depth), has the body
``{"error": "FIELD: MESSAGE; ...", "errors": [{"field": FIELD, "message": MESSAGE}, ...]}``, so a
client needs one way to read them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from rewardlab.serve.microbatch import ClientGone


class RequestError(Exception):
    """A request the server cannot serve as asked; becomes ``{"error": ..., "errors": [...]}``."""

    def __init__(self, field: str, message: str, status: int = 422, headers: Mapping[str, str] | None = None) -> None:
        self.field = field
        self.message = message
        self.status = status
        self.headers = dict(headers) if headers else None
        super().__init__(f"{field}: {message}")


def error_body(errors: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {
        "error": "; ".join(f"{field}: {message}" for field, message in errors),
        "errors": [{"field": field, "message": message} for field, message in errors],
    }


def error_response(error: RequestError) -> JSONResponse:
    return JSONResponse(error_body([(error.field, error.message)]), status_code=error.status, headers=error.headers)


async def send_error(error: RequestError, send: Any) -> None:
    """Answer from an ASGI middleware, outside FastAPI's exception handlers."""
    await error_response(error)({"type": "http"}, _no_receive, send)


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(_: Request, error: RequestError) -> JSONResponse:
        return error_response(error)

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

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        return error_response(http_request_error(request, error))

    for status in (400, 404, 405, 413):  # Starlette's and FastAPI's own HTTP errors, by status
        app.add_exception_handler(status, http_error)

    @app.exception_handler(ClientGone)
    async def client_gone(_: Request, __: ClientGone) -> Response:
        return Response(status_code=499)  # nginx's "client closed request"; nobody is there to read it

    @app.exception_handler(Exception)
    async def server_error(_: Request, error: Exception) -> JSONResponse:
        # Starlette still logs the traceback and re-raises it after this answer
        return error_response(RequestError("server", f"internal error ({type(error).__name__}); see its log", 500))


def http_request_error(request: Request, error: Any) -> RequestError:
    """FastAPI's and Starlette's own errors, named: 404 and 405, and bodies its JSON parser rejects.

    FastAPI turns any failure to parse a body into ``400 There was an error parsing the body``;
    the cause it chains (a ``UnicodeDecodeError``, a ``RecursionError``) says what was wrong.
    """
    cause, headers, status = error.__cause__, getattr(error, "headers", None), getattr(error, "status_code", 500)
    if status == 404:
        return RequestError("path", f"{request.url.path} is not an endpoint (see /openapi.json)", 404, headers)
    if status == 405:
        return RequestError("method", f"{request.method} is not allowed on {request.url.path}", 405, headers)
    if isinstance(cause, UnicodeDecodeError):
        where = f"byte 0x{cause.object[cause.start : cause.start + 1].hex()} at position {cause.start}"
        return RequestError("body", f"is not valid UTF-8 ({where})", 400, headers)
    if isinstance(cause, RecursionError):
        return RequestError("body", "is nested too deeply to parse (arrays or objects inside each other)", 400, headers)
    detail = getattr(error, "detail", None) or str(error)
    return RequestError("body" if status in (400, 413) else "request", str(detail), status, headers)


def field_name(loc: Sequence[Any]) -> str:
    """``("body", "items", 2, "response")`` → ``items[2].response``."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


async def _no_receive() -> dict:
    return {"type": "http.disconnect"}


def uvicorn_options(app: FastAPI) -> dict[str, Any]:
    return dict(getattr(app.state, "uvicorn_options", {}))


@contextlib.contextmanager
def running_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 60.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yields its base URL, stops on exit.

    ``port=0`` takes a free port: the socket is bound here and handed to uvicorn, so no other
    process can take the port in between. Uvicorn gets the settings ``create_app`` left in
    ``app.state.uvicorn_options`` (timeouts, protocol), as ``rewardlab serve`` does.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_options(app)))
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
