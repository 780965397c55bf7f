"""Statements several parts run inside their own transactions: the locks that serialise money checks,
usage, the audit log, the ledger.

Locking. Every transaction that appends to the ledger first takes its guild's advisory lock
(`lock_guild`), and a reservation made under an operator ceiling then takes the operator's day lock
(`lock_operator_day`), always in this order. So the limit check and the reservation are one transaction
that no other check of the same guild (or, under the ceiling, of any guild) can interleave with, whatever
process runs it; and since every ledger writer holds the guild's lock, the running-totals rows its trigger
updates are never waited for in two orders (no deadlock between a settle and an admin's reset).

Why advisory locks rather than `SELECT … FOR UPDATE` on a per-guild row: the lock needs no row created on
demand (an INSERT … ON CONFLICT plus a SELECT, and a table that grows with every guild), costs one
statement, and leaves nothing behind when the transaction ends. A hash collision between two guilds' keys
only makes them wait for each other now and then; it never lets money through.
"""

from __future__ import annotations

import json

from core.models import Job, LedgerKind, Limits, Usage, Windows
from storage.postgres.connection import LOCK_GUILD, LOCK_OPERATOR_DAY, Db
from storage.postgres.rows import ACTIVE_SQL, JOB_COLUMNS, job_from_row


async def lock_guild(db: Db, guild_id: int) -> None:
    """Hold the guild's money lock until the transaction ends (see the module's docstring)."""
    await db.execute("SELECT pg_advisory_xact_lock($1, hashint8($2))", LOCK_GUILD, guild_id)


async def lock_operator_day(db: Db, day_start: float) -> None:
    """Hold the lock on the operator's day (all guilds) until the transaction ends; taken after the
    guild's."""
    await db.execute(
        "SELECT pg_advisory_xact_lock($1, ($2::DOUBLE PRECISION / 86400)::INTEGER)",
        LOCK_OPERATOR_DAY,
        day_start,
    )


async def usage_in(db: Db, guild_id: int, user_id: int, limits: Limits, windows: Windows) -> Usage:
    """The member's usage, read inside the caller's transaction (the reservation checks what it writes
    against). Spend comes from the running totals the ledger's triggers keep."""
    row = await db.fetchrow(
        "SELECT "
        "(SELECT amount_micros FROM spend_totals WHERE guild_id = $1 AND user_id = $2 "
        "  AND period = 'day' AND period_start = $3), "
        "(SELECT amount_micros FROM spend_totals WHERE guild_id = $1 AND user_id = $2 "
        "  AND period = 'month' AND period_start = $4), "
        "(SELECT amount_micros FROM spend_totals WHERE guild_id = $1 AND user_id = 0 "
        "  AND period = 'month' AND period_start = $4), "
        "(SELECT COUNT(*) FROM jobs WHERE guild_id = $1 AND user_id = $2 "
        f"  AND status IN ({ACTIVE_SQL})), "
        "(SELECT MAX(created_at) FROM jobs WHERE guild_id = $1 AND user_id = $2), "
        "(SELECT amount_micros FROM operator_totals WHERE day_start = $3), "
        # Jobs refunded at their deadline whose late result Runware may still bill: held for the
        # server and the operator (never the member) until the watch ends.
        "(SELECT SUM(estimate_micros) FROM jobs WHERE late_until IS NOT NULL AND guild_id = $1 "
        "  AND created_at >= $4), "
        "(SELECT SUM(estimate_micros) FROM jobs WHERE late_until IS NOT NULL AND created_at >= $3)",
        guild_id,
        user_id,
        windows.day_start,
        windows.month_start,
    )
    assert row is not None
    today, month, guild_month, active, last, operator_today, guild_held, operator_held = row.values()
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
    db: Db,
    guild_id: int,
    actor_id: int,
    action: str,
    detail: object,
    now: float,
    job_id: int | None = None,
) -> None:
    await db.execute(
        "INSERT INTO audit_log (guild_id, actor_id, action, detail, created_at, job_id) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        guild_id,
        actor_id,
        action,
        json.dumps(detail, sort_keys=True),
        now,
        job_id,
    )


async def append_ledger(
    db: Db,
    guild_id: int,
    user_id: int,
    job_id: int | None,
    kind: LedgerKind,
    amount_micros: int,
    counts_at: float,
    now: float,
    reason: str | None = None,
) -> None:
    """One ledger row; the caller holds the guild's lock (lock_guild)."""
    await db.execute(
        "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_micros, counts_at, created_at, "
        "reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        guild_id,
        user_id,
        job_id,
        kind.value,
        amount_micros,
        counts_at,
        now,
        reason,
    )


async def append_refund(db: Db, job: Job, now: float) -> None:
    """The job's whole reservation given back: a refund of its estimate, counted when the job was made
    (the caller holds the guild's lock)."""
    await append_ledger(
        db, job.guild_id, job.user_id, job.id, LedgerKind.REFUND, -job.estimate_micros, job.created_at, now
    )


async def job_in(db: Db, job_id: int, *, for_update: bool = False) -> Job:
    """One job, read inside the caller's transaction (locked until it ends with `for_update`, so a step
    that checks the job's state then changes it sees the state another process just committed); KeyError
    if there is none."""
    lock = " FOR UPDATE" if for_update else ""
    row = await db.fetchrow(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1{lock}", job_id)
    if row is None:
        raise KeyError(f"no job {job_id}")
    return job_from_row(row)
