"""What one client may take from the scoring server: time to send its request, body size, and a
place among the requests in progress.

Uvicorn times a connection out only between requests. A client that opens a connection and sends
half a request head, or a head and half a body, is otherwise held forever, and a few hundred of
them hold the server. Here a request head must arrive within the keep-alive time of the
connection opening (as between requests), a body within ``body_timeout_s`` of its head, and at
most ``max_requests`` requests whose body has arrived are in progress at once; more get 503 at
once instead of a queue without bound. Every refusal has the server's error body (``rewardlab.serve.asgi``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol, h11

from rewardlab.serve.asgi import RequestError, send_error
from rewardlab.serve.microbatch import ClientGone

CLOSE = {"connection": "close"}


class IdleTimeoutH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol, where a request head must arrive whole within the keep-alive time
    of the connection opening or of its last response.

    Uvicorn arms that timer only after a response and disarms it on any byte received, so a
    connection that sends part of a head (slowloris), or nothing, was never timed out.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_since = self.loop.time()
        self.arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.head_since = self.loop.time()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        waiting_for_head = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if waiting_for_head and self.timeout_keep_alive_task is None:
            self.arm_head_timer()

    def arm_head_timer(self) -> None:
        remaining = max(0.0, self.head_since + self.timeout_keep_alive - self.loop.time())
        self.timeout_keep_alive_task = self.loop.call_later(remaining, self.timeout_keep_alive_handler)


def uvicorn_settings(keep_alive_s: float) -> dict[str, Any]:
    """Uvicorn's own options for the server (``rewardlab serve`` and ``running_server`` alike)."""
    return {"http": IdleTimeoutH11Protocol, "timeout_keep_alive": keep_alive_s}


class BodyLimits:
    """ASGI middleware: the body is read whole before the application sees the request; over
    ``max_bytes`` it gets 413, not arrived ``timeout_s`` after its head 408, both closing the connection.

    A declared ``Content-Length`` is checked first; a chunked body is counted as it arrives. Read
    here, a body still arriving holds no place under ``ConcurrencyLimit`` (which comes after), so
    slow or stalled senders cannot crowd out clients whose requests are complete.
    """

    def __init__(self, app: Any, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    def too_large(self) -> RequestError:
        limit = f"the request body is over the limit of {self.max_bytes} bytes (--max-body-bytes)"
        return RequestError("body", limit, 413, CLOSE)

    def too_slow(self) -> RequestError:
        late = f"did not arrive within {self.timeout_s:g} s of the request's headers (--body-timeout-s)"
        return RequestError("body", late, 408, CLOSE)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                raise self.too_large()
            body = await self.read_body(receive)
        except RequestError as error:
            await send_error(error, send)
            return
        except ClientGone:  # it left mid-body: nobody to answer
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:  # after the body only a disconnect can come
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def read_body(self, receive: Any) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        chunks, size = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise self.too_slow() from None
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                raise self.too_large()
            if not message.get("more_body", False):
                return b"".join(chunks)


class ConcurrencyLimit:
    """ASGI middleware: at most ``max_requests`` requests in progress; more get 503 and Retry-After.

    Not uvicorn's ``limit_concurrency``: that counts open connections too, so a pool of trainer
    workers keeping their connections alive would be refused whole, and its 503 is plain text.
    ``/health`` is not counted, so a monitor can tell a busy server from a dead one.
    """

    def __init__(self, app: Any, max_requests: int, exempt: tuple[str, ...] = ("/health",)) -> None:
        self.app = app
        self.max_requests = max_requests
        self.exempt = exempt
        self.active = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_requests:
            busy = f"the server has {self.active} requests in progress, its limit (--max-concurrent-requests); retry"
            await send_error(RequestError("request", busy, 503, {"retry-after": "1"}), send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
