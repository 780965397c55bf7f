"""Runware's webhook on PostgreSQL: the tokens' hashes and the results kept for the runner."""

from __future__ import annotations

from core.models import JobStatus, WebhookTarget
from storage.postgres.connection import PostgresConnection, rowcount
from storage.postgres.statements import job_in

# A job still waiting for Runware's answer; a result for any other is a repeat (a poll got there first).
WAITING = (JobStatus.SUBMITTING, JobStatus.PROCESSING)


class PostgresWebhooks(PostgresConnection):
    """WebhookStore on PostgreSQL."""

    async def webhook_target(self, job_id: int) -> WebhookTarget | None:
        """The job's taskUUID and its tokens' hashes (one statement); None when there is no such job."""
        rows = await self._fetch(
            "SELECT j.task_uuid, t.token_hash FROM jobs j "
            "LEFT JOIN webhook_tokens t ON t.job_id = j.id WHERE j.id = $1",
            job_id,
        )
        if not rows:
            return None
        hashes = tuple(str(r["token_hash"]) for r in rows if r["token_hash"] is not None)
        return WebhookTarget(str(rows[0]["task_uuid"]), hashes)

    async def record_webhook_result(
        self, job_id: int, task_uuid: str, video_uuid: str | None, result: str, now: float
    ) -> bool:
        """Keep a final result for a job still waiting for one and make it due now. The job's row is
        locked first, as a settle locks it: a concurrent settle by a poll is either before, and this is a
        repeat, or after, and finds the job finished. False, nothing written, for a repeat."""
        async with self._write() as db:
            job = await job_in(db, job_id, for_update=True)
            watched = job.late_until is not None
            if job.status not in WAITING and not watched:
                return False
            status = await db.execute(
                "INSERT INTO webhook_results (job_id, task_uuid, video_uuid, result, received_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                job_id,
                task_uuid,
                video_uuid,
                result,
                now,
            )
            if rowcount(status) != 1:
                return False
            # A submitting job is left to its submit (mark_submitted makes it due): its runner skips it
            # while the submit is in flight, and an earlier due time would only spin that runner.
            if job.status is JobStatus.PROCESSING or watched:
                await db.execute(
                    "UPDATE jobs SET next_poll_at = $2 WHERE id = $1 AND next_poll_at > $2", job_id, now
                )
            return True

    async def webhook_results(self, job_ids: list[int]) -> dict[int, str]:
        """The kept results of those jobs that have one, by job id."""
        if not job_ids:
            return {}
        rows = await self._fetch(
            "SELECT job_id, result FROM webhook_results WHERE job_id = ANY($1::BIGINT[])", job_ids
        )
        return {int(r["job_id"]): str(r["result"]) for r in rows}
