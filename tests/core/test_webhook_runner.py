"""The runner with webhooks on, on both backends, against the fake Runware: a result that a webhook keeps
while the runner's poll is on its way (after the runner looked for kept results, before it schedules the
next poll) is not hidden behind the slow safety-net poll; the next pass applies it without asking Runware."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from core.models import JobStatus
from core.ports import Store
from core.runware import TaskResult, TaskState
from core.webhooks import encode_result
from tests.core.conftest import Rig, open_mixed, request


class KeepsDuringThePoll:
    """Mixed into a real store: the next `schedule_polls` first keeps a webhook result for job `keep_for`
    (a success), as a webhook landing in another process between the poll's answer and the scheduling
    would."""

    keep_for: int | None = None

    async def schedule_polls(self, updates: list[tuple[int, float]], now: float, **options: Any) -> int:
        job_id, self.keep_for = self.keep_for, None
        if job_id is not None:
            job = await self.get_job(job_id)  # type: ignore[attr-defined]
            result = TaskResult(job.task_uuid, TaskState.SUCCESS, video_url="http://v/1.mp4", cost_usd=0.3)
            kept = await self.record_webhook_result(  # type: ignore[attr-defined]
                job_id, job.task_uuid, "d4c7e3a2-5b1f-4e8d-9c6a-0f2e1d3b4a59", encode_result(result), now
            )
            assert kept
        return int(await super().schedule_polls(updates, now, **options))  # type: ignore[misc]


async def test_a_result_kept_while_the_poll_is_out_is_applied_at_the_next_pass(rig: Rig) -> None:
    rig.fake.polls_to_finish = None
    rig.fake.seconds_to_finish = 3600.0  # Runware says "processing" to every poll
    rig.fake.webhooks = "never"  # the result comes only through the hook
    hooked = await open_mixed(rig.database, KeepsDuringThePoll)
    store: Store = hooked  # type: ignore[assignment]
    now = [0.0]
    runner, service, finished = rig.parts_on(store, lambda: now[0], public_url="http://127.0.0.1:9")
    try:
        job = (await service.accept(request())).job
        now[0] = time.time()
        await runner.run_once()
        await runner.submits_done()
        submitted = await store.get_job(job.id)
        assert submitted is not None and submitted.status is JobStatus.PROCESSING
        assert submitted.next_poll_at == now[0] + runner.poll_initial_s  # the slow safety net (150 s)
        now[0] = submitted.next_poll_at
        hooked.keep_for = job.id
        await runner.run_once()  # polls: "processing"; the webhook's result is kept before the scheduling
        assert rig.fake.task_counts["getResponse"] == 1 and hooked.keep_for is None
        due = await store.get_job(job.id)
        assert due is not None and due.status is JobStatus.PROCESSING
        assert due.next_poll_at is not None and due.next_poll_at <= now[0]  # due now, not in 150 s
        await runner.run_once()
        done = await asyncio.wait_for(finished.get(), 10)
    finally:
        await store.close()
    assert (done.id, done.status, done.cost_micros) == (job.id, JobStatus.SUCCEEDED, 300_000)
    assert rig.fake.task_counts["getResponse"] == 1  # applied from the kept result, not a second poll


class KeepsBeforeTheLostVerdict:
    """Mixed into a real store: the next `fail_job` of job `keep_for` as lost first keeps a webhook result
    for it (a success), as a webhook landing between the poll's "not found" and the verdict would."""

    keep_for: int | None = None

    async def fail_job(self, job_id: int, code: str, message: str, now: float, **options: Any) -> Any:
        if options.get("lost") and job_id == self.keep_for:
            self.keep_for = None
            job = await self.get_job(job_id)  # type: ignore[attr-defined]
            result = TaskResult(job.task_uuid, TaskState.SUCCESS, video_url="http://v/1.mp4", cost_usd=0.3)
            kept = await self.record_webhook_result(  # type: ignore[attr-defined]
                job_id, job.task_uuid, "5e0b2f3c-8a71-4d2e-b9c4-7f1a6d3e2c08", encode_result(result), now
            )
            assert kept
        return await super().fail_job(job_id, code, message, now, **options)  # type: ignore[misc]


async def test_a_result_kept_just_before_the_lost_verdict_is_the_jobs_outcome(rig: Rig) -> None:
    """getResponse says "not found" (past the grace) and the runner judges the task lost, while its webhook
    keeps the video: the job is not failed (Runware had its 200 and never sends that video again), and the
    next pass posts it as the job's ordinary result, at its real cost."""
    from core.runner import NOT_FOUND_GRACE_S

    rig.fake.polls_to_finish = None
    rig.fake.seconds_to_finish = 3600.0
    rig.fake.webhooks = "never"
    hooked = await open_mixed(rig.database, KeepsBeforeTheLostVerdict)
    store: Store = hooked  # type: ignore[assignment]
    now = [0.0]
    runner, service, finished = rig.parts_on(store, lambda: now[0], public_url="http://127.0.0.1:9")
    try:
        job = (await service.accept(request())).job
        now[0] = time.time()
        await runner.run_once()
        await runner.submits_done()
        submitted = await store.get_job(job.id)
        assert submitted is not None and submitted.status is JobStatus.PROCESSING
        assert submitted.next_poll_at is not None and submitted.submitted_at is not None
        rig.fake.hide(job.task_uuid)
        now[0] = max(submitted.next_poll_at, submitted.submitted_at + NOT_FOUND_GRACE_S)
        hooked.keep_for = job.id
        await runner.run_once()  # "not found": judged lost, as the webhook keeps the video
        assert hooked.keep_for is None
        waiting = await store.get_job(job.id)
        assert waiting is not None and waiting.status is JobStatus.PROCESSING and waiting.lost_at is None
        await runner.run_once()
        done = await asyncio.wait_for(finished.get(), 10)
    finally:
        await store.close()
    assert (done.id, done.status, done.cost_micros) == (job.id, JobStatus.SUCCEEDED, 300_000)
    assert [k for k, _ in rig.ledger()] == ["reserve", "release", "settle"]
