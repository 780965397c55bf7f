"""WebhookStore on both backends: tokens stored with the submitting mark only, results kept once per job and
per video, a finished job's result refused as a repeat, and a kept result making the job due at once (also
when it came before the submit's answer, and when it came while the runner's poll was on its way: the poll's
scheduling cannot hide it), every process told of it, and the rows of jobs long ended pruned."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.models import JobStatus, Limits, WebhookTarget
from core.ports import JobEvent, JobNotice, Store
from core.quota import windows_at
from storage.postgres.store import PostgresStore
from tests.postgres import TEST_POSTGRES_URL
from tests.storage.builders import reserved
from tests.storage.conftest import Backend, Query

NOW = 1_000.0


async def submitting(store: Store, token_hash: str | None = "h1") -> int:
    """A job marked submitting with a webhook token's hash."""
    job = await reserved(store, user_id=7, estimate=1_000, now=NOW)
    assert await store.mark_job_queued(job.id, "img", "aud", NOW) is not None
    assert await store.mark_submitting(job.id, NOW, NOW + 2, webhook_token_hash=token_hash)
    return job.id


async def test_a_token_is_stored_with_its_submit_and_a_refused_submit_stores_none(store: Store) -> None:
    job_id = await submitting(store)
    job = await store.get_job(job_id)
    assert job is not None
    assert await store.webhook_target(job_id) == WebhookTarget(job.task_uuid, ("h1",))
    # A second token (another process resubmits) is added; the same one again changes nothing.
    assert await store.mark_submitting(job_id, NOW, NOW + 2, webhook_token_hash="h2")
    assert await store.mark_submitting(job_id, NOW, NOW + 2, webhook_token_hash="h2")
    target = await store.webhook_target(job_id)
    assert target is not None and sorted(target.token_hashes) == ["h1", "h2"]
    # Held by another process: not sent, and no token kept.
    assert not await store.mark_submitting(job_id, NOW, NOW + 2, owner="other", webhook_token_hash="h3")
    target = await store.webhook_target(job_id)
    assert target is not None and "h3" not in target.token_hashes
    assert await store.webhook_target(job_id + 100) is None


async def test_a_result_is_kept_once_and_makes_the_job_due(store: Store) -> None:
    job_id = await submitting(store)
    # It came before the submit's answer: kept, and the submit's mark makes the job due now.
    assert await store.record_webhook_result(job_id, "t", "v1", '{"r": 1}', NOW + 1)
    assert not await store.record_webhook_result(job_id, "t", "v1", '{"r": 2}', NOW + 2)
    assert await store.webhook_results([job_id, job_id + 1]) == {job_id: '{"r": 1}'}
    assert await store.mark_submitted(job_id, NOW + 3, NOW + 60)
    job = await store.get_job(job_id)
    assert job is not None and job.next_poll_at == NOW + 3


async def test_a_processing_job_is_made_due_and_a_video_is_kept_once(store: Store) -> None:
    first, second = await submitting(store), await submitting(store, "h9")
    for job_id in (first, second):
        assert await store.mark_submitted(job_id, NOW, NOW + 60)
    assert await store.record_webhook_result(first, "t", "video", "{}", NOW + 5)
    job = await store.get_job(first)
    assert job is not None and job.next_poll_at == NOW + 5
    # The same video for another job is a repeat, not a second result.
    assert not await store.record_webhook_result(second, "t2", "video", "{}", NOW + 5)
    assert await store.webhook_results([second]) == {}


async def test_a_finished_job_takes_no_result(store: Store) -> None:
    job_id = await submitting(store)
    assert await store.mark_submitted(job_id, NOW, NOW + 60)
    assert await store.complete_job(job_id, "http://v", 500, False, NOW + 1) is not None
    assert not await store.record_webhook_result(job_id, "t", "v", "{}", NOW + 2)
    assert await store.webhook_results([job_id]) == {}


async def processing(store: Store, token_hash: str = "h1") -> int:
    """A job Runware accepted, next polled at NOW + 150 (the slow safety net)."""
    job_id = await submitting(store, token_hash)
    assert await store.mark_submitted(job_id, NOW, NOW + 150)
    return job_id


