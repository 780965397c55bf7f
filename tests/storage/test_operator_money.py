"""The store's side of the operator's money: the all-servers day total, and resets that keep reservations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.models import Job, Limits, QuotaRefusal, RefusalReason
from core.quota import check_limits, windows_at
from storage.sqlite import SqliteStore, load_migrations
from tests.conftest import reserve
from tests.storage.test_sqlite import new_job

NOW = 1_000.0
DAY_S = 86_400.0


async def reserved(store: SqliteStore, user_id: int, estimate: int, now: float, guild_id: int = 1) -> Job:
    job = await reserve(store, new_job(user_id, estimate, guild_id), Limits(None, None), now)
    assert isinstance(job, Job)
    return job


async def test_reset_gives_back_only_settled_spend(store: SqliteStore) -> None:
    """A reset with one job finished and one running credits only the finished job's cost."""
    finished = await reserved(store, 7, 300_000, NOW)
    await store.complete_job(finished.id, "u", 250_000, False, NOW + 5)
    await reserved(store, 7, 400_000, NOW + 10)  # still running: its reservation stays
    credited = await store.reset_member_window(1, 7, "day", windows_at(NOW), actor_id=9, now=NOW + 20)
    assert credited == 250_000
    usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW))
    assert usage.spent_today_micros == 400_000


async def test_totals_are_right_after_the_running_job_settles(store: SqliteStore) -> None:
    """After a month reset, the running job settling leaves exactly its real cost as the member's spend."""
    finished = await reserved(store, 7, 300_000, NOW)
    await store.complete_job(finished.id, "u", 250_000, False, NOW + 5)
    running = await reserved(store, 7, 400_000, NOW + 10)
    credited = await store.reset_member_window(1, 7, "month", windows_at(NOW), actor_id=9, now=NOW + 20)
    assert credited == 250_000
    await store.complete_job(running.id, "u", 350_000, False, NOW + 30)
    usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW))
    assert (usage.spent_today_micros, usage.spent_month_micros) == (350_000, 350_000)


def operator_totals(path: Path) -> dict[float, int]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT day_start, amount_micros FROM operator_totals").fetchall())


async def test_operator_day_total_counts_every_guild_but_not_grants(
    store: SqliteStore, tmp_path: Path
) -> None:
    """The operator's day total sums every guild's reservations and settlements, and leaves out credits."""
    a = await reserved(store, 7, 300_000, NOW, guild_id=1)
    await reserved(store, 8, 200_000, NOW + 1, guild_id=2)
    await store.complete_job(a.id, "u", 100_000, False, NOW + 5)
    await store.credit_job_cost(a.id, "withheld", NOW + 6)
    await store.grant(2, 8, -5_000_000, "thanks", actor_id=9, now=NOW + 7)
    tomorrow = await reserved(store, 7, 50_000, NOW + DAY_S, guild_id=1)
    await store.fail_job(tomorrow.id, "x", "y", NOW + DAY_S + 1)
    assert operator_totals(tmp_path / "store.db") == {0.0: 300_000, DAY_S: 0}
    usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW))
    assert usage.operator_spent_today_micros == 300_000


async def test_operator_ceiling_refuses_in_the_reservation(store: SqliteStore) -> None:
    """A reservation that would take all guilds together past the operator's day ceiling is refused."""
    limits = Limits(None, None, operator_daily_micros=1_000_000)
    first = await reserve(store, new_job(7, 700_000, guild_id=1), limits, NOW)
    assert isinstance(first, Job)
    refused = await reserve(store, new_job(8, 400_000, guild_id=2), limits, NOW + 1)
    assert isinstance(refused, QuotaRefusal) and refused.reason is RefusalReason.OPERATOR_DAILY
    assert refused.frees_at == DAY_S


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
    assert operator_totals(path) == {0.0: 500_000, DAY_S: 50_000}
