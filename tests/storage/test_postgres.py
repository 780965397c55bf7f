"""PostgreSQL only: migrations under the advisory lock, the refusal of a newer schema, the append-only
ledger, and money that stays exact when several processes (each with a pool of its own) reserve at once."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from core.models import Job, Limits, QuotaRefusal, QuoteState, RefusalReason
from core.ports import NewerDatabaseError, Store
from core.quota import check_limits, windows_at
from storage import open_store
from storage.postgres import PostgresStore, load_migrations
from storage.postgres.connection import LOCK_MIGRATIONS
from storage.sqlite import load_migrations as load_sqlite_migrations
from tests.conftest import reserve
from tests.databases import schema_url
from tests.postgres import TEST_POSTGRES_URL, fresh_schema
from tests.storage.builders import new_job, operator_totals, quote, stored_totals, totals_from_ledger
from tests.storage.conftest import Backend, Query, postgres_backend

NOW = 1_000.0
ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped after the test."""
    with fresh_schema() as name:
        yield name


@pytest.fixture
def pg(schema: str) -> Backend:
    return postgres_backend(schema)


@pytest.fixture
async def stores(pg: Backend) -> AsyncIterator[list[Store]]:
    """PROCESSES stores on one schema, each with a pool of its own, as separate bot processes would be."""
    opened = [await pg.open() for _ in range(PROCESSES)]
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


async def test_a_new_schema_is_migrated_to_the_same_version_as_sqlite(pg: Backend) -> None:
    """A fresh schema ends at the latest migration, whose number is SQLite's latest too."""
    store = await pg.open()
    try:
        assert isinstance(store, PostgresStore)
        assert await store.schema_version() == len(load_migrations()) == len(load_sqlite_migrations())
    finally:
        await store.close()
    assert pg.query("SELECT version FROM schema_version") == [(len(load_migrations()),)]


async def test_open_store_selects_postgres_for_both_url_spellings(schema: str) -> None:
    """postgresql:// and postgres:// URLs both open the PostgreSQL store (session settings in the query)."""
    for scheme in ("postgresql", "postgres"):
        url = TEST_POSTGRES_URL.replace("postgresql://", f"{scheme}://", 1) + f"?search_path={schema}"
        async with open_store(url) as store:
            assert isinstance(store, PostgresStore)
            await store.set_state("k", scheme)
            assert await store.get_state("k") == scheme


async def test_two_processes_starting_at_once_migrate_once_and_both_work(
    pg: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Two stores opening together on a fresh schema: one migrates (under the lock), both then work."""
    caplog.set_level(logging.INFO, logger="storage.postgres.connection")
    first, second = await asyncio.gather(pg.open(), pg.open())
    try:
        migrated = [r for r in caplog.records if r.getMessage().startswith("database migrated")]
        assert len(migrated) == 1
        assert pg.query("SELECT version FROM schema_version") == [(len(load_migrations()),)]
        await first.set_state("a", "1")
        assert await second.get_state("a") == "1"
    finally:
        await first.close()
        await second.close()


async def test_migration_waits_for_the_advisory_lock(schema: str, pg: Backend) -> None:
    """While another session holds the schema's migration lock, opening a store waits for it."""
    holder = await asyncpg.connect(TEST_POSTGRES_URL)
    try:
        async with holder.transaction():
            await holder.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_MIGRATIONS, schema)
            opening = asyncio.ensure_future(pg.open())
            await asyncio.sleep(0.5)
            assert not opening.done()
        store = await asyncio.wait_for(opening, 10)
        await store.close()
    finally:
        await holder.close()


async def test_refuses_a_newer_schema(pg: Backend) -> None:
    """A schema migrated by a newer bot is refused with NewerDatabaseError, and left as it was."""
    store = await pg.open()
    await store.close()
    pg.query("UPDATE schema_version SET version = 999")
    with pytest.raises(NewerDatabaseError, match="999"):
        await pg.open()
    assert pg.query("SELECT version FROM schema_version") == [(999,)]


async def test_the_ledger_is_append_only(pg: Backend) -> None:
    """UPDATE, DELETE and TRUNCATE of the ledger all fail."""
    store = await pg.open()
    try:
        assert isinstance(await reserve(store, new_job(), Limits(None, None), NOW), Job)
    finally:
        await store.close()
    for sql in ("UPDATE ledger SET amount_micros = 0", "DELETE FROM ledger", "TRUNCATE ledger"):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            pg.query(sql)
    assert pg.query("SELECT COUNT(*) FROM ledger") == [(1,)]


