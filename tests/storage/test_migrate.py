"""`python bot.py migrate-db --to postgresql://…`: a populated SQLite installation, copied by the real
command into a fresh PostgreSQL schema, arrives row for row and cent for cent, and the PostgreSQL store
works on it; a non-empty target, a non-SQLite source and a source that disagrees with itself are refused
with the target left as it was."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from core.models import (
    Ban,
    ConsentState,
    GuildLimitsPatch,
    GuildSettingsPatch,
    Job,
    JobStatus,
    Limits,
    QuoteState,
    RoleTier,
    StoredAck,
)
from core.ports import Store
from core.quota import check_limits, windows_at
from storage.migrate import dollars, redact
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from tests.postgres import TEST_POSTGRES_URL, fresh_schema, query_schema
from tests.storage.builders import ask, new_job, posted_job, quote, reserved

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400.0
# Mid-November 2023: the installation's history reaches back into October.
NOW = 1_700_000_000.0
LAST_MONTH = NOW - 30 * DAY
LONG_AGO = NOW - 400 * DAY
# A member's interaction token, kept for a restart and never copied.
SECRET_TOKEN = "aW50ZXJhY3Rpb246MTIzOnNlY3JldA-never-copied"
LIMITS = Limits(5_000_000, 2, 50_000_000, 0.0, 200_000_000, 50_000_000)


async def run_migrate(db: Path | str, to: str, cwd: Path, timeout: float = 90) -> tuple[int, str]:
    """`python bot.py migrate-db --to URL` with DATABASE_URL naming `db` (or a URL); (exit code, output)."""
    source = db if isinstance(db, str) else f"sqlite:///{db}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DISCORD_TOKEN": "t" * 30,
        "RUNWARE_API_KEY": "k" * 30,
        "DATABASE_URL": source,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        "migrate-db",
        "--to",
        to,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def schema_url(schema: str) -> str:
    return f"{TEST_POSTGRES_URL}?search_path={schema}"


async def populate(store: Store) -> dict[str, int]:
    """An installation with some of everything, written through the store's own API; returns the ids the
    test looks at afterwards."""
    # Jobs in every state, in two guilds, over two months.
    uploading = await reserved(store, 7, 210_000, NOW - 60)
    queued = await reserved(store, 8, 140_000, NOW - 50)
    assert await store.mark_job_queued(queued.id, "img-q", "aud-q", NOW - 49)
    submitting = await reserved(store, 9, 70_000, NOW - 40, guild_id=2)
    assert await store.mark_job_queued(submitting.id, "img-s", "aud-s", NOW - 39)
    assert await store.mark_submitting(submitting.id, NOW - 38, NOW + 30, webhook_token_hash="ab" * 32)
    # Its webhook came before the submit's answer.
    assert await store.record_webhook_result(submitting.id, submitting.task_uuid, "v-1", '{"r": 1}', NOW - 37)
    # Its member's acknowledgement, kept for a restart: a credential the copy leaves behind.
    await store.save_acknowledgement(
        StoredAck(submitting.id, 2, 42, SECRET_TOKEN, "de", "head", "shown", NOW + 600)
    )
    processing = await reserved(store, 7, 280_000, NOW - 30)
    assert await store.mark_job_queued(processing.id, "img-p", "aud-p", NOW - 29)
    assert await store.mark_submitted(processing.id, NOW - 28, NOW + 5)
    assert await store.schedule_polls([(processing.id, NOW + 10)], NOW - 20) == 1
    succeeded = await posted_job(store, LAST_MONTH, user_id=7)
    assert await store.mark_delivered(succeeded.id, LAST_MONTH + 10, (10, 5_551))
    await store.record_post_attempt(succeeded.id, 10, LAST_MONTH + 9)
    flagged = await posted_job(store, NOW - 3 * DAY, user_id=8, guild_id=2, sha="cd" * 32)
    await store.record_post_attempt(flagged.id, 11, NOW - 3 * DAY + 6)
    assert await store.credit_job_cost(flagged.id, "withheld: flagged", NOW - 3 * DAY + 7) > 0
    assert await store.mark_delivered(flagged.id, NOW - 3 * DAY + 8)
    failed = await reserved(store, 8, 123_457, NOW - 2 * DAY)
    assert await store.fail_job(failed.id, "bad_input", "the face was not found", NOW - 2 * DAY + 3)
    expired = await reserved(store, 9, 98_000, NOW - DAY, guild_id=2)
    assert await store.fail_job(expired.id, "deadline", "took too long", NOW - DAY + 1200, expired=True)
    # A late result: expired, watched, arrived at its real (sub-cent) cost, posted late.
    late = await reserved(store, 7, 350_000, NOW - DAY + 10)
    assert await store.mark_job_queued(late.id, "img-l", "aud-l", NOW - DAY + 11)
    assert await store.mark_submitted(late.id, NOW - DAY + 12, NOW - DAY + 20)
    watch = (NOW - DAY + 5000, NOW - DAY + 1300)
    assert await store.fail_job(late.id, "deadline", "late", NOW - DAY + 1210, expired=True, watch=watch)
    assert await store.complete_late_job(late.id, "https://x/late.mp4", 333_333, True, NOW - DAY + 1400)
    assert await store.mark_late_delivered(late.id, NOW - DAY + 1401, (10, 7_771))

    # Admins' money: grants both ways, a window reset.
    await store.grant(1, 7, -2_500_000, "birthday", 90, NOW - 5 * DAY)
    await store.grant(1, 8, 1_234_567, "debt", 90, NOW - 4 * DAY)
    assert await store.reset_member_window(1, 8, "month", windows_at(NOW), 91, NOW - 2 * DAY) > 0

    # Quotes: confirmed (a job), cancelled, open.
    confirmed = await store.create_quote(quote(NOW - 100))
    job = await store.confirm_quote(
        confirmed.id,
        new_job(7, confirmed.estimate_micros),
        Limits(None, None),
        NOW - 90,
        windows_at(NOW - 90),
        lambda usage: check_limits(usage, confirmed.estimate_micros, NOW - 90),
    )
    assert isinstance(job, Job)
    cancelled = await store.create_quote(quote(NOW - 80))
    assert await store.close_quote(cancelled.id, QuoteState.CANCELLED, NOW - 79)
    await store.create_quote(quote(NOW - 70))

    # Consent: accepted, declined, open.
    accepted = await ask(store, NOW - 500, user_id=7)
    assert not isinstance(
        await store.decide_consent_request(accepted.id, ConsentState.ACCEPTED, NOW - 499), str
    )
    declined = await ask(store, NOW - 400, user_id=8)
    await store.decide_consent_request(declined.id, ConsentState.DECLINED, NOW - 399)
    await ask(store, NOW - 10, user_id=9)

    # Reports: dismissed, and one whose video was removed; bans here and everywhere (one lifted).
    dismissed = await store.create_report(succeeded.id, 20, LAST_MONTH + 100)
    assert dismissed is not None
    await store.set_report_message(dismissed.id, 12, 9_001)
    assert await store.dismiss_report(dismissed.id, 91, LAST_MONTH + 200)
    removed = await store.create_report(flagged.id, 21, NOW - 3 * DAY + 50)
    assert removed is not None
    assert await store.remove_result(flagged.id, 92, NOW - 3 * DAY + 60)
    await store.ban(Ban(1, 66, "spam", 92, NOW - 300), 1, NOW - 300, job_id=flagged.id)
    await store.ban(Ban(0, 67, "abuse everywhere", 1, NOW - 200), 1, NOW - 200)
    await store.ban(Ban(2, 68, "briefly", 93, NOW - 150), 2, NOW - 150)
    assert await store.unban(2, 68, 93, 2, NOW - 140)

    # Budget alerts: one posted, one whose post failed.
    month = windows_at(NOW).month_start
    assert await store.claim_budget_alert(1, month, 200_000_000, 50, NOW - 20, 100_000_000)
    await store.settle_budget_alert(1, month, 200_000_000, 50, NOW - 19)
    assert await store.claim_budget_alert(2, month, 10_000_000, 80, NOW - 15, 8_000_000)
    await store.settle_budget_alert(2, month, 10_000_000, 80, None)

    # Settings, limits, tiers, the allow-list, state.
    await store.update_guild_limits(
        1,
        GuildLimitsPatch(user_daily_micros=3_000_000, confirm_above_micros=500_000, log_channel_id=13),
        90,
        NOW,
    )
    await store.update_guild_limits(2, GuildLimitsPatch(guild_monthly_micros=-1, cooldown_s=2.5), 91, NOW)
    await store.set_role_tier(1, RoleTier(31, daily_micros=9_000_000, max_active_jobs=4), 90, NOW)
    await store.set_role_tier(1, RoleTier(32, monthly_micros=-1, cooldown_s=0.5), 90, NOW)
    await store.update_guild_settings(
        1, GuildSettingsPatch(safety_mode="full", consent_required=False, dms_allowed=True), 90, NOW
    )
    await store.update_guild_settings(
        2, GuildSettingsPatch(withhold_flagged=True, mod_log_channel_id=14), 91, NOW
    )
    await store.set_channel_allowed(1, 10, True, 90, NOW)
    await store.set_channel_allowed(1, 11, True, 90, NOW)
    await store.set_state("synced_commands_hash", "f00d")
    assert await store.claim_duty("prune", "host:1:abc", NOW, NOW + 86_400)

    # Old moderation records pruned: SQLite's AUTOINCREMENT mark stays above the ids left.
    await store.set_role_tier(2, RoleTier(33, daily_micros=1), 93, LONG_AGO)
    await store.prune(NOW - 365 * DAY, NOW)
    statuses = {(await store.get_job(j.id)).status for j in (uploading, queued, submitting, processing)}  # type: ignore[union-attr]
    assert statuses == {JobStatus.UPLOADING, JobStatus.QUEUED, JobStatus.SUBMITTING, JobStatus.PROCESSING}
    return {"late": late.id, "flagged": flagged.id}


def sqlite_tables(db: Path) -> dict[str, list[str]]:
    """Our tables in the SQLite file and their columns (those the copy takes: not the interaction tokens)."""
    with sqlite3.connect(db) as conn:
        names = [
            n
            for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            if not n.startswith("sqlite_") and n not in ("schema_version", "acknowledgements")
        ]
        return {n: [row[1] for row in conn.execute(f"PRAGMA table_info({n})")] for n in names}


def ordered(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows in one order on both backends (booleans as 0/1, NULLs last)."""
    plain = [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in rows]
    return sorted(plain, key=lambda row: tuple((v is None, v if v is not None else 0) for v in row))


