"""The jobs gauge of GET /metrics over real HTTP on a real store of each backend, whose statements are
recorded: the figures are the database's, and a scrape within JOB_COUNTS_MAX_AGE_S of the last count
sends the database nothing (an injected clock); after that it counts again. Failures are not kept, and
concurrent scrapes share one count."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.ports import Store
from tests.databases import Database
from tests.storage.builders import reserved
from tests.web.statements import Sent, traced_store
from web.metrics import JOB_COUNTS_MAX_AGE_S, JOB_STATUSES, CachedJobCounts, Metrics, add_metrics_route
from web.server import HttpServer

NOW = 1_000.0


async def scrape(server: HttpServer) -> dict[str, float]:
    """The jobs gauge of one scrape, by status."""
    async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as answer:
        assert answer.status == 200
        text = await answer.text()
    return {
        s.labels["status"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "ventriloquist_jobs"
    }


@pytest.fixture
async def served(database: Database) -> AsyncIterator[tuple[HttpServer, Store, Sent, list[float]]]:
    clock = [0.0]
    async with traced_store(database) as (store, sent):
        server = HttpServer("127.0.0.1", 0)
        counts = CachedJobCounts(store.count_jobs_by_status, clock=lambda: clock[0])
        add_metrics_route(server.app, Metrics(), counts)
        await server.start()
        try:
            yield server, store, sent, clock
        finally:
            await server.stop()


async def test_a_second_scrape_within_the_interval_reads_nothing(
    served: tuple[HttpServer, Store, Sent, list[float]],
) -> None:
    server, store, sent, clock = served
    first = await reserved(store, user_id=7, estimate=1_000, now=NOW)
    assert await store.mark_job_queued(first.id, "img", "aud", NOW) is not None
    await reserved(store, user_id=8, estimate=1_000, now=NOW)
    sent.clear()
    shown = await scrape(server)
    assert shown == {status: 0 for status in JOB_STATUSES} | {"queued": 1, "uploading": 1}
    assert await sent.settled(), "the first scrape counts"
    await reserved(store, user_id=9, estimate=1_000, now=NOW)
    sent.clear()
    clock[0] += JOB_COUNTS_MAX_AGE_S - 0.5
    assert await scrape(server) == shown  # the count of the first scrape, not the database's now
    assert await sent.settled() == []
    clock[0] += 0.5
    assert (await scrape(server))["uploading"] == 2
    assert await sent.settled()


async def test_a_failed_count_is_not_kept() -> None:
    """A read that fails (the scrape then shows no gauge) leaves nothing behind: the next call reads."""
    calls: list[str] = []

    async def read() -> dict[str, int]:
        calls.append("read")
        if len(calls) == 1:
            raise ConnectionError("the database is away")
        return {"queued": 2}

    counts = CachedJobCounts(read, clock=lambda: 0.0)
    metrics = Metrics()
    assert b'ventriloquist_jobs{status="queued"}' not in await metrics.render(counts)
    assert b'ventriloquist_jobs{status="queued"} 2.0' in await metrics.render(counts)
    assert b'ventriloquist_jobs{status="queued"} 2.0' in await metrics.render(counts)
    assert calls == ["read", "read"]


async def test_concurrent_scrapes_share_one_count() -> None:
    """Ten scrapes while the count is being read: one read, ten answers with its figures."""
    release = asyncio.Event()
    calls: list[str] = []

    async def read() -> dict[str, int]:
        calls.append("read")
        await release.wait()
        return {"failed": 3}

    counts = CachedJobCounts(read, clock=lambda: 0.0)
    waiting = [asyncio.ensure_future(counts()) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [{"failed": 3}] * 10
    assert calls == ["read"]
