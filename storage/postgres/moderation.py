"""Moderation on PostgreSQL: bans, job lookups, reports, the audit trail of a job, and pruning."""

from __future__ import annotations

from typing import Any

from core.models import EVERY_GUILD, Ban, Job, JobAction, Pruned, Report
from storage.postgres.connection import PostgresConnection, rowcount
from storage.postgres.rows import (
    BAN_COLUMNS,
    JOB_COLUMNS,
    REPORT_COLUMNS,
    ban_from_row,
    job_from_row,
    report_from_row,
)
from storage.postgres.statements import audit, job_in

# Rows pruned per transaction: each batch's row locks are held only for its own short transaction.
PRUNE_BATCH = 5000


class PostgresModeration(PostgresConnection):
    """ModerationStore on PostgreSQL."""

    async def ban(self, ban: Ban, audit_guild_id: int, now: float, job_id: int | None = None) -> None:
        """Ban a member (replacing an earlier ban of the same scope), recorded with who did it (and the
        job that led to it, if any)."""
        async with self._write() as db:
            await db.execute(
                # SQLite's INSERT OR REPLACE.
                "INSERT INTO bans (guild_id, user_id, reason, banned_by, created_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (guild_id, user_id) DO UPDATE SET "
                "reason = excluded.reason, banned_by = excluded.banned_by, created_at = excluded.created_at",
                ban.guild_id,
                ban.user_id,
                ban.reason,
                ban.banned_by,
                ban.created_at,
            )
            detail = {"user_id": ban.user_id, "reason": ban.reason, "everywhere": ban.guild_id == EVERY_GUILD}
            await audit(db, audit_guild_id, ban.banned_by, "moderation.ban", detail, now, job_id)

    async def unban(
        self, guild_id: int, user_id: int, actor_id: int, audit_guild_id: int, now: float
    ) -> bool:
        """Lift a ban of this scope; False if there was none. Recorded."""
        async with self._write() as db:
            status = await db.execute(
                "DELETE FROM bans WHERE guild_id = $1 AND user_id = $2", guild_id, user_id
            )
            if rowcount(status) != 1:
                return False
            detail = {"user_id": user_id, "everywhere": guild_id == EVERY_GUILD}
            await audit(db, audit_guild_id, actor_id, "moderation.unban", detail, now)
            return True

    async def bans_in(self, guild_id: int) -> list[Ban]:
        """The bans that apply in a guild (its own and the everywhere ones), newest first."""
        rows = await self._fetch(
            f"SELECT {BAN_COLUMNS} FROM bans WHERE guild_id IN ($1, $2) ORDER BY created_at DESC",
            guild_id,
            EVERY_GUILD,
        )
        return [ban_from_row(row) for row in rows]

    async def ban_of(self, guild_id: int, user_id: int) -> Ban | None:
        """The ban that keeps this member from the bot in this guild, if any."""
        rows = await self._fetch(
            f"SELECT {BAN_COLUMNS} FROM bans WHERE guild_id IN ($1, $2) AND user_id = $3 "
            "ORDER BY guild_id DESC LIMIT 1",
            guild_id,
            EVERY_GUILD,
            user_id,
        )
        return ban_from_row(rows[0]) if rows else None

    async def lookup_jobs(
        self,
        guild_id: int,
        *,
        user_id: int | None = None,
        job_id: int | None = None,
        image_sha256: str | None = None,
        limit: int = 10,
    ) -> list[Job]:
        """A guild's jobs by member, by number or by the SHA-256 of their image, newest first."""
        clauses, params = ["guild_id = $1"], [guild_id]
        for column, value in (("user_id", user_id), ("id", job_id), ("image_sha256", image_sha256)):
            if value is not None:
                params.append(value)  # type: ignore[arg-type]
                clauses.append(f"{column} = ${len(params)}")
        params.append(limit)
        rows = await self._fetch(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' AND '.join(clauses)} "
            f"ORDER BY created_at DESC, id DESC LIMIT ${len(params)}",
            *params,
        )
        return [job_from_row(r) for r in rows]

    async def create_report(self, job_id: int, reporter_id: int, now: float) -> Report | None:
        """Record a member's report of a job's result; None if they reported it before."""
        async with self._write() as db:
            job = await job_in(db, job_id)
            row = await db.fetchrow(
                "INSERT INTO reports (job_id, guild_id, reporter_id, created_at) VALUES ($1, $2, $3, $4) "
                f"ON CONFLICT (job_id, reporter_id) DO NOTHING RETURNING {REPORT_COLUMNS}",
                job_id,
                job.guild_id,
                reporter_id,
                now,
            )
            if row is None:
                return None
            await audit(db, job.guild_id, reporter_id, "job.report", {}, now, job_id)
            return report_from_row(row)

    async def set_report_message(self, report_id: int, channel_id: int, message_id: int) -> None:
        """Remember the moderation-log message of a report (its buttons act on it)."""
        async with self._write() as db:
            await db.execute(
                "UPDATE reports SET log_channel_id = $1, log_message_id = $2 WHERE id = $3",
                channel_id,
                message_id,
                report_id,
            )

    async def get_report(self, report_id: int) -> Report | None:
        """One report by id."""
        rows = await self._fetch(f"SELECT {REPORT_COLUMNS} FROM reports WHERE id = $1", report_id)
        return report_from_row(rows[0]) if rows else None

    async def reports_of_job(self, job_id: int) -> list[Report]:
        """A job's reports, oldest first."""
        rows = await self._fetch(
            f"SELECT {REPORT_COLUMNS} FROM reports WHERE job_id = $1 ORDER BY id", job_id
        )
        return [report_from_row(r) for r in rows]

    async def remove_result(self, job_id: int, actor_id: int, now: float) -> bool:
        """Record that a job's posted result was deleted, and close its open reports. True the first time."""
        async with self._write() as db:
            guild_id = await db.fetchval(
                "UPDATE jobs SET removed_at = $1, updated_at = $1 WHERE id = $2 AND removed_at IS NULL "
                "RETURNING guild_id",
                now,
                job_id,
            )
            if guild_id is None:
                await job_in(db, job_id)  # KeyError for a job that does not exist, as on SQLite
                return False
            await db.execute(
                "UPDATE reports SET state = 'deleted', decided_by = $1, decided_at = $2 "
                "WHERE job_id = $3 AND state = 'open'",
                actor_id,
                now,
                job_id,
            )
            await audit(db, int(guild_id), actor_id, "job.delete", {}, now, job_id)
            return True

    async def dismiss_report(self, report_id: int, actor_id: int, now: float) -> bool:
        """Close an open report without action; False if it was already closed."""
        async with self._write() as db:
            row = await db.fetchrow(
                "UPDATE reports SET state = 'dismissed', decided_by = $1, decided_at = $2 "
                "WHERE id = $3 AND state = 'open' RETURNING guild_id, job_id",
                actor_id,
                now,
                report_id,
            )
            if row is None:
                return False
            detail = {"report_id": report_id}
            await audit(db, int(row["guild_id"]), actor_id, "job.dismiss", detail, now, int(row["job_id"]))
            return True

    async def job_actions(self, job_id: int) -> list[JobAction]:
        """The moderation actions recorded on a job, oldest first."""
        rows = await self._fetch(
            "SELECT job_id, actor_id, action, created_at FROM audit_log WHERE job_id = $1 ORDER BY id", job_id
        )
        return [
            JobAction(
                job_id=int(row["job_id"]),
                actor_id=int(row["actor_id"]),
                action=str(row["action"]),
                created_at=float(row["created_at"]),
            )
            for row in rows
        ]

    async def prune(self, before: float, now: float) -> Pruned:
        """Forget moderation records older than `before`: audit rows, reports, closed quotes and consent
        requests, and the hashes of old jobs' files. Jobs and the ledger stay (money is kept for good).
        Also closes consent requests that ran out unanswered.

        The big tables go in batches of PRUNE_BATCH rows, one transaction each."""
        async with self._write() as db:
            await db.execute(
                "UPDATE consent_requests SET state = 'expired', decided_at = $1 "
                "WHERE state = 'open' AND expires_at < $1",
                now,
            )
            quotes = await db.execute("DELETE FROM quotes WHERE created_at < $1 AND state <> 'open'", before)
            requests = await db.execute(
                "DELETE FROM consent_requests WHERE created_at < $1 AND state <> 'open'", before
            )
            closed = rowcount(quotes) + rowcount(requests)
        audit_rows = await self._in_batches(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE created_at < $1 LIMIT $2)",
            before,
        )
        reports = await self._in_batches(
            "DELETE FROM reports WHERE id IN (SELECT id FROM reports WHERE created_at < $1 LIMIT $2)", before
        )
        hashes = await self._in_batches(
            "UPDATE jobs SET image_sha256 = NULL, audio_sha256 = NULL WHERE id IN "
            "(SELECT id FROM jobs WHERE image_sha256 IS NOT NULL AND created_at < $1 LIMIT $2)",
            before,
        )
        return Pruned(audit_rows, reports, hashes, closed)

    async def _in_batches(self, sql: str, *args: Any) -> int:
        """Run a `... < $1 LIMIT $2` statement in transactions of PRUNE_BATCH rows until none are left."""
        total = 0
        while True:
            async with self._write() as db:
                done = rowcount(await db.execute(sql, *args, PRUNE_BATCH))
            total += done
            if done < PRUNE_BATCH:
                return total
