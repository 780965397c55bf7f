"""Notifications (JobEvents): on PostgreSQL they reach another process's store (LISTEN/NOTIFY), at the
commit of the change they go with and never for a change that did not happen, and the listening
connection comes back after the database ends it; on SQLite they stay in the process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest

from core.models import Job
from core.ports import JobEvent, JobNotice, NoticeStream, Store
from storage.events import decode, encode
from tests.databases import Database, PostgresDatabase
from tests.postgres import TEST_POSTGRES_URL, PostgresProxy
from tests.storage.builders import NOW, posted_job


@pytest.fixture
async def store(database: Database) -> AsyncIterator[Store]:
    """A store on the test's database (of either backend: the `database` fixture)."""
    opened = await database.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def other(database: Database, store: Store) -> AsyncIterator[Store]:
    """The store another process would have on the test's database (on SQLite, the same store: its
    notifications stay in the process)."""
    if database.backend == "sqlite":
        yield store
        return
    opened = await database.open()
    try:
        yield opened
    finally:
        await opened.close()


async def following(stream: NoticeStream, timeout: float = 10.0) -> list[JobNotice]:
    """The notices that arrive on `stream` until none came for a moment (RESYNCs left out)."""
    seen: list[JobNotice] = []
    try:
        while True:
            async with asyncio.timeout(timeout if not seen else 0.3):
                notice = await anext(stream)
            if notice.event is not JobEvent.RESYNC:
                seen.append(notice)
    except TimeoutError:
        return seen


async def subscribed(database: Database, store: Store) -> NoticeStream:
    stream = store.subscribe()
    if database.backend == "postgres":
        async with asyncio.timeout(10):
            assert (await anext(stream)).event is JobEvent.RESYNC  # listening from here on
    return stream


def test_a_notice_survives_its_payload() -> None:
    for notice in (
        JobNotice(JobEvent.PROGRESS, 12, 40),
        JobNotice(JobEvent.RELEASED),
        JobNotice(JobEvent.DELIVERED, 3),
    ):
        assert decode(encode(notice)) == notice
    assert decode("from-a-newer-bot:1") is None


async def test_a_published_notice_reaches_the_other_process(
    database: Database, store: Store, other: Store
) -> None:
    stream = await subscribed(database, other)
    await store.publish(JobNotice(JobEvent.PROGRESS, 5, 40))
    assert await following(stream) == [JobNotice(JobEvent.PROGRESS, 5, 40)]
    stream.close()


async def test_a_post_record_notifies_once(database: Database, store: Store, other: Store) -> None:
    """mark_delivered carries DELIVERED to the other process; a second record (which changes nothing)
    carries nothing."""
    job: Job = await posted_job(store)
    stream = await subscribed(database, other)
    assert await store.mark_delivered(job.id, NOW, (10, 99))
    assert not await store.mark_delivered(job.id, NOW + 1, (10, 99))
    assert await following(stream) == [JobNotice(JobEvent.DELIVERED, job.id)]
    stream.close()


async def test_released_leases_notify(database: Database, store: Store, other: Store) -> None:
    """Ending a process's leases wakes the others (RELEASED); ending none says nothing."""
    from tests.storage.builders import reserved

    job = await reserved(store, 7, 100_000, NOW)
    claimed = await store.claim_stale_uploads("a", NOW, NOW + 1, NOW + 60)
    assert [j.id for j in claimed] == [job.id]
    stream = await subscribed(database, other)
    assert await store.expire_leases(["nobody"], NOW) == 0
    assert await store.expire_leases(["a"], NOW) == 1
    assert await following(stream) == [JobNotice(JobEvent.RELEASED)]
    stream.close()


async def test_a_notice_is_sent_at_the_commit_and_not_for_a_rollback(
    database: Database, other: Store
) -> None:
    """PostgreSQL delivers a notification at its transaction's COMMIT: none while it is open, and none
    when it rolls back."""
    if not isinstance(database, PostgresDatabase):
        pytest.skip("PostgreSQL's NOTIFY; SQLite hands notices over after its own COMMIT")
    stream = await subscribed(database, other)
    conn = await asyncpg.connect(TEST_POSTGRES_URL, server_settings={"search_path": database.schema})
    channel = other._channel  # type: ignore[attr-defined]
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_notify($1, $2)", channel, "delivered:1")
            assert await following(stream, timeout=0.5) == []
        assert await following(stream) == [JobNotice(JobEvent.DELIVERED, 1)]
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SELECT pg_notify($1, $2)", channel, "delivered:2")
        await tx.rollback()
        await conn.execute("SELECT pg_notify($1, $2)", channel, "delivered:3")
        assert await following(stream) == [JobNotice(JobEvent.DELIVERED, 3)]
    finally:
        await conn.close()
        stream.close()


async def test_the_listening_connection_comes_back(
    database: Database, store: Store, other: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The database ends the LISTEN session (twice): the subscription says it may have missed notices
    (RESYNC), listens again, and later notices arrive. One warning per drop, no traceback."""
    if not isinstance(database, PostgresDatabase):
        pytest.skip("SQLite has no connection to lose for notifications")
    caplog.set_level(logging.INFO)
    stream = await subscribed(database, other)
    for round_ in (1, 2):
        admin = await asyncpg.connect(TEST_POSTGRES_URL)
        try:
            ended = await admin.fetchval(
                "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN %' AND query LIKE $1 AND pid <> pg_backend_pid()) AS t",
                f"%{database.schema}%",
            )
        finally:
            await admin.close()
        assert ended >= 1
        async with asyncio.timeout(15):
            while (await anext(stream)).event is not JobEvent.RESYNC:
                pass
        await store.publish(JobNotice(JobEvent.PROGRESS, round_, 50))
        assert JobNotice(JobEvent.PROGRESS, round_, 50) in await following(stream)
    stream.close()
    assert caplog.text.count("the notification connection to the database was lost") == 2
    assert [r for r in caplog.records if r.exc_info] == []


async def test_a_listening_connection_that_died_silently_is_replaced(
    database: Database, store: Store
) -> None:
    """The network path to the database dies without a word (no reset, no close: a failover, a NAT that
    forgot the flow): the LISTEN connection is found dead by its own check, opened again, and notices
    flow again (after a RESYNC). Without the check it would wait forever and hear nothing."""
    if not isinstance(database, PostgresDatabase):
        pytest.skip("SQLite has no connection to lose for notifications")
    from storage.postgres import PostgresStore

    proxy = PostgresProxy(database.url)
    await proxy.start()
    listening = await PostgresStore.open(proxy.route(database.url))
    try:
        stream = await subscribed(database, listening)
        proxy.stall()
        async with asyncio.timeout(60):
            while (await anext(stream)).event is not JobEvent.RESYNC:
                pass
        await store.publish(JobNotice(JobEvent.PROGRESS, 9, 10))
        assert JobNotice(JobEvent.PROGRESS, 9, 10) in await following(stream)
        stream.close()
    finally:
        await proxy.close()
        await listening.close()
