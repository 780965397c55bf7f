"""Statements several parts run inside their own write transactions: usage, the audit log, the ledger."""

from __future__ import annotations

import json

import aiosqlite

from core.models import Job, LedgerKind, Limits, Usage, Windows
from storage.sqlite.rows import ACTIVE_SQL, JOB_COLUMNS, job_from_row


async def usage_in(
    db: aiosqlite.Connection, guild_id: int, user_id: int, limits: Limits, windows: Windows
) -> Usage:
    """The member's usage, read inside the caller's transaction (the reservation checks what it writes
    against)."""
    # One statement, one hop to the connection thread. Spend comes from the running totals that the
    # ledger's trigger keeps, so the cost does not grow with the ledger.
    rows = list(
        await db.execute_fetchall(
            "SELECT "
            "(SELECT amount_micros FROM spend_totals WHERE guild_id = ?1 AND user_id = ?2 "
            "  AND period = 'day' AND period_start = ?3), "
            "(SELECT amount_micros FROM spend_totals WHERE guild_id = ?1 AND user_id = ?2 "
            "  AND period = 'month' AND period_start = ?4), "
            "(SELECT amount_micros FROM spend_totals WHERE guild_id = ?1 AND user_id = 0 "
            "  AND period = 'month' AND period_start = ?4), "
            "(SELECT COUNT(*) FROM jobs WHERE guild_id = ?1 AND user_id = ?2 "
            f"  AND status IN ({ACTIVE_SQL})), "
            "(SELECT MAX(created_at) FROM jobs WHERE guild_id = ?1 AND user_id = ?2), "
            "(SELECT amount_micros FROM operator_totals WHERE day_start = ?3), "
            # Jobs refunded at their deadline whose late result Runware may still bill: held for the
            # server and the operator (never the member) until the watch ends.
            "(SELECT SUM(estimate_micros) FROM jobs INDEXED BY jobs_watched_by_guild "
            "  WHERE late_until IS NOT NULL AND guild_id = ?1 AND created_at >= ?4), "
            "(SELECT SUM(estimate_micros) FROM jobs INDEXED BY jobs_watched_by_time "
            "  WHERE late_until IS NOT NULL AND created_at >= ?3)",
            (guild_id, user_id, windows.day_start, windows.month_start),
        )
    )
    today, month, guild_month, active, last, operator_today, guild_held, operator_held = rows[0]
    return Usage(
        spent_today_micros=int(today or 0),
        spent_month_micros=int(month or 0),
        guild_spent_month_micros=int(guild_month or 0) + int(guild_held or 0),
        active_jobs=int(active),
        last_job_at=float(last) if last is not None else None,
        limits=limits,
        windows=windows,
        operator_spent_today_micros=int(operator_today or 0) + int(operator_held or 0),
    )


async def audit(
    db: aiosqlite.Connection,
    guild_id: int,
    actor_id: int,
    action: str,
    detail: object,
    now: float,
    job_id: int | None = None,
) -> None:
    await db.execute(
        "INSERT INTO audit_log (guild_id, actor_id, action, detail, created_at, job_id) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (guild_id, actor_id, action, json.dumps(detail, sort_keys=True), now, job_id),
    )


async def append_ledger(
    db: aiosqlite.Connection,
    guild_id: int,
    user_id: int,
    job_id: int | None,
    kind: LedgerKind,
    amount_micros: int,
    counts_at: float,
    now: float,
    reason: str | None = None,
) -> None:
    await db.execute(
        "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_micros, counts_at, created_at, "
        "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (guild_id, user_id, job_id, kind.value, amount_micros, counts_at, now, reason),
    )


async def append_refund(db: aiosqlite.Connection, job: Job, now: float) -> None:
    """The job's whole reservation given back: a refund of its estimate, counted when the job was
    made."""
    await append_ledger(
        db, job.guild_id, job.user_id, job.id, LedgerKind.REFUND, -job.estimate_micros, job.created_at, now
    )


async def job_in(db: aiosqlite.Connection, job_id: int) -> Job:
    """One job, read inside the caller's transaction; KeyError if there is none."""
    rows = list(await db.execute_fetchall(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)))
    if not rows:
        raise KeyError(f"no job {job_id}")
    return job_from_row(rows[0])