def contents(
    db: Path, schema: str
) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, list[tuple[Any, ...]]]]:
    """Every table's rows on both sides, the source's columns, in one order."""
    before, after = {}, {}
    for table, columns in sqlite_tables(db).items():
        select = f"SELECT {', '.join(columns)} FROM {table}"
        with sqlite3.connect(db) as conn:
            before[table] = ordered(list(conn.execute(select)))
        after[table] = ordered(query_schema(schema, select))
    return before, after


def row_counts(schema: str, tables: list[str]) -> dict[str, int]:
    return {t: query_schema(schema, f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables}


async def populated(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    db = tmp_path / "bot.db"
    store = await SqliteStore.open(str(db))
    try:
        ids = await populate(store)
    finally:
        await store.close()
    return db, ids


async def test_every_row_and_every_cent_arrives(tmp_path: Path) -> None:
    """The whole installation arrives: every table's rows equal (content, not only counts), the totals
    rebuilt equal to the source's, the summary names the money, and the store works on the copy: the
    same usage, the same export, and new rows get ids past every id the source ever gave."""
    db, ids = await populated(tmp_path)
    tables = sqlite_tables(db)
    with sqlite3.connect(db) as conn:
        net = conn.execute("SELECT SUM(amount_micros) FROM ledger").fetchone()[0]
        kinds = {k for (k,) in conn.execute("SELECT DISTINCT kind FROM ledger")}
        high_water = dict(conn.execute("SELECT name, seq FROM sqlite_sequence"))
        audit_max = conn.execute("SELECT MAX(id) FROM audit_log").fetchone()[0]
    assert kinds == {"reserve", "release", "settle", "refund", "grant"}
    assert high_water["audit_log"] > audit_max  # pruned rows: the mark the copy must keep
    with fresh_schema() as schema:
        code, out = await run_migrate(db, schema_url(schema), tmp_path)
        assert code == 0, out
        before, after = contents(db, schema)
        assert set(before) >= {
            "jobs", "ledger", "spend_totals", "operator_totals", "quotes", "consents", "consent_requests",
            "reports", "bans", "audit_log", "budget_alerts", "post_attempts", "guild_settings",
            "allowed_channels", "guild_limits", "role_tiers", "app_state",
        }  # fmt: skip
        empty = [t for t, rows in before.items() if not rows]
        assert empty == []
        # The members' interaction tokens stay behind: the source held one, the copy none.
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM acknowledgements").fetchone()[0] == 1
        assert query_schema(schema, "SELECT COUNT(*) FROM acknowledgements") == [(0,)]
        assert SECRET_TOKEN not in out
        for table in before:
            assert after[table] == before[table], table
        assert f"ledger net {dollars(net)}" in out
        assert f"{len(tables)} tables, {sum(len(r) for r in before.values())} rows" in out

        sqlite_store = await SqliteStore.open(str(db))
        pg_store = await PostgresStore.open(schema_url(schema))
        try:
            for guild, user in ((1, 7), (1, 8), (2, 8), (2, 9)):
                windows = windows_at(NOW)
                assert await pg_store.usage(guild, user, LIMITS, windows) == await sqlite_store.usage(
                    guild, user, LIMITS, windows
                )
                assert await pg_store.ledger_rows(guild, 0, NOW + DAY) == await sqlite_store.ledger_rows(
                    guild, 0, NOW + DAY
                )
            assert await pg_store.get_job(ids["late"]) == await sqlite_store.get_job(ids["late"])
            job = await reserved(pg_store, 10, 70_000, NOW + 5)
            assert job.id > high_water["jobs"]
            await pg_store.grant(1, 10, -1, "after the move", 90, NOW + 6)
        finally:
            await sqlite_store.close()
            await pg_store.close()
        (audit_id,) = query_schema(schema, "SELECT MAX(id) FROM audit_log")[0]
        assert audit_id > high_water["audit_log"]
        usage = query_schema(schema, "SELECT amount_micros FROM spend_totals WHERE user_id = 10")
        assert sorted(usage) == [(-1 + 70_000,), (-1 + 70_000,)]


async def test_a_non_empty_target_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    """A second run into the same schema is refused, naming what is there; nothing changes. A target
    that is migrated but empty (after `bot.py check`, say) is accepted."""
    db, _ = await populated(tmp_path)
    tables = list(sqlite_tables(db))
    with fresh_schema() as schema:
        opened = await PostgresStore.open(schema_url(schema))  # migrated, empty: fine
        await opened.close()
        assert (await run_migrate(db, schema_url(schema), tmp_path))[0] == 0
        counts = row_counts(schema, tables)
        ledger = query_schema(schema, "SELECT * FROM ledger ORDER BY id")
        code, out = await run_migrate(db, schema_url(schema), tmp_path)
        assert code == 1
        assert "is not empty" in out and f"jobs ({counts['jobs']} rows)" in out
        assert row_counts(schema, tables) == counts
        assert query_schema(schema, "SELECT * FROM ledger ORDER BY id") == ledger


async def test_a_target_with_one_row_of_ours_is_refused(tmp_path: Path) -> None:
    """One row in any table of ours (here the bot's own state) is enough to refuse."""
    db, _ = await populated(tmp_path)
    with fresh_schema() as schema:
        opened = await PostgresStore.open(schema_url(schema))
        await opened.set_state("synced_commands_hash", "other")
        await opened.close()
        code, out = await run_migrate(db, schema_url(schema), tmp_path)
        assert code == 1
        assert "app_state (1 row)" in out
        assert query_schema(schema, "SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_a_source_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    """DATABASE_URL must name a SQLite file (an existing one: migrate-db never makes an empty source)."""
    with fresh_schema() as schema:
        code, out = await run_migrate(schema_url(schema), schema_url(schema), tmp_path)
        assert code == 1
        assert "must be a SQLite database" in out
        code, out = await run_migrate(tmp_path / "missing.db", schema_url(schema), tmp_path)
        assert code == 1
        assert "there is no SQLite database" in out
        assert not (tmp_path / "missing.db").exists()
        assert query_schema(schema, "SELECT to_regclass('jobs') IS NULL") == [(True,)]


async def test_totals_that_disagree_with_the_ledger_roll_the_copy_back(tmp_path: Path) -> None:
    """A source whose running totals are not what its ledger says: exit 1 naming the table, and the
    target holds no row (one transaction)."""
    db, _ = await populated(tmp_path)
    tables = list(sqlite_tables(db))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE spend_totals SET amount_micros = amount_micros + 1 WHERE user_id = 8")
    with fresh_schema() as schema:
        code, out = await run_migrate(db, schema_url(schema), tmp_path)
        assert code == 1
        assert "spend_totals" in out and "differ from the source's" in out
        assert set(row_counts(schema, tables).values()) == {0}


async def test_columns_added_later_are_copied_and_a_missing_one_refused(tmp_path: Path) -> None:
    """The copy reads the columns from both sides: a column both have (as a later migration adds) comes
    along without code changes; a column only the source has refuses the copy, leaving the target empty."""
    db, _ = await populated(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE jobs ADD COLUMN added_later TEXT")
        conn.execute("UPDATE jobs SET added_later = 'runner-' || id WHERE id % 2 = 0")
        expected = sorted(conn.execute("SELECT id, added_later FROM jobs"))
    with fresh_schema() as schema:
        code, out = await run_migrate(db, schema_url(schema), tmp_path)
        assert code == 1
        assert "has no column added_later" in out
        assert query_schema(schema, "SELECT COUNT(*) FROM jobs") == [(0,)]
        query_schema(schema, "ALTER TABLE jobs ADD COLUMN added_later TEXT")
        code, out = await run_migrate(db, schema_url(schema), tmp_path)
        assert code == 0, out
        assert sorted(query_schema(schema, "SELECT id, added_later FROM jobs")) == expected


def test_printed_urls_and_dollars() -> None:
    """The summary never prints a password; money reads as dollars, to the micro-dollar when needed."""
    assert (
        redact("postgresql://bot:s3cret@db.example:5433/prod") == "postgresql://bot:***@db.example:5433/prod"
    )
    assert redact("postgresql://bot@db/prod") == "postgresql://bot@db/prod"
    assert dollars(1_234_560_000) == "$1,234.56"
    assert dollars(-2_500_000) == "-$2.50"
    assert dollars(333_333) == "$0.333333"


async def test_migrate_db_needs_its_target(tmp_path: Path) -> None:
    """`migrate-db` without `--to` is a usage error (exit 2) that names the option, and copies nothing."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        "migrate-db",
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "DISCORD_TOKEN": "t" * 30, "RUNWARE_API_KEY": "k" * 30},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert "migrate-db needs --to" in out.decode()
    assert not (tmp_path / "data").exists()
