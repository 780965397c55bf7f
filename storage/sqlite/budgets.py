"""Budgets on SQLite: admins' grants and resets, spend reports, the ledger export, budget alerts."""

from __future__ import annotations

from core.models import JobStatus, LedgerKind, LedgerRow, Limits, SpendReport, Windows
from storage.sqlite.connection import SqliteConnection
from storage.sqlite.rows import ACTIVE_SQL, LEDGER_COLUMNS, ledger_row_from_row
from storage.sqlite.statements import append_ledger, audit, usage_in


class SqliteBudgets(SqliteConnection):
    """BudgetStore on SQLite."""

    async def guild_month_spend(self, guild_id: int, windows: Windows) -> int:
        """What the whole guild has spent in the month of `windows`."""
        rows = await self._fetchall(
            "SELECT amount_micros FROM spend_totals WHERE guild_id = ? AND user_id = 0 AND period = 'month' "
            "AND period_start = ?",
            (guild_id, windows.month_start),
        )
        return int(rows[0][0]) if rows else 0

    async def grant(
        self, guild_id: int, user_id: int, amount_micros: int, reason: str, actor_id: int, now: float
    ) -> None:
        """Record an admin's credit (negative: room to spend) or debit for a member, on the ledger and
        in the audit log, in one transaction. It counts today."""
        async with self._write() as db:
            await append_ledger(
                db, guild_id, user_id, None, LedgerKind.GRANT, amount_micros, now, now, reason
            )
            detail = {"user_id": user_id, "amount_micros": amount_micros, "reason": reason}
            await audit(db, guild_id, actor_id, "budget.grant", detail, now)

    async def reset_member_window(
        self, guild_id: int, user_id: int, period: str, windows: Windows, actor_id: int, now: float
    ) -> int:
        """Give back a member's spend in the current day or month, so that window starts afresh.

        Returns the amount credited. Only settled spend is given back: a job still running keeps its
        reservation (it settles at its real cost later). The month's credit is split so that today's part
        counts today and the rest counts at the month's start: a month reset never lets today exceed the
        daily limit."""
        reason = f"{period} reset by an admin"
        async with self._write() as db:
            usage = await usage_in(db, guild_id, user_id, Limits(None, None), windows)
            # A running job's only ledger row is its reservation, counted when it was created.
            rows = list(
                await db.execute_fetchall(
                    "SELECT COALESCE(SUM(CASE WHEN created_at >= ?3 THEN estimate_micros END), 0), "
                    "COALESCE(SUM(estimate_micros), 0) FROM jobs WHERE guild_id = ?1 AND user_id = ?2 "
                    f"AND status IN ({ACTIVE_SQL}) AND created_at >= ?4",
                    (guild_id, user_id, windows.day_start, windows.month_start),
                )
            )
            reserved_today, reserved_month = (int(v) for v in rows[0])
            today = max(0, usage.spent_today_micros - reserved_today)
            parts = [(today, now)]
            if period == "month":
                settled_month = usage.spent_month_micros - reserved_month
                parts.append((max(0, settled_month - today), windows.month_start))
            total = 0
            for amount, counts_at in parts:
                if amount > 0:
                    await append_ledger(
                        db, guild_id, user_id, None, LedgerKind.GRANT, -amount, counts_at, now, reason
                    )
                    total += amount
            detail = {"user_id": user_id, "period": period, "credited_micros": total}
            await audit(db, guild_id, actor_id, "budget.reset", detail, now)
            return total

    async def spend_report(self, guild_id: int, start: float, end: float, top: int = 5) -> SpendReport:
        """A guild's spend in [start, end): the total, the top spenders, and its jobs by outcome."""
        # Spend is what the jobs cost (grants are credits to members, not money spent); the admins' grants
        # on their own (job_id NULL: /budget grant and reset), not the bot's give-backs of a job's cost (a
        # withheld video, a late one), which no admin gave.
        rows = await self._fetchall(
            "SELECT COALESCE(SUM(CASE WHEN kind != 'grant' THEN amount_micros END), 0), "
            "COALESCE(SUM(CASE WHEN kind = 'grant' AND job_id IS NULL THEN amount_micros END), 0) "
            "FROM ledger WHERE guild_id = ? AND counts_at >= ? AND counts_at < ?",
            (guild_id, start, end),
        )
        total, grants = int(rows[0][0]), int(rows[0][1])
        spenders = await self._fetchall(
            "SELECT user_id, SUM(amount_micros) AS spent FROM ledger WHERE guild_id = ? AND counts_at >= ? "
            "AND counts_at < ? AND kind != 'grant' GROUP BY user_id HAVING spent > 0 "
            "ORDER BY spent DESC, user_id LIMIT ?",
            (guild_id, start, end, top),
        )
        outcomes = await self._fetchall(
            "SELECT status, COUNT(*) FROM jobs WHERE guild_id = ? AND created_at >= ? AND created_at < ? "
            "GROUP BY status",
            (guild_id, start, end),
        )
        return SpendReport(
            total_micros=total,
            granted_micros=-grants,
            top_spenders=[(int(u), int(a)) for u, a in spenders],
            jobs_by_status={JobStatus(s): int(n) for s, n in outcomes},
        )

    async def ledger_rows(self, guild_id: int, start: float, end: float) -> list[LedgerRow]:
        """The guild's ledger rows that count in [start, end), oldest first (for the CSV export): the same
        rows /budget usage sums, so the file and the report agree."""
        rows = await self._fetchall(
            f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE guild_id = ? AND counts_at >= ? AND counts_at < ? "
            "ORDER BY id",
            (guild_id, start, end),
        )
        return [ledger_row_from_row(row) for row in rows]

    async def claim_budget_alert(
        self,
        guild_id: int,
        month_start: float,
        budget_micros: int,
        threshold: int,
        now: float,
        spent_micros: int | None = None,
    ) -> bool:
        """Record that a budget alert is being posted; True only for the first claim of that month."""
        async with self._write() as db:
            cursor = await db.execute(
                "INSERT INTO budget_alerts (guild_id, month_start, budget_micros, threshold, claimed_at, "
                "spent_micros) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (guild_id, month_start, budget_micros, threshold, now, spent_micros),
            )
            return cursor.rowcount == 1

    async def reclaim_unposted_budget_alerts(
        self, month_start: float, now: float, tried_before: float
    ) -> list[tuple[int, int, int, int | None]]:
        """Claim again the month's alerts not posted yet whose last try began before `tried_before`:
        (guild id, budget, threshold, spend announced)."""
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "UPDATE budget_alerts SET claimed_at = ? WHERE posted_at IS NULL AND month_start = ? "
                "AND claimed_at < ? RETURNING guild_id, budget_micros, threshold, spent_micros",
                (now, month_start, tried_before),
            )
            return [(int(g), int(b), int(t), None if s is None else int(s)) for g, b, t, s in rows]

    async def settle_budget_alert(
        self, guild_id: int, month_start: float, budget_micros: int, threshold: int, now: float | None
    ) -> None:
        """Record a budget alert as posted (`now`), or as not posted (None: the next retry pass takes it)."""
        key = (guild_id, month_start, budget_micros, threshold)
        where = "WHERE guild_id = ? AND month_start = ? AND budget_micros = ? AND threshold = ?"
        async with self._write() as db:
            if now is None:
                await db.execute(
                    f"UPDATE budget_alerts SET claimed_at = 0 {where} AND posted_at IS NULL", key
                )
            else:
                await db.execute(f"UPDATE budget_alerts SET posted_at = ? {where}", (now, *key))
