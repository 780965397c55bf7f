"""A job's life on SQLite: the reservation, the runner's steps, settle and refund, late results."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import aiosqlite

from core.models import (
    ACTIVE,
    CANCELLED_CODE,
    LATE_CAPABLE,
    Job,
    JobPlace,
    JobStatus,
    LedgerKind,
    Limits,
    NewJob,
    QuotaRefusal,
    Usage,
    Windows,
)
from core.ports import JobEvent, JobNotice
from storage.sqlite.connection import SqliteConnection
from storage.sqlite.rows import ACTIVE_SQL, JOB_COLUMNS, WAITING_SQL, job_from_row
from storage.sqlite.statements import append_ledger, append_refund, job_in, usage_in

# Leases. A runner step passes its `owner`; with None (the service's own steps) the lease is not checked.
# Why a check in the statement rather than a fencing token: the owner is already one per process and a
# claim replaces it in the same write that takes the job, so "the row still names me" is exactly "nobody
# took it from me"; a step of a process whose lease ran out but that nobody claimed yet may still finish
# its job, which is safe. Used as `… WHERE … {HELD}` with (owner, owner) as its last two parameters.
HELD = " AND (? IS NULL OR lease_owner = ?)"
# A terminal step lets go of the job (its delivery has a lease of its own).
RELEASE = "lease_owner = NULL, lease_expires_at = NULL"
# A late video is a new result to post: offered afresh, even while its expiry notice is being offered.
OFFER_AFRESH = "delivery_owner = NULL, delivery_expires_at = NULL"
# What the runner advances: jobs past their upload and not finished, and expired jobs still watched.
RUNNING_SQL = "'queued', 'submitting', 'processing'"
CLAIM_SCOPE = f"status IN ({RUNNING_SQL}) OR late_until IS NOT NULL"
# Due: by `now`, or (a processing job) by `horizon` to ride along in a batched poll. Parameters: now,
# horizon, now.
DUE = (
    f"((status IN ({RUNNING_SQL}) AND (next_poll_at <= ? OR (status = 'processing' AND next_poll_at <= ?))) "
    "OR (late_until IS NOT NULL AND next_poll_at <= ?))"
)
# A result Runware's webhook brought waits for the job (in an UPDATE of jobs).
WEBHOOK_WAITING = "EXISTS (SELECT 1 FROM webhook_results w WHERE w.job_id = jobs.id)"
# Free to take: nobody holds it, the claimer holds it, or its lease ran out. Parameters: owner, now.
CLAIMABLE = "(lease_owner IS NULL OR lease_owner = ? OR lease_expires_at <= ?)"


async def kept_result(db: aiosqlite.Connection, job_id: int) -> bool:
    """True when a webhook result is kept for the job."""
    rows = await db.execute_fetchall("SELECT 1 FROM webhook_results WHERE job_id = ?", (job_id,))
    return bool(list(rows))


async def make_due(db: aiosqlite.Connection, job_id: int, now: float) -> None:
    """Make a job whose kept webhook result is still to be applied due now (if it is not already)."""
    await db.execute(
        "UPDATE jobs SET next_poll_at = ? WHERE id = ? AND (next_poll_at IS NULL OR next_poll_at > ?)",
        (now, job_id, now),
    )


def holds(job: Job, owner: str | None) -> bool:
    """True when no owner is asked about, or `owner` holds the job."""
    return owner is None or job.lease_owner == owner


async def reserve(
    db: aiosqlite.Connection,
    new: NewJob,
    limits: Limits,
    now: float,
    windows: Windows,
    decide: Callable[[Usage], QuotaRefusal | None],
    refs: tuple[str, str] | None = None,
) -> Job | QuotaRefusal:
    """Inside the caller's write transaction: let `decide` judge the member's usage, and if it allows,
    insert the job and its reservation (queued at once when its inputs are already uploaded: `refs`)."""
    usage = await usage_in(db, new.guild_id, new.user_id, limits, windows)
    refusal = decide(usage)
    if refusal is not None:
        return refusal
    # With inputs already uploaded (a confirmed quote) the job is queued at once.
    status, image_ref, audio_ref, next_at = (
        (JobStatus.QUEUED, refs[0], refs[1], now) if refs else (JobStatus.UPLOADING, None, None, None)
    )
    lease = new.lease() if new.lease else None  # stamped now, after the guild's lock (NewJob.lease)
    rows = await db.execute_fetchall(
        "INSERT INTO jobs (task_uuid, guild_id, channel_id, user_id, status, audio_seconds, "
        "estimate_micros, output_format, output_quality, created_at, updated_at, "
        "upload_limit_bytes, channel_nsfw, image_ref, audio_ref, next_poll_at, safety_mode, "
        "image_sha256, audio_sha256, lease_owner, lease_expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        f"RETURNING {JOB_COLUMNS}",
        (
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
            int(new.channel_nsfw),
            image_ref,
            audio_ref,
            next_at,
            new.safety_mode,
            new.image_sha256,
            new.audio_sha256,
            lease.owner if lease else None,
            lease.expires_at if lease else None,
        ),
    )
    job = job_from_row(next(iter(rows)))
    await append_ledger(
        db, new.guild_id, new.user_id, job.id, LedgerKind.RESERVE, new.estimate_micros, now, now
    )
    return job


class SqliteJobs(SqliteConnection):
    """JobStore on SQLite."""

    async def create_job_with_reservation(
        self,
        new: NewJob,
        limits: Limits,
        now: float,
        windows: Windows,
        decide: Callable[[Usage], QuotaRefusal | None],
    ) -> Job | QuotaRefusal:
        """In one write transaction: gather the member's usage, let `decide` apply the limits, and if it
        allows, insert the job and its reservation. Concurrent calls can never overspend."""
        async with self._write() as db:
            return await reserve(db, new, limits, now, windows, decide)

    async def mark_job_queued(
        self, job_id: int, image_ref: str, audio_ref: str, now: float, *, owner: str | None = None
    ) -> Job | None:
        """Record the uploaded inputs; the job is ready for the runner to submit. None if it was no longer
        uploading (failed and refunded meanwhile), or, with `owner`, no longer held by it."""
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = ?, image_ref = ?, audio_ref = ?, next_poll_at = ?, updated_at = ? "
                f"WHERE id = ? AND status = ?{HELD}",
                (
                    JobStatus.QUEUED.value,
                    image_ref,
                    audio_ref,
                    now,
                    now,
                    job_id,
                    JobStatus.UPLOADING.value,
                    owner,
                    owner,
                ),
            )
            return await job_in(db, job_id) if cursor.rowcount == 1 else None

    async def mark_submitting(
        self,
        job_id: int,
        now: float,
        retry_at: float,
        *,
        owner: str | None = None,
        webhook_token_hash: str | None = None,
    ) -> bool:
        """Record that a submit is about to be sent (ambiguous until mark_submitted), with the hash of the
        webhook token it carries. False if the job is no longer queued or submitting, or not held by
        `owner`: it must not be sent."""
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = ?, next_poll_at = ?, updated_at = ? "
                f"WHERE id = ? AND status IN (?, ?){HELD}",
                (
                    JobStatus.SUBMITTING.value,
                    retry_at,
                    now,
                    job_id,
                    JobStatus.QUEUED.value,
                    JobStatus.SUBMITTING.value,
                    owner,
                    owner,
                ),
            )
            if cursor.rowcount != 1:
                return False
            if webhook_token_hash is not None:
                await db.execute(
                    "INSERT INTO webhook_tokens (job_id, token_hash, created_at) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (job_id, webhook_token_hash, now),
                )
            return True

    async def mark_submitted(
        self, job_id: int, now: float, next_poll_at: float, *, owner: str | None = None
    ) -> bool:
        """Record that Runware accepted the task; polling starts at next_poll_at, or now when a webhook
        result already waits (it came while the submit's answer was on its way). False if the job was no
        longer queued or submitting, or not held by `owner`."""
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = ?, submitted_at = COALESCE(submitted_at, ?), next_poll_at = "
                f"CASE WHEN {WEBHOOK_WAITING} THEN ? ELSE ? END, "
                f"updated_at = ? WHERE id = ? AND status IN (?, ?){HELD}",
                (
                    JobStatus.PROCESSING.value,
                    now,
                    now,
                    next_poll_at,
                    now,
                    job_id,
                    JobStatus.QUEUED.value,
                    JobStatus.SUBMITTING.value,
                    owner,
                    owner,
                ),
            )
            return cursor.rowcount == 1

    async def schedule_polls(
        self,
        updates: list[tuple[int, float]],
        now: float,
        *,
        owner: str | None = None,
        tried: Collection[int] = (),
    ) -> int:
        """Set the next poll time of several jobs, (job_id, next_poll_at) each, and count one poll each;
        a job with a webhook result kept (and not in `tried`) is due `now` instead, read in the same
        BEGIN IMMEDIATE transaction. Returns how many were changed (a job finished meanwhile, or not held
        by `owner`, is left alone)."""
        if not updates:
            return 0
        async with self._write() as db:
            cursor = await db.executemany(
                f"UPDATE jobs SET next_poll_at = CASE WHEN ? = 0 AND {WEBHOOK_WAITING} THEN ? ELSE ? END, "
                "poll_count = poll_count + 1, updated_at = ? "
                f"WHERE id = ? AND (status IN ({ACTIVE_SQL}) OR late_until IS NOT NULL){HELD}",
                [
                    (int(job_id in tried), now, next_poll_at, now, job_id, owner, owner)
                    for job_id, next_poll_at in updates
                ],
            )
            return cursor.rowcount

    async def complete_job(
        self,
        job_id: int,
        result_url: str,
        cost_micros: int,
        nsfw: bool,
        now: float,
        *,
        owner: str | None = None,
    ) -> Job | None:
        """Mark success and settle: release the estimate, charge the real cost. None if already final, or
        not held by `owner`."""
        async with self._write() as db:
            job = await job_in(db, job_id)
            if job.status not in ACTIVE or not holds(job, owner):
                return None
            await db.execute(
                "UPDATE jobs SET status = ?, result_url = ?, cost_micros = ?, nsfw = ?, finished_at = ?, "
                f"next_poll_at = NULL, updated_at = ?, {RELEASE} WHERE id = ?",
                (JobStatus.SUCCEEDED.value, result_url, cost_micros, int(nsfw), now, now, job_id),
            )
            await append_ledger(
                db,
                job.guild_id,
                job.user_id,
                job_id,
                LedgerKind.RELEASE,
                -job.estimate_micros,
                job.created_at,
                now,
            )
            await append_ledger(
                db, job.guild_id, job.user_id, job_id, LedgerKind.SETTLE, cost_micros, job.created_at, now
            )
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
        owner: str | None = None,
        lost: bool = False,
    ) -> Job | None:
        """Mark failure (or expiry) and refund the reservation. None if the job was already final, or not
        held by `owner`.

        `member_told`: the member already read why (the command's own reply), so nothing is posted.
        `watch` (until, next poll): an expired task Runware still has is asked about until then.
        `lost`: Runware kept answering "not found" (`lost_at`: its webhook may still bring the video); None,
        nothing changed but the job made due, when a webhook kept the task's result since the poll."""
        status = JobStatus.EXPIRED if expired else JobStatus.FAILED
        late_until, next_poll_at = watch if expired and watch else (None, None)
        async with self._write() as db:
            job = await job_in(db, job_id)
            if job.status not in ACTIVE or not holds(job, owner):
                return None
            if lost and await kept_result(db, job_id):
                # A webhook kept the task's result since the runner's poll said "not found": not lost. The
                # job stays waiting, due now, and the next pass applies that result (Runware had its 200
                # and sends it no more: a job failed here would never take it).
                await make_due(db, job_id, now)
                return None
            if next_poll_at is not None and await kept_result(db, job_id):
                # A webhook kept a result since the runner looked (the deadline's poll was on its way): the
                # watch starts with it, not a slow poll later.
                next_poll_at = now
            await db.execute(
                "UPDATE jobs SET status = ?, error_code = ?, error_message = ?, cost_micros = 0, "
                "finished_at = ?, next_poll_at = ?, updated_at = ?, delivered_at = ?, late_until = ?, "
                f"lost_at = ?, {RELEASE} WHERE id = ?",
                (
                    status.value,
                    code,
                    message,
                    now,
                    next_poll_at,
                    now,
                    now if member_told else None,
                    late_until,
                    now if lost else None,
                    job_id,
                ),
            )
            await append_refund(db, job, now)
            return await job_in(db, job_id)

    async def complete_late_job(
        self,
        job_id: int,
        result_url: str,
        cost_micros: int,
        nsfw: bool,
        now: float,
        *,
        owner: str | None = None,
    ) -> Job | None:
        """A watched job's video arrived (an expired job's, or a lost one's that its webhook brought): keep
        it, and book what Runware bills to the server only (a settle of the cost, which the server's total
        counts, and a grant of it back to the member, who was refunded when the job ended). None if the
        job was not being watched (done before), or not held by `owner`."""
        async with self._write() as db:
            job = await job_in(db, job_id)
            if job.status not in LATE_CAPABLE or job.late_until is None or not holds(job, owner):
                return None
            await db.execute(
                "UPDATE jobs SET result_url = ?, cost_micros = ?, nsfw = ?, late_until = NULL, "
                f"next_poll_at = NULL, updated_at = ?, {RELEASE}, {OFFER_AFRESH} WHERE id = ?",
                (result_url, cost_micros, int(nsfw), now, job_id),
            )
            for kind, amount, reason in (
                (LedgerKind.SETTLE, cost_micros, None),
                (LedgerKind.GRANT, -cost_micros, job.late_reason),
            ):
                await append_ledger(
                    db, job.guild_id, job.user_id, job_id, kind, amount, job.created_at, now, reason
                )
            return await job_in(db, job_id)

    async def end_late_watch(
        self, job_id: int, now: float, *, owner: str | None = None, lost: bool = False
    ) -> bool:
        """Stop asking about an expired job (its task ended without a video, Runware no longer knows it:
        `lost`, recorded as `lost_at`, or its time to live ran out). False if it was not being watched, or
        not held by `owner`, or when `lost` although a webhook kept the task's result since the poll (the
        watch goes on, due now, and the next pass applies it)."""
        async with self._write() as db:
            if lost and await kept_result(db, job_id):
                await make_due(db, job_id, now)
                return False
            cursor = await db.execute(
                "UPDATE jobs SET late_until = NULL, next_poll_at = NULL, updated_at = ?, "
                f"lost_at = COALESCE(?, lost_at), {RELEASE} WHERE id = ? AND late_until IS NOT NULL{HELD}",
                (now, now if lost else None, job_id, owner, owner),
            )
            return cursor.rowcount == 1

    async def get_job(self, job_id: int) -> Job | None:
        """One job by its number."""
        rows = await self._fetchall(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return job_from_row(rows[0]) if rows else None

    async def job_by_task(self, task_uuid: str) -> Job | None:
        """The job with this taskUUID."""
        rows = await self._fetchall(f"SELECT {JOB_COLUMNS} FROM jobs WHERE task_uuid = ?", (task_uuid,))
        return job_from_row(rows[0]) if rows else None

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 5) -> list[Job]:
        """A member's latest jobs in a guild, newest first."""
        rows = await self._fetchall(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE guild_id = ? AND user_id = ? "
            "ORDER BY created_at DESC LIMIT ?",
            (guild_id, user_id, limit),
        )
        return [job_from_row(r) for r in rows]

    async def member_jobs(
        self, guild_id: int, user_id: int, limit: int, *, before: int | None = None, after: int | None = None
    ) -> list[Job]:
        """A page of a member's jobs by job number, newest first (index jobs_member_id): the `limit` newest
        below `before`, or with `after` the `limit` oldest above it."""
        if after is not None:
            where, order, bound = "id > ?", "ASC", after
        else:
            where, order, bound = "id < ?", "DESC", before if before is not None else 2**63 - 1
        rows = await self._fetchall(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE guild_id = ? AND user_id = ? AND {where} "
            f"ORDER BY id {order} LIMIT ?",
            (guild_id, user_id, bound, limit),
        )
        jobs = [job_from_row(r) for r in rows]
        return jobs[::-1] if after is not None else jobs

    async def cancel_job(self, job_id: int, user_id: int, now: float) -> Job | None:
        """Cancel the member's job while Runware has not heard of it; None if not theirs or gone further.
        One conditional UPDATE inside BEGIN IMMEDIATE: SQLite has one writer, so a mark_submitting either
        ran before (the status is no longer queued here) or runs after (its own status check fails)."""
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "UPDATE jobs SET status = 'failed', error_code = ?, error_message = ?, cost_micros = 0, "
                f"finished_at = ?, next_poll_at = NULL, updated_at = ?, delivered_at = ?, {RELEASE} "
                "WHERE id = ? AND user_id = ? AND status IN ('uploading', 'queued') "
                f"RETURNING {JOB_COLUMNS}",
                (CANCELLED_CODE, "Cancelled by its member.", now, now, now, job_id, user_id),
            )
            if not rows:
                return None
            job = job_from_row(next(iter(rows)))
            await append_refund(db, job, now)
        # After the COMMIT: its outcome is recorded (nothing to post), for the acknowledgement's holder.
        self._fanout.deliver(JobNotice(JobEvent.DELIVERED, job_id))
        return job

    async def job_places(self, job_ids: Sequence[int]) -> dict[int, JobPlace]:
        """Each job's status, whether its outcome is recorded, and its place in the line (jobs_waiting)."""
        if not job_ids:
            return {}
        marks = ", ".join("?" * len(job_ids))
        rows = await self._fetchall(
            "WITH line AS (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS place FROM jobs "
            f"WHERE status IN ({WAITING_SQL}) AND id <= ?) "
            "SELECT j.id, j.status, j.delivered_at IS NOT NULL, line.place "
            f"FROM jobs j LEFT JOIN line ON line.id = j.id WHERE j.id IN ({marks})",
            (max(job_ids), *job_ids),
        )
        return {r[0]: JobPlace(r[0], JobStatus(r[1]), bool(r[2]), r[3]) for r in rows}

    async def claim_due_jobs(
        self, owner: str, now: float, horizon: float, limit: int, lease_until: float
    ) -> list[Job]:
        """Claim the jobs due by `now` (submitted, polled, or watched for a late video), plus processing
        jobs due by `horizon`, that nobody holds, `owner` holds, or whose lease ran out: each is leased to
        `owner` until `lease_until`. One statement inside BEGIN IMMEDIATE: SQLite has one writer, so two
        claimers never take the same job. Earliest due first."""
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "UPDATE jobs SET lease_owner = ?, lease_expires_at = ? WHERE id IN ("
                f"SELECT id FROM jobs WHERE {DUE} AND {CLAIMABLE} ORDER BY next_poll_at LIMIT ?) "
                f"RETURNING {JOB_COLUMNS}",
                (owner, lease_until, now, horizon, now, owner, now, limit),
            )
        return sorted((job_from_row(r) for r in rows), key=lambda j: (j.next_poll_at or 0.0, j.id))

    async def renew_leases(self, owner: str, lease_until: float) -> int:
        """Extend every lease `owner` holds on an unfinished or watched job to `lease_until`."""
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE lease_owner = ? "
                f"AND (status IN ({ACTIVE_SQL}) OR late_until IS NOT NULL)",
                (lease_until, owner),
            )
            return cursor.rowcount

    async def next_due_at(self, owner: str, now: float) -> float | None:
        """When `owner` may next have a job to advance (a job another process holds counts as due when
        its lease runs out), or None if there is none."""
        rows = await self._fetchall(
            f"SELECT MIN(CASE WHEN {CLAIMABLE} THEN next_poll_at "
            "ELSE MAX(next_poll_at, lease_expires_at) END) FROM jobs "
            f"WHERE next_poll_at IS NOT NULL AND ({CLAIM_SCOPE})",
            (owner, now),
        )
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None

    async def lease_owners(self) -> list[str]:
        """The owners holding a lease on an unfinished or watched job, or offering an unposted result."""
        rows = await self._fetchall(
            "SELECT lease_owner FROM jobs WHERE lease_owner IS NOT NULL UNION "
            "SELECT delivery_owner FROM jobs WHERE delivery_owner IS NOT NULL"
        )
        return sorted(str(r[0]) for r in rows)

    async def expire_leases(self, owners: list[str], now: float) -> int:
        """End now the job and delivery leases of `owners`; returns how many jobs were touched."""
        if not owners:
            return 0
        marks = ", ".join("?" for _ in owners)
        async with self._write() as db:
            jobs = await db.execute(
                f"UPDATE jobs SET lease_expires_at = ? WHERE lease_owner IN ({marks}) "
                "AND lease_expires_at > ?",
                (now, *owners, now),
            )
            offers = await db.execute(
                f"UPDATE jobs SET delivery_expires_at = ? WHERE delivery_owner IN ({marks}) "
                "AND delivery_expires_at > ?",
                (now, *owners, now),
            )
            touched = int(jobs.rowcount + offers.rowcount)
        if touched:  # after the COMMIT: the jobs are free to claim
            self._fanout.deliver(JobNotice(JobEvent.RELEASED))
        return touched

    async def claim_stale_uploads(
        self, owner: str, now: float, before: float, lease_until: float
    ) -> list[Job]:
        """Claim the uploads that will never finish (another holder's lease ran out, or, held by `owner` or
        by nobody, created before `before`), leased to `owner` until `lease_until`. A process's own upload
        is live in its command whatever its lease says (a renewal may be late), so only its age counts."""
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "UPDATE jobs SET lease_owner = ?, lease_expires_at = ? WHERE status = 'uploading' AND ("
                "(lease_owner IS NOT NULL AND lease_owner != ? AND lease_expires_at <= ?) "
                "OR ((lease_owner IS NULL OR lease_owner = ?) AND created_at < ?)) "
                f"RETURNING {JOB_COLUMNS}",
                (owner, lease_until, owner, now, owner, before),
            )
        return sorted((job_from_row(r) for r in rows), key=lambda j: j.id)

    async def usage(self, guild_id: int, user_id: int, limits: Limits, windows: Windows) -> Usage:
        """The member's spend in the windows, the guild's month, active jobs, and the limits."""
        async with self._lock:
            return await usage_in(self._conn, guild_id, user_id, limits, windows)
