"""JobRunner: the loop that advances durable jobs until they finish, and its timing rules.

The database is the queue. A job and its reservation are committed before Runware hears of it, with a
taskUUID the bot chose, so a crash at any point is recoverable: on start the runner resumes every unfinished
job, and a submit that may or may not have reached Runware is settled with getResponse before any resubmit.
Each pass submits queued jobs, polls the rest in batches, expires overdue ones (still watching a task Runware
keeps rendering, for its late video), and offers finished jobs to delivery until they are posted.

Several processes may run a runner on one database. Each claims the due jobs it will advance with a lease
(its owner name and an expiry), renews the leases it holds while it lives, and passes its owner to every
step, so a step of a process that lost a job to another changes nothing. A dead process's leases run out
and the others claim its jobs (and fail its uploads). Finished jobs are offered for posting under a
delivery lease of their own, so two processes do not post the same result at once.

With webhooks on (PUBLIC_URL), each submit carries a URL with a fresh token (its hash stored first), and a
result Runware POSTs is kept in the database by the webhook's handler (core/webhooks.py), in whichever
process it lands, and the job made due: the runner holding the job applies it as it would a poll's answer,
without asking Runware. Polls then run at a slow cadence, as the safety net for a webhook that never comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable

from core.errors import N_
from core.models import (
    LATE_CAPABLE,
    MICROS_PER_USD,
    Job,
    JobStatus,
    Lease,
    output_expires_at,
    usd_to_micros,
)
from core.observe import NULL_OBSERVER, Observer
from core.ports import RunnerStore, StoreUnavailable
from core.runware import ErrorKind, RunwareClient, RunwareError, TaskResult, TaskState, VideoRequest
from core.settings import SafetyMode, Settings
from core.webhooks import decode_result, new_token, token_hash, webhook_url

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Runware may not know a task for a moment right after accepting it; not-found answers are tolerated for
# this long after the submit before a processing job is declared lost.
NOT_FOUND_GRACE_S = 60.0
# An upload runs inside the command (a few requests with bounded retries): one still "uploading" after
# this long belongs to a call that died, and its reservation is given back.
UPLOAD_STALE_S = 600.0
# A reported cost outside [0, this] is a wire error, not a price (a 30 s video costs a few dollars):
# the job is settled at its estimate instead.
MAX_PLAUSIBLE_COST_USD = 100.0
# Submits and uploads in flight at once: Runware has shared queues, not a hard rate limit.
MAX_CONCURRENT_SUBMITS = 4
# Upper bound on jobs handled per runner pass; the rest wait for the next pass.
MAX_JOBS_PER_PASS = 500
# A finished job whose post failed is offered for delivery again after this long (by any process): the
# length of a delivery lease.
REDELIVER_AFTER_S = 60.0
# A job lease lasts this many POLL_MAX_INTERVAL_S (45 s by default). A live process renews its leases every
# lease/3 whatever its passes are doing, so it keeps them through two missed renewals (a slow database, a
# busy event loop); a dead process's jobs wait for at most one lease before another process claims them,
# which is a couple of polls at the slowest cadence: late enough not to steal from the living, soon enough
# that a member barely notices. Losing a lease is never unsafe (the steps check it), only wasteful.
LEASE_POLL_INTERVALS = 3
# With webhooks on, polls are only the safety net: the first comes after this many POLL_MAX_INTERVAL_S
# (150 s by default, or POLL_INITIAL_DELAY_S if longer) and the next ones as far apart. Longer than a
# typical OmniHuman-1 video (1-2 minutes), so a video whose webhook works is never polled; a video whose
# webhook never comes still finishes, at most that much later than polling alone would have seen it (and
# the deadline, also noticed at a poll, by as much).
WEBHOOK_POLL_FACTOR = 10
# Longest the runner sleeps when nothing is due, so a clock jump or a missed wake-up costs little.
IDLE_SLEEP_S = 5.0
# A runner whose loop has not come round for this many leases is stuck (health check): a pass may wait on
# a poll request and its retries (4 × RUNWARE_REQUEST_TIMEOUT_S, 2 minutes by default) but not longer
# than a few leases (3 min by default), when its jobs go to other processes anyway.
STALLED_AFTER_LEASES = 4
# Why a job failed, as its member reads it: stored in English and shown in the member's language (marked
# for the catalogue, so the lookup finds a translation; an unmarked reason reads English in a German reply).
LOST_REASON = N_("The video service lost this job.")
NO_VIDEO_REASON = N_("The video service finished without a video.")
UPLOAD_STALE_REASON = N_("The upload of your files was interrupted.")


def poll_delay(poll_count: int, initial_s: float, max_interval_s: float) -> float:
    """Seconds until the next poll of a job that has been polled `poll_count` times.

    Starts at the initial delay and grows ×1.5 per poll up to the maximum interval (Runware's advice: an
    initial wait for video, then exponential backoff)."""
    base = max(1.0, min(initial_s, max_interval_s))
    return float(min(max_interval_s, base * 1.5 ** max(0, poll_count)))


def retry_delay(attempt: int, max_interval_s: float) -> float:
    """Seconds before retrying a failed submit or poll request: 2 s, 4 s, 8 s … capped."""
    return float(min(max_interval_s, 2.0 * 2 ** max(0, attempt)))


def default_owner() -> str:
    """This process's name on its leases: host, process id and a random part (a restarted process with the
    same pid, as in a container, is a new owner; its predecessor's leases simply run out)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def died_here(owner: str, me: str) -> bool:
    """True when `owner` names a process of this host that is gone: this process's own pid under another
    name (a restart, as in a container where the pid is always the same), or a pid no process has. Its
    leases need not run out before others take its work. Another host's processes are never judged."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or owner == me:
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, but not ours to signal
    return False


def lease_seconds(settings: Settings) -> float:
    """How long a job lease lasts (LEASE_POLL_INTERVALS × POLL_MAX_INTERVAL_S)."""
    return LEASE_POLL_INTERVALS * settings.poll_max_interval_s


def is_past_deadline(job: Job, now: float, deadline_s: float) -> bool:
    """True when a job has run longer than JOB_DEADLINE_S since it was accepted."""
    return now - job.created_at > deadline_s


class JobRunner:
    """One loop that submits queued jobs, polls running ones in batches, and finishes them."""

    def __init__(
        self,
        store: RunnerStore,
        runware: RunwareClient,
        settings: Settings,
        *,
        on_finished: Callable[[Job], None],
        on_progress: Callable[[int, int | None], None] = lambda job_id, percent: None,
        clock: Clock = time.time,
        owner: str | None = None,
        lease_s: float | None = None,
        observer: Observer = NULL_OBSERVER,
        public_url: str | None = None,
        idle_sleep_s: float = IDLE_SLEEP_S,
    ) -> None:
        """`owner`: this process's name on its leases (default_owner()); `lease_s`: how long they last
        (lease_seconds(settings)); `observer`: told of submissions, finished jobs and settled costs;
        `public_url`: where Runware reaches this bot's webhook (PUBLIC_URL, with the HTTP server on): each
        submit then carries a webhook URL, and polls slow down; `idle_sleep_s`: the longest sleep when
        nothing is due (tests make it long to show that a wake-up, not the sleep's end, did the work)."""
        self.idle_sleep_s = idle_sleep_s
        self.owner = owner or default_owner()
        self.lease_s = lease_s if lease_s is not None else lease_seconds(settings)
        self.observer = observer
        # When the loop last came round (started, or ended a pass, or woke from its sleep): the health
        # check's sign of life. None until run() starts.
        self.last_pass_at: float | None = None
        self._store = store
        self._runware = runware
        self._settings = settings
        self._on_finished = on_finished
        self._on_progress = on_progress
        self._clock = clock
        self._wake = asyncio.Event()
        self._submit_slots = asyncio.Semaphore(MAX_CONCURRENT_SUBMITS)
        # Submits run as their own tasks so that a slow one never holds up polling the others.
        self._submits: dict[int, asyncio.Task[None]] = {}
        self._recovered = False
        self._public_url = public_url
        factor = WEBHOOK_POLL_FACTOR if public_url else 1
        self.poll_max_s = settings.poll_max_interval_s * factor
        self.poll_initial_s = max(settings.poll_initial_delay_s, self.poll_max_s if public_url else 0.0)
        # The webhook token of each job whose submit is not settled yet, so that this process's resubmits
        # of a taskUUID carry the same URL (only its hash is stored; another process makes its own).
        self._tokens: dict[int, str] = {}

    def lease(self, now: float) -> Lease:
        """A lease held by this runner from `now` (given to the jobs its process's commands upload)."""
        return Lease(self.owner, now + self.lease_s)

    async def submits_done(self) -> None:
        """Wait until every submit in flight has finished (tests and benchmarks use it)."""
        while self._submits:
            await asyncio.gather(*self._submits.values(), return_exceptions=True)

    def wake(self) -> None:
        """Ask the loop to look for due work now (a new job was queued)."""
        self._wake.set()

    def is_alive(self, now: float) -> bool:
        """True when the loop has come round within STALLED_AFTER_LEASES leases of `now` (whether its
        passes succeed is another matter: a database that is down is reported on its own)."""
        stalled_after = STALLED_AFTER_LEASES * self.lease_s
        return self.last_pass_at is not None and now - self.last_pass_at <= stalled_after

    async def run(self) -> None:
        """Resume unfinished work, then advance jobs until cancelled. No error stops the loop. The leases
        this process holds are renewed on their own timer meanwhile."""
        heartbeat = asyncio.create_task(self._keep_leases(), name="job-leases")
        try:
            while True:
                self.last_pass_at = self._clock()
                try:
                    if not self._recovered:
                        await self.recover()
                        self._recovered = True
                    await self.run_once()
                    await self._sleep_until_due()
                except asyncio.CancelledError:
                    raise
                except StoreUnavailable as error:
                    # The database dropped the connection (or cannot be reached): one line, no traceback;
                    # the pool reconnects and the next pass reads every job's state afresh.
                    log.warning("job runner pass stopped, the database is unavailable (%s); retrying", error)
                    await asyncio.sleep(1.0)
                except Exception:
                    log.exception("job runner pass failed; retrying shortly")
                    await asyncio.sleep(1.0)
        finally:
            heartbeat.cancel()
            for task in self._submits.values():
                task.cancel()
            await asyncio.gather(heartbeat, *self._submits.values(), return_exceptions=True)

    async def _keep_leases(self) -> None:
        """Renew every lease this process holds, every third of a lease, until cancelled. On its own timer
        so that a pass held up by a slow Runware request (retries included) never lets them run out."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self._store.renew_leases(self.owner, self._clock() + self.lease_s)
            except StoreUnavailable as error:
                log.warning("renewing the job leases failed, the database is unavailable (%s)", error)
            except Exception:
                log.exception("renewing the job leases failed; retrying")

    async def recover(self) -> None:
        """After a start: fail the uploads of processes that died (their leases ran out; another live
        process's uploads are left alone), and offer the results nobody is posting. The leases of a
        process of this host that is gone (this one's previous run) end at once rather than by expiry."""
        gone = [o for o in await self._store.lease_owners() if died_here(o, self.owner)]
        if gone:
            ended = await self._store.expire_leases(gone, self._clock())
            log.info("leases of %s ended (their processes are gone): %s jobs", gone, ended)
        await self._fail_stale_uploads(self._clock())
        await self._offer_undelivered()

    async def run_once(self) -> None:
        """One pass: claim the due jobs, submit queued ones, poll the rest in batches, expire overdue ones."""
        now = self._clock()
        await self._fail_stale_uploads(now)
        horizon = now + self._settings.poll_max_interval_s / 2
        # Jobs held by another live process are not claimed: each process polls only what it holds.
        jobs = await self._store.claim_due_jobs(
            self.owner, now, horizon, MAX_JOBS_PER_PASS, now + self.lease_s
        )
        polled: list[Job] = []
        for job in jobs:
            if job.id in self._submits:
                continue  # its submit is still in flight
            if job.status is JobStatus.QUEUED:
                if is_past_deadline(job, now, self._settings.job_deadline_s):
                    await self._fail(job, "deadline", "It took too long, so it was cancelled.", expired=True)
                else:
                    self._start_submit(job)
            else:
                # Processing and submitting jobs, and expired ones Runware still renders (and bills), which
                # are asked about at the slow cadence.
                polled.append(job)
        # Results Runware's webhook brought are applied without asking Runware.
        kept = await self._store.webhook_results([j.id for j in polled]) if polled else {}
        if kept:
            await self._apply_all([(j, decode_result(kept[j.id])) for j in polled if j.id in kept], set(kept))
            polled = [j for j in polled if j.id not in kept]
        due_now = [j for j in polled if j.next_poll_at is not None and j.next_poll_at <= now]
        if due_now:
            # Jobs due within the horizon ride along with a due poll: one request instead of several, and
            # their next polls stay in step. (A task in a batch that is sent anyway costs nothing extra.)
            await self._poll(polled)
        await self._offer_undelivered()

    async def _fail_stale_uploads(self, now: float) -> None:
        """Fail the uploads that will never finish: a dead process's (its lease ran out), and this
        process's own (or nobody's) still uploading after UPLOAD_STALE_S."""
        stale = await self._store.claim_stale_uploads(
            self.owner, now, now - UPLOAD_STALE_S, now + self.lease_s
        )
        for job in stale:
            failed = await self._store.fail_job(
                job.id,
                "uploadInterrupted",
                UPLOAD_STALE_REASON,
                self._clock(),
                owner=self.owner,
            )
            if failed is not None:
                log.info("job=%s task=%s upload never finished; refunded", job.id, job.task_uuid)
                self._ended(failed)
                await self._offer(failed)

    async def _sleep_until_due(self) -> None:
        next_due = await self._store.next_due_at(self.owner, self._clock())
        idle = self.idle_sleep_s
        timeout = idle if next_due is None else min(idle, next_due - self._clock())
        if timeout <= 0:
            await asyncio.sleep(0)
            return
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives as
        # the wake-up fires, and the runner then outlives bot.close() (seen as a hang at shutdown).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    def _start_submit(self, job: Job) -> None:
        task = asyncio.create_task(self._submit(job), name=f"submit-job-{job.id}")
        self._submits[job.id] = task

        def done(finished: asyncio.Task[None]) -> None:
            self._submits.pop(job.id, None)
            error = None if finished.cancelled() else finished.exception()
            if isinstance(error, StoreUnavailable):
                # Its state is whatever the database kept: still queued (submitted by a later pass), or
                # submitting, which a later pass settles with getResponse before any resubmit (same
                # taskUUID), whether or not Runware got it.
                log.warning("job=%s task=%s submit step interrupted (%s)", job.id, job.task_uuid, error)
            elif error is not None:
                log.error("job=%s submit crashed", job.id, exc_info=error)
            self.wake()

        task.add_done_callback(done)

    async def _submit(self, job: Job) -> None:
        """Send the task. Recorded as `submitting` first: a crash after this point is resolved by a poll."""
        s = self._settings
        assert job.image_ref is not None and job.audio_ref is not None
        now = self._clock()
        token = None
        if self._public_url:
            token = self._tokens.setdefault(job.id, new_token(job.id))
        # The token's hash is stored with the submitting mark, before the call goes out: a webhook that
        # comes at once is recognised.
        if not await self._store.mark_submitting(
            job.id,
            now,
            now + retry_delay(job.poll_count, s.poll_max_interval_s),
            owner=self.owner,
            webhook_token_hash=token_hash(token) if token else None,
        ):
            # Finished (failed, refunded) since it was read, or claimed by another process after this one's
            # lease ran out: sending it would bill a job nobody pays for, or send it twice.
            log.info("job=%s task=%s no longer waits for a submit; not sent", job.id, job.task_uuid)
            self._tokens.pop(job.id, None)
            return
        request = VideoRequest(
            task_uuid=job.task_uuid,
            image_ref=job.image_ref,
            audio_ref=job.audio_ref,
            output_format=job.output_format,
            output_quality=job.output_quality,
            safety_mode=SafetyMode(job.safety_mode) if job.safety_mode else s.safety_mode,
            ttl_s=s.output_ttl_s,
            webhook_url=webhook_url(self._public_url, token) if self._public_url and token else None,
        )
        try:
            async with self._submit_slots:
                await self._runware.submit_video(request)
        except RunwareError as error:
            if error.retryable:
                # Ambiguous: it may have arrived. The next pass asks getResponse before resubmitting.
                log.warning(
                    "job=%s task=%s submit unanswered (%s); will check",
                    job.id,
                    job.task_uuid,
                    error.kind.value,
                )
                now = self._clock()
                await self._store.schedule_polls(
                    [(job.id, now + retry_delay(job.poll_count, s.poll_max_interval_s))],
                    now,
                    owner=self.owner,
                )
                return
            self._tokens.pop(job.id, None)
            await self._fail(job, error.code or error.kind.value, error.user_message())
            return
        log.info("job=%s task=%s submitted", job.id, job.task_uuid)
        self._tokens.pop(job.id, None)  # accepted: its URL is Runware's now, never sent again
        now = self._clock()
        if not await self._store.mark_submitted(job.id, now, now + self.poll_initial_s, owner=self.owner):
            log.warning("job=%s task=%s accepted by Runware after the job was closed", job.id, job.task_uuid)
            return
        # Counted where the job's row records it, once: a submit whose record was lost is confirmed by a
        # later poll, which counts it there instead.
        self.observer.submitted()
        self._on_progress(job.id, None)

    async def _poll(self, jobs: list[Job]) -> None:
        """Ask about every job in as few requests as the client can batch them."""
        s = self._settings
        self.observer.polled(len(jobs))
        try:
            results = await self._runware.poll([j.task_uuid for j in jobs])
        except RunwareError as error:
            log.warning("poll of %s jobs failed (%s): %s", len(jobs), error.kind.value, error.message)
            now = self._clock()
            await self._store.schedule_polls(
                [(j.id, now + retry_delay(j.poll_count, s.poll_max_interval_s)) for j in jobs],
                now,
                owner=self.owner,
            )
            return
        answers = [(j, results.get(j.task_uuid, TaskResult(j.task_uuid, TaskState.UNKNOWN))) for j in jobs]
        if self._public_url:
            # A webhook that came while the poll was on its way wins over an older "processing".
            kept = await self._store.webhook_results([j.id for j in jobs])
            answers = [(j, decode_result(kept[j.id]) if j.id in kept else r) for j, r in answers]
            tried = set(kept)
        else:
            tried = set()
        await self._apply_all(answers, tried)

    async def _apply_all(self, answers: list[tuple[Job, TaskResult]], tried: set[int]) -> None:
        """Apply each job's result (a poll's answer or a webhook's), then schedule the next polls of the
        jobs still waiting. `tried`: the jobs whose answer was a kept webhook result. The store makes any
        other job with a kept result due now: one kept after the runner looked (while the poll was on its
        way) is applied at the next pass, not at the slow safety-net poll."""
        s = self._settings
        later: list[tuple[int, float]] = []
        for job, result in answers:
            try:
                next_in = await self._apply(job, result)
            except StoreUnavailable as error:
                # Not applied, or (a lost COMMIT) applied: the job's next poll finds out which.
                log.warning("job=%s task=%s poll result not recorded (%s)", job.id, job.task_uuid, error)
                next_in = retry_delay(job.poll_count, s.poll_max_interval_s)
            except Exception:
                # One bad result must not hold up the rest of the batch.
                log.exception("job=%s task=%s could not apply its poll result", job.id, job.task_uuid)
                next_in = retry_delay(job.poll_count, s.poll_max_interval_s)
            if next_in is not None:
                later.append((job.id, self._clock() + next_in))
        await self._store.schedule_polls(later, self._clock(), owner=self.owner, tried=tried)

    async def _apply(self, job: Job, result: TaskResult) -> float | None:
        """Act on one poll result. Returns the delay before the next poll, or None if the job is done."""
        s = self._settings
        now = self._clock()
        missing = is_missing(result)
        if job.status in LATE_CAPABLE:
            # Expired and watched, or judged lost and watched again since its webhook brought a video.
            return await self._apply_late(job, result, missing)
        overdue = is_past_deadline(job, now, s.job_deadline_s)
        if job.status is JobStatus.SUBMITTING:
            if missing:
                if overdue:
                    await self._fail(job, "deadline", "It took too long, so it was cancelled.", expired=True)
                    return None
                # Runware never got it (or lost it): submitting again with the same taskUUID is safe,
                # a duplicate comes back as conflictTaskUUID, which the client treats as accepted.
                log.info("job=%s task=%s not known to Runware; resubmitting", job.id, job.task_uuid)
                self._start_submit(job)
                return None
            log.info("job=%s task=%s submit confirmed by getResponse", job.id, job.task_uuid)
            self._tokens.pop(job.id, None)
            if not await self._store.mark_submitted(job.id, now, now, owner=self.owner):
                return None  # closed meanwhile by another path, or taken by another process
            self.observer.submitted()
        if result.state is TaskState.SUCCESS:
            # Even past the deadline: a finished video is never thrown away.
            await self._complete(job, result)
            return None
        if result.state is TaskState.ERROR and not missing:
            # Final even when the error is retryable (taskFailed, a provider timeout): that task is over, and
            # like Runware's SDK the bot does not resubmit under a new taskUUID behind the member's back.
            # The hold is refunded; the member is told to try again.
            error = result.error
            code = error.code if error and error.code else "taskFailed"
            message = error.user_message() if error else N_("The video service could not make this video.")
            await self._fail(job, code, message)
            return None
        if overdue:
            # Runware has the task and keeps rendering (and billing) it: the member is refunded now, and
            # the task is still asked about until its output would be gone.
            watch = (output_expires_at(job, s.output_ttl_s), now + self.poll_max_s)
            await self._fail(
                job, "deadline", "It took too long, so it was cancelled.", expired=True, watch=watch
            )
            return None
        submitted_at = job.submitted_at or now
        if missing and job.status is JobStatus.PROCESSING and now - submitted_at >= NOT_FOUND_GRACE_S:
            await self._fail(job, "taskFailedOrNotFound", LOST_REASON, lost=True)
            return None
        if result.state is TaskState.PROCESSING:
            self._on_progress(job.id, result.progress)
        return poll_delay(job.poll_count, self.poll_initial_s, self.poll_max_s)

    async def _complete(self, job: Job, result: TaskResult) -> None:
        self._tokens.pop(job.id, None)
        if result.video_url is None:
            await self._fail(job, "noOutput", NO_VIDEO_REASON)
            return
        cost = settled_cost(job, result.cost_usd)
        done = await self._store.complete_job(
            job.id, result.video_url, cost, result.nsfw, self._clock(), owner=self.owner
        )
        if done is not None:
            log.info("job=%s task=%s succeeded cost=%s nsfw=%s", job.id, job.task_uuid, cost, result.nsfw)
            self.observer.settled(cost / MICROS_PER_USD)
            self._ended(done)
            await self._offer(done)

    async def _apply_late(self, job: Job, result: TaskResult, missing: bool) -> float | None:
        """Act on a poll result (or a kept webhook result) of a watched job: expired while Runware still
        had it, or judged lost and then brought a video by its webhook. A video is kept and its cost booked
        to the server; an error or a lost task ends the watch (nothing billed; a lost one is recorded, so
        that a video its webhook still brings is taken); so does the end of the output's time to live."""
        now = self._clock()
        if result.state is TaskState.SUCCESS and result.video_url is not None:
            cost = settled_cost(job, result.cost_usd)
            done = await self._store.complete_late_job(
                job.id, result.video_url, cost, result.nsfw, now, owner=self.owner
            )
            if done is not None:
                log.info("job=%s task=%s arrived late cost=%s (the server's)", job.id, job.task_uuid, cost)
                self.observer.settled(cost / MICROS_PER_USD)
                await self._offer(done)
            return None
        lost = missing and now - (job.submitted_at or job.created_at) >= NOT_FOUND_GRACE_S
        ended = result.state in (TaskState.SUCCESS, TaskState.ERROR) and not missing
        if ended or lost or job.late_until is None or now >= job.late_until:
            if await self._store.end_late_watch(job.id, now, owner=self.owner, lost=lost and not ended):
                log.info("job=%s task=%s no late video (%s)", job.id, job.task_uuid, result.state.value)
            return None
        return self.poll_max_s

    async def _fail(
        self,
        job: Job,
        code: str,
        message: str,
        *,
        expired: bool = False,
        watch: tuple[float, float] | None = None,
        lost: bool = False,
    ) -> None:
        self._tokens.pop(job.id, None)  # ended: never submitted again, its webhook token is not needed
        done = await self._store.fail_job(
            job.id, code, message, self._clock(), expired=expired, watch=watch, owner=self.owner, lost=lost
        )
        if done is not None:
            log.info("job=%s task=%s %s code=%s; refunded", job.id, job.task_uuid, done.status.value, code)
            self._ended(done)
            await self._offer(done)

    def _ended(self, job: Job) -> None:
        """Tell the observer that a job this runner advanced reached its final status."""
        self.observer.job_finished(job.status.value)

    async def _offer(self, job: Job) -> None:
        """Hand a job this runner just finished to delivery, unless another process is offering it."""
        now = self._clock()
        claimed = await self._store.claim_delivery(job.id, self.owner, now, now + REDELIVER_AFTER_S)
        if claimed is not None:
            self._on_finished(claimed)

    async def _offer_undelivered(self) -> None:
        """Hand finished, unposted jobs that no process is offering to delivery: all of them after a
        start, then any whose post has not been recorded within REDELIVER_AFTER_S (in any process)."""
        now = self._clock()
        for job in await self._store.claim_deliveries(
            self.owner, now, now + REDELIVER_AFTER_S, MAX_JOBS_PER_PASS
        ):
            self._on_finished(job)


def is_missing(result: TaskResult) -> bool:
    """Runware does not know the task (not yet, or no longer)."""
    return result.state is TaskState.UNKNOWN or (
        result.state is TaskState.ERROR
        and result.error is not None
        and result.error.kind is ErrorKind.NOT_FOUND
    )


def settled_cost(job: Job, cost_usd: float | None) -> int:
    """The amount to charge for a finished job: Runware's reported cost when it is a plausible price,
    otherwise the estimate (logged: a NaN, negative or absurd number is a wire error, not a bill)."""
    if cost_usd is not None and math.isfinite(cost_usd) and 0 <= cost_usd <= MAX_PLAUSIBLE_COST_USD:
        return usd_to_micros(cost_usd)
    log.warning(
        "job=%s task=%s implausible or missing cost %r; settling at the estimate",
        job.id,
        job.task_uuid,
        cost_usd,
    )
    return job.estimate_micros
