"""SQLite only: the file, its pragmas and migrations, its triggers, several connections, cancellation."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import storage.sqlite.moderation
from core.models import (
    GuildSettingsPatch,
    Limits,
    QuotaRefusal,
)
from core.ports import NewerDatabaseError
from core.quota import check_limits, windows_at
from storage import open_store
from storage.sqlite import SqliteStore, load_migrations
from tests.conftest import reserve
from tests.storage import builders
from tests.storage.builders import (
    CUT,
    OLD,
    RECENT,
    new_job,
    operator_totals,
    posted_job,
    stored_totals,
    totals_from_ledger,
)
from tests.storage.conftest import Query, sqlite_backend

NOW = 1_000.0
DAY_S = 86_400.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A SQLite store on tmp_path/store.db, whatever backends the port tests run on."""
    opened = await SqliteStore.open(str(tmp_path / "store.db"))
    try:
        yield opened
    finally:
        await opened.close()


def read(path: Path) -> Query:
    """Read another SQLite file than the fixture's (an old database being migrated)."""
    return sqlite_backend(path).query


def rows(tmp_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the store's file directly, as another process would."""
    with sqlite3.connect(tmp_path / "store.db") as db:
        return list(db.execute(sql, params).fetchall())


async def test_new_database_is_migrated_to_latest(tmp_path: Path) -> None:
    """A new file gets every migration and records the latest version."""
    store = await SqliteStore.open(str(tmp_path / "a.db"))
    try:
        assert await store.schema_version() == load_migrations()[-1][0]
    finally:
        await store.close()


async def test_open_store_creates_parent_folders(tmp_path: Path) -> None:
    """sqlite:///relative/path creates the folder it needs."""
    url = f"sqlite:///{tmp_path}/deep/er/bot.db"
    async with open_store(url) as store:
        assert await store.get_state("x") is None
    assert (tmp_path / "deep" / "er" / "bot.db").exists()


async def test_reopening_does_not_migrate_twice(tmp_path: Path) -> None:
    """Opening a migrated database again leaves its data alone."""
    path = str(tmp_path / "a.db")
    store = await SqliteStore.open(path)
    await store.set_state("k", "v")
    await store.close()
    store = await SqliteStore.open(path)
    try:
        assert await store.get_state("k") == "v"
    finally:
        await store.close()


async def test_refuses_a_newer_database(tmp_path: Path) -> None:
    """A database migrated by a newer bot is refused, not touched."""
    path = tmp_path / "a.db"
    store = await SqliteStore.open(str(path))
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = 999")
    with pytest.raises(NewerDatabaseError, match="999"):
        await SqliteStore.open(str(path))


async def test_wal_and_full_sync_are_on(store: SqliteStore, tmp_path: Path) -> None:
    """The connection runs in WAL mode with synchronous=FULL (2)."""
    rows = await store._fetchall("PRAGMA journal_mode")
    assert rows[0][0] == "wal"
    rows = await store._fetchall("PRAGMA synchronous")
    assert rows[0][0] == 2


async def test_200_reservations_from_two_connections_never_overspend(tmp_path: Path) -> None:
    """Two processes' worth of connections on one file still respect the limit (BEGIN IMMEDIATE)."""
    path = str(tmp_path / "race2.db")
    a, b = await SqliteStore.open(path), await SqliteStore.open(path)
    limits = Limits(1_000_000, 1_000)
    try:
        results = await asyncio.gather(
            *(reserve((a if i % 2 else b), new_job(), limits, NOW) for i in range(200))
        )
    finally:
        await a.close()
        await b.close()
    assert sum(not isinstance(r, QuotaRefusal) for r in results) == 10


async def test_ledger_is_append_only(store: SqliteStore, tmp_path: Path) -> None:
    """The ledger refuses updates and deletes."""
    await reserve(store, new_job(), Limits(1_000_000, 2), NOW)
    with sqlite3.connect(tmp_path / "store.db") as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE ledger SET amount_micros = 0")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM ledger")


