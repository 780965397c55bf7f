"""`GET /healthz`: is this process able to do its work? 200 when the database answers, the gateway is
connected and the job runner is alive; 503 naming each part that is not.

The checks come from bot.py as callables (web/ knows neither the database nor Discord). The answer is a
small JSON object, the same shape either way, with no ids, names or secrets:
`{"status": "ok", "database": "ok", "gateway": "ok", "runner": "ok"}`, or `"status": "failing"` and
`"failing"` for each part that is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger(__name__)

# The database must answer its one-line question within this (a health check that hangs tells nothing).
DATABASE_TIMEOUT_S = 2.0
OK = "ok"
FAILING = "failing"


@dataclass(frozen=True)
class HealthChecks:
    """How to tell whether each part works: `database` raises (or times out) when it does not answer;
    `gateway` and `runner` say whether this process's gateway connections and job runner are up."""

    database: Callable[[], Awaitable[None]]
    gateway: Callable[[], bool]
    runner: Callable[[], bool]


async def check(checks: HealthChecks) -> dict[str, str]:
    """Run every check once; each part is "ok" or "failing", and `status` is "ok" only when all are."""
    parts = {
        "database": await _database_answers(checks.database),
        "gateway": _holds(checks.gateway, "gateway"),
        "runner": _holds(checks.runner, "runner"),
    }
    report = {"status": OK if all(parts.values()) else FAILING}
    report.update({name: OK if fine else FAILING for name, fine in parts.items()})
    return report


async def _database_answers(ping: Callable[[], Awaitable[None]]) -> bool:
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_S):
            await ping()
    except Exception as error:
        # The type only: a driver's message may quote the connection string.
        log.warning("health: the database does not answer (%s)", type(error).__name__)
        return False
    return True


def _holds(probe: Callable[[], bool], part: str) -> bool:
    try:
        return probe()
    except Exception:
        log.exception("health: the %s check failed", part)
        return False


def add_health_route(app: web.Application, checks: HealthChecks) -> None:
    """Serve GET /healthz on `app` with these checks."""

    async def handle(request: web.Request) -> web.Response:
        report = await check(checks)
        status = 200 if report["status"] == OK else 503
        # Never cached: a health answer is about now.
        return web.json_response(report, status=status, headers={"Cache-Control": "no-store"})

    app.router.add_get("/healthz", handle)
