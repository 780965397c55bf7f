"""The SQLite store: migrations, reservations under concurrency, exactly-once settle/refund/delivery."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import pytest

from core.models import Job, JobStatus, Limits, NewJob, QuotaRefusal, RefusalReason
from core.quota import windows_at
from storage import NewerDatabaseError, open_store
from storage.sqlite import SqliteStore, load_migrations
from tests.conftest import reserve

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
    job = await reserve(store, new_job(), Limits(1_000_000, 2), NOW)
    assert not isinstance(job, QuotaRefusal)
    assert job.status is JobStatus.UPLOADING
    usage = await store.usage(1, 7, Limits(1_000_000, 2), windows_at(NOW))
    assert (usage.spent_today_micros, usage.active_jobs) == (100_000, 1)


async def test_refuses_over_the_daily_limit(store: SqliteStore) -> None:
    """A job whose estimate would pass the daily limit is refused and nothing is written."""
    limits = Limits(150_000, 5)
    assert not isinstance(await reserve(store, new_job(), limits, NOW), QuotaRefusal)
    refused = await reserve(store, new_job(), limits, NOW)
    assert isinstance(refused, QuotaRefusal) and refused.reason is RefusalReason.DAILY
    assert refused.usage.spent_today_micros == 100_000
    assert (await store.usage(1, 7, limits, windows_at(NOW))).active_jobs == 1


async def test_refuses_past_max_active_jobs(store: SqliteStore) -> None:
    """The active-jobs limit counts unfinished jobs."""
    limits = Limits(10_000_000, 1)
    await reserve(store, new_job(), limits, NOW)
    refused = await reserve(store, new_job(), limits, NOW)
    assert isinstance(refused, QuotaRefusal) and refused.reason is RefusalReason.ACTIVE


async def test_limits_are_per_member_and_guild(store: SqliteStore) -> None:
    """Another member, or the same member in another guild, has their own limit."""
    limits = Limits(100_000, 1)
    for user, guild in ((7, 1), (8, 1), (7, 2)):
        created = await reserve(store, new_job(user, guild_id=guild), limits, NOW)
        assert not isinstance(created, QuotaRefusal)


async def test_yesterdays_spend_does_not_count_today(store: SqliteStore) -> None:
    """Spend counts in the UTC day of its reservation."""
    limits = Limits(100_000, 5)
    await reserve(store, new_job(), limits, NOW)
    today = 86_400.0
    created = await reserve(store, new_job(), limits, today + 5)
    assert not isinstance(created, QuotaRefusal)


async def test_200_concurrent_reservations_never_overspend(tmp_path: Path) -> None:
    """200 simultaneous reservations by one member against a $1 limit accept exactly 10 of $0.10."""
    path = tmp_path / "race.db"
    store = await SqliteStore.open(str(path))
    limits = Limits(1_000_000, 1_000)
    try:
        results = await asyncio.gather(*(reserve(store, new_job(), limits, NOW) for _ in range(200)))
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
            *(reserve((a if i % 2 else b), new_job(), limits, NOW) for i in range(200))
        )
    finally:
        await a.close()
        await b.close()
    assert sum(not isinstance(r, QuotaRefusal) for r in results) == 10


async def test_complete_settles_with_the_real_cost(store: SqliteStore, tmp_path: Path) -> None:
    """Success releases the estimate and charges Runware's cost: spend becomes the cost."""
    limits = Limits(1_000_000, 2)
    job = await reserve(store, new_job(estimate=100_000), limits, NOW)
    assert not isinstance(job, QuotaRefusal)
    await store.mark_job_queued(job.id, "img", "aud", NOW)
    done = await store.complete_job(job.id, "https://x/v.mp4", 83_000, False, NOW + 5)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.cost_micros == 83_000
    usage = await store.usage(1, 7, limits, windows_at(NOW))
    assert (usage.spent_today_micros, usage.active_jobs) == (83_000, 0)
    assert ledger_rows(tmp_path / "store.db") == [
        ("reserve", 100_000, job.id),
        ("release", -100_000, job.id),
        ("settle", 83_000, job.id),
    ]


async def test_fail_refunds_once(store: SqliteStore) -> None:
    """A failed job costs nothing, and failing or completing it again changes nothing."""
    limits = Limits(1_000_000, 2)
    job = await reserve(store, new_job(), limits, NOW)
    assert not isinstance(job, QuotaRefusal)
    assert await store.fail_job(job.id, "x", "y", NOW) is not None
    assert await store.fail_job(job.id, "x", "y", NOW) is None
    assert await store.complete_job(job.id, "u", 5, False, NOW) is None
    assert (await store.usage(1, 7, limits, windows_at(NOW))).spent_today_micros == 0


