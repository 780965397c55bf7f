"""JobRunner advancing jobs to the end, against a real SQLite file and the local fake Runware server."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from core.jobs import JobService
from core.models import Job, JobStatus
from core.runner import (
    IDLE_SLEEP_S,
    STALLED_AFTER_LEASES,
    JobRunner,
    is_past_deadline,
    poll_delay,
    retry_delay,
)
from storage.sqlite import SqliteStore
from tests.conftest import SettingsFactory, reserve
from tests.core.conftest import Rig, request, wait_until
from tests.fakes.runware import Outcome


def test_poll_delay_grows_from_initial_to_max() -> None:
    """Polls start at the initial delay and back off ×1.5 up to the maximum interval."""
    assert [poll_delay(n, 2.0, 10.0) for n in range(6)] == [2.0, 3.0, 4.5, 6.75, 10.0, 10.0]


def test_retry_delay_is_capped() -> None:
    """Request retries double from 2 s and stop at the cap."""
    assert [retry_delay(n, 10.0) for n in range(5)] == [2.0, 4.0, 8.0, 10.0, 10.0]


async def test_deadline_check(rig: Rig) -> None:
    """A job is past its deadline only after JOB_DEADLINE_S since it was accepted."""
    job = (await rig.service.accept(request())).job
    assert not is_past_deadline(job, job.created_at + 10, 20)
    assert is_past_deadline(job, job.created_at + 21, 20)


@pytest.mark.parametrize("shape", ["errors", "nested"])
async def test_task_failure_is_refunded(running: Rig, shape: str) -> None:
    """A failed task (either failure shape) ends failed with its reason, and costs nothing."""
    running.fake.next_outcome(Outcome.failure("timeoutProvider", shape=shape))  # type: ignore[arg-type]
    await running.service.accept(request())
    done = await running.next_finished()
    assert done.status is JobStatus.FAILED and done.error_code == "timeoutProvider"
    assert running.spent() == 0
    assert [k for k, _ in running.ledger()] == ["reserve", "refund"]


async def test_retryable_task_failure_is_final_refunded_and_not_resubmitted(running: Rig) -> None:
    """A task Runware reports as taskFailed (retryable in its SDK) fails once, is refunded, never resent."""
    running.fake.next_outcome(Outcome.failure("taskFailed"))
    await running.service.accept(request())
    done = await running.next_finished()
    assert (done.status, done.error_code) == (JobStatus.FAILED, "taskFailed")
    assert done.error_message == "The video service could not make this video. Please try again later."
    assert running.fake.submission_counts[done.task_uuid] == 1
    assert len(running.fake.tasks_of_type("videoInference")) == 1
    assert [k for k, _ in running.ledger()] == ["reserve", "refund"]


async def test_safety_rejection_is_explained_and_not_retried(running: Rig) -> None:
    """A content-policy failure says so in plain words and is submitted only once."""
    running.fake.next_outcome(Outcome.failure("contentPolicyViolation"))
    await running.service.accept(request())
    done = await running.next_finished()
    assert "safety" in (done.error_message or "").lower()
    assert running.fake.submission_counts[done.task_uuid] == 1


async def test_poll_errors_are_retried(running: Rig) -> None:
    """429 and 500 answers while polling delay the job but do not fail it."""
    running.fake.inject(429, times=2, task_type="getResponse")
    running.fake.inject(500, times=3, task_type="getResponse")
    await running.service.accept(request())
    done = await running.next_finished()
    assert done.status is JobStatus.SUCCEEDED


async def test_deadline_expires_and_refunds(make_settings: SettingsFactory, rig: Rig) -> None:
    """A job still running after JOB_DEADLINE_S expires and is refunded."""
    rig.fake.polls_to_finish = 10_000
    rig.runner._settings = rig.settings.model_copy(update={"job_deadline_s": 0.3})
    task = asyncio.create_task(rig.runner.run())
    try:
        await rig.service.accept(request())
        done = await rig.next_finished()
    finally:
        task.cancel()
    assert done.status is JobStatus.EXPIRED and rig.spent() == 0


async def test_ambiguous_submit_is_checked_before_resubmitting(rig: Rig) -> None:
    """A job left `submitting` by a crash, which Runware did receive, is confirmed, not sent again."""
    job = (await rig.service.accept(request())).job
    await rig.runner.run_once()  # submits
    await rig.runner.submits_done()
    assert rig.fake.submission_counts[job.task_uuid] == 1
    # Simulate the crash window: the answer was never recorded.
    await rig.store.mark_submitting(job.id, 0, 0)
    task = asyncio.create_task(rig.runner.run())
    try:
        done = await rig.next_finished()
    finally:
        task.cancel()
    assert done.status is JobStatus.SUCCEEDED
    assert rig.fake.submission_counts[job.task_uuid] == 1


async def test_lost_submit_is_sent_again_with_the_same_uuid(rig: Rig) -> None:
    """A job left `submitting` that Runware never saw is submitted again under its own taskUUID."""
    job = (await rig.service.accept(request())).job
    await rig.store.mark_submitting(job.id, 0, 0)
    task = asyncio.create_task(rig.runner.run())
    try:
        done = await rig.next_finished()
    finally:
        task.cancel()
    assert done.status is JobStatus.SUCCEEDED
    assert rig.fake.submission_counts[job.task_uuid] == 1
    assert [t["taskUUID"] for t in rig.fake.tasks_of_type("videoInference")] == [job.task_uuid]


async def test_interrupted_upload_is_refunded_on_start(rig: Rig) -> None:
    """A job still `uploading` when the process died is failed and refunded when the runner starts."""
    from core.models import Limits, NewJob

    created = await reserve(
        rig.store, NewJob("u-1", 1, 2, 3, 1.0, 100_000, "MP4", 85, None, False), Limits(10**9, 9), 0.0
    )
    assert isinstance(created, Job)
    await rig.runner.recover()
    done = await rig.next_finished()
    assert done.status is JobStatus.FAILED and rig.spent() == 0


async def test_undelivered_jobs_are_offered_again_on_start(rig: Rig) -> None:
    """A finished job that was never posted is handed to delivery after a restart."""
    job = (await rig.service.accept(request())).job
    await rig.store.fail_job(job.id, "x", "y", 1.0)
    await rig.runner.recover()
    offered = await rig.next_finished()
    assert offered.id == job.id


async def test_polls_of_many_jobs_are_batched(rig: Rig) -> None:
    """120 running jobs are polled with 3 HTTP requests per round (≤ 50 tasks each)."""
    from core.models import Limits, NewJob

    rig.fake.polls_to_finish = 10_000
    now = time.time()
    for i in range(120):
        created = await reserve(
            rig.store, NewJob(f"t-{i}", 1, 2, i, 1.0, 1, "MP4", 85, None, False), Limits(10**9, 9), now
        )
        assert isinstance(created, Job)
        await rig.store.mark_job_queued(created.id, "i", "a", now)
        await rig.store.mark_submitted(created.id, now, now)
    rig.fake.requests.clear()
    await rig.runner.run_once()
    polls = [b for b in rig.fake.requests if b and b[0].get("taskType") == "getResponse"]
    assert len(polls) == 3 and sum(len(b) for b in polls) == 120


async def test_a_new_job_does_not_trigger_early_polls(rig: Rig) -> None:
    """Running jobs that are not due yet are not polled just because a new job arrived."""
    from core.models import Limits, NewJob

    rig.fake.polls_to_finish = 10_000
    now = time.time()
    created = await reserve(
        rig.store, NewJob("t-early", 1, 2, 3, 1.0, 1, "MP4", 85, None, False), Limits(10**9, 9), now
    )
    assert isinstance(created, Job)
    await rig.store.mark_job_queued(created.id, "i", "a", now)
    # Due in 0.05 s: inside the horizon (half of the 0.2 s max interval) but not due now.
    await rig.store.mark_submitted(created.id, now, now + 0.05)
    # The runner's clock stays at `now`: on real time a loaded machine can take longer than 0.05 s to get
    # here, and the job is then rightly due.
    runner, _, _ = rig.parts_on(rig.store, lambda: now)
    await runner.run_once()
    assert rig.fake.tasks_of_type("getResponse") == []


class FlakyStore(SqliteStore):
    """The real store, whose `next_due_at` fails a given number of times (a locked database, say)."""

    failures = 0

    async def next_due_at(self, owner: str, now: float) -> float | None:
        if self.failures > 0:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return await super().next_due_at(owner, now)


# The fault is injected by subclassing the SQLite store; the runner's handling does not depend on the backend.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_runner_survives_a_database_error(rig: Rig, tmp_path: Path) -> None:
    """A failing database call costs the runner a pass, not its life: later jobs still finish."""
    flaky = await FlakyStore.open(str(tmp_path / "flaky.db"))
    flaky.failures = 1
    finished: asyncio.Queue[Job] = asyncio.Queue()
    runner = JobRunner(flaky, rig.client, rig.settings, on_finished=finished.put_nowait)
    service = JobService(flaky, rig.client, rig.settings, wake_runner=runner.wake, hold_upload=runner.lease)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(0.1)
        assert not task.done()
        await service.accept(request())
        done = await asyncio.wait_for(finished.get(), 10)
    finally:
        task.cancel()
        await flaky.close()
    assert done.status is JobStatus.SUCCEEDED and flaky.failures == 0


async def test_a_hanging_submit_does_not_hold_up_other_jobs(running: Rig) -> None:
    """While one submit waits on an unanswered request, another running job is polled and finished."""
    first = (await running.service.accept(request(user_id=1))).job
    await wait_until(lambda: running.fake.submission_counts[first.task_uuid] == 1)
    running.fake.polls_to_finish = 6
    running.fake.inject_hang(30, task_type="videoInference", times=100)
    await running.service.accept(request(user_id=2))
    done = await running.next_finished()
    assert done.id == first.id and done.status is JobStatus.SUCCEEDED


@pytest.mark.parametrize("cost", [float("nan"), -5.0, 1e20])
async def test_implausible_cost_is_settled_at_the_estimate(running: Rig, cost: float) -> None:
    """A NaN, negative or absurd cost settles at the estimate instead of breaking or refunding."""
    running.fake.next_outcome(Outcome.success(cost_usd=cost))
    await running.service.accept(request(3.0))
    done = await running.next_finished()
    assert done.status is JobStatus.SUCCEEDED and done.cost_micros == 300_000
    assert running.spent() == 300_000


async def test_finished_video_past_the_deadline_is_kept(rig: Rig) -> None:
    """A job polled after its deadline whose video is ready succeeds; it is not expired unseen."""
    job = (await rig.service.accept(request())).job
    await rig.runner.run_once()
    await rig.runner.submits_done()
    rig.fake.finish(job.task_uuid)
    rig.runner._settings = rig.settings.model_copy(update={"job_deadline_s": 0.0})
    await rig.store.schedule_polls([(job.id, 0.0)], 0.0)
    await rig.runner.run_once()
    done = await rig.next_finished()
    assert done.status is JobStatus.SUCCEEDED


async def test_not_found_right_after_submit_is_tolerated(rig: Rig) -> None:
    """Runware not knowing a task just after accepting it does not fail the job."""
    job = (await rig.service.accept(request())).job
    await rig.runner.run_once()
    await rig.runner.submits_done()
    rig.fake.expire(job.task_uuid)
    for _ in range(5):
        await rig.store.schedule_polls([(job.id, 0.0)], 0.0)
        await rig.runner.run_once()
    current = await rig.store.get_job(job.id)
    assert current is not None and current.status is JobStatus.PROCESSING


async def test_jobs_due_soon_ride_along_with_a_due_poll(rig: Rig) -> None:
    """A job due within the horizon is polled in the same request as a due one, even before its first poll."""
    from core.models import Limits, NewJob

    rig.fake.polls_to_finish = 10_000
    now = time.time()
    for i, due in enumerate((now - 1, now + 0.05)):
        created = await reserve(
            rig.store, NewJob(f"t-soon-{i}", 1, 2, i, 1.0, 1, "MP4", 85, None, False), Limits(10**9, 9), now
        )
        assert isinstance(created, Job)
        await rig.store.mark_job_queued(created.id, "i", "a", now)
        await rig.store.mark_submitted(created.id, now, due)
    await rig.runner.run_once()
    polls = [b for b in rig.fake.requests if b and b[0].get("taskType") == "getResponse"]
    assert [len(b) for b in polls] == [2]


async def test_cancel_arriving_with_a_wake_up_still_stops_the_runner(rig: Rig) -> None:
    """A cancellation that coincides with a wake-up ends the loop (Python 3.11's wait_for swallowed it)."""
    for _ in range(20):
        task = asyncio.create_task(rig.runner.run())
        await asyncio.sleep(0.05)  # recovered and asleep until something is due
        for _ in range(3):
            await asyncio.sleep(0)
        rig.runner.wake()
        await asyncio.sleep(0)  # the wake-up is delivered to the sleeping wait …
        task.cancel()  # … while the cancellation arrives
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done, "the runner kept running after it was cancelled"


async def test_a_job_refunded_before_its_submit_is_never_sent(rig: Rig) -> None:
    """A job failed (refunded) between its claim and its submit is never sent to Runware; one refund."""
    job = (await rig.service.accept(request())).job
    now = time.time()
    (due,) = await rig.store.claim_due_jobs(rig.runner.owner, now, now, 10, now + 60)
    await rig.store.fail_job(job.id, "uploadInterrupted", "Interrupted.", time.time())
    await rig.runner._submit(due)
    assert rig.fake.tasks_of_type("videoInference") == []
    assert [k for k, _ in rig.ledger()] == ["reserve", "refund"]
    current = await rig.store.get_job(job.id)
    assert current is not None and current.status is JobStatus.FAILED


async def expired_while_rendering(rig: Rig, clock: list[float], cost_usd: float = 0.27) -> Job:
    """A job that Runware accepted and still renders when its deadline passes (on the runner's clock)."""
    rig.fake.next_outcome(Outcome.success(cost_usd=cost_usd, polls_to_finish=10_000))
    rig.runner._settings = rig.settings.model_copy(update={"job_deadline_s": 100.0})
    rig.runner._clock = lambda: clock[0]
    job = (await rig.service.accept(request(3.0))).job
    clock[0] = time.time()
    await rig.runner.run_once()
    await rig.runner.submits_done()
    assert rig.fake.submission_counts[job.task_uuid] == 1
    clock[0] += 101
    await rig.runner.run_once()
    expired = await rig.next_finished()
    assert expired.status is JobStatus.EXPIRED and expired.late_until is not None
    return expired


async def test_a_late_video_is_booked_to_the_server_and_not_the_member(rig: Rig) -> None:
    """A video that arrives after the deadline costs the member nothing and shows in the server's spend."""
    from core.models import Limits
    from core.quota import windows_at

    clock = [0.0]
    job = await expired_while_rendering(rig, clock, cost_usd=0.27)
    rig.fake.finish(job.task_uuid)
    clock[0] += 1
    await rig.runner.run_once()
    late = await rig.next_finished()
    assert late.id == job.id and late.late_video_waiting and late.cost_micros == 270_000
    assert sorted(k for k, _ in rig.ledger()) == ["grant", "refund", "reserve", "settle"]
    usage = await rig.store.usage(1, 42, Limits(None, None), windows_at(job.created_at))
    assert (usage.spent_today_micros, usage.guild_spent_month_micros) == (0, 270_000)


async def test_an_expired_job_is_polled_until_its_output_would_be_gone(rig: Rig) -> None:
    """After the deadline the task is still asked about at the slow cadence, and no more after its TTL."""
    clock = [0.0]
    job = await expired_while_rendering(rig, clock)
    polls = rig.fake.polls_of(job.task_uuid)
    for _ in range(3):
        clock[0] += rig.settings.poll_max_interval_s
        await rig.runner.run_once()
    assert rig.fake.polls_of(job.task_uuid) == polls + 3
    assert job.late_until is not None
    clock[0] = job.late_until
    await rig.runner.run_once()
    current = await rig.store.get_job(job.id)
    assert current is not None and current.late_until is None and current.next_poll_at is None
    polls = rig.fake.polls_of(job.task_uuid)
    clock[0] += 3600
    await rig.runner.run_once()
    assert rig.fake.polls_of(job.task_uuid) == polls


async def test_a_watched_expired_job_is_not_an_active_job(rig: Rig) -> None:
    """While it is still asked about, an expired job does not count against the member's job cap."""
    from core.models import Limits
    from core.quota import windows_at

    clock = [0.0]
    job = await expired_while_rendering(rig, clock)
    usage = await rig.store.usage(1, 42, Limits(None, None), windows_at(job.created_at))
    assert usage.active_jobs == 0


async def test_a_late_error_costs_nothing_and_ends_the_watch(rig: Rig) -> None:
    """A task that fails after the deadline leaves the job refunded and stops the polls."""
    clock = [0.0]
    job = await expired_while_rendering(rig, clock)
    rig.fake.set_outcome(job.task_uuid, Outcome.failure("timeoutProvider", polls_to_finish=0))
    clock[0] += rig.settings.poll_max_interval_s
    await rig.runner.run_once()
    current = await rig.store.get_job(job.id)
    assert current is not None and current.late_until is None and current.result_url is None
    assert current.lost_at is None  # Runware said how it ended: no webhook video is waited for
    assert rig.spent() == 0 and [k for k, _ in rig.ledger()] == ["reserve", "refund"]


async def test_a_task_runware_no_longer_knows_is_recorded_as_lost(rig: Rig) -> None:
    """A watched expired job whose task getResponse no longer knows ends its watch recorded as lost (as a
    processing job failed so is: tests/e2e/test_lost_results.py): a video its webhook still brings is then
    taken (tests/storage/test_webhooks.py)."""
    from core.runner import NOT_FOUND_GRACE_S

    clock = [0.0]
    job = await expired_while_rendering(rig, clock)
    rig.fake.expire(job.task_uuid)
    clock[0] += NOT_FOUND_GRACE_S
    await rig.runner.run_once()
    current = await rig.store.get_job(job.id)
    assert current is not None and current.late_until is None and current.lost_at == clock[0]


async def test_a_late_video_is_offered_for_delivery_once(rig: Rig) -> None:
    """The late video is offered after the expiry notice was posted, and not again once it is posted."""
    clock = [0.0]
    job = await expired_while_rendering(rig, clock)
    assert await rig.service.mark_delivered(job.id)  # the expiry notice
    rig.fake.finish(job.task_uuid)
    clock[0] += rig.settings.poll_max_interval_s
    await rig.runner.run_once()
    late = await rig.next_finished()
    assert late.late_video_waiting and late.delivered_at is not None
    assert await rig.store.mark_late_delivered(job.id, clock[0], (2, 99)) is True
    assert await rig.store.mark_late_delivered(job.id, clock[0], (2, 100)) is False
    await rig.runner.recover()
    await rig.runner.run_once()
    assert rig.finished.empty()
    current = await rig.store.get_job(job.id)
    assert current is not None and current.result_message_id == 99


async def test_a_late_video_before_its_expiry_notice_stands_for_the_notice(rig: Rig) -> None:
    """A late video that arrives before the expiry notice was posted is posted instead of it, once."""
    clock = [0.0]
    job = await expired_while_rendering(rig, clock)
    rig.fake.finish(job.task_uuid)
    clock[0] += rig.settings.poll_max_interval_s
    await rig.runner.run_once()
    late = await rig.next_finished()
    assert late.late_video_waiting and late.delivered_at is None
    assert await rig.service.mark_late_delivered(job.id, (2, 99)) is True
    assert await rig.store.undelivered_jobs() == []


def test_only_a_gone_process_of_this_host_is_judged_dead() -> None:
    """This pid under another name (a restart) and a pid nobody has are gone; a live pid, another host's
    process, and this runner itself are not."""
    import os
    import socket

    from core.runner import died_here

    me = f"{socket.gethostname()}:{os.getpid()}:aaaa"
    assert died_here(f"{socket.gethostname()}:{os.getpid()}:bbbb", me)
    assert died_here(f"{socket.gethostname()}:{2**22 + 7}:cccc", me)  # above Linux's pid_max
    assert not died_here(me, me)
    assert not died_here(f"{socket.gethostname()}:1:dddd", me)  # init is alive
    assert not died_here(f"another-host:{os.getpid()}:eeee", me)


async def test_recover_takes_over_a_restarted_processs_work_at_once(rig: Rig) -> None:
    """After a restart (same host and pid, a new name), the previous run's upload is failed and its
    unposted result offered at once, without waiting for their leases to run out."""
    import os
    import socket
    from dataclasses import replace

    from core.models import Lease, Limits, NewJob

    previous = f"{socket.gethostname()}:{os.getpid()}:0000"
    now = time.time()
    new = NewJob("u-restart", 1, 2, 3, 1.0, 100_000, "MP4", 85, None, False)
    upload = await reserve(
        rig.store, replace(new, lease=lambda: Lease(previous, now + 3_600)), Limits(10**9, 9), now
    )
    assert isinstance(upload, Job)
    other = "elsewhere:1:ffff"  # another host's live upload: left alone
    theirs = await reserve(
        rig.store,
        replace(new, task_uuid="u-other", lease=lambda: Lease(other, now + 3_600)),
        Limits(10**9, 9),
        now,
    )
    assert isinstance(theirs, Job)
    await rig.runner.recover()
    done = await rig.next_finished()
    assert done.id == upload.id and done.status is JobStatus.FAILED
    current = await rig.store.get_job(theirs.id)
    assert current is not None and current.status is JobStatus.UPLOADING


async def test_the_runner_is_alive_while_its_loop_comes_round(rig: Rig) -> None:
    """The health check's sign of life: not alive before its loop starts; alive while its last round is
    within STALLED_AFTER_LEASES leases; stuck (not alive) past that."""
    now = [1_000_000.0]
    runner = JobRunner(
        rig.store, rig.client, rig.settings, on_finished=lambda job: None, clock=lambda: now[0]
    )
    assert not runner.is_alive(now[0])
    task = asyncio.create_task(runner.run())
    try:
        await wait_until(lambda: runner.last_pass_at == now[0])
        limit = STALLED_AFTER_LEASES * runner.lease_s
        assert runner.is_alive(now[0]) and runner.is_alive(now[0] + limit - 0.01)
        assert not runner.is_alive(now[0] + limit + 0.01)
        now[0] += 60.0  # the loop's next round (woken here; it sleeps at most IDLE_SLEEP_S) dates itself anew
        runner.wake()
        await wait_until(lambda: runner.last_pass_at == now[0], timeout=IDLE_SLEEP_S + 5)
        assert runner.is_alive(now[0] + limit - 0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
