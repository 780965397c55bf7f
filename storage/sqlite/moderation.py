"""Moderation on SQLite: bans, job lookups, reports, the audit trail of a job, and pruning."""

from __future__ import annotations

from core.models import EVERY_GUILD, Ban, Job, JobAction, Pruned, Report
from storage.sqlite.connection import SqliteConnection
from storage.sqlite.rows import (
    BAN_COLUMNS,
    JOB_COLUMNS,
    REPORT_COLUMNS,
    ban_from_row,
    job_from_row,
    report_from_row,
)
from storage.sqlite.statements import audit, job_in

# Rows pruned per write transaction (a few milliseconds each).
PRUNE_BATCH = 5000


class SqliteModeration(SqliteConnection):
    """ModerationStore on SQLite."""

    async def ban(self, ban: Ban, audit_guild_id: int, now: float, job_id: int | None = None) -> None:
        """Ban a member (replacing an earlier ban of the same scope), recorded with who did it (and the
        job that led to it, if any)."""
        async with self._write() as db:
            await db.execute(
                "INSERT OR REPLACE INTO bans (guild_id, user_id, reason, banned_by, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (ban.guild_id, ban.user_id, ban.reason, ban.banned_by, ban.created_at),
            )
            detail = {"user_id": ban.user_id, "reason": ban.reason, "everywhere": ban.guild_id == EVERY_GUILD}
            await audit(db, audit_guild_id, ban.banned_by, "moderation.ban", detail, now, job_id)

    async def unban(
        self, guild_id: int, user_id: int, actor_id: int, audit_guild_id: int, now: float
    ) -> bool:
        """Lift a ban of this scope; False if there was none. Recorded."""
        async with self._write() as db:
            cursor = await db.execute(
                "DELETE FROM bans WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
            if cursor.rowcount != 1:
                return False
            detail = {"user_id": user_id, "everywhere": guild_id == EVERY_GUILD}
            await audit(db, audit_guild_id, actor_id, "moderation.unban", detail, now)
            return True

    async def bans_in(self, guild_id: int) -> list[Ban]:
        """The bans that apply in a guild (its own and the everywhere ones), newest first."""
        rows = await self._fetchall(
            f"SELECT {BAN_COLUMNS} FROM bans WHERE guild_id IN (?, ?) ORDER BY created_at DESC",
            (guild_id, EVERY_GUILD),
        )
        return [ban_from_row(row) for row in rows]

    async def ban_of(self, guild_id: int, user_id: int) -> Ban | None:
        """The ban that keeps this member from the bot in this guild, if any."""
        rows = await self._fetchall(
            f"SELECT {BAN_COLUMNS} FROM bans WHERE guild_id IN (?, ?) AND user_id = ? "
            "ORDER BY guild_id DESC LIMIT 1",
            (guild_id, EVERY_GUILD, user_id),
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
        clauses, params = ["guild_id = ?"], [guild_id]
        for column, value in (("user_id", user_id), ("id", job_id), ("image_sha256", image_sha256)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)  # type: ignore[arg-type]
        rows = await self._fetchall(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' AND '.join(clauses)} ORDER BY created_at DESC LIMIT ?",
            (*params, limit),
        )
        return [job_from_row(r) for r in rows]

    async def create_report(self, job_id: int, reporter_id: int, now: float) -> Report | None:
        """Record a member's report of a job's result; None if they reported it before."""
        async with self._write() as db:
            job = await job_in(db, job_id)
            rows = list(
                await db.execute_fetchall(
                    "INSERT INTO reports (job_id, guild_id, reporter_id, created_at) VALUES (?, ?, ?, ?) "
                    f"ON CONFLICT (job_id, reporter_id) DO NOTHING RETURNING {REPORT_COLUMNS}",
                    (job_id, job.guild_id, reporter_id, now),
                )
            )
            if not rows:
                return None
            await audit(db, job.guild_id, reporter_id, "job.report", {}, now, job_id)
            return report_from_row(rows[0])

    async def set_report_message(self, report_id: int, channel_id: int, message_id: int) -> None:
        """Remember the moderation-log message of a report (its buttons act on it)."""
        async with self._write() as db:
            await db.execute(
                "UPDATE reports SET log_channel_id = ?, log_message_id = ? WHERE id = ?",
                (channel_id, message_id, report_id),
            )

    async def get_report(self, report_id: int) -> Report | None:
        """One report by id."""
        rows = await self._fetchall(f"SELECT {REPORT_COLUMNS} FROM reports WHERE id = ?", (report_id,))
        return report_from_row(rows[0]) if rows else None

    async def reports_of_job(self, job_id: int) -> list[Report]:
        """A job's reports, oldest first."""
        rows = await self._fetchall(
            f"SELECT {REPORT_COLUMNS} FROM reports WHERE job_id = ? ORDER BY id", (job_id,)
        )
        return [report_from_row(r) for r in rows]

    async def remove_result(self, job_id: int, actor_id: int, now: float) -> bool:
        """Record that a job's posted result was deleted, and close its open reports. True the first time."""
        async with self._write() as db:
            job = await job_in(db, job_id)
            cursor = await db.execute(
                "UPDATE jobs SET removed_at = ?, updated_at = ? WHERE id = ? AND removed_at IS NULL",
                (now, now, job_id),
            )
            if cursor.rowcount != 1:
                return False
            await db.execute(
                "UPDATE reports SET state = 'deleted', decided_by = ?, decided_at = ? "
                "WHERE job_id = ? AND state = 'open'",
                (actor_id, now, job_id),
            )
            await audit(db, job.guild_id, actor_id, "job.delete", {}, now, job_id)
            return True

    async def dismiss_report(self, report_id: int, actor_id: int, now: float) -> bool:
        """Close an open report without action; False if it was already closed."""
        async with self._write() as db:
            rows = list(
                await db.execute_fetchall(
                    "UPDATE reports SET state = 'dismissed', decided_by = ?, decided_at = ? "
                    "WHERE id = ? AND state = 'open' RETURNING guild_id, job_id",
                    (actor_id, now, report_id),
                )
            )
            if not rows:
                return False
            guild_id, job_id = rows[0]["guild_id"], rows[0]["job_id"]
            detail = {"report_id": report_id}
            await audit(db, int(guild_id), actor_id, "job.dismiss", detail, now, int(job_id))
            return True

    async def job_actions(self, job_id: int) -> list[JobAction]:
        """The moderation actions recorded on a job, oldest first."""
        rows = await self._fetchall(
            "SELECT job_id, actor_id, action, created_at FROM audit_log WHERE job_id = ? ORDER BY id",
            (job_id,),
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

        The big tables go in batches of PRUNE_BATCH rows, one transaction each: a first pass over years of
        history (or a shorter retention) never holds the write lock long enough to delay reservations."""
        async with self._write() as db:
            await db.execute(
                "UPDATE consent_requests SET state = 'expired', decided_at = ? "
                "WHERE state = 'open' AND expires_at < ?",
                (now, now),
            )
            quotes = await db.execute(
                "DELETE FROM quotes WHERE created_at < ? AND state != 'open'", (before,)
            )
            requests = await db.execute(
                "DELETE FROM consent_requests WHERE created_at < ? AND state != 'open'", (before,)
            )
            closed = quotes.rowcount + requests.rowcount
        audit = await self._in_batches(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE created_at < ? LIMIT ?)",
            before,
        )
        reports = await self._in_batches(
            "DELETE FROM reports WHERE id IN (SELECT id FROM reports WHERE created_at < ? LIMIT ?)", before
        )
        hashes = await self._in_batches(
            "UPDATE jobs SET image_sha256 = NULL, audio_sha256 = NULL WHERE id IN "
            "(SELECT id FROM jobs WHERE image_sha256 IS NOT NULL AND created_at < ? LIMIT ?)",
            before,
        )
        return Pruned(audit, reports, hashes, closed)

    async def _in_batches(self, sql: str, before: float) -> int:
        """Run a `... < ? LIMIT ?` statement in transactions of PRUNE_BATCH rows until none are left."""
        total = 0
        while True:
            async with self._write() as db:
                done = (await db.execute(sql, (before, PRUNE_BATCH))).rowcount
            total += done
            if done < PRUNE_BATCH:
                return total