async def test_ledger_is_append_only(store: SqliteStore, tmp_path: Path) -> None:
    """The ledger refuses updates and deletes."""
    await reserve(store, new_job(), Limits(1_000_000, 2), NOW)
    with sqlite3.connect(tmp_path / "store.db") as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE ledger SET amount_micros = 0")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM ledger")


async def test_mark_delivered_is_true_once(store: SqliteStore) -> None:
    """Only the first delivery mark wins; undelivered_jobs no longer lists the job."""
    job = await reserve(store, new_job(), Limits(1_000_000, 2), NOW)
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
        job = await reserve(store, new_job(), limits, NOW)
        assert not isinstance(job, QuotaRefusal)
        await store.mark_job_queued(job.id, "i", "a", NOW)
        ids.append(job.id)
    await store.mark_submitted(ids[0], NOW, NOW)
    await store.mark_submitted(ids[1], NOW, NOW + 3)
    await store.schedule_polls([(ids[2], NOW + 3)], NOW)  # still queued, due later
    due = await store.due_jobs(NOW, NOW + 5, 100)
    assert [j.id for j in due] == [ids[0], ids[1]]
    assert await store.next_due_at() == NOW


def totals_from_ledger(path: Path) -> dict[tuple[int, int, str, float], int]:
    """What spend_totals should hold, recomputed from the ledger in Python."""
    from core.quota import windows_at as window_of

    expected: dict[tuple[int, int, str, float], int] = {}
    with sqlite3.connect(path) as db:
        for guild, user, kind, amount, counts_at in db.execute(
            "SELECT guild_id, user_id, kind, amount_micros, counts_at FROM ledger"
        ):
            w = window_of(counts_at)
            for who in (user, 0) if kind != "grant" else (user,):  # grants are not guild spend
                for period, start in (("day", w.day_start), ("month", w.month_start)):
                    key = (guild, who, period, start)
                    expected[key] = expected.get(key, 0) + amount
    return expected


def stored_totals(path: Path) -> dict[tuple[int, int, str, float], int]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT guild_id, user_id, period, period_start, amount_micros FROM spend_totals")
        return {(g, u, p, s): a for g, u, p, s, a in rows}


async def test_spend_totals_follow_the_ledger(store: SqliteStore, tmp_path: Path) -> None:
    """Reservations, settlements, refunds and credits across days and months keep the totals exact."""
    limits = Limits(None, None)
    moments = [NOW, 86_400 * 40 + 5.5, 86_400 * 40 + 86_399.9, 86_400 * 75]
    for i, when in enumerate(moments * 3):
        job = await reserve(store, new_job(user_id=7 + i % 2, estimate=100_000 + i), limits, when)
        assert not isinstance(job, QuotaRefusal)
        if i % 3 == 0:
            await store.complete_job(job.id, "u", 50_000 + i, False, when + 10)
            await store.credit_job_cost(job.id, "test", when + 20)
        elif i % 3 == 1:
            await store.fail_job(job.id, "x", "y", when + 10)
    path = tmp_path / "store.db"
    assert stored_totals(path) == totals_from_ledger(path)
    assert len(stored_totals(path)) > 8


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
    assert stored_totals(path) == totals_from_ledger(path)


async def test_grants_do_not_shrink_the_guild_spend(store: SqliteStore) -> None:
    """A credit gives a member room but leaves the guild's spend (what Runware bills) as it was."""
    job = await reserve(store, new_job(estimate=300_000), Limits(None, None), NOW)
    assert not isinstance(job, QuotaRefusal)
    await store.complete_job(job.id, "u", 300_000, False, NOW)
    await store.reset_member_window(1, 7, "month", windows_at(NOW), actor_id=9, now=NOW)
    usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW))
    assert (usage.spent_month_micros, usage.guild_spent_month_micros) == (0, 300_000)
    await store.grant(1, 7, -1_000_000, "gift", actor_id=9, now=NOW)
    usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW))
    assert (usage.spent_month_micros, usage.guild_spent_month_micros) == (-1_000_000, 300_000)
    assert await store.guild_month_spend(1, windows_at(NOW)) == 300_000


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


