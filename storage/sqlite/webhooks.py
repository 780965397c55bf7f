"""Runware's webhook on SQLite: the tokens' hashes and the results kept for the runner."""

from __future__ import annotations

from core.models import TERMINAL, JobStatus, WebhookTarget, lost_video_watch
from core.ports import JobEvent, JobNotice
from storage.sqlite.connection import SqliteConnection
from storage.sqlite.statements import job_in

# A job still waiting for Runware's answer; a result for any other is a repeat (a poll got there first).
WAITING = (JobStatus.SUBMITTING, JobStatus.PROCESSING)
TERMINAL_SQL = ", ".join(f"'{s.value}'" for s in sorted(TERMINAL))
# The jobs whose webhook rows can go: ended before the parameter, and not watched for a late video.
ENDED = f"SELECT id FROM jobs WHERE status IN ({TERMINAL_SQL}) AND late_until IS NULL AND finished_at < ?"
# Rows deleted per transaction (the write lock is held briefly, as the retention pass holds it).
PRUNE_BATCH = 5000


class SqliteWebhooks(SqliteConnection):
    """WebhookStore on SQLite."""

    async def webhook_target(self, job_id: int) -> WebhookTarget | None:
        """The job's taskUUID and its tokens' hashes; None when there is no such job."""
        async with self._lock:
            jobs = list(
                await self._conn.execute_fetchall("SELECT task_uuid FROM jobs WHERE id = ?", (job_id,))
            )
            if not jobs:
                return None
            hashes = await self._conn.execute_fetchall(
                "SELECT token_hash FROM webhook_tokens WHERE job_id = ?", (job_id,)
            )
        return WebhookTarget(str(jobs[0][0]), tuple(str(r[0]) for r in hashes))

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
        """Keep a final result for a job still waiting for one and make it due now (BEGIN IMMEDIATE: a
        concurrent settle by a poll is either before, and this is a repeat, or after, and finds the job
        finished). With `video_ttl_s` (the result is a video), a job judged lost whose output still lives
        is watched again (core.models.lost_video_watch), to post the video late. False, nothing written,
        for a repeat. After the COMMIT this process's subscribers are told (JobEvent.RESULT): SQLite's
        notifications stay in the process."""
        kept = await self._keep(job_id, task_uuid, video_uuid, result, now, video_ttl_s)
        if kept:
            self._fanout.deliver(JobNotice(JobEvent.RESULT, job_id))
        return kept

    async def _keep(
        self,
        job_id: int,
        task_uuid: str,
        video_uuid: str | None,
        result: str,
        now: float,
        video_ttl_s: float | None,
    ) -> bool:
        async with self._write() as db:
            job = await job_in(db, job_id)
            watched = job.late_until is not None
            revive_until = lost_video_watch(job, video_ttl_s, now)
            if job.status not in WAITING and not watched and revive_until is None:
                return False
            cursor = await db.execute(
                "INSERT INTO webhook_results (job_id, task_uuid, video_uuid, result, received_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (job_id, task_uuid, video_uuid, result, now),
            )
            if cursor.rowcount != 1:
                return False
            if revive_until is not None:
                # Watched again, due now: any process's runner claims it and books the video as a late
                # one (complete_late_job). Its estimate is held meanwhile, as a watched job's is (0013).
                await db.execute(
                    "UPDATE jobs SET late_until = ?, next_poll_at = ? WHERE id = ?",
                    (revive_until, now, job_id),
                )
                return True
            # A submitting job is left to its submit (mark_submitted makes it due): its runner skips it
            # while the submit is in flight, and an earlier due time would only spin that runner.
            if job.status is JobStatus.PROCESSING or watched:
                await db.execute(
                    "UPDATE jobs SET next_poll_at = ? WHERE id = ? AND next_poll_at > ?", (now, job_id, now)
                )
            return True

    async def webhook_results(self, job_ids: list[int]) -> dict[int, str]:
        """The kept results of those jobs that have one, by job id."""
        if not job_ids:
            return {}
        marks = ", ".join("?" for _ in job_ids)
        rows = await self._fetchall(
            f"SELECT job_id, result FROM webhook_results WHERE job_id IN ({marks})", job_ids
        )
        return {int(r[0]): str(r[1]) for r in rows}

    async def prune_webhooks(self, before: float) -> int:
        """Forget the tokens and kept results of jobs that ended before `before` and are not watched, in
        batches of PRUNE_BATCH rows (one transaction each). Returns how many rows went."""
        total = 0
        for table in ("webhook_tokens", "webhook_results"):
            while True:
                async with self._write() as db:
                    cursor = await db.execute(
                        f"DELETE FROM {table} WHERE rowid IN (SELECT t.rowid FROM {table} t "
                        f"WHERE t.job_id IN ({ENDED}) LIMIT ?)",
                        (before, PRUNE_BATCH),
                    )
                total += cursor.rowcount
                if cursor.rowcount < PRUNE_BATCH:
                    break
        return total
