"""A job's life on PostgreSQL: the reservation, the runner's steps, settle and refund, late results."""

from __future__ import annotations

from collections.abc import Callable

from core.models import ACTIVE, Job, JobStatus, LedgerKind, Limits, NewJob, QuotaRefusal, Usage, Windows
from storage.postgres.connection import Db, PostgresConnection, rowcount
from storage.postgres.rows import ACTIVE_SQL, JOB_COLUMNS, job_from_row
from storage.postgres.statements import append_ledger, job_in, lock_guild, lock_operator_day, usage_in


async def reserve(
    db: Db,
    new: NewJob,
    limits: Limits,
    now: float,
    windows: Windows,
    decide: Callable[[Usage], QuotaRefusal | None],
    refs: tuple[str, str] | None = None,
) -> Job | QuotaRefusal:
    """Inside the caller's transaction: take the guild's lock (and the operator's day, under a ceiling),
    let `decide` judge the member's usage, and if it allows, insert the job and its reservation (queued at
    once when its inputs are already uploaded: `refs`)."""
    await lock_guild(db, new.guild_id)
    if limits.operator_daily_micros is not None:
        await lock_operator_day(db, windows.day_start)
    usage = await usage_in(db, new.guild_id, new.user_id, limits, windows)
    refusal = decide(usage)
    if refusal is not None:
        return refusal
    status, image_ref, audio_ref, next_at = (
        (JobStatus.QUEUED, refs[0], refs[1], now) if refs else (JobStatus.UPLOADING, None, None, None)
    )
    row = await db.fetchrow(
        "INSERT INTO jobs (task_uuid, guild_id, channel_id, user_id, status, audio_seconds, "
        "estimate_micros, output_format, output_quality, created_at, updated_at, "
        "upload_limit_bytes, channel_nsfw, image_ref, audio_ref, next_poll_at, safety_mode, "
        "image_sha256, audio_sha256) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) "
        f"RETURNING {JOB_COLUMNS}",
        new.task_uuid,
        new.guild_id,
        new.channel_id,
        new.user_id,
        status.value,
        new.audio_seconds,
        new.estimate_micros,
        new.output_format,
        new.output_quality,
        now,
        now,
        new.upload_limit_bytes,
        new.channel_nsfw,
        image_ref,
        audio_ref,
        next_at,
        new.safety_mode,
        new.image_sha256,
        new.audio_sha256,
    )
    assert row is not None
    job = job_from_row(row)
    await append_ledger(
        db, new.guild_id, new.user_id, job.id, LedgerKind.RESERVE, new.estimate_micros, now, now
    )
    return job