async def test_state_changes_report_whether_they_changed_the_job(store: SqliteStore) -> None:
    """Queue, submitting, submitted and poll scheduling each say whether they changed the job."""
    job = await reserve(store, new_job(), Limits(1_000_000, 2), NOW)
    assert not isinstance(job, QuotaRefusal)
    await store.fail_job(job.id, "x", "y", NOW)
    assert await store.mark_job_queued(job.id, "i", "a", NOW) is None
    assert await store.mark_submitting(job.id, NOW, NOW) is False
    assert await store.mark_submitted(job.id, NOW, NOW) is False
    assert await store.schedule_polls([(job.id, NOW)], NOW) == 0
    other = await reserve(store, new_job(), Limits(1_000_000, 2), NOW)
    assert not isinstance(other, QuotaRefusal)
    queued = await store.mark_job_queued(other.id, "i", "a", NOW)
    assert queued is not None and queued.status is JobStatus.QUEUED
    assert await store.mark_submitting(other.id, NOW, NOW) is True
    assert await store.mark_submitted(other.id, NOW, NOW) is True
    assert await store.schedule_polls([(other.id, NOW), (job.id, NOW)], NOW) == 1


async def test_admin_grants_and_resets_keep_the_totals_exact(store: SqliteStore, tmp_path: Path) -> None:
    """Admin grants and day and month resets, mid-month and on a month's first day, keep the totals exact."""
    limits = Limits(None, None)
    # Mid-month (day 40 is 10 February 1970) and the first second of March; jobs the day before each.
    for when in (86_400 * 40 + 3_600.5, 86_400 * 59 + 0.25):
        for user_id in (7, 8):
            job = await reserve(store, new_job(user_id=user_id, estimate=400_000), limits, when - 86_400)
            assert not isinstance(job, QuotaRefusal)
            await store.complete_job(job.id, "u", 250_000, False, when - 86_000)
            job = await reserve(store, new_job(user_id=user_id, estimate=300_000), limits, when)
            assert not isinstance(job, QuotaRefusal)
        await store.grant(1, 7, -120_000, "gift", actor_id=9, now=when)
        await store.grant(1, 8, 50_000, "debit", actor_id=9, now=when)
        await store.reset_member_window(1, 7, "day", windows_at(when), actor_id=9, now=when + 1)
        await store.reset_member_window(1, 8, "month", windows_at(when), actor_id=9, now=when + 2)
    path = tmp_path / "store.db"
    assert stored_totals(path) == totals_from_ledger(path)


async def test_a_post_attempt_keeps_its_first_time_per_channel(store: SqliteStore) -> None:
    """Each channel a result was about to be posted in is recorded once, with the first try's time."""
    job = await reserve(store, new_job(), Limits(None, None), NOW)
    assert isinstance(job, Job)
    assert await store.post_attempts(job.id) == []
    await store.record_post_attempt(job.id, 10, NOW)
    await store.record_post_attempt(job.id, 10, NOW + 60)
    await store.record_post_attempt(job.id, 20, NOW + 90)
    assert await store.post_attempts(job.id) == [(10, NOW), (20, NOW + 90)]


async def test_an_unposted_budget_alert_is_claimed_again_once_due(store: SqliteStore) -> None:
    """A claimed alert is taken again only after its try is old or was given up, never while posted."""
    month = 0.0
    assert await store.claim_budget_alert(1, month, 1_000_000, 50, NOW, 600_000)
    assert await store.reclaim_unposted_budget_alerts(month, NOW + 10, NOW) == []  # its first try is live
    assert await store.reclaim_unposted_budget_alerts(month, NOW + 61, NOW + 1) == [
        (1, 1_000_000, 50, 600_000)
    ]
    assert (
        await store.reclaim_unposted_budget_alerts(month, NOW + 62, NOW + 2) == []
    )  # claimed again just now
    await store.settle_budget_alert(1, month, 1_000_000, 50, None)  # that try failed
    assert await store.reclaim_unposted_budget_alerts(month, NOW + 63, NOW + 3) == [
        (1, 1_000_000, 50, 600_000)
    ]
    await store.settle_budget_alert(1, month, 1_000_000, 50, NOW + 64)  # posted
    await store.settle_budget_alert(1, month, 1_000_000, 50, None)  # a late failure changes nothing
    assert await store.reclaim_unposted_budget_alerts(month, NOW + 999, NOW + 999) == []
