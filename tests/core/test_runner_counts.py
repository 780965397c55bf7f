"""What the runner tells its observer, counted once per fact: a submit whose record the database lost is
confirmed by a later poll, and counted there only (it was counted twice, once when Runware accepted it and
again when the poll confirmed it)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from core.jobs import JobService
from core.models import Job, JobStatus
from core.observe import NullObserver
from core.ports import Store, StoreUnavailable
from core.runner import JobRunner
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from tests.core.conftest import Rig, request
from tests.databases import Database, SqliteDatabase


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


class LosingSqlite(LosesTheFirstSubmittedMark, SqliteStore):
    pass


class LosingPostgres(LosesTheFirstSubmittedMark, PostgresStore):
    pass


async def open_losing(database: Database) -> LosesTheFirstSubmittedMark:
    if isinstance(database, SqliteDatabase):
        return await LosingSqlite.open(str(database.path))
    return await LosingPostgres.open(database.url)


async def test_a_submit_whose_record_was_lost_is_counted_once(rig: Rig) -> None:
    losing = await open_losing(rig.database)
    store: Store = losing  # type: ignore[assignment]
    now = [time.time()]
    observer = Counting()
    finished: asyncio.Queue[Job] = asyncio.Queue()
    runner = JobRunner(
        store,
        rig.client,
        rig.settings,
        on_finished=finished.put_nowait,
        clock=lambda: now[0],
        observer=observer,
    )
    service = JobService(store, rig.client, rig.settings, wake_runner=runner.wake, hold_upload=runner.lease)
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