async def next_poll(store: Store, job_id: int) -> float | None:
    job = await store.get_job(job_id)
    assert job is not None
    return job.next_poll_at


async def test_a_result_kept_while_the_poll_was_out_is_due_now_after_the_scheduling(store: Store) -> None:
    """The runner read no kept result, polled ("processing"), and schedules the next poll 150 s away; a
    webhook kept the result in between. The scheduling leaves that job due now; the others get their
    time, and a job whose kept result the runner has just tried to apply keeps its retry delay."""
    raced, quiet, tried = (
        await processing(store),
        await processing(store, "h2"),
        await processing(store, "h3"),
    )
    for job_id in (raced, tried):
        assert await store.record_webhook_result(job_id, "t", f"v{job_id}", "{}", NOW + 1)
    changed = await store.schedule_polls(
        [(raced, NOW + 152), (quiet, NOW + 152), (tried, NOW + 4)], NOW + 2, tried={tried}
    )
    assert changed == 3
    assert await next_poll(store, raced) == NOW + 2
    assert await next_poll(store, quiet) == NOW + 152
    assert await next_poll(store, tried) == NOW + 4


async def test_a_result_kept_before_the_deadline_watch_starts_is_due_now(store: Store) -> None:
    """The deadline's poll saw "processing" and the job is expired with a watch whose first poll is far
    away; a webhook kept the video meanwhile: the watch starts due now, so the late video is posted at
    once."""
    job_id = await processing(store)
    assert await store.record_webhook_result(job_id, "t", "v", "{}", NOW + 1)
    expired = await store.fail_job(
        job_id, "deadline", "late", NOW + 2, expired=True, watch=(NOW + 900, NOW + 152)
    )
    assert expired is not None and expired.late_until == NOW + 900
    assert expired.next_poll_at == NOW + 2
    # Without a kept result the watch keeps its own first poll.
    other = await processing(store, "h2")
    expired = await store.fail_job(
        other, "deadline", "late", NOW + 2, expired=True, watch=(NOW + 900, NOW + 152)
    )
    assert expired is not None and expired.next_poll_at == NOW + 152


class GatedStore(PostgresStore):
    """A PostgreSQL store whose record_webhook_result stops inside its transaction, after keeping the
    result and with the job's row locked, until `release` is set (its notification is its last step)."""

    entered: asyncio.Event
    release: asyncio.Event
    pid = 0  # the server process of the stopped transaction

    async def _notify(self, db: Any, notice: JobNotice) -> None:
        if notice.event is JobEvent.RESULT:
            self.pid = db.get_server_pid()
            self.entered.set()
            await self.release.wait()
        await super()._notify(db, notice)


async def test_a_scheduling_waiting_on_the_webhooks_row_lock_sees_its_result(
    backend: Backend, store: Store, query: Query
) -> None:
    """PostgreSQL: a webhook holds the job's row lock with its result written, not yet committed; the
    runner's scheduling of that job waits on the lock. Once the webhook commits, the scheduling must see
    the result (its UPDATE reads in a snapshot taken after the lock, not before), so the job stays due."""
    if backend.name != "postgres":
        pytest.skip("SQLite's writers take the one write lock in turn (BEGIN IMMEDIATE)")
    job_id = await processing(store)
    ((schema,),) = query("SELECT current_schema()")
    gated = await GatedStore.open(TEST_POSTGRES_URL, server_settings={"search_path": str(schema)})
    gated.entered, gated.release = asyncio.Event(), asyncio.Event()
    try:
        webhook = asyncio.create_task(gated.record_webhook_result(job_id, "t", "v", "{}", NOW + 1))
        async with asyncio.timeout(10):
            await gated.entered.wait()
        scheduling = asyncio.create_task(store.schedule_polls([(job_id, NOW + 152)], NOW + 2))
        # Wait until the scheduling is blocked by the webhook's transaction (a state, not a delay).
        blocked = "SELECT 1 FROM pg_stat_activity WHERE ? = ANY(pg_blocking_pids(pid))"
        async with asyncio.timeout(10):
            while not query(blocked, (gated.pid,)):
                await asyncio.sleep(0.02)
        gated.release.set()
        assert await webhook
        assert await scheduling == 1
    finally:
        gated.release.set()
        await gated.close()
    assert await next_poll(store, job_id) == NOW + 2