async def test_migration_from_version_1_backfills_totals(tmp_path: Path) -> None:
    """A database written by version 1 gets spend totals for its existing ledger when it is migrated."""
    path = tmp_path / "old.db"
    (first,) = [m for m in load_migrations() if m[0] == 1]
    with sqlite3.connect(path) as db:
        db.executescript(first[2])
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (1)")
        db.execute(
            "INSERT INTO jobs (task_uuid, guild_id, channel_id, user_id, status, audio_seconds, "
            "estimate_micros, output_format, output_quality, created_at, updated_at) "
            "VALUES ('t', 1, 2, 7, 'succeeded', 1, 100000, 'MP4', 85, 1000, 1000)"
        )
        db.executemany(
            "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_micros, counts_at, created_at) "
            "VALUES (1, 7, 1, ?, ?, 1000, 1000)",
            [("reserve", 100_000), ("release", -100_000), ("settle", 80_000)],
        )
    store = await SqliteStore.open(str(path))
    try:
        usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW))
    finally:
        await store.close()
    assert usage.spent_today_micros == usage.spent_month_micros == usage.guild_spent_month_micros == 80_000
    assert stored_totals(read(path)) == totals_from_ledger(read(path))


async def test_a_cancelled_write_never_leaves_the_connection_in_a_transaction(store: SqliteStore) -> None:
    """Cancelling a write at any point (BEGIN included) leaves the connection usable for the next write."""
    for steps in range(40):
        task = asyncio.create_task(store.set_state("k", f"v{steps}"))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.set_state("after", str(steps))
        assert await store.get_state("after") == str(steps)


async def test_migration_backfills_the_operator_totals(tmp_path: Path) -> None:
    """A database from before the operator totals gets them for its existing ledger when migrated."""
    path = tmp_path / "old.db"
    migrations = load_migrations()
    version = next(v for v, name, _ in migrations if "operator" in name) - 1
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);"
            + "".join(sql for v, _, sql in migrations if v <= version)
            + f"INSERT INTO schema_version VALUES ({version});"
        )
        db.executescript(
            "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_micros, counts_at, created_at) "
            "VALUES (1, 7, NULL, 'settle', 300000, 1000, 1000), (2, 8, NULL, 'settle', 200000, 2000, 2000), "
            "(2, 8, NULL, 'grant', -900000, 3000, 3000), (1, 7, NULL, 'settle', 50000, 90000, 90000);"
        )
    store = await SqliteStore.open(str(path))
    try:
        usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW))
        assert usage.operator_spent_today_micros == 500_000
        refusal = check_limits(usage, 1, NOW)
        assert refusal is None
    finally:
        await store.close()
    assert operator_totals(read(path)) == {0.0: 500_000, DAY_S: 50_000}


async def test_consent_requests_have_no_column_for_discord_links(store: SqliteStore, tmp_path: Path) -> None:
    """Discord's signed file links are never stored: the table has no column whose name contains "url"."""
    columns = [str(name) for _, name, *_ in rows(tmp_path, "PRAGMA table_info(consent_requests)")]
    assert "state" in columns and "decided_at" in columns  # the pragma did read the table
    assert [name for name in columns if "url" in name.lower()] == []


async def test_prune_works_through_more_rows_than_one_batch(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pruning goes in batches (short write transactions): with a batch of 2, five old jobs' hashes and
    five old audit rows are all forgotten, and the recent ones are all kept."""
    monkeypatch.setattr(storage.sqlite.moderation, "PRUNE_BATCH", 2)
    old_jobs = [await posted_job(store, OLD + i) for i in range(5)]
    recent = await posted_job(store, RECENT)
    for i in range(5):
        await store.update_guild_settings(1, GuildSettingsPatch(dms_allowed=bool(i % 2)), 90, OLD + i)
    await store.update_guild_settings(1, GuildSettingsPatch(dms_allowed=True), 90, RECENT)
    pruned = await store.prune(CUT, builders.NOW)
    assert (pruned.audit_rows, pruned.job_hashes) == (5, 5)
    assert rows(tmp_path, "SELECT created_at FROM audit_log") == [(RECENT,)]
    assert rows(tmp_path, "SELECT id FROM jobs WHERE image_sha256 IS NOT NULL") == [(recent.id,)]
    assert len(old_jobs) == 5 and rows(tmp_path, "SELECT COUNT(*) FROM jobs") == [(6,)]
