"""The database drops every connection of the bot mid-run (`pg_terminate_backend`, twice): two job runners
(two processes: different owners, pools of their own) on one PostgreSQL schema and the fake Runware
reconnect, and no job is lost, submitted twice, settled twice or left charged without a result; a
reservation caught by the drop either commits whole or not at all."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from core.models import Job, Limits, NewJob
from core.ports import StoreUnavailable
from core.runner import JobRunner
from core.runware import RunwareClient
from storage.postgres import PostgresStore
from tests import media_factory as media
from tests.conftest import SettingsFactory, reserve
from tests.core.conftest import wait_until
from tests.core.test_leases import Pair, assert_once_each, offer_to, queue_jobs, stop
from tests.fakes.runware import FakeRunware
from tests.postgres import TEST_POSTGRES_URL, fresh_schema, run_sync

JOBS = 48
LEASE_S = 1.0


def app_name(schema: str) -> str:
    """The application_name of every connection the bot's pools open in `schema` (the drop's target)."""
    return f"vq-{schema}"


async def drop_connections(schema: str) -> int:
    """Terminate every session the bot has open on `schema`'s pools, as a database restart would; how many."""
    conn = await asyncpg.connect(TEST_POSTGRES_URL)
    try:
        killed = await conn.fetchval(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND pid <> pg_backend_pid()) AS t",
            app_name(schema),
        )
        return int(killed)
    finally:
        await conn.close()


@pytest.fixture
async def pair(make_settings: SettingsFactory) -> AsyncIterator[Pair]:
    with fresh_schema() as schema:
        async with FakeRunware(polls_to_finish=4) as fake, aiohttp.ClientSession() as http:
            settings = make_settings(runware_api_url=fake.url, runware_api_key=fake.api_key)
            client = RunwareClient(
                http, api_url=fake.url, api_key=settings.runware_api_key, timeout_s=1.0, retry_base_s=0.01
            )
            offers: list[tuple[str, int]] = []
            stores: list[PostgresStore] = []
            runners: list[JobRunner] = []
            try:
                for owner in ("a", "b"):
                    store = await PostgresStore.open(
                        TEST_POSTGRES_URL,
                        server_settings={"search_path": schema, "application_name": app_name(schema)},
                    )
                    stores.append(store)
                    runners.append(
                        JobRunner(
                            store,
                            client,
                            settings,
                            on_finished=offer_to(offers, owner),
                            owner=owner,
                            lease_s=LEASE_S,
                        )
                    )
                refs = (
                    await client.upload_image(media.png(64, 64), "image/png"),
                    await client.upload_audio(media.wav(1.0), "audio/wav"),
                )
                yield Pair(fake, schema, stores, runners, offers, settings, refs)
            finally:
                for store in stores:
                    await store.close()


async def test_runners_survive_every_connection_dropped_twice(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """48 jobs on two runners; every connection of both pools is terminated twice while they submit and
    poll. Each job still ends succeeded, submitted once, reserved, released and settled once, and offered
    once; no traceback is logged for a dropped connection."""
    caplog.set_level(logging.INFO)
    jobs = await queue_jobs(pair, JOBS)
    tasks = [asyncio.create_task(r.run()) for r in pair.runners]
    killed = []
    try:
        await wait_until(lambda: pair.fake.submission_counts.total() >= 4, timeout=30)
        killed.append(await drop_connections(pair.schema))
        await asyncio.sleep(0.3)
        killed.append(await drop_connections(pair.schema))
        await wait_until(lambda: len(pair.offers) >= JOBS, timeout=60)
        await asyncio.sleep(1.0)  # room for a second submit, settle or offer, if there were to be one
    finally:
        for task in tasks:
            await stop(task)
    assert all(n > 0 for n in killed), killed
    assert pair.statuses() == Counter({"succeeded": JOBS})
    assert_once_each(pair, jobs)
    reserves = Counter(job_id for (job_id,) in pair.query("SELECT job_id FROM ledger WHERE kind = 'reserve'"))
    assert reserves == Counter({j.id: 1 for j in jobs})
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    summary = [f"{r.name}: {r.getMessage()}: {r.exc_info[1]!r}" for r in tracebacks if r.exc_info]
    assert summary == [], "\n".join(summary)


async def test_a_step_on_a_connection_dropped_while_idle_is_begun_again(
    make_settings: SettingsFactory,
) -> None:
    """The pool's idle connection is terminated and the step comes before the event loop has read its
    end: the BEGIN fails, nothing ran, so the store begins again on a new connection and the write, the
    read and the reads on one snapshot (a guild's settings, its spend report) succeed (no error for the
    member)."""
    with fresh_schema() as schema:
        store = await PostgresStore.open(
            TEST_POSTGRES_URL,
            server_settings={"search_path": schema, "application_name": app_name(schema)},
            min_size=1,
            max_size=1,
        )
        try:
            for step in ("write", "read", "settings", "report"):
                # Blocks this loop while another thread ends the session and its socket closes.
                assert run_sync(drop_connections(schema)) == 1
                time.sleep(0.2)  # noqa: ASYNC251 - the loop must not run meanwhile
                if step == "write":
                    await store.set_state("k", "v")
                elif step == "read":
                    assert await store.get_state("k") == "v"
                elif step == "settings":
                    assert (await store.guild_settings(1)).guild_id == 1
                else:
                    assert (await store.spend_report(1, 0.0, time.time())).total_micros == 0
        finally:
            await store.close()


async def test_reservations_caught_by_the_drop_commit_whole_or_not_at_all(pair: Pair) -> None:
    """40 reservations at once on both pools while every session is terminated twice: each either returns
    its job, or raises StoreUnavailable; a job exists with exactly one reservation, or neither does (a
    failure before COMMIT leaves nothing; only a lost COMMIT may have kept both)."""
    outcomes: list[int | StoreUnavailable] = []

    async def one(i: int) -> None:
        store = pair.stores[i % 2]
        new = NewJob(f"reserve-{i}", 1, 2, 5000 + i, 1.0, 10_000, "MP4", 85, None, False)
        try:
            job = await reserve(store, new, Limits(None, None), time.time())
            assert isinstance(job, Job)
            outcomes.append(job.id)
        except StoreUnavailable as error:
            outcomes.append(error)

    tasks = [asyncio.create_task(one(i)) for i in range(40)]
    killed = [await drop_connections(pair.schema)]
    await asyncio.sleep(0.05)
    killed.append(await drop_connections(pair.schema))
    await asyncio.gather(*tasks)
    assert all(n > 0 for n in killed), killed
    done = {o for o in outcomes if isinstance(o, int)}
    ambiguous = sum(1 for o in outcomes if isinstance(o, StoreUnavailable) and o.ambiguous)
    reserves = Counter(job_id for (job_id,) in pair.query("SELECT job_id FROM ledger WHERE kind = 'reserve'"))
    jobs = {job_id for (job_id,) in pair.query("SELECT id FROM jobs")}
    assert set(reserves) == jobs and set(reserves.values()) <= {1}
    assert done <= jobs and len(jobs) <= len(done) + ambiguous