class PostgresJobs(PostgresConnection):
    """JobStore on PostgreSQL."""

    async def create_job_with_reservation(
        self,
        new: NewJob,
        limits: Limits,
        now: float,
        windows: Windows,
        decide: Callable[[Usage], QuotaRefusal | None],
    ) -> Job | QuotaRefusal:
        """In one transaction, serialised per guild: gather the member's usage, let `decide` apply the
        limits, and if it allows, insert the job and its reservation. Concurrent calls, from any number of
        processes, can never overspend."""
        async with self._write() as db:
            return await reserve(db, new, limits, now, windows, decide)

    async def mark_job_queued(self, job_id: int, image_ref: str, audio_ref: str, now: float) -> Job | None:
        """Record the uploaded inputs; the job is ready for the runner to submit. None if it was no longer
        uploading (failed and refunded meanwhile)."""
        async with self._write() as db:
            row = await db.fetchrow(
                "UPDATE jobs SET status = $1, image_ref = $2, audio_ref = $3, next_poll_at = $4, "
                f"updated_at = $4 WHERE id = $5 AND status = $6 RETURNING {JOB_COLUMNS}",
                JobStatus.QUEUED.value,
                image_ref,
                audio_ref,
                now,
                job_id,
                JobStatus.UPLOADING.value,
            )
            return job_from_row(row) if row is not None else None

    async def mark_submitting(self, job_id: int, now: float, retry_at: float) -> bool:
        """Record that a submit is about to be sent (ambiguous until mark_submitted). False if the job is
        no longer queued or submitting: it must not be sent."""
        async with self._write() as db:
            status = await db.execute(
                "UPDATE jobs SET status = $1, next_poll_at = $2, updated_at = $3 "
                "WHERE id = $4 AND status IN ($5, $6)",
                JobStatus.SUBMITTING.value,
                retry_at,
                now,
                job_id,
                JobStatus.QUEUED.value,
                JobStatus.SUBMITTING.value,
            )
            return rowcount(status) == 1

    async def mark_submitted(self, job_id: int, now: float, next_poll_at: float) -> bool:
        """Record that Runware accepted the task; polling starts at next_poll_at. False if the job was no
        longer queued or submitting."""
        async with self._write() as db:
            status = await db.execute(
                "UPDATE jobs SET status = $1, submitted_at = COALESCE(submitted_at, $2), next_poll_at = $3, "
                "updated_at = $2 WHERE id = $4 AND status IN ($5, $6)",
                JobStatus.PROCESSING.value,
                now,
                next_poll_at,
                job_id,
                JobStatus.QUEUED.value,
                JobStatus.SUBMITTING.value,
            )
            return rowcount(status) == 1

    async def schedule_polls(self, updates: list[tuple[int, float]], now: float) -> int:
        """Set the next poll time of several jobs, (job_id, next_poll_at) each, and count one poll each.
        Returns how many were changed (a job finished meanwhile is left alone)."""
        if not updates:
            return 0
        async with self._write() as db:
            # One statement for the batch (asyncpg's executemany reports no row counts).
            status = await db.execute(
                "UPDATE jobs SET next_poll_at = u.next_poll_at, poll_count = poll_count + 1, updated_at = $3 "
                "FROM unnest($1::BIGINT[], $2::DOUBLE PRECISION[]) AS u (id, next_poll_at) "
                f"WHERE jobs.id = u.id AND (jobs.status IN ({ACTIVE_SQL}) OR jobs.late_until IS NOT NULL)",
                [job_id for job_id, _ in updates],
                [next_poll_at for _, next_poll_at in updates],
                now,
            )
            return rowcount(status)

    async def complete_job(
        self, job_id: int, result_url: str, cost_micros: int, nsfw: bool, now: float
    ) -> Job | None:
        """Mark success and settle: release the estimate, charge the real cost. None if already final."""
        async with self._write() as db:
            job = await job_in(db, job_id, for_update=True)
            if job.status not in ACTIVE:
                return None
            await lock_guild(db, job.guild_id)
            await db.execute(
                "UPDATE jobs SET status = $1, result_url = $2, cost_micros = $3, nsfw = $4, "
                "finished_at = $5, next_poll_at = NULL, updated_at = $5 WHERE id = $6",
                JobStatus.SUCCEEDED.value,
                result_url,
                cost_micros,
                nsfw,
                now,
                job_id,
            )
            for kind, amount in (
                (LedgerKind.RELEASE, -job.estimate_micros),
                (LedgerKind.SETTLE, cost_micros),
            ):
                await append_ledger(db, job.guild_id, job.user_id, job_id, kind, amount, job.created_at, now)
            return await job_in(db, job_id)

    async def fail_job(
        self,
        job_id: int,
        code: str,
        message: str,
        now: float,
        *,
        expired: bool = False,
        member_told: bool = False,
        watch: tuple[float, float] | None = None,
    ) -> Job | None:
        """Mark failure (or expiry) and refund the reservation. None if the job was already final.

        `member_told`: the member already read why (the command's own reply), so nothing is posted.
        `watch` (until, next poll): an expired task Runware still has is asked about until then."""
        status = JobStatus.EXPIRED if expired else JobStatus.FAILED
        late_until, next_poll_at = watch if expired and watch else (None, None)
        async with self._write() as db:
            job = await job_in(db, job_id, for_update=True)
            if job.status not in ACTIVE:
                return None
            await lock_guild(db, job.guild_id)
            await db.execute(
                "UPDATE jobs SET status = $1, error_code = $2, error_message = $3, cost_micros = 0, "
                "finished_at = $4, next_poll_at = $5, updated_at = $4, delivered_at = $6, late_until = $7 "
                "WHERE id = $8",
                status.value,
                code,
                message,
                now,
                next_poll_at,
                now if member_told else None,
                late_until,
                job_id,
            )
            await append_ledger(
                db,
                job.guild_id,
                job.user_id,
                job_id,
                LedgerKind.REFUND,
                -job.estimate_micros,
                job.created_at,
                now,
            )
            return await job_in(db, job_id)

    async def complete_late_job(
        self, job_id: int, result_url: str, cost_micros: int, nsfw: bool, now: float
    ) -> Job | None:
        """A watched expired job's video arrived: keep it, and book what Runware bills to the server only
        (a settle of the cost, which the server's total counts, and a grant of it back to the member, who
        was refunded at the deadline). None if the job was not being watched (done before)."""
        async with self._write() as db:
            job = await job_in(db, job_id, for_update=True)
            if job.status is not JobStatus.EXPIRED or job.late_until is None:
                return None
            await lock_guild(db, job.guild_id)
            await db.execute(
                "UPDATE jobs SET result_url = $1, cost_micros = $2, nsfw = $3, late_until = NULL, "
                "next_poll_at = NULL, updated_at = $4 WHERE id = $5",
                result_url,
                cost_micros,
                nsfw,
                now,
                job_id,
            )
            for kind, amount, reason in (
                (LedgerKind.SETTLE, cost_micros, None),
                (LedgerKind.GRANT, -cost_micros, "arrived after the deadline"),
            ):
                await append_ledger(
                    db, job.guild_id, job.user_id, job_id, kind, amount, job.created_at, now, reason
                )
            return await job_in(db, job_id)

    async def end_late_watch(self, job_id: int, now: float) -> bool:
        """Stop asking about an expired job (its task ended without a video, or its time to live ran out).
        False if it was not being watched."""
        async with self._write() as db:
            status = await db.execute(
                "UPDATE jobs SET late_until = NULL, next_poll_at = NULL, updated_at = $1 "
                "WHERE id = $2 AND late_until IS NOT NULL",
                now,
                job_id,
            )
            return rowcount(status) == 1

    async def late_jobs_due(self, now: float, limit: int) -> list[Job]:
        """Watched expired jobs due for a poll by `now`."""
        rows = await self._fetch(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE late_until IS NOT NULL AND next_poll_at <= $1 "
            "ORDER BY next_poll_at LIMIT $2",
            now,
            limit,
        )
        return [job_from_row(r) for r in rows]

    async def get_job(self, job_id: int) -> Job | None:
        """One job by its number."""
        rows = await self._fetch(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1", job_id)
        return job_from_row(rows[0]) if rows else None

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 5) -> list[Job]:
        """A member's latest jobs in a guild, newest first."""
        rows = await self._fetch(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE guild_id = $1 AND user_id = $2 "
            "ORDER BY created_at DESC, id DESC LIMIT $3",
            guild_id,
            user_id,
            limit,
        )
        return [job_from_row(r) for r in rows]

    async def due_jobs(self, now: float, horizon: float, limit: int) -> list[Job]:
        """Unfinished jobs due by `now`, plus processing jobs due by `horizon` (to batch their polls)."""
        rows = await self._fetch(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ({ACTIVE_SQL}) AND status <> $1 "
            "AND (next_poll_at <= $2 OR (status = $3 AND next_poll_at <= $4)) ORDER BY next_poll_at LIMIT $5",
            JobStatus.UPLOADING.value,
            now,
            JobStatus.PROCESSING.value,
            horizon,
            limit,
        )
        return [job_from_row(r) for r in rows]

    async def next_due_at(self) -> float | None:
        """When the earliest unfinished job is next due, or None if there is none."""
        rows = await self._fetch(
            "SELECT MIN(due) FROM ("
            f"SELECT MIN(next_poll_at) AS due FROM jobs WHERE status IN ({ACTIVE_SQL}) AND status <> $1 "
            "UNION ALL SELECT MIN(next_poll_at) FROM jobs WHERE late_until IS NOT NULL) AS dues",
            JobStatus.UPLOADING.value,
        )
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None

    async def stale_uploads(self, before: float) -> list[Job]:
        """Jobs still uploading that were created before `before` (their inputs died with a process)."""
        rows = await self._fetch(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'uploading' AND created_at < $1", before
        )
        return [job_from_row(r) for r in rows]

    async def usage(self, guild_id: int, user_id: int, limits: Limits, windows: Windows) -> Usage:
        """The member's spend in the windows, the guild's month, active jobs, and the limits."""
        async with self._pool.acquire() as db:
            return await usage_in(db, guild_id, user_id, limits, windows)
