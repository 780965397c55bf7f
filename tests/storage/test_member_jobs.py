"""A member's own jobs (JobStore, issue 13): /videos' pages by job number, and Cancel before the job
reaches Runware, racing the runner's mark_submitting (exactly one of them wins, on both backends)."""

from __future__ import annotations

import asyncio
import random

import pytest

from core.models import CANCELLED_CODE, Job, JobStatus, Limits
from core.ports import Store
from core.quota import windows_at
from tests.storage.builders import ledger_rows, reserved
from tests.storage.conftest import Backend, Query

NOW = 1_000.0
MEMBER = 7


async def queued(store: Store, user_id: int = MEMBER, now: float = NOW) -> Job:
    """A job of `user_id` whose inputs are uploaded: the runner's next submit."""
    job = await reserved(store, user_id, 100_000, now)
    ready = await store.mark_job_queued(job.id, "img", "aud", now)
    assert ready is not None
    return ready


# ------------------------------------------------------------------ pages


async def test_pages_go_by_job_number_newest_first(store: Store) -> None:
    """12 jobs of a member among others' are paged 5 at a time, older with `before` and newer with
    `after`; other members' and other servers' jobs never show."""
    mine = []
    for i in range(12):
        mine.append((await reserved(store, MEMBER, 1_000, NOW + i)).id)
        await reserved(store, MEMBER + 1, 1_000, NOW + i)  # another member
        await reserved(store, MEMBER, 1_000, NOW + i, guild_id=2)  # another server
    newest_first = mine[::-1]
    first = await store.member_jobs(1, MEMBER, 5)
    assert [j.id for j in first] == newest_first[:5]
    second = await store.member_jobs(1, MEMBER, 5, before=first[-1].id)
    assert [j.id for j in second] == newest_first[5:10]
    last = await store.member_jobs(1, MEMBER, 5, before=second[-1].id)
    assert [j.id for j in last] == newest_first[10:]
    assert await store.member_jobs(1, MEMBER, 5, before=last[-1].id) == []
    back = await store.member_jobs(1, MEMBER, 5, after=last[0].id)
    assert [j.id for j in back] == newest_first[5:10]
    assert [j.id for j in await store.member_jobs(1, MEMBER, 5, after=first[0].id)] == []
    assert all(j.user_id == MEMBER and j.guild_id == 1 for j in first + second + last)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_page_is_read_through_the_members_index(store: Store, query: Query) -> None:
    """The page's query walks jobs_member_id (guild, member, number) rather than the table."""
    await reserved(store, MEMBER, 1_000, NOW)
    for where in ("id < ?", "id > ?"):
        plan = query(
            f"EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE guild_id = ? AND user_id = ? AND {where} "
            "ORDER BY id DESC LIMIT 5",
            (1, MEMBER, 10),
        )
        assert any("jobs_member_id" in str(row[-1]) for row in plan), plan


# ------------------------------------------------------------------ cancel


async def test_cancel_before_the_submit_refunds_and_the_submit_is_refused(store: Store, query: Query) -> None:
    """Cancelled while queued: failed as cancelled, refunded, nothing to post, its lease let go; the
    runner's mark_submitting then changes nothing (so nothing is sent)."""
    job = await queued(store)
    cancelled = await store.cancel_job(job.id, MEMBER, NOW + 1)
    assert cancelled is not None and cancelled.cancelled
    assert (cancelled.status, cancelled.error_code) == (JobStatus.FAILED, CANCELLED_CODE)
    assert cancelled.delivered_at == NOW + 1 and cancelled.lease_owner is None
    assert await store.mark_submitting(job.id, NOW + 2, NOW + 10) is False
    assert ledger_rows(query) == [("reserve", 100_000, job.id), ("refund", -100_000, job.id)]
    usage = await store.usage(1, MEMBER, Limits(None, None), windows_at(NOW))
    assert (usage.spent_today_micros, usage.active_jobs) == (0, 0)
    assert await store.undelivered_jobs() == []
    assert await store.cancel_job(job.id, MEMBER, NOW + 3) is None  # once


async def test_cancel_during_the_upload_stops_its_queueing(store: Store) -> None:
    """Cancelled while its files upload: the command's mark_job_queued then finds it closed."""
    job = await reserved(store, MEMBER, 100_000, NOW)
    assert (await store.cancel_job(job.id, MEMBER, NOW + 1)) is not None
    assert await store.mark_job_queued(job.id, "img", "aud", NOW + 2) is None


