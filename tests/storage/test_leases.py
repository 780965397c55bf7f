"""Leases (JobStore, DeliveryStore): several processes claim jobs and deliveries, each job held by one of
them at a time; a dead holder's lease runs out and another takes over; a step by a process that lost its
job changes nothing; a live process's upload is never taken for a dead one's."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from core.models import Job, JobStatus, Lease, Limits, NewJob
from core.ports import Store
from tests.conftest import reserve
from tests.storage.builders import ledger_rows, new_job, reserved
from tests.storage.conftest import Backend, Query

NOW = 1_000.0
LEASE = 30.0


def held(new: NewJob, lease: Lease) -> NewJob:
    """A new job whose upload `lease` holds (as a command's process does)."""
    return replace(new, lease=lambda: lease)


async def queued_jobs(store: Store, n: int, now: float = NOW) -> list[Job]:
    """`n` jobs queued and due at `now`, held by nobody."""
    jobs = []
    for i in range(n):
        job = await reserved(store, user_id=100 + i, estimate=1_000, now=now)
        queued = await store.mark_job_queued(job.id, "img", "aud", now)
        assert queued is not None
        jobs.append(queued)
    return jobs


async def test_concurrent_claimers_never_hold_the_same_job(backend: Backend) -> None:
    """Four processes claiming 60 due jobs at once, a few at a time, share them without overlap."""
    stores = [await backend.open() for _ in range(4)]
    try:
        jobs = await queued_jobs(stores[0], 60)

        async def claim_all(store: Store, owner: str) -> list[int]:
            taken: list[int] = []
            while batch := await store.claim_due_jobs(owner, NOW, NOW, 7, NOW + LEASE):
                taken += [j.id for j in batch]
                assert all(j.lease_owner == owner and j.lease_expires_at == NOW + LEASE for j in batch)
                # A held job is not claimed again by its holder in this test: move it out of the way.
                await store.schedule_polls([(j.id, NOW + 1_000) for j in batch], NOW, owner=owner)
            return taken

        taken = await asyncio.gather(*(claim_all(s, f"p{i}") for i, s in enumerate(stores)))
    finally:
        for store in stores:
            await store.close()
    claimed = [job_id for ids in taken for job_id in ids]
    assert sorted(claimed) == sorted(j.id for j in jobs)  # every job once, none twice


async def test_a_held_job_is_left_to_its_holder_until_the_lease_runs_out(store: Store) -> None:
    """Another process does not claim a held job; its holder does (renewing); after expiry anyone may."""
    (job,) = await queued_jobs(store, 1)
    assert [j.id for j in await store.claim_due_jobs("a", NOW, NOW, 10, NOW + LEASE)] == [job.id]
    assert await store.claim_due_jobs("b", NOW + 1, NOW + 1, 10, NOW + 1 + LEASE) == []
    (again,) = await store.claim_due_jobs("a", NOW + 2, NOW + 2, 10, NOW + 2 + LEASE)
    assert again.lease_expires_at == NOW + 2 + LEASE
    assert await store.claim_due_jobs("b", NOW + LEASE + 1, NOW + LEASE + 1, 10, NOW + 99) == []
    (taken,) = await store.claim_due_jobs("b", NOW + LEASE + 2, NOW + LEASE + 2, 10, NOW + 99)
    assert (taken.id, taken.lease_owner, taken.lease_expires_at) == (job.id, "b", NOW + 99)


async def test_renewal_keeps_a_lease_and_the_next_due_time_waits_for_it(store: Store) -> None:
    """renew_leases extends only the owner's leases; another process sees the job due when it runs out."""
    a, b = await queued_jobs(store, 2)
    await store.claim_due_jobs("a", NOW, NOW, 1, NOW + LEASE)  # a's job (the first), not b's
    assert await store.renew_leases("a", NOW + 100) == 1
    assert await store.next_due_at("a", NOW) == NOW
    await store.claim_due_jobs("b", NOW, NOW, 10, NOW + LEASE)
    assert await store.next_due_at("c", NOW) == NOW + LEASE  # b's lease, shorter than a's
    assert await store.claim_due_jobs("c", NOW + LEASE + 1, NOW, 10, NOW + 999) != []
    current = await store.get_job(a.id)
    assert current is not None and (current.lease_owner, current.lease_expires_at) == ("a", NOW + 100)
    current = await store.get_job(b.id)
    assert current is not None and current.lease_owner == "c"


async def test_a_process_that_lost_its_lease_cannot_advance_the_job(store: Store, query: Query) -> None:
    """After another process claimed the job, the old holder's submit, polls, completion and failure
    change nothing; the new holder's do, and its terminal step releases the lease."""
    (job,) = await queued_jobs(store, 1)
    await store.claim_due_jobs("old", NOW, NOW, 10, NOW + LEASE)
    later = NOW + LEASE + 1
    await store.claim_due_jobs("new", later, later, 10, later + LEASE)
    assert await store.mark_submitting(job.id, later, later, owner="old") is False
    assert await store.mark_submitted(job.id, later, later, owner="old") is False
    assert await store.schedule_polls([(job.id, later + 5)], later, owner="old") == 0
    assert await store.complete_job(job.id, "https://x/v.mp4", 90_000, False, later, owner="old") is None
    assert await store.fail_job(job.id, "x", "y", later, owner="old") is None
    assert [k for k, _, _ in ledger_rows(query)] == ["reserve"]
    assert await store.mark_submitting(job.id, later, later, owner="new") is True
    assert await store.mark_submitted(job.id, later, later, owner="new") is True
    done = await store.complete_job(job.id, "https://x/v.mp4", 90_000, False, later, owner="new")
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert (done.lease_owner, done.lease_expires_at) == (None, None)
    assert [k for k, _, _ in ledger_rows(query)] == ["reserve", "release", "settle"]


async def test_an_old_holder_racing_the_new_one_settles_once(backend: Backend, query: Query) -> None:
    """The old holder completing while another process claims and fails the job: exactly one of the
    claim-and-fail or the completion wins, with one final ledger row."""
    first, second = await backend.open(), await backend.open()
    try:
        for i in range(10):
            now = NOW + i * 100
            (job,) = await queued_jobs(first, 1, now)
            await first.claim_due_jobs("old", now, now, 10, now + 1)

            async def take_over(at: float = now + 2, job_id: int = job.id) -> Job | None:
                claimed = await second.claim_due_jobs("new", at, at, 10, at + LEASE)
                if not claimed:
                    return None  # finished meanwhile
                return await second.fail_job(job_id, "x", "y", at, owner="new")

            completed, failed = await asyncio.gather(
                first.complete_job(job.id, "https://x/v.mp4", 500, False, now + 2, owner="old"), take_over()
            )
            assert (completed is None) != (failed is None)
    finally:
        await first.close()
        await second.close()
    finals = [k for k, _, _ in ledger_rows(query) if k in ("settle", "refund")]
    assert len(finals) == 10


async def test_stale_uploads_are_a_dead_processs_not_a_live_ones(store: Store) -> None:
    """An upload whose holder's lease ran out is claimed to be failed; a live holder's is left alone, even
    when it is old; the claimer's own upload is taken only past the stale age."""
    limits = Limits(None, None)
    dead = await reserve(store, held(new_job(1), Lease("dead", NOW + LEASE)), limits, NOW)
    live = await reserve(store, held(new_job(2), Lease("live", NOW + 5 * LEASE)), limits, NOW - 5_000)
    mine = await reserve(store, held(new_job(3), Lease("me", NOW + 5 * LEASE)), limits, NOW)
    assert isinstance(dead, Job) and isinstance(live, Job) and isinstance(mine, Job)
    later = NOW + LEASE + 1
    stale = await store.claim_stale_uploads("me", later, later - 600, later + LEASE)
    assert [j.id for j in stale] == [dead.id] and stale[0].lease_owner == "me"
    assert await store.claim_stale_uploads("other", later, later - 600, later + LEASE) == []
    failed = await store.fail_job(dead.id, "uploadInterrupted", "gone", later, owner="me")
    assert failed is not None and failed.status is JobStatus.FAILED
    # The live process's upload goes on: queued by its holder.
    assert await store.mark_job_queued(live.id, "i", "a", later, owner="live") is not None
    # This process's own upload, hung past the stale age, is taken by it.
    old = NOW + 700
    assert [j.id for j in await store.claim_stale_uploads("me", old, old - 600, old + LEASE)] == [mine.id]


async def test_an_upload_taken_over_cannot_be_queued_by_its_old_holder(store: Store) -> None:
    """Once another process claimed a dead-looking upload, its old holder's mark_job_queued is refused."""
    job = await reserve(store, held(new_job(), Lease("slow", NOW + LEASE)), Limits(None, None), NOW)
    assert isinstance(job, Job)
    later = NOW + LEASE + 1
    assert len(await store.claim_stale_uploads("me", later, later - 600, later + LEASE)) == 1
    assert await store.mark_job_queued(job.id, "i", "a", later, owner="slow") is None


async def test_deliveries_are_claimed_once_until_their_lease_runs_out(backend: Backend) -> None:
    """Finished jobs are offered by one process at a time; a posted one never again; an unposted one
    again once its delivery lease ran out."""
    stores = [await backend.open() for _ in range(3)]
    try:
        jobs = await queued_jobs(stores[0], 20)
        for job in jobs:
            await stores[0].fail_job(job.id, "x", "y", NOW)
        claims = await asyncio.gather(
            *(s.claim_deliveries(f"p{i}", NOW, NOW + 60, 5) for i, s in enumerate(stores) for _ in range(3))
        )
        offered = [j.id for batch in claims for j in batch]
        assert sorted(offered) == sorted(j.id for j in jobs)
        first = jobs[0].id
        assert await stores[0].claim_delivery(first, "p9", NOW + 1, NOW + 61) is None
        assert await stores[0].mark_delivered(first, NOW + 2)
        assert await stores[1].claim_deliveries("p9", NOW + 61, NOW + 121, 100) != []
        again = await stores[2].claim_deliveries("p8", NOW + 200, NOW + 260, 100)
        assert first not in {j.id for j in again} and len(again) == 19
    finally:
        for store in stores:
            await store.close()


async def test_a_gone_processs_leases_end_at_once(store: Store) -> None:
    """expire_leases ends the named owners' job and delivery leases (and no one else's), so their jobs
    and results are claimed at once; lease_owners lists who holds what."""
    gone, live, finished = await queued_jobs(store, 3)
    await store.claim_due_jobs("gone", NOW, NOW, 1, NOW + LEASE)
    await store.claim_due_jobs("live", NOW, NOW, 1, NOW + LEASE)
    await store.fail_job(finished.id, "x", "y", NOW)
    await store.claim_delivery(finished.id, "gone", NOW, NOW + 60)
    assert await store.lease_owners() == ["gone", "live"]
    assert await store.expire_leases(["gone"], NOW + 1) == 2
    assert [j.id for j in await store.claim_due_jobs("new", NOW + 1, NOW + 1, 10, NOW + 99)] == [gone.id]
    assert [j.id for j in await store.claim_deliveries("new", NOW + 1, NOW + 61, 10)] == [finished.id]
    current = await store.get_job(live.id)
    assert current is not None and current.lease_owner == "live"


async def test_a_process_never_fails_its_own_upload_for_a_lapsed_lease(store: Store) -> None:
    """Its own upload whose lease lapsed (a renewal late on a busy machine) is still live in its command:
    only another process judges it by the lease; the process itself waits for the stale age."""
    job = await reserve(store, held(new_job(), Lease("me", NOW + LEASE)), Limits(None, None), NOW)
    assert isinstance(job, Job)
    later = NOW + LEASE + 1
    assert await store.claim_stale_uploads("me", later, later - 600, later + LEASE) == []
    assert await store.mark_job_queued(job.id, "i", "a", later, owner="me") is not None
