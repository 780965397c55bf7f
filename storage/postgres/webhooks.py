"""Runware's webhook on PostgreSQL: the tokens' hashes and the results kept for the runner."""

from __future__ import annotations

from core.models import TERMINAL, JobStatus, WebhookTarget, lost_video_watch
from core.ports import JobEvent, JobNotice
from storage.postgres.connection import PostgresConnection, rowcount
from storage.postgres.statements import job_in, lock_guild

# A job still waiting for Runware's answer; a result for any other is a repeat (a poll got there first).
WAITING = (JobStatus.SUBMITTING, JobStatus.PROCESSING)
TERMINAL_SQL = ", ".join(f"'{s.value}'" for s in sorted(TERMINAL))
# The jobs whose webhook rows can go: ended before $1, and not watched for a late video.
ENDED = f"SELECT id FROM jobs WHERE status IN ({TERMINAL_SQL}) AND late_until IS NULL AND finished_at < $1"
# Rows deleted per transaction (short transactions, as the retention pass runs them).
PRUNE_BATCH = 5000


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
        self,
        job_id: int,
        task_uuid: str,
        video_uuid: str | None,
        result: str,
        now: float,
        *,
        video_ttl_s: float | None = None,
    ) -> bool:
        """Keep a final result for a job still waiting for one and make it due now. The job's row is
        locked first, as a settle locks it: a concurrent settle by a poll is either before, and this is a
        repeat, or after, and finds the job finished. With `video_ttl_s` (the result is a video), a job
        judged lost whose output still lives is watched again (core.models.lost_video_watch), to post the
        video late. False, nothing written, for a repeat. Every process is told in the same transaction
        (JobEvent.RESULT, delivered at the COMMIT), so the runner holding the job, wherever it runs,
        applies the result at once."""
        async with self._write() as db:
            job = await job_in(db, job_id, for_update=True)
            watched = job.late_until is not None
            revive_until = lost_video_watch(job, video_ttl_s, now)
            if job.status not in WAITING and not watched and revive_until is None:
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
            if revive_until is not None:
                # Watched again, due now: any process's runner claims it and books the video as a late
                # one (complete_late_job). Its estimate is held meanwhile, as a watched job's is (0013).
                await lock_guild(db, job.guild_id)
                await db.execute(
                    "UPDATE jobs SET late_until = $2, next_poll_at = $3 WHERE id = $1",
                    job_id,
                    revive_until,
                    now,
                )
            # A submitting job is left to its submit (mark_submitted makes it due): its runner skips it
            # while the submit is in flight, and an earlier due time would only spin that runner.
            elif job.status is JobStatus.PROCESSING or watched:
                await db.execute(
                    "UPDATE jobs SET next_poll_at = $2 WHERE id = $1 AND next_poll_at > $2", job_id, now
                )
            await self._notify(db, JobNotice(JobEvent.RESULT, job_id))
            return True

    async def webhook_results(self, job_ids: list[int]) -> dict[int, str]:
        """The kept results of those jobs that have one, by job id."""
        if not job_ids:
            return {}
        rows = await self._fetch(
            "SELECT job_id, result FROM webhook_results WHERE job_id = ANY($1::BIGINT[])", job_ids
        )
        return {int(r["job_id"]): str(r["result"]) for r in rows}

    async def prune_webhooks(self, before: float) -> int:
        """Forget the tokens and kept results of jobs that ended before `before` and are not watched, in
        batches of PRUNE_BATCH rows (one transaction each). Returns how many rows went."""
        total = 0
        for table in ("webhook_tokens", "webhook_results"):
            while True:
                async with self._write() as db:
                    done = rowcount(
                        await db.execute(
                            f"DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} "
                            f"WHERE job_id IN ({ENDED}) LIMIT $2)",
                            before,
                            PRUNE_BATCH,
                        )
                    )
                total += done
                if done < PRUNE_BATCH:
                    break
        return total
