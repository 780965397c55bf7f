"""What the runner tells its observer, counted once per fact: a submit whose record the database lost is
confirmed by a later poll, and counted there only (it was counted twice, once when Runware accepted it and
again when the poll confirmed it)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from core.models import JobStatus
from core.observe import NullObserver
from core.ports import Store, StoreUnavailable
from tests.core.conftest import Rig, open_mixed, request


class Counting(NullObserver):
    """Counts submissions and finished jobs."""

    def __init__(self) -> None:
        self.submissions = 0
        self.finished: list[str] = []

    def submitted(self) -> None:
        self.submissions += 1

    def job_finished(self, status: str) -> None:
        self.finished.append(status)


class LosesTheFirstSubmittedMark:
    """Mixed into a real store: the first `mark_submitted` fails as a dropped connection would, before
    anything is written (the job stays `submitting`, as after a crash between Runware's answer and the
    record)."""

    lost = False

    async def mark_submitted(self, *args: Any, **options: Any) -> bool:
        if not self.lost:
            self.lost = True
            raise StoreUnavailable("connection lost (test)")
        return bool(await super().mark_submitted(*args, **options))  # type: ignore[misc]


async def test_a_submit_whose_record_was_lost_is_counted_once(rig: Rig) -> None:
    losing = await open_mixed(rig.database, LosesTheFirstSubmittedMark)
    store: Store = losing  # type: ignore[assignment]
    now = [time.time()]
    observer = Counting()
    runner, service, finished = rig.parts_on(store, lambda: now[0], observer=observer)
    try:
        job = (await service.accept(request())).job
        now[0] = time.time()
        await runner.run_once()
        await runner.submits_done()
        assert losing.lost
        after_submit = await store.get_job(job.id)
        assert after_submit is not None and after_submit.status is JobStatus.SUBMITTING
        assert rig.fake.task_counts["videoInference"] == 1
        for _ in range(10):  # polls: the first confirms the submit, the second (the fake's) finishes it
            now[0] += 60.0
            await runner.run_once()
            if not finished.empty():
                break
        done = await asyncio.wait_for(finished.get(), 10)
    finally:
        await store.close()
    assert done.status is JobStatus.SUCCEEDED
    assert rig.fake.task_counts["videoInference"] == 1
    assert (observer.submissions, observer.finished) == (1, ["succeeded"])