async def test_keeping_a_result_tells_every_process(backend: Backend, store: Store) -> None:
    """A kept result notifies (JobEvent.RESULT with the job) every process's subscribers, at its commit;
    a repeat does not."""
    other = await backend.open() if backend.name == "postgres" else store
    try:
        stream = other.subscribe()
        if backend.name == "postgres":
            async with asyncio.timeout(10):
                assert (await anext(stream)).event is JobEvent.RESYNC  # listening from here on
        job_id = await processing(store)
        assert await store.record_webhook_result(job_id, "t", "v", "{}", NOW + 1)
        assert not await store.record_webhook_result(job_id, "t", "v", "{}", NOW + 2)
        await store.publish(JobNotice(JobEvent.QUEUED, 99))
        async with asyncio.timeout(10):
            seen = [await anext(stream), await anext(stream)]
        assert seen == [JobNotice(JobEvent.RESULT, job_id), JobNotice(JobEvent.QUEUED, 99)]
        stream.close()
    finally:
        if other is not store:
            await other.close()


async def test_the_webhook_rows_of_jobs_long_ended_are_pruned(store: Store, query: Query) -> None:
    """prune_webhooks(before) forgets the tokens and kept results of jobs that ended before `before`;
    a job still running, one that ended later, and an expired job still watched for its late video keep
    theirs."""
    old_done, running, recent, watched = [await processing(store, f"h{i}") for i in range(4)]
    for job_id in (old_done, running, recent, watched):
        assert await store.record_webhook_result(job_id, "t", f"v{job_id}", "{}", NOW + 1)
    assert await store.complete_job(old_done, "http://v", 500, False, NOW + 10) is not None
    assert await store.complete_job(recent, "http://v", 500, False, NOW + 100) is not None
    assert await store.fail_job(
        watched, "deadline", "late", NOW + 10, expired=True, watch=(NOW + 900, NOW + 20)
    )
    assert await store.prune_webhooks(NOW + 50) == 2  # old_done's token and its result
    assert sorted({r[0] for r in query("SELECT job_id FROM webhook_tokens")}) == [running, recent, watched]
    assert sorted(r[0] for r in query("SELECT job_id FROM webhook_results")) == [running, recent, watched]
    target = await store.webhook_target(old_done)
    assert target is not None and target.token_hashes == ()
    # The watch ends (no late video): its rows go at the next pass; a pass with nothing to do is cheap.
    assert await store.end_late_watch(watched, NOW + 30)
    assert await store.prune_webhooks(NOW + 50) == 2
    assert await store.prune_webhooks(NOW + 50) == 0


# A lost task's video: Runware kept answering "not found", the job was failed (or its late watch ended) and
# refunded, then its webhook brings the video. OUTPUT_TTL_S as the receiver passes it with a video.
TTL = 86_400.0


async def lost(store: Store, token_hash: str = "h1") -> int:
    """A processing job (submitted at NOW) failed as lost by the runner at NOW + 100, refunded."""
    job_id = await processing(store, token_hash)
    failed = await store.fail_job(
        job_id, "taskFailedOrNotFound", "The video service lost this job.", NOW + 100, lost=True
    )
    assert failed is not None and failed.lost_at == NOW + 100 and failed.late_until is None
    return job_id


