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
