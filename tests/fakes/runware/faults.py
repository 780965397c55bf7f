"""Fault injection for the fake Runware: HTTP error statuses, non-JSON bodies, hangs and dropped connections.

`FakeRunware.inject*` queue faults here; each POST takes the first matching one (see `FaultQueue.take`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from tests.fakes.runware.protocol import error_item, is_type, json_response


@dataclass
class Fault:
    """One injected misbehaviour, for the next `times` POSTs (of `task_type`, if given)."""

    kind: Literal["status", "non_json", "hang", "disconnect"]
    times: int
    task_type: str | None
    process: bool
    status: int = 500
    code: str | None = None
    message: str | None = None
    seconds: float = 0.0
    envelope: Literal["errors", "error"] = "errors"


# The error code an injected status carries unless the test names one.
_STATUS_CODES = {
    400: "invalidRequest",
    401: "invalidApiKey",
    402: "insufficientCredits",
    403: "insufficientPermissions",
    404: "notFound",
    429: "rateLimitExceeded",
    500: "internalServerError",
    502: "badGateway",
    503: "serviceUnavailable",
    504: "gatewayTimeout",
}


class FaultQueue:
    """Pending faults, in the order they were injected."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault behind the pending ones."""
        self._pending.append(fault)

    def clear(self) -> None:
        """Forget every pending fault."""
        self._pending.clear()

    def take(self, body: Any) -> Fault | None:
        """The first pending fault matching this POST body, used up once."""
        for fault in self._pending:
            if fault.task_type is None or (
                isinstance(body, list) and any(is_type(t, fault.task_type) for t in body)
            ):
                fault.times -= 1
                if fault.times <= 0:
                    self._pending.remove(fault)
                return fault
        return None


async def fault_answer(
    request: web.Request, fault: Fault, answer: web.Response | None, body: Any, stopping: asyncio.Event
) -> web.StreamResponse:
    """What a faulted POST gets instead of (or, with `process`, after holding) its real `answer`."""
    if fault.kind == "hang":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), fault.seconds)
        if answer is not None:
            return answer
        return json_response(504, {"errors": [error_item("gatewayTimeout", "Gateway timeout.")]})
    if fault.kind == "disconnect":
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the client
    if fault.kind == "non_json":
        return web.Response(
            status=fault.status,
            text="<html><body>502 Bad Gateway</body></html>",
            content_type="text/html",
        )
    code = fault.code or _STATUS_CODES.get(fault.status, "unknownError")
    first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
    # "{webhookURL}" in a message is filled with the task's own, as a validation error may quote the
    # value it refuses.
    message = (fault.message or f"Injected HTTP {fault.status}.").replace(
        "{webhookURL}", str(first.get("webhookURL", ""))
    )
    if fault.envelope == "error":
        envelope = {"error": error_item(code, message)}
        envelope.update({k: first[k] for k in ("taskUUID", "taskType") if k in first})
        return json_response(fault.status, envelope)
    return json_response(fault.status, {"errors": [error_item(code, message)]})
