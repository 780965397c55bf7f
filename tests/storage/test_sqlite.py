"""The SQLite store: migrations, reservations under concurrency, exactly-once settle/refund/delivery."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import pytest

from core.models import JobStatus, Limits, NewJob, QuotaRefusal, RefusalReason
from storage import NewerDatabaseError, open_store
from storage.sqlite import SqliteStore, load_migrations

DAY = 0.0
NOW = 1_000.0


def new_job(user_id: int = 7, estimate: int = 100_000, guild_id: int = 1) -> NewJob:
    return NewJob(
        task_uuid=str(uuid.uuid4()),
        guild_id=guild_id,
        channel_id=10,
        user_id=user_id,
        audio_seconds=1.0,
        estimate_micros=estimate,
        output_format="MP4",
        output_quality=85,
        upload_limit_bytes=None,
        channel_nsfw=False,
    )


def ledger_rows(path: Path) -> list[tuple[str, int, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT kind, amount_micros, job_id FROM ledger ORDER BY id").fetchall()


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


async def test_reservation_writes_job_and_ledger_together(store: SqliteStore) -> None:
    """A reservation creates the job (uploading) and one reserve row of the estimate."""
    job = await store.create_job_with_reservation(new_job(), Limits(1_000_000, 2), NOW, DAY)
    assert not isinstance(job, QuotaRefusal)
    assert job.status is JobStatus.UPLOADING
    usage = await store.usage(1, 7, Limits(1_000_000, 2), DAY)
    assert (usage.spent_micros, usage.active_jobs) == (100_000, 1)


async def test_refuses_over_the_daily_limit(store: SqliteStore) -> None:
    """A job whose estimate would pass the daily limit is refused and nothing is written."""
    limits = Limits(150_000, 5)
    assert not isinstance(await store.create_job_with_reservation(new_job(), limits, NOW, DAY), QuotaRefusal)
    refused = await store.create_job_with_reservation(new_job(), limits, NOW, DAY)
    assert isinstance(refused, QuotaRefusal) and refused.reason is RefusalReason.DAILY
    assert refused.usage.spent_micros == 100_000
    assert (await store.usage(1, 7, limits, DAY)).active_jobs == 1


async def test_refuses_past_max_active_jobs(store: SqliteStore) -> None:
    """The active-jobs limit counts unfinished jobs."""
    limits = Limits(10_000_000, 1)
    await store.create_job_with_reservation(new_job(), limits, NOW, DAY)
    refused = await store.create_job_with_reservation(new_job(), limits, NOW, DAY)
    assert isinstance(refused, QuotaRefusal) and refused.reason is RefusalReason.ACTIVE


async def test_limits_are_per_member_and_guild(store: SqliteStore) -> None:
    """Another member, or the same member in another guild, has their own limit."""
    limits = Limits(100_000, 1)
    for user, guild in ((7, 1), (8, 1), (7, 2)):
        created = await store.create_job_with_reservation(new_job(user, guild_id=guild), limits, NOW, DAY)
        assert not isinstance(created, QuotaRefusal)


async def test_yesterdays_spend_does_not_count_today(store: SqliteStore) -> None:
    """Spend counts in the UTC day of its reservation."""
    limits = Limits(100_000, 5)
    await store.create_job_with_reservation(new_job(), limits, NOW, DAY)
    today = 86_400.0
    created = await store.create_job_with_reservation(new_job(), limits, today + 5, today)
    assert not isinstance(created, QuotaRefusal)


async def test_200_concurrent_reservations_never_overspend(tmp_path: Path) -> None:
    """200 simultaneous reservations by one member against a $1 limit accept exactly 10 of $0.10."""
    path = tmp_path / "race.db"
    store = await SqliteStore.open(str(path))
    limits = Limits(1_000_000, 1_000)
    try:
        results = await asyncio.gather(
            *(store.create_job_with_reservation(new_job(), limits, NOW, DAY) for _ in range(200))
        )
    finally:
        await store.close()
    accepted = [r for r in results if not isinstance(r, QuotaRefusal)]
    assert len(accepted) == 10
    with sqlite3.connect(path) as db:
        (total,) = db.execute("SELECT SUM(amount_micros) FROM ledger").fetchone()
        (jobs,) = db.execute("SELECT COUNT(*) FROM jobs").fetchone()
    assert total == 1_000_000 and jobs == 10


async def test_200_reservations_from_two_connections_never_overspend(tmp_path: Path) -> None:
    """Two processes' worth of connections on one file still respect the limit (BEGIN IMMEDIATE)."""
    path = str(tmp_path / "race2.db")
    a, b = await SqliteStore.open(path), await SqliteStore.open(path)
    limits = Limits(1_000_000, 1_000)
    try:
        results = await asyncio.gather(
            *(
                (a if i % 2 else b).create_job_with_reservation(new_job(), limits, NOW, DAY)
                for i in range(200)
            )
        )
    finally:
        await a.close()
        await b.close()
    assert sum(not isinstance(r, QuotaRefusal) for r in results) == 10


