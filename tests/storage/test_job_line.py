"""The acknowledgement's view of a job (JobStore.job_places, issue 13): its status, whether its outcome is
recorded, and its place in the line of jobs Runware has not accepted yet, across the whole database, on
both backends; and the notification a cancel sends to the acknowledgement's holder."""

from __future__ import annotations

import asyncio

import pytest

from core.models import JobPlace, JobStatus
from core.ports import JobEvent, JobNotice, Store
from tests.storage.builders import reserved
from tests.storage.conftest import Backend, Query

NOW = 1_000.0
MEMBER = 7


async def test_places_count_the_waiting_jobs_before_each(store: Store) -> None:
    """Five jobs of several members and servers: uploading, queued and submitting ones are in the line, by
    number; a processing or finished job is out of it (no place), and the places behind it move up."""
    jobs = [await reserved(store, MEMBER + i, 100_000, NOW + i, guild_id=1 + i % 2) for i in range(5)]
    ids = [j.id for j in jobs]
    for job in jobs[1:]:
        assert await store.mark_job_queued(job.id, "img", "aud", NOW + 10) is not None
    # jobs[0] still uploading, jobs[1..4] queued: places 1 to 5.
    places = await store.job_places(ids)
    assert [places[i].place for i in ids] == [1, 2, 3, 4, 5]
    assert all(
        p.status in (JobStatus.UPLOADING, JobStatus.QUEUED) and not p.delivered for p in places.values()
    )
    assert await store.mark_submitting(ids[1], NOW + 11, NOW + 20)  # being sent: still waiting
    assert (await store.job_places([ids[4]]))[ids[4]].place == 5
    assert await store.mark_submitted(ids[1], NOW + 12, NOW + 30)  # Runware has it: out of the line
    assert await store.cancel_job(ids[2], MEMBER + 2, NOW + 13) is not None  # cancelled: out, told
    places = await store.job_places(ids)
    assert places[ids[1]] == JobPlace(ids[1], JobStatus.PROCESSING, False, None)
    assert places[ids[2]] == JobPlace(ids[2], JobStatus.FAILED, True, None)
    assert [places[i].place for i in (ids[0], ids[3], ids[4])] == [1, 2, 3]
    assert await store.job_places([]) == {}
    assert await store.job_places([10_000]) == {}


async def test_a_later_job_does_not_move_an_earlier_one_back(store: Store) -> None:
    """The line is by number: a job accepted later is behind, so a place never grows."""
    first = await reserved(store, MEMBER, 100_000, NOW)
    assert (await store.job_places([first.id]))[first.id].place == 1
    later = await reserved(store, MEMBER + 1, 100_000, NOW + 1)
    places = await store.job_places([first.id, later.id])
    assert (places[first.id].place, places[later.id].place) == (1, 2)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_line_is_read_through_its_own_index(store: Store, query: Query) -> None:
    """Counting the line walks jobs_waiting (waiting jobs only), not the table."""
    await reserved(store, MEMBER, 1_000, NOW)
    plan = query(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs "
        "WHERE status IN ('uploading', 'queued', 'submitting') AND id <= ? ORDER BY id",
        (10,),
    )
    assert any("jobs_waiting" in str(row[-1]) for row in plan), plan


async def test_a_cancel_notifies_the_acknowledgements_holder(backend: Backend, store: Store) -> None:
    """A cancel records the job's outcome (nothing to post): DELIVERED reaches every process at its commit,
    so the process holding the acknowledgement shows it; a refused cancel says nothing."""
    other = store if backend.name == "sqlite" else await backend.open()
    try:
        stream = other.subscribe()
        if backend.name == "postgres":
            async with asyncio.timeout(10):
                assert (await anext(stream)).event is JobEvent.RESYNC  # listening from here on
        job = await reserved(store, MEMBER, 100_000, NOW)
        assert await store.cancel_job(job.id, MEMBER + 1, NOW + 1) is None  # not theirs
        assert await store.cancel_job(job.id, MEMBER, NOW + 1) is not None
        assert await store.cancel_job(job.id, MEMBER, NOW + 2) is None  # already cancelled
        async with asyncio.timeout(10):
            assert await anext(stream) == JobNotice(JobEvent.DELIVERED, job.id)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await anext(stream)
        stream.close()
    finally:
        if other is not store:
            await other.close()