async def many(stores: list[Store], jobs: list[tuple[int, int]], limits: Limits) -> list[Job | QuotaRefusal]:
    """Reserve $0.10 for each (guild, member) of `jobs` at once, spread over the stores round robin."""
    return await asyncio.gather(
        *(
            reserve(stores[i % len(stores)], new_job(user, 100_000, guild), limits, NOW)
            for i, (guild, user) in enumerate(jobs)
        )
    )


def assert_totals_exact(query: Query) -> None:
    assert stored_totals(query) == totals_from_ledger(query)


async def test_200_reservations_by_one_member_through_several_pools_never_overspend(
    stores: list[Store], pg: Backend
) -> None:
    """200 simultaneous reservations by one member from 4 processes against a $1 daily limit: exactly 10."""
    results = await many(stores, [(1, 7)] * 200, Limits(1_000_000, None))
    accepted = [r for r in results if isinstance(r, Job)]
    assert len(accepted) == 10
    assert {r.reason for r in results if isinstance(r, QuotaRefusal)} == {RefusalReason.DAILY}
    assert pg.query("SELECT SUM(amount_micros), COUNT(*) FROM ledger") == [(1_000_000, 10)]
    assert_totals_exact(pg.query)


async def test_200_reservations_by_one_member_from_four_os_processes_never_overspend(
    schema: str, pg: Backend
) -> None:
    """The same, literally: 4 OS processes (tests/storage/reserving_process.py), each opening the store by
    its URL as the bot does and, after one start signal, making 50 reservations of $0.10 at once for one
    member against a $1 daily limit: exactly 10 accepted in all, and the ledger holds $1."""
    command = [sys.executable, "-m", "tests.storage.reserving_process", schema_url(schema), "50"]
    processes = [
        await asyncio.create_subprocess_exec(
            *command, "100000", "1000000", cwd=ROOT, stdin=PIPE, stdout=PIPE, stderr=PIPE
        )
        for _ in range(PROCESSES)
    ]
    try:
        for process in processes:  # each has opened (and migrated) the store
            assert process.stdout is not None
            assert await asyncio.wait_for(process.stdout.readline(), 30) == b"ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), 60)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert [p.returncode for p in processes] == [0] * PROCESSES, [err.decode() for _, err in outputs]
    results = [json.loads(out.decode().splitlines()[-1]) for out, _ in outputs]
    accepted = [job_id for result in results for job_id in result["accepted"]]
    assert len(accepted) == len(set(accepted)) == 10
    assert {reason for result in results for reason in result["refused"]} == {"daily"}
    assert sum(len(result["refused"]) for result in results) == 190
    assert pg.query("SELECT SUM(amount_micros), COUNT(*) FROM ledger") == [(1_000_000, 10)]
    assert sorted(job_id for (job_id,) in pg.query("SELECT job_id FROM ledger")) == sorted(accepted)
    assert_totals_exact(pg.query)


async def test_a_guild_budget_spread_over_many_members_never_overspends(
    stores: list[Store], pg: Backend
) -> None:
    """200 reservations by 50 members of one guild from 4 processes against a $1 server budget: exactly 10,
    though every member is far inside their own limits."""
    limits = Limits(5_000_000, None, guild_monthly_micros=1_000_000)
    results = await many(stores, [(1, 100 + i % 50) for i in range(200)], limits)
    assert len([r for r in results if isinstance(r, Job)]) == 10
    assert {r.reason for r in results if isinstance(r, QuotaRefusal)} == {RefusalReason.GUILD_BUDGET}
    assert pg.query("SELECT amount_micros FROM spend_totals WHERE user_id = 0 AND period = 'month'") == [
        (1_000_000,)
    ]
    assert_totals_exact(pg.query)


async def test_the_operator_ceiling_holds_across_guilds_and_processes(
    stores: list[Store], pg: Backend
) -> None:
    """200 reservations in 20 guilds from 4 processes against a $1 operator day: exactly 10 in all."""
    limits = Limits(5_000_000, None, operator_daily_micros=1_000_000)
    results = await many(stores, [(1 + i % 20, 7) for i in range(200)], limits)
    assert len([r for r in results if isinstance(r, Job)]) == 10
    assert {r.reason for r in results if isinstance(r, QuotaRefusal)} == {RefusalReason.OPERATOR_DAILY}
    assert operator_totals(pg.query) == {windows_at(NOW).day_start: 1_000_000}