async def test_a_video_for_a_job_judged_lost_is_kept_once_and_watched_again(store: Store) -> None:
    """The webhook's video for a lost job is kept (it is no repeat) with the job watched again until its
    output's expiry, due now, and any runner may claim it: its estimate is held against the server and the
    operator again, as a watched job's is, until the late video is booked to the server only (a settle,
    and the same amount granted back to the member). The same video again, or once booked, is a repeat."""
    job_id = await lost(store)
    usage = await store.usage(1, 8, Limits(None, None), windows_at(NOW + 101))
    assert (usage.guild_spent_month_micros, usage.operator_spent_today_micros) == (0, 0)
    # Without the output's time to live (an error, or a result that is no video): a repeat, as before.
    assert not await store.record_webhook_result(job_id, "t", "v", "{}", NOW + 200)
    assert await store.record_webhook_result(job_id, "t", "v", '{"r": 1}', NOW + 200, video_ttl_s=TTL)
    job = await store.get_job(job_id)
    assert job is not None and job.status is JobStatus.FAILED
    assert (job.late_until, job.next_poll_at) == (NOW + TTL, NOW + 200)
    assert await store.webhook_results([job_id]) == {job_id: '{"r": 1}'}
    assert not await store.record_webhook_result(job_id, "t", "v", '{"r": 2}', NOW + 201, video_ttl_s=TTL)
    usage = await store.usage(1, 8, Limits(None, None), windows_at(NOW + 202))
    assert (usage.guild_spent_month_micros, usage.operator_spent_today_micros) == (1_000, 1_000)
    (claimed,) = await store.claim_due_jobs("runner-b", NOW + 202, NOW + 202, 10, NOW + 300)
    assert claimed.id == job_id and claimed.lease_owner == "runner-b"
    done = await store.complete_late_job(job_id, "http://v", 800, False, NOW + 203, owner="runner-b")
    assert done is not None and done.late_video_waiting and done.late_until is None
    assert done.status is JobStatus.FAILED and done.late_reason == "arrived after the job was declared lost"
    assert await store.complete_late_job(job_id, "http://v", 800, False, NOW + 204) is None
    usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW + 205))
    assert (usage.spent_today_micros, usage.guild_spent_month_micros) == (0, 800)
    assert not await store.record_webhook_result(job_id, "t", "v2", "{}", NOW + 206, video_ttl_s=TTL)
    # Offered for delivery as a late video, recorded as posted once.
    offered = await store.claim_delivery(job_id, "runner-b", NOW + 207, NOW + 267)
    assert offered is not None and offered.late_video_waiting
    assert [j.id for j in await store.undelivered_jobs()] == [job_id]
    assert await store.mark_late_delivered(job_id, NOW + 208, (10, 99))
    assert not await store.mark_late_delivered(job_id, NOW + 209, (10, 98))
    assert await store.undelivered_jobs() == []


async def test_a_lost_job_takes_no_video_once_its_output_is_gone_nor_does_any_other_failed_job(
    store: Store,
) -> None:
    """A video that comes when its output's time to live (from the submit) has run out is a repeat; so is
    one for a job failed for another reason, or cancelled before its submit."""
    job_id = await lost(store)
    assert not await store.record_webhook_result(job_id, "t", "v", "{}", NOW + TTL, video_ttl_s=TTL)
    failed = await processing(store, "h2")
    assert await store.fail_job(failed, "taskFailed", "It failed.", NOW + 100) is not None
    assert not await store.record_webhook_result(failed, "t2", "v2", "{}", NOW + 200, video_ttl_s=TTL)
    cancelled = await reserved(store, user_id=7, estimate=1_000, now=NOW)
    assert await store.cancel_job(cancelled.id, 7, NOW + 1) is not None
    assert not await store.record_webhook_result(cancelled.id, "t3", "v3", "{}", NOW + 2, video_ttl_s=TTL)
    for job in (job_id, failed, cancelled.id):
        current = await store.get_job(job)
        assert current is not None and current.late_until is None and current.result_url is None
    assert await store.webhook_results([job_id, failed, cancelled.id]) == {}


async def test_a_late_watch_ended_on_not_found_takes_its_webhook_video(store: Store) -> None:
    """An expired job whose late watch ended because Runware no longer knew its task takes its webhook's
    video (watched again); one whose watch ended otherwise (an error, the time to live) does not."""
    watched, other = await processing(store), await processing(store, "h2")
    for job_id in (watched, other):
        assert await store.fail_job(
            job_id, "deadline", "late", NOW + 50, expired=True, watch=(NOW + TTL, NOW + 60)
        )
    assert await store.end_late_watch(watched, NOW + 120, lost=True)
    assert await store.end_late_watch(other, NOW + 120)
    assert not await store.record_webhook_result(other, "t2", "v2", "{}", NOW + 200, video_ttl_s=TTL)
    assert await store.record_webhook_result(watched, "t", "v", "{}", NOW + 200, video_ttl_s=TTL)
    job = await store.get_job(watched)
    assert job is not None and job.lost_at == NOW + 120
    assert (job.status, job.late_until, job.next_poll_at) == (JobStatus.EXPIRED, NOW + TTL, NOW + 200)
    done = await store.complete_late_job(watched, "http://v", 800, False, NOW + 201)
    assert done is not None and done.late_reason == "arrived after the deadline"