async def test_complete_settles_with_the_real_cost(store: SqliteStore, tmp_path: Path) -> None:
    """Success releases the estimate and charges Runware's cost: spend becomes the cost."""
    limits = Limits(1_000_000, 2)
    job = await store.create_job_with_reservation(new_job(estimate=100_000), limits, NOW, DAY)
    assert not isinstance(job, QuotaRefusal)
    await store.mark_job_queued(job.id, "img", "aud", NOW)
    done = await store.complete_job(job.id, "https://x/v.mp4", 83_000, False, NOW + 5)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.cost_micros == 83_000
    usage = await store.usage(1, 7, limits, DAY)
    assert (usage.spent_micros, usage.active_jobs) == (83_000, 0)
    assert ledger_rows(tmp_path / "store.db") == [
        ("reserve", 100_000, job.id),
        ("release", -100_000, job.id),
        ("settle", 83_000, job.id),
    ]


async def test_fail_refunds_once(store: SqliteStore) -> None:
    """A failed job costs nothing, and failing or completing it again changes nothing."""
    limits = Limits(1_000_000, 2)
    job = await store.create_job_with_reservation(new_job(), limits, NOW, DAY)
    assert not isinstance(job, QuotaRefusal)
    assert await store.fail_job(job.id, "x", "y", NOW) is not None
    assert await store.fail_job(job.id, "x", "y", NOW) is None
    assert await store.complete_job(job.id, "u", 5, False, NOW) is None
    assert (await store.usage(1, 7, limits, DAY)).spent_micros == 0


async def test_ledger_is_append_only(store: SqliteStore, tmp_path: Path) -> None:
    """The ledger refuses updates and deletes."""
    await store.create_job_with_reservation(new_job(), Limits(1_000_000, 2), NOW, DAY)
    with sqlite3.connect(tmp_path / "store.db") as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE ledger SET amount_micros = 0")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM ledger")


async def test_mark_delivered_is_true_once(store: SqliteStore) -> None:
    """Only the first delivery mark wins; undelivered_jobs no longer lists the job."""
    job = await store.create_job_with_reservation(new_job(), Limits(1_000_000, 2), NOW, DAY)
    assert not isinstance(job, QuotaRefusal)
    await store.fail_job(job.id, "x", "y", NOW)
    assert [j.id for j in await store.undelivered_jobs()] == [job.id]
    assert await store.mark_delivered(job.id, NOW) is True
    assert await store.mark_delivered(job.id, NOW) is False
    assert await store.undelivered_jobs() == []


async def test_due_jobs_batches_processing_jobs_within_the_horizon(store: SqliteStore) -> None:
    """Processing jobs due soon are polled with the due ones; queued jobs only when due."""
    limits = Limits(10_000_000, 10)
    ids = []
    for _ in range(3):
        job = await store.create_job_with_reservation(new_job(), limits, NOW, DAY)
        assert not isinstance(job, QuotaRefusal)
        await store.mark_job_queued(job.id, "i", "a", NOW)
        ids.append(job.id)
    await store.mark_submitted(ids[0], NOW, NOW)
    await store.mark_submitted(ids[1], NOW, NOW + 3)
    await store.schedule_polls([(ids[2], NOW + 3)], NOW)  # still queued, due later
    due = await store.due_jobs(NOW, NOW + 5, 100)
    assert [j.id for j in due] == [ids[0], ids[1]]
    assert await store.next_due_at() == NOW