async def test_two_processes_finishing_one_job_settle_it_once(stores: list[Store], pg: Backend) -> None:
    """The same job completed and failed at once by two processes: one wins, one ledger outcome."""
    for _ in range(20):
        job = await reserve(stores[0], new_job(), Limits(None, None), NOW)
        assert isinstance(job, Job)
        await stores[0].mark_job_queued(job.id, "img", "aud", NOW)
        done, failed = await asyncio.gather(
            stores[1].complete_job(job.id, "https://x/v.mp4", 90_000, False, NOW + 5),
            stores[2].fail_job(job.id, "boom", "boom", NOW + 5),
        )
        assert (done is None) != (failed is None)
    kinds = pg.query("SELECT job_id, COUNT(*) FROM ledger WHERE kind IN ('settle', 'refund') GROUP BY job_id")
    assert len(kinds) == 20 and all(n == 1 for _, n in kinds)
    assert_totals_exact(pg.query)


async def test_a_quote_confirmed_by_two_processes_at_once_makes_one_job(
    stores: list[Store], pg: Backend
) -> None:
    """Two Confirm presses handled by two processes: one job, one reservation; the other sees it closed."""
    stored = await stores[0].create_quote(quote(NOW))
    limits = Limits(None, None)

    async def confirm(store: Store) -> Job | QuotaRefusal | QuoteState:
        new = new_job(estimate=stored.estimate_micros)
        return await store.confirm_quote(
            stored.id, new, limits, NOW + 1, windows_at(NOW + 1), lambda u: check_limits(u, 700_000, NOW + 1)
        )

    results = await asyncio.gather(confirm(stores[1]), confirm(stores[2]))
    assert sorted(type(r).__name__ for r in results) == ["Job", "QuoteState"]
    assert QuoteState.CONFIRMED in results
    assert pg.query("SELECT COUNT(*) FROM jobs") == [(1,)]


async def test_settles_grants_and_resets_from_several_processes_keep_the_totals_exact(
    stores: list[Store], pg: Backend
) -> None:
    """Settles, refunds, admin grants and resets of one guild, all at once from 4 processes: no deadlock,
    and the running totals equal the ledger."""
    jobs = [await reserve(stores[0], new_job(7 + i % 3), Limits(None, None), NOW) for i in range(30)]
    windows = windows_at(NOW + 10)
    steps = []
    for i, job in enumerate(jobs):
        assert isinstance(job, Job)
        store = stores[i % PROCESSES]
        if i % 2:
            steps.append(store.complete_job(job.id, "https://x/v.mp4", 50_000 + i, False, NOW + 10))
        else:
            steps.append(store.fail_job(job.id, "boom", "boom", NOW + 10))
        steps.append(store.grant(1, 7 + i % 3, -1_000, "sorry", 90, NOW + 10))
        steps.append(store.reset_member_window(1, 7 + i % 3, "month", windows, 90, NOW + 10))
    await asyncio.gather(*steps)
    assert_totals_exact(pg.query)
    assert pg.query("SELECT COUNT(*) FROM jobs WHERE status IN ('succeeded', 'failed')") == [(30,)]


async def test_a_cancelled_write_never_leaves_a_connection_out_of_the_pool(schema: str, pg: Backend) -> None:
    """Cancelling a write at any point (its BEGIN included) hands its connection back: the next writes
    work and the store closes at once (a connection kept in its transaction made close() wait forever)."""
    # Its own application_name: another suite on the same server (a shared database) is not counted.
    name = f"vq-cancel-{schema}"
    store = await PostgresStore.open(
        TEST_POSTGRES_URL, server_settings={"search_path": schema, "application_name": name}, max_size=10
    )
    try:
        for steps in range(30):
            task = asyncio.create_task(store.set_state("k", f"v{steps}"))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await store.set_state("after", "yes")
        assert await store.get_state("after") == "yes"
    finally:
        async with asyncio.timeout(10):
            await store.close()
    idle_in_transaction = pg.query(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' AND application_name = ?",
        (name,),
    )
    assert idle_in_transaction == [(0,)]
