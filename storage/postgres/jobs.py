"""A job's life on PostgreSQL: the reservation, the runner's steps, settle and refund, late results."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from core.models import (
    ACTIVE,
    CANCELLABLE,
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
from storage.postgres.connection import Db, PostgresConnection, rowcount
from storage.postgres.rows import ACTIVE_SQL, JOB_COLUMNS, WAITING_SQL, job_from_row
from storage.postgres.statements import (
    append_ledger,
    append_refund,
    job_in,
    lock_guild,
    lock_operator_day,
    usage_in,
)

# Leases: the same rules as storage/sqlite/jobs.py (a runner step names its owner and changes nothing once
# another process has claimed the job; a terminal step lets go). A plain UPDATE checks `lease_owner` in
# its WHERE, which PostgreSQL evaluates again on the row's newest version after waiting for a concurrent
# claim; a step that reads first locks the row FOR UPDATE before checking.
RELEASE = "lease_owner = NULL, lease_expires_at = NULL"
# A late video is a new result to post: offered afresh, even while its expiry notice is being offered.
OFFER_AFRESH = "delivery_owner = NULL, delivery_expires_at = NULL"
RUNNING_SQL = "'queued', 'submitting', 'processing'"
CLAIM_SCOPE = f"status IN ({RUNNING_SQL}) OR late_until IS NOT NULL"
# Due by now ($2), or (a processing job) by the horizon ($3).
DUE = (
    f"((status IN ({RUNNING_SQL}) "
    "AND (next_poll_at <= $2 OR (status = 'processing' AND next_poll_at <= $3))) "
    "OR (late_until IS NOT NULL AND next_poll_at <= $2))"
)
# A result Runware's webhook brought waits for the job (in an UPDATE of jobs).
WEBHOOK_WAITING = "EXISTS (SELECT 1 FROM webhook_results w WHERE w.job_id = jobs.id)"
# Nobody holds it, the claimer ($1) holds it, or its lease ran out by now ($2).
CLAIMABLE = "(lease_owner IS NULL OR lease_owner = $1 OR lease_expires_at <= $2)"
# Lock the rows of the ids in {ids} in id order (before a multi-row update changes them).
LOCK_IN_ORDER = "SELECT id FROM jobs WHERE id = ANY({ids}) ORDER BY id FOR UPDATE"


async def kept_result(db: Db, job_id: int) -> bool:
    """True when a webhook result is kept for the job."""
    return bool(await db.fetchval("SELECT EXISTS (SELECT 1 FROM webhook_results WHERE job_id = $1)", job_id))


async def make_due(db: Db, job_id: int, now: float) -> None:
    """Make a job whose kept webhook result is still to be applied due now (if it is not already)."""
    await db.execute(
        "UPDATE jobs SET next_poll_at = $2 WHERE id = $1 AND (next_poll_at IS NULL OR next_poll_at > $2)",
        job_id,
        now,
    )


def held(n: int) -> str:
    """`AND` the job is held by the owner in parameter $n (any holder when that parameter is NULL)."""
    return f" AND (${n}::TEXT IS NULL OR lease_owner = ${n})"


def holds(job: Job, owner: str | None) -> bool:
    """True when no owner is asked about, or `owner` holds the job."""
    return owner is None or job.lease_owner == owner


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
    lease = new.lease() if new.lease else None  # stamped now, after the guild's lock (NewJob.lease)
    row = await db.fetchrow(
        "INSERT INTO jobs (task_uuid, guild_id, channel_id, user_id, status, audio_seconds, "
        "estimate_micros, output_format, output_quality, created_at, updated_at, "
        "upload_limit_bytes, channel_nsfw, image_ref, audio_ref, next_poll_at, safety_mode, "
        "image_sha256, audio_sha256, lease_owner, lease_expires_at) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) "
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
        lease.owner if lease else None,
        lease.expires_at if lease else None,
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

    async def mark_job_queued(
        self, job_id: int, image_ref: str, audio_ref: str, now: float, *, owner: str | None = None
    ) -> Job | None:
        """Record the uploaded inputs; the job is ready for the runner to submit. None if it was no longer
        uploading (failed and refunded meanwhile), or, with `owner`, no longer held by it."""
        async with self._write() as db:
            row = await db.fetchrow(
                "UPDATE jobs SET status = $1, image_ref = $2, audio_ref = $3, next_poll_at = $4, "
                f"updated_at = $4 WHERE id = $5 AND status = $6{held(7)} RETURNING {JOB_COLUMNS}",
                JobStatus.QUEUED.value,
                image_ref,
                audio_ref,
                now,
                job_id,
                JobStatus.UPLOADING.value,
                owner,
            )
            return job_from_row(row) if row is not None else None

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
            status = await db.execute(
                "UPDATE jobs SET status = $1, next_poll_at = $2, updated_at = $3 "
                f"WHERE id = $4 AND status IN ($5, $6){held(7)}",
                JobStatus.SUBMITTING.value,
                retry_at,
                now,
                job_id,
                JobStatus.QUEUED.value,
                JobStatus.SUBMITTING.value,
                owner,
            )
            if rowcount(status) != 1:
                return False
            if webhook_token_hash is not None:
                await db.execute(
                    "INSERT INTO webhook_tokens (job_id, token_hash, created_at) VALUES ($1, $2, $3) "
                    "ON CONFLICT DO NOTHING",
                    job_id,
                    webhook_token_hash,
                    now,
                )
            return True

    async def mark_submitted(
        self, job_id: int, now: float, next_poll_at: float, *, owner: str | None = None
    ) -> bool:
        """Record that Runware accepted the task; polling starts at next_poll_at, or now when a webhook
        result already waits (it came while the submit's answer was on its way). False if the job was no
        longer queued or submitting, or not held by `owner`."""
        async with self._write() as db:
            status = await db.execute(
                "UPDATE jobs SET status = $1, submitted_at = COALESCE(submitted_at, $2), next_poll_at = "
                f"CASE WHEN {WEBHOOK_WAITING} THEN $2 ELSE $3 END, "
                f"updated_at = $2 WHERE id = $4 AND status IN ($5, $6){held(7)}",
                JobStatus.PROCESSING.value,
                now,
                next_poll_at,
                job_id,
                JobStatus.QUEUED.value,
                JobStatus.SUBMITTING.value,
                owner,
            )
            return rowcount(status) == 1

    async def schedule_polls(
        self,
        updates: list[tuple[int, float]],
        now: float,
        *,
        owner: str | None = None,
        tried: Collection[int] = (),
    ) -> int:
        """Set the next poll time of several jobs, (job_id, next_poll_at) each, and count one poll each;
        a job with a webhook result kept (and not in `tried`) is due `now` instead. Returns how many were
        changed (a job finished meanwhile, or not held by `owner`, is left alone)."""
        if not updates:
            return 0
        ids = [job_id for job_id, _ in updates]
        async with self._write() as db:
            # The rows are locked in id order first, as renew_leases locks them: two multi-row updates of
            # one owner's jobs (a pass and the lease timer run at once) then never wait on each other in a
            # circle. In a statement of its own: the UPDATE after it reads webhook_results in a snapshot
            # taken once the locks are held, so a result kept by a webhook that held a row's lock before us
            # (record_webhook_result locks it) is seen; one statement would read them in its own earlier
            # snapshot and miss it. One kept after our locks waits for our COMMIT, then finds the job's
            # next poll in the future and makes it due now itself.
            await db.execute(LOCK_IN_ORDER.format(ids="$1::BIGINT[]"), ids)
            # One statement for the batch (asyncpg's executemany reports no row counts).
            status = await db.execute(
                "UPDATE jobs SET next_poll_at = CASE WHEN NOT u.tried AND EXISTS (SELECT 1 FROM "
                "webhook_results w WHERE w.job_id = jobs.id) THEN $3 ELSE u.next_poll_at END, "
                "poll_count = poll_count + 1, updated_at = $3 "
                "FROM unnest($1::BIGINT[], $2::DOUBLE PRECISION[], $5::BOOLEAN[]) "
                "AS u (id, next_poll_at, tried) WHERE jobs.id = u.id "
                f"AND (jobs.status IN ({ACTIVE_SQL}) OR jobs.late_until IS NOT NULL){held(4)}",
                ids,
                [next_poll_at for _, next_poll_at in updates],
                now,
                owner,
                [job_id in tried for job_id in ids],
            )
            return rowcount(status)

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
        not held by `owner` (the row is locked, so no claim can come between the check and the change)."""
        async with self._write() as db:
            job = await job_in(db, job_id, for_update=True)
            if job.status not in ACTIVE or not holds(job, owner):
                return None
            await lock_guild(db, job.guild_id)
            await db.execute(
                "UPDATE jobs SET status = $1, result_url = $2, cost_micros = $3, nsfw = $4, "
                f"finished_at = $5, next_poll_at = NULL, updated_at = $5, {RELEASE} WHERE id = $6",
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
            job = await job_in(db, job_id, for_update=True)
            if job.status not in ACTIVE or not holds(job, owner):
                return None
            if lost and await kept_result(db, job_id):
                # A webhook kept the task's result since the runner's poll said "not found" (read after the
                # row's lock, which the webhook takes first): not lost. The job stays waiting, due now, and
                # the next pass applies that result (Runware had its 200 and sends it no more).
                await make_due(db, job_id, now)
                return None
            if next_poll_at is not None and await kept_result(db, job_id):
                # A webhook kept a result since the runner looked (the deadline's poll was on its way): the
                # watch starts with it, not a slow poll later. Read after the row's lock, in a snapshot of
                # its own, so a result kept by a webhook that held the lock before us is seen.
                next_poll_at = now
            await lock_guild(db, job.guild_id)
            await db.execute(
                "UPDATE jobs SET status = $1, error_code = $2, error_message = $3, cost_micros = 0, "
                "finished_at = $4, next_poll_at = $5, updated_at = $4, delivered_at = $6, late_until = $7, "
                f"lost_at = $9, {RELEASE} WHERE id = $8",
                status.value,
                code,
                message,
                now,
                next_poll_at,
                now if member_told else None,
                late_until,
                job_id,
                now if lost else None,
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
            job = await job_in(db, job_id, for_update=True)
            if job.status not in LATE_CAPABLE or job.late_until is None or not holds(job, owner):
                return None
            await lock_guild(db, job.guild_id)
            await db.execute(
                "UPDATE jobs SET result_url = $1, cost_micros = $2, nsfw = $3, late_until = NULL, "
                f"next_poll_at = NULL, updated_at = $4, {RELEASE}, {OFFER_AFRESH} WHERE id = $5",
                result_url,
                cost_micros,
                nsfw,
                now,
                job_id,
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
            if lost:
                # The row's lock first, as the webhook takes it: a result it kept is then seen.
                await db.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", job_id)
                if await kept_result(db, job_id):
                    await make_due(db, job_id, now)
                    return False
            status = await db.execute(
                "UPDATE jobs SET late_until = NULL, next_poll_at = NULL, updated_at = $1, "
                f"lost_at = COALESCE($4::DOUBLE PRECISION, lost_at), {RELEASE} "
                f"WHERE id = $2 AND late_until IS NOT NULL{held(3)}",
                now,
                job_id,
                owner,
                now if lost else None,
            )
            return rowcount(status) == 1

    async def get_job(self, job_id: int) -> Job | None:
        """One job by its number."""
        rows = await self._fetch(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1", job_id)
        return job_from_row(rows[0]) if rows else None

    async def job_by_task(self, task_uuid: str) -> Job | None:
        """The job with this taskUUID."""
        rows = await self._fetch(f"SELECT {JOB_COLUMNS} FROM jobs WHERE task_uuid = $1", task_uuid)
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

    async def member_jobs(
        self, guild_id: int, user_id: int, limit: int, *, before: int | None = None, after: int | None = None
    ) -> list[Job]:
        """A page of a member's jobs by job number, newest first (index jobs_member_id): the `limit` newest
        below `before`, or with `after` the `limit` oldest above it."""
        if after is not None:
            where, order, bound = "id > $3", "ASC", after
        else:
            where, order, bound = "id < $3", "DESC", before if before is not None else 2**63 - 1
        rows = await self._fetch(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE guild_id = $1 AND user_id = $2 AND {where} "
            f"ORDER BY id {order} LIMIT $4",
            guild_id,
            user_id,
            bound,
            limit,
        )
        jobs = [job_from_row(r) for r in rows]
        return jobs[::-1] if after is not None else jobs

    async def cancel_job(self, job_id: int, user_id: int, now: float) -> Job | None:
        """Cancel the member's job while Runware has not heard of it; None if not theirs or gone further.
        The row is locked FOR UPDATE before its status is checked: a runner's mark_submitting (an UPDATE
        whose WHERE asks for queued or submitting) either committed first, and the status read here is
        submitting, or waits for this commit and then finds the job failed and changes nothing."""
        async with self._write() as db:
            found = await db.fetchrow(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE", job_id)
            job = job_from_row(found) if found is not None else None
            if job is None or job.user_id != user_id or job.status not in CANCELLABLE:
                return None
            await lock_guild(db, job.guild_id)
            row = await db.fetchrow(
                "UPDATE jobs SET status = 'failed', error_code = $1, error_message = $2, cost_micros = 0, "
                f"finished_at = $3, next_poll_at = NULL, updated_at = $3, delivered_at = $3, {RELEASE} "
                f"WHERE id = $4 RETURNING {JOB_COLUMNS}",
                CANCELLED_CODE,
                "Cancelled by its member.",
                now,
                job_id,
            )
            assert row is not None
            await append_refund(db, job, now)
            # Delivered at the COMMIT: its outcome is recorded (nothing to post), for the acknowledgement.
            await self._notify(db, JobNotice(JobEvent.DELIVERED, job_id))
            return job_from_row(row)

    async def job_places(self, job_ids: Sequence[int]) -> dict[int, JobPlace]:
        """Each job's status, whether its outcome is recorded, and its place in the line (jobs_waiting)."""
        if not job_ids:
            return {}
        rows = await self._fetch(
            "WITH line AS (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS place FROM jobs "
            f"WHERE status IN ({WAITING_SQL}) AND id <= $1) "
            "SELECT j.id, j.status, j.delivered_at IS NOT NULL, line.place "
            "FROM jobs j LEFT JOIN line ON line.id = j.id WHERE j.id = ANY($2::bigint[])",
            max(job_ids),
            list(job_ids),
        )
        return {r[0]: JobPlace(r[0], JobStatus(r[1]), bool(r[2]), r[3]) for r in rows}

    async def claim_due_jobs(
        self, owner: str, now: float, horizon: float, limit: int, lease_until: float
    ) -> list[Job]:
        """Claim the jobs due by `now` (submitted, polled, or watched for a late video), plus processing
        jobs due by `horizon`, that nobody holds, `owner` holds, or whose lease ran out: each is leased to
        `owner` until `lease_until`. `FOR UPDATE SKIP LOCKED`: a row another claimer is taking is passed
        over, and a row it took meanwhile is checked again on its new version (then held by the other, it
        is left out), so two claimers never take the same job. Earliest due first."""
        async with self._write() as db:
            rows = await db.fetch(
                f"WITH taken AS (SELECT id FROM jobs WHERE {DUE} AND {CLAIMABLE} "
                "ORDER BY next_poll_at LIMIT $4 FOR UPDATE SKIP LOCKED) "
                "UPDATE jobs SET lease_owner = $1, lease_expires_at = $5 "
                f"WHERE id IN (SELECT id FROM taken) RETURNING {JOB_COLUMNS}",
                owner,
                now,
                horizon,
                limit,
                lease_until,
            )
        return sorted((job_from_row(r) for r in rows), key=lambda j: (j.next_poll_at or 0.0, j.id))

    async def renew_leases(self, owner: str, lease_until: float) -> int:
        """Extend every lease `owner` holds on an unfinished or watched job to `lease_until`."""
        async with self._write() as db:
            # Rows locked in id order (see schedule_polls).
            status = await db.execute(
                "WITH locked AS (SELECT id FROM jobs WHERE lease_owner = $1 ORDER BY id FOR UPDATE) "
                "UPDATE jobs SET lease_expires_at = $2 WHERE id IN (SELECT id FROM locked) "
                f"AND lease_owner = $1 AND (status IN ({ACTIVE_SQL}) OR late_until IS NOT NULL)",
                owner,
                lease_until,
            )
            return rowcount(status)

    async def next_due_at(self, owner: str, now: float) -> float | None:
        """When `owner` may next have a job to advance (a job another process holds counts as due when
        its lease runs out), or None if there is none."""
        rows = await self._fetch(
            f"SELECT MIN(CASE WHEN {CLAIMABLE} THEN next_poll_at "
            "ELSE GREATEST(next_poll_at, lease_expires_at) END) FROM jobs "
            f"WHERE next_poll_at IS NOT NULL AND ({CLAIM_SCOPE})",
            owner,
            now,
        )
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None

    async def lease_owners(self) -> list[str]:
        """The owners holding a lease on an unfinished or watched job, or offering an unposted result."""
        rows = await self._fetch(
            "SELECT lease_owner FROM jobs WHERE lease_owner IS NOT NULL UNION "
            "SELECT delivery_owner FROM jobs WHERE delivery_owner IS NOT NULL"
        )
        return sorted(str(r[0]) for r in rows)

    async def expire_leases(self, owners: list[str], now: float) -> int:
        """End now the job and delivery leases of `owners`; returns how many jobs were touched."""
        if not owners:
            return 0
        async with self._write() as db:
            jobs = await db.execute(
                "UPDATE jobs SET lease_expires_at = $2 WHERE lease_owner = ANY($1::TEXT[]) "
                "AND lease_expires_at > $2",
                owners,
                now,
            )
            offers = await db.execute(
                "UPDATE jobs SET delivery_expires_at = $2 WHERE delivery_owner = ANY($1::TEXT[]) "
                "AND delivery_expires_at > $2",
                owners,
                now,
            )
            touched = rowcount(jobs) + rowcount(offers)
            if touched:  # delivered at the COMMIT: the jobs are free to claim
                await self._notify(db, JobNotice(JobEvent.RELEASED))
            return touched

    async def claim_stale_uploads(
        self, owner: str, now: float, before: float, lease_until: float
    ) -> list[Job]:
        """Claim the uploads that will never finish (another holder's lease ran out, or, held by `owner` or
        by nobody, created before `before`), leased to `owner` until `lease_until`. A process's own upload
        is live in its command whatever its lease says (a renewal may be late), so only its age counts."""
        async with self._write() as db:
            rows = await db.fetch(
                "WITH taken AS (SELECT id FROM jobs WHERE status = 'uploading' AND ("
                "(lease_owner IS NOT NULL AND lease_owner != $1 AND lease_expires_at <= $2) "
                "OR ((lease_owner IS NULL OR lease_owner = $1) AND created_at < $3)) FOR UPDATE SKIP LOCKED) "
                "UPDATE jobs SET lease_owner = $1, lease_expires_at = $4 "
                f"WHERE id IN (SELECT id FROM taken) RETURNING {JOB_COLUMNS}",
                owner,
                now,
                before,
                lease_until,
            )
        return sorted((job_from_row(r) for r in rows), key=lambda j: j.id)

    async def usage(self, guild_id: int, user_id: int, limits: Limits, windows: Windows) -> Usage:
        """The member's spend in the windows, the guild's month, active jobs, and the limits."""
        async with self._read() as db:
            return await usage_in(db, guild_id, user_id, limits, windows)