async def test_a_result_kept_before_the_lost_verdict_keeps_the_job_waiting_for_it(store: Store) -> None:
    """The runner's poll said "not found" and it judges the task lost; a webhook kept the task's video in
    between (Runware had its 200, and sends it no more). Failing the job then would strand the video: a
    job failed as lost takes a video only from a webhook still to come. So the verdict is not recorded:
    the job stays waiting, due now, and the next pass applies the kept result (processing: a normal
    success; an expired job's watch: a late video)."""
    job_id = await processing(store)
    assert await store.record_webhook_result(job_id, "t", "v", '{"r": 1}', NOW + 99)
    assert (
        await store.fail_job(
            job_id, "taskFailedOrNotFound", "The video service lost this job.", NOW + 100, lost=True
        )
        is None
    )
    job = await store.get_job(job_id)
    assert job is not None and job.status is JobStatus.PROCESSING and job.lost_at is None
    assert job.next_poll_at is not None and job.next_poll_at <= NOW + 100
    assert await store.webhook_results([job_id]) == {job_id: '{"r": 1}'}
    # The same for an expired job's late watch ended on "not found".
    watched = await processing(store, "h2")
    assert await store.fail_job(
        watched, "deadline", "late", NOW + 50, expired=True, watch=(NOW + TTL, NOW + 60)
    )
    assert await store.record_webhook_result(watched, "t2", "v2", '{"r": 2}', NOW + 119)
    assert not await store.end_late_watch(watched, NOW + 120, lost=True)
    job = await store.get_job(watched)
    assert job is not None and job.late_until == NOW + TTL and job.lost_at is None
    assert job.next_poll_at is not None and job.next_poll_at <= NOW + 120
    # Without a kept result the verdict stands, as before; a watch ending for another reason ends.
    assert (await lost(store, "h3")) is not None
    other = await processing(store, "h4")
    assert await store.fail_job(
        other, "deadline", "late", NOW + 50, expired=True, watch=(NOW + TTL, NOW + 60)
    )
    assert await store.record_webhook_result(other, "t4", "v4", "{}", NOW + 119)
    assert await store.end_late_watch(other, NOW + TTL)


async def test_a_lost_verdict_waiting_on_the_webhooks_row_lock_sees_its_result(
    backend: Backend, store: Store, query: Query
) -> None:
    """PostgreSQL: a webhook holds a watched job's row lock with its video kept, not yet committed; the
    runner ends the watch as lost meanwhile (its poll said "not found"). Once the webhook commits, the
    verdict must see the video (read after the row's lock) and leave the watch on, due now."""
    if backend.name != "postgres":
        pytest.skip("SQLite's writers take the one write lock in turn (BEGIN IMMEDIATE)")
    job_id = await processing(store)
    assert await store.fail_job(
        job_id, "deadline", "late", NOW + 50, expired=True, watch=(NOW + TTL, NOW + 60)
    )
    ((schema,),) = query("SELECT current_schema()")
    gated = await GatedStore.open(TEST_POSTGRES_URL, server_settings={"search_path": str(schema)})
    gated.entered, gated.release = asyncio.Event(), asyncio.Event()
    try:
        webhook = asyncio.create_task(gated.record_webhook_result(job_id, "t", "v", "{}", NOW + 119))
        async with asyncio.timeout(10):
            await gated.entered.wait()
        verdict = asyncio.create_task(store.end_late_watch(job_id, NOW + 120, lost=True))
        blocked = "SELECT 1 FROM pg_stat_activity WHERE ? = ANY(pg_blocking_pids(pid))"
        async with asyncio.timeout(10):
            while not query(blocked, (gated.pid,)):
                await asyncio.sleep(0.02)
        gated.release.set()
        assert await webhook
        assert not await verdict
    finally:
        gated.release.set()
        await gated.close()
    job = await store.get_job(job_id)
    assert job is not None and job.late_until == NOW + TTL and job.lost_at is None
