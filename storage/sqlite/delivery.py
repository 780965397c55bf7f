"""Delivery on SQLite: which results wait to be posted, where they went, credits for unshown ones."""

from __future__ import annotations

from core.models import Job, JobStatus, LedgerKind
from core.ports import JobEvent, JobNotice
from storage.sqlite.connection import SqliteConnection
from storage.sqlite.rows import JOB_COLUMNS, job_from_row
from storage.sqlite.statements import job_in

# A result waiting to be posted: a finished job's, or a late video after its expiry (or lost) notice.
# Spelled as in the partial index jobs_late_undelivered (migration 0020).
UNDELIVERED = (
    "((delivered_at IS NULL AND status IN ('succeeded', 'failed', 'expired')) "
    "OR (status IN ('expired', 'failed') AND result_url IS NOT NULL AND late_delivered_at IS NULL))"
)
# No process is offering it: never offered, or the offer's lease ran out. Parameter: now.
OFFERABLE = "(delivery_expires_at IS NULL OR delivery_expires_at <= ?)"
# A posted result lets go of its delivery lease (a late video that follows is offered afresh).
LET_GO = "delivery_owner = NULL, delivery_expires_at = NULL"


class SqliteDelivery(SqliteConnection):
    """DeliveryStore on SQLite."""

    async def undelivered_jobs(self) -> list[Job]:
        """Finished jobs whose result has not been posted yet, and late videos (of expired or lost jobs) that
        have not."""
        rows = await self._fetchall(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE delivered_at IS NULL "
            "AND status IN ('succeeded', 'failed', 'expired') "
            f"UNION ALL SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('expired', 'failed') "
            "AND result_url IS NOT NULL AND late_delivered_at IS NULL AND delivered_at IS NOT NULL "
            "ORDER BY finished_at"
        )
        return [job_from_row(r) for r in rows]

    async def claim_deliveries(self, owner: str, now: float, lease_until: float, limit: int) -> list[Job]:
        """Claim finished jobs whose result has not been posted and that no process is offering (never
        offered, or its delivery lease ran out), leased to `owner` until `lease_until`: one statement in
        BEGIN IMMEDIATE, so two claimers never take the same job. Oldest first."""
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "UPDATE jobs SET delivery_owner = ?, delivery_expires_at = ? WHERE id IN ("
                f"SELECT id FROM jobs WHERE {UNDELIVERED} AND {OFFERABLE} ORDER BY finished_at, id LIMIT ?) "
                f"RETURNING {JOB_COLUMNS}",
                (owner, lease_until, now, limit),
            )
        return sorted((job_from_row(r) for r in rows), key=lambda j: (j.finished_at or 0.0, j.id))

    async def claim_delivery(self, job_id: int, owner: str, now: float, lease_until: float) -> Job | None:
        """Claim one finished job's delivery; the job, or None if it is posted already or another process
        (or this one) is offering it."""
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "UPDATE jobs SET delivery_owner = ?, delivery_expires_at = ? "
                f"WHERE id = ? AND {UNDELIVERED} AND {OFFERABLE} RETURNING {JOB_COLUMNS}",
                (owner, lease_until, job_id, now),
            )
        return job_from_row(next(iter(rows))) if rows else None

    async def mark_delivered(self, job_id: int, now: float, posted_at: tuple[int, int] | None = None) -> bool:
        """Record the result as posted (and where: channel id, message id). True only for the call that
        recorded it."""
        channel_id, message_id = posted_at or (None, None)
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE jobs SET delivered_at = ?, updated_at = ?, result_channel_id = ?, "
                f"result_message_id = ?, {LET_GO} WHERE id = ? AND delivered_at IS NULL",
                (now, now, channel_id, message_id, job_id),
            )
        return self._delivered(job_id, cursor.rowcount == 1)

    async def mark_late_delivered(
        self, job_id: int, now: float, posted_at: tuple[int, int] | None = None
    ) -> bool:
        """Record a late video as posted (and where: its message replaces the expiry notice as the job's
        result). True only for the call that recorded it."""
        async with self._write() as db:
            cursor = await db.execute(
                # A late video that came before its expiry notice was posted stands for the notice too.
                "UPDATE jobs SET late_delivered_at = ?, delivered_at = COALESCE(delivered_at, ?), "
                f"updated_at = ?, {LET_GO}, result_channel_id = COALESCE(?, result_channel_id), "
                "result_message_id = COALESCE(?, result_message_id) WHERE id = ? "
                "AND status IN ('expired', 'failed') "
                "AND result_url IS NOT NULL AND late_delivered_at IS NULL",
                (now, now, now, *(posted_at or (None, None)), job_id),
            )
        return self._delivered(job_id, cursor.rowcount == 1)

    def _delivered(self, job_id: int, recorded: bool) -> bool:
        """After the COMMIT of a post's record: tell the subscribers (the acknowledgement's holder)."""
        if recorded:
            self._fanout.deliver(JobNotice(JobEvent.DELIVERED, job_id))
        return recorded

    async def record_post_attempt(self, job_id: int, channel_id: int, now: float) -> None:
        """Record that the job's result is about to be posted in a channel (the first try's time is kept)."""
        async with self._write() as db:
            await db.execute(
                "INSERT INTO post_attempts (job_id, channel_id, started_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (job_id, channel_id, now),
            )

    async def post_attempts(self, job_id: int) -> list[tuple[int, float]]:
        """Where the job's result was about to be posted, and since when: (channel id, first try)."""
        rows = await self._fetchall(
            "SELECT channel_id, started_at FROM post_attempts WHERE job_id = ? ORDER BY started_at", (job_id,)
        )
        return [(int(channel_id), float(started_at)) for channel_id, started_at in rows]

    async def credit_job_cost(self, job_id: int, reason: str, now: float) -> int:
        """Give a finished job's cost back to its member (once); returns the amount credited (0 if the
        job had no cost or was credited before)."""
        async with self._write() as db:
            job = await job_in(db, job_id)
            cost = job.cost_micros or 0
            if job.status is not JobStatus.SUCCEEDED or cost <= 0:
                return 0
            cursor = await db.execute(
                "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_micros, counts_at, created_at, "
                "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    job.guild_id,
                    job.user_id,
                    job_id,
                    LedgerKind.GRANT.value,
                    -cost,
                    job.created_at,
                    now,
                    reason,
                ),
            )
            return cost if cursor.rowcount == 1 else 0
