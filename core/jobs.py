"""Durable jobs: JobService accepts /animate requests; JobRunner advances them until they finish.

The database is the queue. A job and its reservation are committed before Runware hears of it, with a
taskUUID the bot chose, so a crash at any point is recoverable: on start the runner resumes every unfinished
job, and a submit that may or may not have reached Runware is settled with getResponse before any resubmit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.errors import QuotaExceeded, UserFacingError
from core.media import ValidAudio, ValidImage, too_big, validate_audio, validate_image
from core.models import (
    BudgetAlert,
    GuildLimits,
    Job,
    JobStatus,
    Limits,
    NewJob,
    QuotaRefusal,
    Quote,
    QuoteState,
    RefusalReason,
    Submission,
    Usage,
    format_usd,
    usd_to_micros,
)
from core.moderation import chosen_safety_mode, effective_safety_mode
from core.ports import JobServiceStore, RunnerStore
from core.quota import (
    apply_tiers,
    check_limits,
    confirm_threshold,
    crossed_thresholds,
    estimate_micros,
    limits_for_guild,
    windows_at,
)
from core.runware import ErrorKind, RunwareClient, RunwareError, TaskResult, TaskState, VideoRequest
from core.settings import SafetyMode, Settings

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
# A finished job whose post failed is offered for delivery again after this long.
REDELIVER_AFTER_S = 60.0
# Longest the runner sleeps when nothing is due, so a clock jump or a missed wake-up costs little.
IDLE_SLEEP_S = 5.0
# Downloads and decodes of members' files at once, in the whole process. Each holds up to two 10 MiB files,
# and a decode of a 6000 px image holds ~150 MB of pixels for up to a second of CPU: on a small machine
# (2 cores) a burst of /animate must queue here rather than exhaust memory and starve the event loop.
MAX_CONCURRENT_HEAVY_WORK = 4
# A member waiting this long for a slot is told they are waiting; after the second figure, to try again.
SLOT_NOTICE_AFTER_S = 1.0
SLOT_GIVE_UP_AFTER_S = 120.0
BUSY = "The bot is very busy right now. Please try again in a minute; nothing was charged."


def poll_delay(poll_count: int, initial_s: float, max_interval_s: float) -> float:
    """Seconds until the next poll of a job that has been polled `poll_count` times.

    Starts at the initial delay and grows ×1.5 per poll up to the maximum interval (Runware's advice: an
    initial wait for video, then exponential backoff)."""
    base = max(1.0, min(initial_s, max_interval_s))
    return float(min(max_interval_s, base * 1.5 ** max(0, poll_count)))


def retry_delay(attempt: int, max_interval_s: float) -> float:
    """Seconds before retrying a failed submit or poll request: 2 s, 4 s, 8 s … capped."""
    return float(min(max_interval_s, 2.0 * 2 ** max(0, attempt)))


class WorkSlots:
    """A process-wide cap on work that holds members' files in memory (downloads and decodes)."""

    def __init__(
        self,
        size: int = MAX_CONCURRENT_HEAVY_WORK,
        *,
        notice_after_s: float = SLOT_NOTICE_AFTER_S,
        give_up_after_s: float = SLOT_GIVE_UP_AFTER_S,
    ) -> None:
        self._slots = asyncio.Semaphore(size)
        self._notice_after_s = notice_after_s
        self._give_up_after_s = give_up_after_s

    @contextlib.asynccontextmanager
    async def hold(self, on_wait: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[None]:
        """Run the body in a free slot, waiting in line for one. `on_wait` runs once if the wait is
        longer than a moment (to tell the member); a wait longer than SLOT_GIVE_UP_AFTER_S gives up with
        a UserFacingError (nothing was downloaded or charged)."""
        try:
            async with asyncio.timeout(self._notice_after_s):
                await self._slots.acquire()
        except TimeoutError:
            if on_wait is not None:
                await on_wait()
            try:
                async with asyncio.timeout(self._give_up_after_s):
                    await self._slots.acquire()
            except TimeoutError:
                log.warning("no free slot for downloads and decodes in %s s", self._give_up_after_s)
                raise UserFacingError(BUSY) from None
        try:
            yield
        finally:
            self._slots.release()


def is_past_deadline(job: Job, now: float, deadline_s: float) -> bool:
    """True when a job has run longer than JOB_DEADLINE_S since it was accepted."""
    return now - job.created_at > deadline_s


@dataclass(frozen=True, slots=True)
class AnimateRequest:
    """Everything /animate hands to the core: who, where, the downloaded bytes and the options."""

    guild_id: int
    channel_id: int
    user_id: int
    image: bytes
    audio: bytes
    output_format: str = "MP4"
    output_quality: int = 85
    upload_limit_bytes: int | None = None
    channel_nsfw: bool = False
    role_ids: tuple[int, ...] = ()

    @classmethod
    def of(cls, submission: Submission, image: bytes, audio: bytes) -> AnimateRequest:
        """The request for a member's submission, with its files downloaded."""
        return cls(
            guild_id=submission.guild_id,
            channel_id=submission.channel_id,
            user_id=submission.user_id,
            image=image,
            audio=audio,
            output_format=submission.output_format,
            output_quality=submission.output_quality,
            upload_limit_bytes=submission.upload_limit_bytes,
            channel_nsfw=submission.channel_nsfw,
            role_ids=submission.role_ids,
        )


@dataclass(frozen=True, slots=True)
class Accepted:
    """A job that is stored, reserved and uploaded, with the member's usage after the reservation."""

    job: Job
    usage: Usage | None


@dataclass(frozen=True, slots=True)
class _Audit:
    """What a job records for moderators: its safety mode and the SHA-256 of the member's files."""

    safety_mode: str
    image_sha256: str
    audio_sha256: str


@dataclass(frozen=True, slots=True)
class Quoted:
    """A costly request waiting for the member's Confirm, with their usage now."""

    quote: Quote
    usage: Usage


# How long a cost quote waits for Confirm.
QUOTE_TTL_S = 60.0
_CLOSED_QUOTE = {
    QuoteState.CONFIRMED: "This quote was already confirmed.",
    QuoteState.CANCELLED: "This quote was cancelled. Run /animate again if you want the video.",
    QuoteState.EXPIRED: "This quote expired (quotes last 60 seconds). Nothing was charged; "
    "run /animate again.",
    QuoteState.OPEN: "This quote is still open.",
}


class JobService:
    """The use cases behind the commands: accept a job, report usage, fetch a finished video."""

    def __init__(
        self,
        store: JobServiceStore,
        runware: RunwareClient,
        settings: Settings,
        *,
        clock: Clock = time.time,
        wake_runner: Callable[[], None] = lambda: None,
        on_budget_alert: Callable[[BudgetAlert], None] = lambda alert: None,
        heavy_work: WorkSlots | None = None,
    ) -> None:
        self._on_budget_alert = on_budget_alert
        # Shared by the downloads (the cogs hold it) and the decodes in `accept`.
        self.heavy_work = heavy_work or WorkSlots()
        self._store = store
        self._runware = runware
        self._settings = settings
        self._clock = clock
        self._wake_runner = wake_runner

    def check_declared_sizes(self, image_size: int, audio_size: int) -> None:
        """Refuse attachments whose declared size is over the limit before downloading them."""
        s = self._settings
        if image_size > s.max_image_bytes:
            raise too_big("image", image_size, s.max_image_bytes)
        if audio_size > s.max_audio_bytes:
            raise too_big("audio", audio_size, s.max_audio_bytes)

    async def precheck(self, guild_id: int, user_id: int, role_ids: Sequence[int] = ()) -> None:
        """Refuse, before anything is downloaded, a job that no clip could pass: too many running, the
        cooldown, or no money left at all (the member's, the server's, or the operator's day ceiling).
        The same words as the reservation, which still decides for real (things change meanwhile).

        Raises QuotaExceeded."""
        now = self._clock()
        limits = await self.limits_for(guild_id, role_ids)
        usage = await self._store.usage(guild_id, user_id, limits, windows_at(now))
        # The cheapest clip costs a cent (estimates are rounded up to the cent), or nothing when free.
        cheapest = estimate_micros(1e-6, self._settings.price_per_second_usd)
        refusal = check_limits(usage, cheapest, now)
        if refusal is not None:
            raise await self._refused(guild_id, refusal, None)

    async def limits_for(
        self, guild_id: int, role_ids: Sequence[int] = (), overrides: GuildLimits | None = None
    ) -> Limits:
        """A member's limits: the settings' defaults, the guild's own choices (read here unless given),
        then their roles' tiers."""
        if overrides is None:
            overrides = await self._store.guild_limits(guild_id)
        guild = limits_for_guild(self._settings, overrides)
        tiers = await self._store.role_tiers(guild_id, role_ids) if role_ids else []
        return apply_tiers(guild, tiers)

    async def tier_roles(self, guild_id: int, role_ids: Sequence[int]) -> list[int]:
        """Which of the member's roles have a tier (their limits come from these)."""
        return [t.role_id for t in await self._store.role_tiers(guild_id, role_ids)] if role_ids else []

    async def usage(self, guild_id: int, user_id: int, role_ids: Sequence[int] = ()) -> Usage:
        """The member's spend today and this month, the guild's budget, limits and active jobs."""
        limits = await self.limits_for(guild_id, role_ids)
        return await self._store.usage(guild_id, user_id, limits, windows_at(self._clock()))

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 5) -> list[Job]:
        """A member's latest jobs in a guild, newest first."""
        return await self._store.recent_jobs(guild_id, user_id, limit)

    async def get_job(self, job_id: int) -> Job | None:
        """One job by its number."""
        return await self._store.get_job(job_id)

    async def get_quote(self, quote_id: int) -> Quote | None:
        """One quote by its id."""
        return await self._store.get_quote(quote_id)

    async def accept(
        self, request: AnimateRequest, on_wait: Callable[[], Awaitable[None]] | None = None
    ) -> Accepted | Quoted:
        """Validate, reserve and upload one /animate request; the runner submits it. A job whose estimate
        is at or above the guild's confirmation threshold is quoted instead: inputs uploaded, nothing
        reserved until the member confirms. `on_wait`: called if the decode waits for a free slot.

        Raises UserFacingError (nothing charged) for bad input, a refused limit or a failed upload."""
        s = self._settings
        # Decoding a 6000 px WEBP or converting Opus takes up to a second: off the event loop, and a
        # few at a time in the whole process.
        async with self.heavy_work.hold(on_wait):
            image = await asyncio.to_thread(validate_image, request.image, max_bytes=s.max_image_bytes)
            audio = await asyncio.to_thread(
                validate_audio, request.audio, max_bytes=s.max_audio_bytes, max_seconds=s.max_audio_seconds
            )
        estimate = estimate_micros(audio.duration_s, s.price_per_second_usd)
        now = self._clock()
        # The guild's choices are read once here, for both the limits and the confirmation threshold.
        overrides = await self._store.guild_limits(request.guild_id)
        limits = await self.limits_for(request.guild_id, request.role_ids, overrides)
        guild_settings = await self._store.guild_settings(request.guild_id)
        audit = _Audit(
            effective_safety_mode(chosen_safety_mode(s, guild_settings), request.channel_nsfw).value,
            # Of the member's own files, so a moderator can look a file up by its hash.
            hashlib.sha256(request.image).hexdigest(),
            hashlib.sha256(request.audio).hexdigest(),
        )
        threshold = confirm_threshold(s, overrides)
        if threshold is not None and estimate >= threshold:
            return await self._quote(request, image, audio, estimate, limits, audit)
        new = NewJob(
            task_uuid=str(uuid.uuid4()),
            guild_id=request.guild_id,
            channel_id=request.channel_id,
            user_id=request.user_id,
            audio_seconds=audio.duration_s,
            estimate_micros=estimate,
            output_format=request.output_format,
            output_quality=request.output_quality,
            upload_limit_bytes=request.upload_limit_bytes,
            channel_nsfw=request.channel_nsfw,
            safety_mode=audit.safety_mode,
            image_sha256=audit.image_sha256,
            audio_sha256=audit.audio_sha256,
        )
        created = await self._store.create_job_with_reservation(
            new, limits, now, windows_at(now), lambda usage: check_limits(usage, estimate, now)
        )
        if isinstance(created, QuotaRefusal):
            raise await self._refused(request.guild_id, created, estimate)
        job = created
        log.info("job=%s task=%s accepted user=%s estimate=%s", job.id, job.task_uuid, job.user_id, estimate)
        try:
            image_ref, audio_ref = await self._upload(image, audio)
        except UserFacingError as error:
            # The command's reply tells the member; no public post.
            await self._store.fail_job(job.id, "uploadFailed", error.message, self._clock(), member_told=True)
            raise
        except BaseException:
            # Cancelled or crashed mid-upload: the inputs are gone with this call, so the job cannot run.
            with contextlib.suppress(Exception):
                await self._store.fail_job(
                    job.id, "uploadInterrupted", "The upload was interrupted.", self._clock()
                )
            raise
        queued = await self._store.mark_job_queued(job.id, image_ref, audio_ref, self._clock())
        if queued is None:
            # Failed and refunded meanwhile (an upload too slow for the stale-upload sweep): never submit it.
            log.warning("job=%s task=%s was closed during its upload", job.id, job.task_uuid)
            raise UserFacingError(f"Job #{job.id} was cancelled during its upload. You were not charged.")
        return await self._started(queued, limits)

    async def _upload(self, image: ValidImage, audio: ValidAudio) -> tuple[str, str]:
        """Upload both inputs to Runware; a failure becomes a member-facing error (nothing charged)."""
        try:
            return (
                await self._runware.upload_image(image.data, image.mime),
                await self._runware.upload_audio(audio.data, audio.mime),
            )
        except RunwareError as error:
            log.warning("upload failed: %s %s", error.kind.value, error.code)
            raise UserFacingError(f"{error.user_message()} You were not charged.") from error

    async def _quote(
        self,
        request: AnimateRequest,
        image: ValidImage,
        audio: ValidAudio,
        estimate: int,
        limits: Limits,
        audit: _Audit,
    ) -> Quoted:
        now = self._clock()
        # Say no now rather than after a Confirm, if the limits already rule it out.
        usage = await self._store.usage(request.guild_id, request.user_id, limits, windows_at(now))
        refusal = check_limits(usage, estimate, now)
        if refusal is not None:
            raise await self._refused(request.guild_id, refusal, estimate)
        image_ref, audio_ref = await self._upload(image, audio)
        quote = await self._store.create_quote(
            Quote(
                id=0,
                guild_id=request.guild_id,
                channel_id=request.channel_id,
                user_id=request.user_id,
                role_ids=request.role_ids,
                image_ref=image_ref,
                audio_ref=audio_ref,
                audio_seconds=audio.duration_s,
                estimate_micros=estimate,
                output_format=request.output_format,
                output_quality=request.output_quality,
                upload_limit_bytes=request.upload_limit_bytes,
                channel_nsfw=request.channel_nsfw,
                created_at=now,
                expires_at=now + QUOTE_TTL_S,
                state=QuoteState.OPEN,
                job_id=None,
                safety_mode=audit.safety_mode,
                image_sha256=audit.image_sha256,
                audio_sha256=audit.audio_sha256,
            )
        )
        log.info("quote=%s user=%s estimate=%s awaiting confirmation", quote.id, quote.user_id, estimate)
        return Quoted(quote, usage)

    async def confirm(self, quote_id: int, user_id: int) -> Accepted:
        """The member pressed Confirm: reserve and queue the quoted job, or say why not."""
        quote = await self._quote_of(quote_id, user_id)
        now = self._clock()
        limits = await self.limits_for(quote.guild_id, quote.role_ids)
        new = NewJob(
            task_uuid=str(uuid.uuid4()),
            guild_id=quote.guild_id,
            channel_id=quote.channel_id,
            user_id=quote.user_id,
            audio_seconds=quote.audio_seconds,
            estimate_micros=quote.estimate_micros,
            output_format=quote.output_format,
            output_quality=quote.output_quality,
            upload_limit_bytes=quote.upload_limit_bytes,
            channel_nsfw=quote.channel_nsfw,
            safety_mode=quote.safety_mode,
            image_sha256=quote.image_sha256,
            audio_sha256=quote.audio_sha256,
        )
        result = await self._store.confirm_quote(
            quote_id, new, limits, now, windows_at(now), lambda u: check_limits(u, quote.estimate_micros, now)
        )
        if isinstance(result, QuoteState):
            raise UserFacingError(_CLOSED_QUOTE[result])
        if isinstance(result, QuotaRefusal):
            raise await self._refused(quote.guild_id, result, quote.estimate_micros)
        log.info("job=%s task=%s accepted from quote=%s", result.id, result.task_uuid, quote_id)
        return await self._started(result, limits)

    async def cancel(self, quote_id: int, user_id: int) -> None:
        """The member pressed Cancel: close the quote (nothing was reserved)."""
        await self._quote_of(quote_id, user_id)
        if not await self._store.close_quote(quote_id, QuoteState.CANCELLED, self._clock()):
            quote = await self._store.get_quote(quote_id)
            if quote is not None and quote.state is not QuoteState.CANCELLED:
                raise UserFacingError(_CLOSED_QUOTE[quote.state])

    async def expire(self, quote_id: int) -> bool:
        """Close a quote nobody confirmed in time; True if it was still open."""
        return await self._store.close_quote(quote_id, QuoteState.EXPIRED, self._clock())

    async def _quote_of(self, quote_id: int, user_id: int) -> Quote:
        quote = await self._store.get_quote(quote_id)
        if quote is None or quote.user_id != user_id:
            raise UserFacingError("Only the member who asked for this video can answer its quote.")
        return quote

    async def _started(self, job: Job, limits: Limits) -> Accepted:
        """After a job is reserved and queued: wake the runner, report usage, raise budget alerts."""
        self._wake_runner()
        # From here the job runs and is charged: nothing below may turn into "please try again".
        try:
            usage: Usage | None = await self._store.usage(
                job.guild_id, job.user_id, limits, windows_at(self._clock())
            )
        except Exception:
            log.exception("job=%s usage after acceptance unavailable", job.id)
            usage = None
        if usage is not None:
            await self._raise_budget_alerts(job.guild_id, usage)
        return Accepted(job, usage)

    async def _raise_budget_alerts(
        self, guild_id: int, usage: Usage, *, budget_reached: bool = False
    ) -> None:
        """Announce each budget threshold the guild has reached, once per month and budget amount, if it
        has an alerts channel. `budget_reached`: a job was just refused because it would go over, which
        is 100 % in effect even when a few cents are left."""
        crossed = crossed_thresholds(usage)
        if budget_reached and 100 not in crossed:
            crossed.append(100)
        if not crossed:
            return
        overrides = await self._store.guild_limits(guild_id)
        if overrides is None or overrides.log_channel_id is None:
            return  # claimed once a channel is set: the next job announces what was reached
        budget = usage.limits.guild_monthly_micros
        assert budget is not None
        for threshold in crossed:
            if await self._store.claim_budget_alert(
                guild_id,
                usage.windows.month_start,
                budget,
                threshold,
                self._clock(),
                usage.guild_spent_month_micros,
            ):
                self._on_budget_alert(
                    BudgetAlert(
                        guild_id,
                        overrides.log_channel_id,
                        threshold,
                        usage.guild_spent_month_micros,
                        budget,
                        usage.windows.month_end,
                        usage.windows.month_start,
                    )
                )

    async def _refused(self, guild_id: int, refusal: QuotaRefusal, estimate: int | None) -> QuotaExceeded:
        """The error for a refused job; a refusal by the server's budget also raises its 100 % alert, and
        one by the operator's ceiling is logged for the operator (members never see their figure)."""
        if refusal.reason is RefusalReason.OPERATOR_DAILY:
            log.warning(
                "OPERATOR_DAILY_USD reached: all servers spent %s of %s today; refused guild=%s estimate=%s",
                format_usd(refusal.usage.operator_spent_today_micros),
                format_usd(refusal.usage.limits.operator_daily_micros or 0),
                guild_id,
                "?" if estimate is None else format_usd(estimate),
            )
        if refusal.reason is RefusalReason.GUILD_BUDGET:
            try:
                await self._raise_budget_alerts(guild_id, refusal.usage, budget_reached=True)
            except Exception:
                log.exception("guild=%s budget alert failed", guild_id)
        return QuotaExceeded(refusal, estimate)

    async def fetch_video(self, job: Job, max_bytes: int) -> bytes | None:
        """The finished video's bytes, or None when it is larger than max_bytes (post a link instead)."""
        if job.result_url is None:
            return None
        return await self._runware.download(job.result_url, max_bytes)

    def link_expires_at(self, job: Job) -> float:
        """When Runware deletes the output (its `ttl` counts from the task; submitted_at is before it)."""
        return output_expires_at(job, self._settings.output_ttl_s)

    async def give_cost_back(self, job: Job, reason: str) -> int:
        """Credit a finished job's cost to its member when they could not be shown the video."""
        credited = await self._store.credit_job_cost(job.id, reason, self._clock())
        if credited:
            log.info("job=%s task=%s cost %s given back: %s", job.id, job.task_uuid, credited, reason)
        return credited

    async def mark_delivered(self, job_id: int, posted_at: tuple[int, int] | None = None) -> bool:
        """Record that the job's result was posted (channel id, message id); True only the first time."""
        return await self._store.mark_delivered(job_id, self._clock(), posted_at)

    async def mark_late_delivered(self, job_id: int, posted_at: tuple[int, int] | None = None) -> bool:
        """Record that an expired job's late video was posted (it also stands for an expiry notice that
        was never posted); True only the first time."""
        return await self._store.mark_late_delivered(job_id, self._clock(), posted_at)

    async def record_post_attempt(self, job: Job, channel_id: int) -> None:
        """Before posting a job's result in a channel: written first, so that a delivery that starts again
        (after a crash or a lost answer) knows where to look for the post."""
        await self._store.record_post_attempt(job.id, channel_id, self._clock())

    async def post_attempts(self, job: Job) -> list[tuple[int, float]]:
        """Where earlier deliveries of this job were about to post: (channel id, first try)."""
        return await self._store.post_attempts(job.id)


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
    ) -> None:
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
        self._offered: dict[int, float] = {}
        self._started_at = clock()
        self._recovered = False

    async def submits_done(self) -> None:
        """Wait until every submit in flight has finished (tests and benchmarks use it)."""
        while self._submits:
            await asyncio.gather(*self._submits.values(), return_exceptions=True)

    def wake(self) -> None:
        """Ask the loop to look for due work now (a new job was queued)."""
        self._wake.set()

    async def run(self) -> None:
        """Resume unfinished work, then advance jobs until cancelled. No error stops the loop."""
        try:
            while True:
                try:
                    if not self._recovered:
                        await self.recover()
                        self._recovered = True
                    await self.run_once()
                    await self._sleep_until_due()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("job runner pass failed; retrying shortly")
                    await asyncio.sleep(1.0)
        finally:
            for task in self._submits.values():
                task.cancel()
            await asyncio.gather(*self._submits.values(), return_exceptions=True)

    async def recover(self) -> None:
        """After a start: fail uploads cut off by the last process, and offer undelivered results again."""
        await self._fail_stale_uploads(self._started_at)
        await self._offer_undelivered(force=True)

    async def run_once(self) -> None:
        """One pass: submit queued jobs, poll the rest in batches, expire overdue ones."""
        now = self._clock()
        await self._fail_stale_uploads(now - UPLOAD_STALE_S)
        horizon = now + self._settings.poll_max_interval_s / 2
        jobs = await self._store.due_jobs(now, horizon, MAX_JOBS_PER_PASS)
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
                polled.append(job)
        # Expired jobs Runware still renders (and bills): asked about at the slow cadence.
        polled += await self._store.late_jobs_due(now, MAX_JOBS_PER_PASS)
        due_now = [j for j in polled if j.next_poll_at is not None and j.next_poll_at <= now]
        if due_now:
            # Jobs due within the horizon ride along with a due poll: one request instead of several, and
            # their next polls stay in step. (A task in a batch that is sent anyway costs nothing extra.)
            await self._poll(polled)
        await self._offer_undelivered(force=False)

    async def _fail_stale_uploads(self, before: float) -> None:
        for job in await self._store.stale_uploads(before=before):
            failed = await self._store.fail_job(
                job.id, "uploadInterrupted", "The upload of your files was interrupted.", self._clock()
            )
            if failed is not None:
                log.info("job=%s task=%s upload never finished; refunded", job.id, job.task_uuid)
                self._offer(failed)

    async def _sleep_until_due(self) -> None:
        next_due = await self._store.next_due_at()
        timeout = IDLE_SLEEP_S if next_due is None else min(IDLE_SLEEP_S, next_due - self._clock())
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
            if not finished.cancelled() and finished.exception() is not None:
                log.error("job=%s submit crashed", job.id, exc_info=finished.exception())
            self.wake()

        task.add_done_callback(done)

    async def _submit(self, job: Job) -> None:
        """Send the task. Recorded as `submitting` first: a crash after this point is resolved by a poll."""
        s = self._settings
        assert job.image_ref is not None and job.audio_ref is not None
        now = self._clock()
        if not await self._store.mark_submitting(
            job.id, now, now + retry_delay(job.poll_count, s.poll_max_interval_s)
        ):
            # Finished (failed, refunded) since it was read: sending it would bill a job nobody pays for.
            log.info("job=%s task=%s no longer waits for a submit; not sent", job.id, job.task_uuid)
            return
        request = VideoRequest(
            task_uuid=job.task_uuid,
            image_ref=job.image_ref,
            audio_ref=job.audio_ref,
            output_format=job.output_format,
            output_quality=job.output_quality,
            safety_mode=SafetyMode(job.safety_mode) if job.safety_mode else s.safety_mode,
            ttl_s=s.output_ttl_s,
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
                    [(job.id, now + retry_delay(job.poll_count, s.poll_max_interval_s))], now
                )
                return
            await self._fail(job, error.code or error.kind.value, error.user_message())
            return
        log.info("job=%s task=%s submitted", job.id, job.task_uuid)
        now = self._clock()
        if not await self._store.mark_submitted(job.id, now, now + s.poll_initial_delay_s):
            log.warning("job=%s task=%s accepted by Runware after the job was closed", job.id, job.task_uuid)
            return
        self._on_progress(job.id, None)

    async def _poll(self, jobs: list[Job]) -> None:
        """Ask about every job in as few requests as the client can batch them."""
        s = self._settings
        try:
            results = await self._runware.poll([j.task_uuid for j in jobs])
        except RunwareError as error:
            log.warning("poll of %s jobs failed (%s): %s", len(jobs), error.kind.value, error.message)
            now = self._clock()
            await self._store.schedule_polls(
                [(j.id, now + retry_delay(j.poll_count, s.poll_max_interval_s)) for j in jobs], now
            )
            return
        later: list[tuple[int, float]] = []
        for job in jobs:
            result = results.get(job.task_uuid, TaskResult(job.task_uuid, TaskState.UNKNOWN))
            try:
                next_in = await self._apply(job, result)
            except Exception:
                # One bad result must not hold up the rest of the batch.
                log.exception("job=%s task=%s could not apply its poll result", job.id, job.task_uuid)
                next_in = retry_delay(job.poll_count, s.poll_max_interval_s)
            if next_in is not None:
                later.append((job.id, self._clock() + next_in))
        await self._store.schedule_polls(later, self._clock())

    async def _apply(self, job: Job, result: TaskResult) -> float | None:
        """Act on one poll result. Returns the delay before the next poll, or None if the job is done."""
        s = self._settings
        now = self._clock()
        missing = is_missing(result)
        if job.status is JobStatus.EXPIRED:
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
            if not await self._store.mark_submitted(job.id, now, now):
                return None  # closed meanwhile by another path
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
            message = error.user_message() if error else "The video service could not make this video."
            await self._fail(job, code, message)
            return None
        if overdue:
            # Runware has the task and keeps rendering (and billing) it: the member is refunded now, and
            # the task is still asked about until its output would be gone.
            watch = (output_expires_at(job, s.output_ttl_s), now + s.poll_max_interval_s)
            await self._fail(
                job, "deadline", "It took too long, so it was cancelled.", expired=True, watch=watch
            )
            return None
        submitted_at = job.submitted_at or now
        if missing and job.status is JobStatus.PROCESSING and now - submitted_at >= NOT_FOUND_GRACE_S:
            await self._fail(job, "taskFailedOrNotFound", "The video service lost this job.")
            return None
        if result.state is TaskState.PROCESSING:
            self._on_progress(job.id, result.progress)
        return poll_delay(job.poll_count, s.poll_initial_delay_s, s.poll_max_interval_s)

    async def _complete(self, job: Job, result: TaskResult) -> None:
        if result.video_url is None:
            await self._fail(job, "noOutput", "The video service finished without a video.")
            return
        cost = settled_cost(job, result.cost_usd)
        done = await self._store.complete_job(job.id, result.video_url, cost, result.nsfw, self._clock())
        if done is not None:
            log.info("job=%s task=%s succeeded cost=%s nsfw=%s", job.id, job.task_uuid, cost, result.nsfw)
            self._offer(done)

    async def _apply_late(self, job: Job, result: TaskResult, missing: bool) -> float | None:
        """Act on a poll result of an expired job that Runware still has. A video is kept and its cost
        booked to the server; an error or a lost task ends the watch (nothing billed); so does the end of
        the output's time to live."""
        now = self._clock()
        if result.state is TaskState.SUCCESS and result.video_url is not None:
            cost = settled_cost(job, result.cost_usd)
            done = await self._store.complete_late_job(job.id, result.video_url, cost, result.nsfw, now)
            if done is not None:
                log.info("job=%s task=%s arrived late cost=%s (the server's)", job.id, job.task_uuid, cost)
                self._offer(done)
            return None
        lost = missing and now - (job.submitted_at or job.created_at) >= NOT_FOUND_GRACE_S
        ended = result.state in (TaskState.SUCCESS, TaskState.ERROR) and not missing
        if ended or lost or job.late_until is None or now >= job.late_until:
            if await self._store.end_late_watch(job.id, now):
                log.info("job=%s task=%s no late video (%s)", job.id, job.task_uuid, result.state.value)
            return None
        return self._settings.poll_max_interval_s

    async def _fail(
        self,
        job: Job,
        code: str,
        message: str,
        *,
        expired: bool = False,
        watch: tuple[float, float] | None = None,
    ) -> None:
        done = await self._store.fail_job(job.id, code, message, self._clock(), expired=expired, watch=watch)
        if done is not None:
            log.info("job=%s task=%s %s code=%s; refunded", job.id, job.task_uuid, done.status.value, code)
            self._offer(done)

    def _offer(self, job: Job) -> None:
        self._offered[job.id] = self._clock()
        self._on_finished(job)

    async def _offer_undelivered(self, *, force: bool) -> None:
        """Hand finished, unposted jobs to delivery: all of them after a start, then any stuck ones."""
        now = self._clock()
        pending = await self._store.undelivered_jobs()
        for job in pending:
            offered = self._offered.get(job.id)
            if force or offered is None or now - offered >= REDELIVER_AFTER_S:
                self._offer(job)
        # Forget delivered jobs so the map stays small.
        if len(self._offered) > len(pending) + 1000:
            waiting = {j.id for j in pending}
            self._offered = {k: v for k, v in self._offered.items() if k in waiting}


def output_expires_at(job: Job, ttl_s: float) -> float:
    """When Runware deletes a job's output: its `ttl` counts from the task, and submitted_at is before it."""
    return (job.submitted_at or job.created_at) + ttl_s


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