async def test_cancel_after_the_submit_changes_nothing(store: Store, query: Query) -> None:
    """Once mark_submitting has run (the task is on its way to Runware) a cancel is refused, before and
    after Runware accepted it, and when it has finished: the job runs on and is charged."""
    job = await queued(store)
    assert await store.mark_submitting(job.id, NOW + 1, NOW + 10) is True
    assert await store.cancel_job(job.id, MEMBER, NOW + 2) is None
    assert await store.mark_submitted(job.id, NOW + 3, NOW + 10) is True
    assert await store.cancel_job(job.id, MEMBER, NOW + 4) is None
    assert await store.complete_job(job.id, "https://v/1.mp4", 90_000, False, NOW + 5) is not None
    assert await store.cancel_job(job.id, MEMBER, NOW + 6) is None
    assert [kind for kind, _, _ in ledger_rows(query)] == ["reserve", "release", "settle"]


async def test_only_its_member_may_cancel(store: Store, query: Query) -> None:
    """Another member's cancel, or one of a job that does not exist, changes nothing."""
    job = await queued(store)
    assert await store.cancel_job(job.id, MEMBER + 1, NOW + 1) is None
    assert await store.cancel_job(job.id + 1000, MEMBER, NOW + 1) is None
    assert (await store.get_job(job.id)) == job
    assert len(ledger_rows(query)) == 1


async def race(store_a: Store, store_b: Store, jobs: list[Job], seed: int) -> list[tuple[bool, bool]]:
    """For each job at once: its member's cancel through one store and the runner's mark_submitting
    through the other (as two processes), started in a random order. (cancel won, submit won) each."""
    rng = random.Random(seed)

    async def one(job: Job) -> tuple[bool, bool]:
        cancel = store_a.cancel_job(job.id, job.user_id, NOW + 1)
        submit = store_b.mark_submitting(job.id, NOW + 1, NOW + 10, owner=None)
        if rng.random() < 0.5:
            submitted, cancelled = await asyncio.gather(submit, cancel)
        else:
            cancelled, submitted = await asyncio.gather(cancel, submit)
        return cancelled is not None, submitted

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def test_cancel_racing_the_submit_has_exactly_one_winner(backend: Backend, query: Query) -> None:
    """120 jobs, each cancelled by its member while two stores (as processes) also mark it submitting:
    each job is either cancelled and refunded (never to be sent) or submitting and not refunded, never
    both and never neither. Which side wins is the scheduler's choice (under load one side may win every
    race), so both outcomes are not required here: test_either_order_of_cancel_and_submit forces each."""
    stores = [await backend.open(), await backend.open()]
    try:
        jobs = [await queued(stores[0], user_id=1_000 + i) for i in range(120)]
        results = await race(stores[0], stores[1], jobs, seed=13)
        for job, (cancelled, submitted) in zip(jobs, results, strict=True):
            assert cancelled != submitted, (job.id, cancelled, submitted)
            now = await stores[0].get_job(job.id)
            assert now is not None
            assert now.status is (JobStatus.FAILED if cancelled else JobStatus.SUBMITTING)
            # The runner sends only what mark_submitting let through; a cancelled job stays unsendable.
            assert await stores[1].mark_submitting(job.id, NOW + 2, NOW + 10) is submitted
        refunds = {job_id for kind, _, job_id in ledger_rows(query) if kind == "refund"}
        assert refunds == {job.id for job, (c, _) in zip(jobs, results, strict=True) if c}
    finally:
        for store in stores:
            await store.close()


async def test_either_order_of_cancel_and_submit(store: Store, query: Query) -> None:
    """The two orders, one after the other: cancel first wins (the submit is refused); submit first
    wins (the cancel is refused and nothing is refunded)."""
    first, second = await queued(store), await queued(store)
    assert await store.cancel_job(first.id, MEMBER, NOW + 1) is not None
    assert await store.mark_submitting(first.id, NOW + 1, NOW + 10) is False
    assert await store.mark_submitting(second.id, NOW + 1, NOW + 10) is True
    assert await store.cancel_job(second.id, MEMBER, NOW + 1) is None
    assert [(k, j) for k, _, j in ledger_rows(query) if k == "refund"] == [("refund", first.id)]
