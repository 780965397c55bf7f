"""Budgets on PostgreSQL: admins' grants and resets, spend reports, the ledger export, budget alerts."""

from __future__ import annotations

from core.models import JobStatus, LedgerKind, LedgerRow, Limits, SpendReport, Windows
from storage.postgres.connection import PostgresConnection, rowcount
from storage.postgres.rows import ACTIVE_SQL, LEDGER_COLUMNS, ledger_row_from_row
from storage.postgres.statements import append_ledger, audit, lock_guild, usage_in


class PostgresBudgets(PostgresConnection):
    """BudgetStore on PostgreSQL."""

    async def guild_month_spend(self, guild_id: int, windows: Windows) -> int:
        """What the whole guild has spent in the month of `windows`."""
        rows = await self._fetch(
            "SELECT amount_micros FROM spend_totals WHERE guild_id = $1 AND user_id = 0 "
            "AND period = 'month' AND period_start = $2",
            guild_id,
            windows.month_start,
        )
        return int(rows[0]["amount_micros"]) if rows else 0

    async def grant(
        self, guild_id: int, user_id: int, amount_micros: int, reason: str, actor_id: int, now: float
    ) -> None:
        """Record an admin's credit (negative: room to spend) or debit for a member, on the ledger and
        in the audit log, in one transaction. It counts today."""
        async with self._write() as db:
            await lock_guild(db, guild_id)
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
        daily limit. Under the guild's lock, so two admins' resets at once give it back once."""
        reason = f"{period} reset by an admin"
        async with self._write() as db:
            await lock_guild(db, guild_id)
            usage = await usage_in(db, guild_id, user_id, Limits(None, None), windows)
            # A running job's only ledger row is its reservation, counted when it was created.
            row = await db.fetchrow(
                "SELECT COALESCE(SUM(CASE WHEN created_at >= $3 THEN estimate_micros END), 0), "
                "COALESCE(SUM(estimate_micros), 0) FROM jobs WHERE guild_id = $1 AND user_id = $2 "
                f"AND status IN ({ACTIVE_SQL}) AND created_at >= $4",
                guild_id,
                user_id,
                windows.day_start,
                windows.month_start,
            )
            assert row is not None
            reserved_today, reserved_month = (int(v) for v in row.values())
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
        async with self._snapshot() as db:
            # One snapshot for the three reads, so the total and the spenders agree.
            sums = await db.fetchrow(
                "SELECT COALESCE(SUM(CASE WHEN kind <> 'grant' THEN amount_micros END), 0), "
                "COALESCE(SUM(CASE WHEN kind = 'grant' AND job_id IS NULL THEN amount_micros END), 0) "
                "FROM ledger WHERE guild_id = $1 AND counts_at >= $2 AND counts_at < $3",
                guild_id,
                start,
                end,
            )
            spenders = await db.fetch(
                "SELECT user_id, SUM(amount_micros) AS spent FROM ledger WHERE guild_id = $1 "
                "AND counts_at >= $2 AND counts_at < $3 AND kind <> 'grant' GROUP BY user_id "
                "HAVING SUM(amount_micros) > 0 ORDER BY spent DESC, user_id LIMIT $4",
                guild_id,
                start,
                end,
                top,
            )
            outcomes = await db.fetch(
                "SELECT status, COUNT(*) FROM jobs WHERE guild_id = $1 AND created_at >= $2 "
                "AND created_at < $3 GROUP BY status",
                guild_id,
                start,
                end,
            )
        assert sums is not None
        total, grants = (int(v) for v in sums.values())
        return SpendReport(
            total_micros=total,
            granted_micros=-grants,
            top_spenders=[(int(u), int(a)) for u, a in (r.values() for r in spenders)],
            jobs_by_status={JobStatus(s): int(n) for s, n in (r.values() for r in outcomes)},
        )

    async def ledger_rows(self, guild_id: int, start: float, end: float) -> list[LedgerRow]:
        """The guild's ledger rows that count in [start, end), oldest first (for the CSV export): the same
        rows /budget usage sums, so the file and the report agree."""
        rows = await self._fetch(
            f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE guild_id = $1 AND counts_at >= $2 "
            "AND counts_at < $3 ORDER BY id",
            guild_id,
            start,
            end,
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
            status = await db.execute(
                "INSERT INTO budget_alerts (guild_id, month_start, budget_micros, threshold, claimed_at, "
                "spent_micros) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                guild_id,
                month_start,
                budget_micros,
                threshold,
                now,
                spent_micros,
            )
            return rowcount(status) == 1

    async def reclaim_unposted_budget_alerts(
        self, month_start: float, now: float, tried_before: float
    ) -> list[tuple[int, int, int, int | None]]:
        """Claim again the month's alerts not posted yet whose last try began before `tried_before`:
        (guild id, budget, threshold, spend announced). Each alert goes to one caller, whatever process."""
        async with self._write() as db:
            rows = await db.fetch(
                "UPDATE budget_alerts SET claimed_at = $1 WHERE posted_at IS NULL AND month_start = $2 "
                "AND claimed_at < $3 RETURNING guild_id, budget_micros, threshold, spent_micros",
                now,
                month_start,
                tried_before,
            )
            return [
                (int(g), int(b), int(t), None if s is None else int(s))
                for g, b, t, s in (r.values() for r in rows)
            ]

    async def settle_budget_alert(
        self, guild_id: int, month_start: float, budget_micros: int, threshold: int, now: float | None
    ) -> None:
        """Record a budget alert as posted (`now`), or as not posted (None: the next retry pass takes it)."""
        key = (guild_id, month_start, budget_micros, threshold)
        async with self._write() as db:
            if now is None:
                await db.execute(
                    "UPDATE budget_alerts SET claimed_at = 0 WHERE guild_id = $1 AND month_start = $2 "
                    "AND budget_micros = $3 AND threshold = $4 AND posted_at IS NULL",
                    *key,
                )
            else:
                await db.execute(
                    "UPDATE budget_alerts SET posted_at = $5 WHERE guild_id = $1 AND month_start = $2 "
                    "AND budget_micros = $3 AND threshold = $4",
                    *key,
                    now,
                )
