"""Two job runners (two processes: different owners, pools of their own) on one PostgreSQL database and
the fake Runware: each job is submitted, settled and offered once, and when one runner stops the other
finishes its jobs once their leases have run out."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from core.models import Job, Limits, NewJob
from core.runner import JobRunner
from core.runware import RunwareClient
from core.settings import Settings
from storage.postgres import PostgresStore
from tests import media_factory as media
from tests.conftest import SettingsFactory, reserve
from tests.core.conftest import wait_until
from tests.fakes.runware import FakeRunware
from tests.postgres import TEST_POSTGRES_URL, fresh_schema, query_schema

JOBS = 36
LEASE_S = 1.0


@dataclass
class Pair:
    """Two runners on one schema, what each offered for delivery, and the fake they talk to."""

    fake: FakeRunware
    schema: str
    stores: list[PostgresStore]
    runners: list[JobRunner]
    offers: list[tuple[str, int]]
    settings: Settings
    refs: tuple[str, str]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return query_schema(self.schema, sql)

    def statuses(self) -> Counter[str]:
        return Counter(str(status) for (status,) in self.query("SELECT status FROM jobs"))


@pytest.fixture
async def pair(make_settings: SettingsFactory) -> AsyncIterator[Pair]:
    with fresh_schema() as schema:
        async with FakeRunware(polls_to_finish=2) as fake, aiohttp.ClientSession() as http:
            settings = make_settings(runware_api_url=fake.url, runware_api_key=fake.api_key)
            client = RunwareClient(
                http, api_url=fake.url, api_key=settings.runware_api_key, timeout_s=1.0, retry_base_s=0.01
            )
            offers: list[tuple[str, int]] = []
            stores: list[PostgresStore] = []
            runners: list[JobRunner] = []
            try:
                for owner in ("a", "b"):
                    store = await PostgresStore.open(
                        TEST_POSTGRES_URL, server_settings={"search_path": schema}
                    )
                    stores.append(store)
                    runners.append(
                        JobRunner(
                            store,
                            client,
                            settings,
                            on_finished=offer_to(offers, owner),
                            owner=owner,
                            lease_s=LEASE_S,
                        )
                    )
                refs = (
                    await client.upload_image(media.png(64, 64), "image/png"),
                    await client.upload_audio(media.wav(1.0), "audio/wav"),
                )
                yield Pair(fake, schema, stores, runners, offers, settings, refs)
            finally:
                for store in stores:
                    await store.close()


def offer_to(offers: list[tuple[str, int]], owner: str) -> Callable[[Job], None]:
    """A runner's on_finished: note which runner offered which job."""
    return lambda job: offers.append((owner, job.id))


async def queue_jobs(pair: Pair, n: int) -> list[Job]:
    """`n` jobs with their inputs uploaded, queued and held by nobody (any runner may claim them)."""
    store = pair.stores[0]
    jobs = []
    now = time.time()
    for i in range(n):
        new = NewJob(str(uuid.uuid4()), 1, 2, 1000 + i, 1.0, 10_000, "MP4", 85, None, False)
        created = await reserve(store, new, Limits(None, None), now)
        assert isinstance(created, Job)
        queued = await store.mark_job_queued(created.id, *pair.refs, now)
        assert queued is not None
        jobs.append(queued)
    return jobs


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def assert_once_each(pair: Pair, jobs: list[Job]) -> None:
    """Every job submitted once, settled once (one release and one settle), and offered once."""
    assert {j.task_uuid: pair.fake.submission_counts[j.task_uuid] for j in jobs} == {
        j.task_uuid: 1 for j in jobs
    }
    ledger = Counter(pair.query("SELECT job_id, kind FROM ledger WHERE kind IN ('release', 'settle')"))
    assert ledger == Counter({(j.id, kind): 1 for j in jobs for kind in ("release", "settle")})
    offered = Counter(job_id for _, job_id in pair.offers)
    assert offered == Counter({j.id: 1 for j in jobs})
    leases = pair.query("SELECT COUNT(*) FROM jobs WHERE lease_owner IS NOT NULL")
    assert leases == [(0,)]  # every finished job let go of its lease


async def test_two_runners_share_the_jobs_and_advance_each_once(pair: Pair) -> None:
    """36 jobs queued in waves, each wave waking one runner or the other: both take part, and each job is
    submitted, settled and offered once."""
    tasks = [asyncio.create_task(r.run()) for r in pair.runners]
    jobs: list[Job] = []
    try:
        for wave in range(6):
            jobs += await queue_jobs(pair, JOBS // 6)
            pair.runners[wave % 2].wake()
            await asyncio.sleep(0.1)
        await wait_until(lambda: len(pair.offers) >= JOBS, timeout=60)
        await asyncio.sleep(0.5)  # room for a second offer or settle, if there were to be one
    finally:
        for task in tasks:
            await stop(task)
    assert pair.statuses() == Counter({"succeeded": JOBS})
    assert_once_each(pair, jobs)
    assert {owner for owner, _ in pair.offers} == {"a", "b"}


async def test_a_stopped_runners_jobs_are_finished_by_the_other_after_its_leases_run_out(pair: Pair) -> None:
    """Runner a stops mid-run holding submitted jobs: b leaves them alone while a's leases last, then
    claims and finishes them, without submitting any again."""
    pair.fake.polls_to_finish = 10_000  # everything stays rendering until the test says otherwise
    jobs = await queue_jobs(pair, JOBS)
    task_a = asyncio.create_task(pair.runners[0].run())
    # b starts once a holds jobs: under load, b started at once could claim them all before a's first pass.
    try:
        await wait_until(
            lambda: pair.query("SELECT COUNT(*) FROM jobs WHERE lease_owner = 'a'")[0][0] > 0, timeout=60
        )
    except BaseException:
        await stop(task_a)
        raise
    task_b = asyncio.create_task(pair.runners[1].run())
    try:
        await wait_until(lambda: pair.statuses() == Counter({"processing": JOBS}), timeout=60)
        await stop(task_a)
        held_by_a: dict[int, float] = dict(
            pair.query("SELECT id, lease_expires_at FROM jobs WHERE lease_owner = 'a'")
        )
        assert held_by_a, "runner a held none of the jobs"
        for job in jobs:
            pair.fake.finish(job.task_uuid)
        await wait_until(lambda: pair.statuses() == Counter({"succeeded": JOBS}), timeout=60)
        await asyncio.sleep(0.5)
    finally:
        await stop(task_a)
        await stop(task_b)
    finished: dict[int, float] = dict(pair.query("SELECT id, finished_at FROM jobs"))
    for job_id, lease_expires_at in held_by_a.items():
        assert finished[job_id] >= lease_expires_at
    assert {owner for owner, job_id in pair.offers if job_id in held_by_a} == {"b"}
    assert_once_each(pair, jobs)
