"""JobService: the use cases behind the commands. Accept an /animate request (checks, reservation, upload,
or a cost quote awaiting Confirm), confirm or cancel a quote, report usage, and the steps delivery records
(fetch the video, give its cost back, mark it posted). JobRunner (core/runner.py) then advances the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum

from core.errors import N_, DatabaseDown, QuotaExceeded, Unsettled, UploadFailed, UserFacingError
from core.media import ValidAudio, ValidImage, too_big, validate_audio, validate_image
from core.models import (
    ACTIVE,
    BudgetAlert,
    GuildLimits,
    Job,
    JobPlace,
    JobStatus,
    Lease,
    Limits,
    NewJob,
    QuotaRefusal,
    Quote,
    QuoteState,
    RefusalReason,
    Submission,
    Usage,
    format_usd,
    output_expires_at,
)
from core.moderation import chosen_safety_mode, effective_safety_mode
from core.ports import JobServiceStore, StoreUnavailable
from core.quota import (
    apply_tiers,
    check_limits,
    confirm_threshold,
    crossed_thresholds,
    estimate_micros,
    limits_for_guild,
    windows_at,
)
from core.runner import Clock
from core.runware import RunwareClient, RunwareError
from core.settings import Settings
from core.work_slots import WorkSlots

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a member's videos (/videos), newest first, and where its neighbours start: each page is
    named by `before`, the job number its jobs are below (0: the newest page)."""

    jobs: list[Job]
    before: int  # this page's own (0: the newest page)
    older: int | None  # the next older page's, None when there is none
    newer: int | None  # the next newer page's (0: the newest page), None when this is the newest


class CancelOutcome(Enum):
    """What a member's Cancel did."""

    CANCELLED = "cancelled"  # refunded; Runware never hears of it
    ALREADY_CANCELLED = "already cancelled"
    RUNNING = "running"  # Runware has it (it offers no cancel): it finishes and is charged
    FINISHED = "finished"  # it ended before the press


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A Cancel's outcome and the job as it is now."""

    outcome: CancelOutcome
    job: Job


NOT_YOUR_JOB = N_("Only the member who asked for this video can cancel it.")
# Why a job whose upload was cut short failed (shown in the member's language, as core/runner.py's reasons).
UPLOAD_INTERRUPTED_REASON = N_("The upload was interrupted.")
# Videos per /videos page.
PAGE_SIZE = 5
# After the database stopped answering in the middle of a step, how long to wait before each of the
# tries to find out what happened (or do it again): the pool opens new connections by itself, in
# milliseconds after a restart or an operator ending sessions.
RECHECK_DELAYS_S = (0.2, 1.0, 3.0)

# How long a cost quote waits for Confirm.
QUOTE_TTL_S = 60.0
_CLOSED_QUOTE = {
    QuoteState.CONFIRMED: N_("This quote was already confirmed."),
    QuoteState.CANCELLED: N_("This quote was cancelled. Run /animate again if you want the video."),
    QuoteState.EXPIRED: N_(
        "This quote expired (quotes last 60 seconds). Nothing was charged; run /animate again."
    ),
    QuoteState.OPEN: N_("This quote is still open."),
}


@contextlib.contextmanager
def nothing_charged() -> Iterator[None]:
    """Steps before anything is reserved: the database not answering is DatabaseDown, nothing charged."""
    try:
        yield
    except StoreUnavailable as error:
        log.warning("a request stopped before its reservation, the database is unavailable (%s)", error)
        raise DatabaseDown(Unsettled.NOTHING_CHARGED) from error


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
        hold_upload: Callable[[float], Lease] | None = None,
    ) -> None:
        """`hold_upload(now)`: the lease a job gets while its command uploads the inputs (the runner's
        owner, renewed by its runner), so that no other process takes the upload for a dead one's."""
        self._on_budget_alert = on_budget_alert
        self._hold_upload = hold_upload
        # Shared by the downloads (the cogs hold it) and the decodes in `accept`.
        self.heavy_work = heavy_work or WorkSlots()
        self._store = store
        self._runware = runware
        self._settings = settings
        self._clock = clock
        self._wake_runner = wake_runner

    def _upload_lease(self) -> Lease:
        """The lease of a job whose command is about to upload its inputs, from now (NewJob.lease: the store
        calls it as it writes the row)."""
        assert self._hold_upload is not None
        return self._hold_upload(self._clock())

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

        Raises QuotaExceeded, or DatabaseDown (nothing charged)."""
        now = self._clock()
        with nothing_charged():
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

    async def job_places(self, job_ids: Sequence[int]) -> dict[int, JobPlace]:
        """Where these jobs stand (for their acknowledgements): status, outcome recorded, place in line."""
        return await self._store.job_places(job_ids)

    async def job_page(self, guild_id: int, user_id: int, before: int = 0, size: int = PAGE_SIZE) -> JobPage:
        """A page of the member's videos in a guild, newest first: those below job number `before` (0: the
        newest). Keyset pages by job number, so a new job never shifts the older pages."""
        found = await self._store.member_jobs(guild_id, user_id, size + 1, before=before or None)
        jobs, older = found[:size], (found[size - 1].id if len(found) > size else None)
        newer: int | None = None
        if before:
            above = await self._store.member_jobs(
                guild_id, user_id, size, after=jobs[0].id if jobs else before - 1
            )
            if above:
                # A full page above starts just over its newest job; a short one is the newest page.
                newer = above[0].id + 1 if len(above) == size else 0
        return JobPage(jobs, before, older, newer)

    async def cancel_job(self, job_id: int, user_id: int) -> Cancelled:
        """The member pressed Cancel: refund the job at once if Runware has not heard of it yet (the store
        decides against the runner's submit: exactly one wins); else say where it stands.

        Raises UserFacingError when the job is not theirs."""
        job = await self._store.get_job(job_id)
        if job is None or job.user_id != user_id:
            raise UserFacingError(NOT_YOUR_JOB)
        cancelled = await self._store.cancel_job(job_id, user_id, self._clock())
        if cancelled is not None:
            log.info("job=%s task=%s cancelled by its member; refunded", job_id, cancelled.task_uuid)
            return Cancelled(CancelOutcome.CANCELLED, cancelled)
        now = await self._store.get_job(job_id) or job
        if now.cancelled:
            return Cancelled(CancelOutcome.ALREADY_CANCELLED, now)
        if now.status in ACTIVE:
            return Cancelled(CancelOutcome.RUNNING, now)
        return Cancelled(CancelOutcome.FINISHED, now)

    async def get_quote(self, quote_id: int) -> Quote | None:
        """One quote by its id."""
        return await self._store.get_quote(quote_id)

    async def accept(
        self, request: AnimateRequest, on_wait: Callable[[], Awaitable[None]] | None = None
    ) -> Accepted | Quoted:
        """Validate, reserve and upload one /animate request; the runner submits it. A job whose estimate
        is at or above the guild's confirmation threshold is quoted instead: inputs uploaded, nothing
        reserved until the member confirms. `on_wait`: called if the decode waits for a free slot.

        Raises UserFacingError (nothing charged) for bad input, a refused limit or a failed upload, and
        DatabaseDown when the database stops answering (it says what the member was charged)."""
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
        with nothing_charged():
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
            with nothing_charged():  # a quote reserves nothing
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
            lease=self._upload_lease if self._hold_upload else None,
        )
        try:
            created = await self._store.create_job_with_reservation(
                new, limits, now, windows_at(now), lambda usage: check_limits(usage, estimate, now)
            )
        except StoreUnavailable as error:
            created = await self._reservation_after(error, new.task_uuid)
        if isinstance(created, QuotaRefusal):
            raise await self._refused(request.guild_id, created, estimate)
        job = created
        log.info("job=%s task=%s accepted user=%s estimate=%s", job.id, job.task_uuid, job.user_id, estimate)
        try:
            image_ref, audio_ref = await self._upload(image, audio)
        except UserFacingError as error:
            # The command's reply tells the member; no public post.
            try:
                await self._store.fail_job(
                    job.id, "uploadFailed", error.message, self._clock(), member_told=True
                )
            except StoreUnavailable as lost:
                # Still uploading, held by this process: the stale-upload rule refunds it (UPLOAD_STALE_S).
                log.warning("job=%s failed upload not recorded (%s); refunded later", job.id, lost)
            raise
        except BaseException:
            # Cancelled or crashed mid-upload: the inputs are gone with this call, so the job cannot run.
            with contextlib.suppress(Exception):
                await self._store.fail_job(
                    job.id, "uploadInterrupted", UPLOAD_INTERRUPTED_REASON, self._clock()
                )
            raise
        holder = self._hold_upload(now).owner if self._hold_upload else None
        queued = await self._queue(job, image_ref, audio_ref, holder)
        if queued is None:
            # Failed and refunded meanwhile (an upload too slow for the stale-upload sweep, or taken over
            # by another process when this one's leases ran out): never submit it.
            log.warning("job=%s task=%s was closed during its upload", job.id, job.task_uuid)
            raise UserFacingError(
                "Job #{job} was cancelled during its upload. You were not charged.", job=job.id
            )
        return await self._started(queued, limits)

    async def _reservation_after(self, error: StoreUnavailable, task_uuid: str) -> Job:
        """The reservation's transaction was caught by a drop. Not `ambiguous`: nothing was written. A
        lost COMMIT: read back whether the job exists (by the taskUUID chosen for it) and go on with it if
        so. Raises DatabaseDown (nothing charged) otherwise: a job that exists but can't be read back is
        an upload that never starts, held by this process, which the stale-upload rule refunds."""
        log.warning("the reservation was interrupted (%s)", error)
        if not error.ambiguous:
            raise DatabaseDown(Unsettled.NOTHING_CHARGED) from error
        for delay in RECHECK_DELAYS_S:
            await asyncio.sleep(delay)
            try:
                job = await self._store.job_by_task(task_uuid)
            except StoreUnavailable as again:
                log.warning("task=%s reservation not read back yet (%s)", task_uuid, again)
                continue
            if job is None:
                raise DatabaseDown(Unsettled.NOTHING_CHARGED) from error
            log.info("job=%s task=%s reservation was committed; going on", job.id, task_uuid)
            return job
        raise DatabaseDown(Unsettled.NOTHING_CHARGED) from error

    async def _queue(self, job: Job, image_ref: str, audio_ref: str, owner: str | None) -> Job | None:
        """Record the uploaded inputs (mark_job_queued). When the database stops answering, find out
        whether it happened (a lost COMMIT may have queued it) and try again while it is still
        uploading; the job queued (or past that), or None if it was closed meanwhile.

        Raises DatabaseDown when it could not be settled: CANCELLED when it surely was not queued (the
        uploaded inputs are lost with this call, so the stale-upload rule refunds it), UNKNOWN after a
        lost COMMIT that could not be read back."""
        ambiguous = False
        for delay in (0.0, *RECHECK_DELAYS_S):
            if delay:
                await asyncio.sleep(delay)
                try:
                    current = await self._store.get_job(job.id)
                except StoreUnavailable as error:
                    log.warning("job=%s state not read back yet (%s)", job.id, error)
                    continue
                if current is None or current.status in (JobStatus.FAILED, JobStatus.EXPIRED):
                    return None  # failed and refunded meanwhile
                if current.status is not JobStatus.UPLOADING:
                    log.info("job=%s was queued despite the lost answer; going on", job.id)
                    return current
                ambiguous = False  # still uploading: the lost COMMIT did not happen
            try:
                return await self._store.mark_job_queued(
                    job.id, image_ref, audio_ref, self._clock(), owner=owner
                )
            except StoreUnavailable as error:
                log.warning("job=%s could not be queued (%s)", job.id, error)
                ambiguous = ambiguous or error.ambiguous
        raise DatabaseDown(Unsettled.UNKNOWN if ambiguous else Unsettled.CANCELLED, job.id)

    async def _upload(self, image: ValidImage, audio: ValidAudio) -> tuple[str, str]:
        """Upload both inputs to Runware; a failure becomes a member-facing error (nothing charged)."""
        try:
            return (
                await self._runware.upload_image(image.data, image.mime),
                await self._runware.upload_audio(audio.data, audio.mime),
            )
        except RunwareError as error:
            log.warning("upload failed: %s %s", error.kind.value, error.code)
            raise UploadFailed(error.user_message()) from error

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
        with nothing_charged():
            quote = await self._quote_of(quote_id, user_id)
            limits = await self.limits_for(quote.guild_id, quote.role_ids)
        now = self._clock()
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
        try:
            result = await self._store.confirm_quote(
                quote_id,
                new,
                limits,
                now,
                windows_at(now),
                lambda u: check_limits(u, quote.estimate_micros, now),
            )
        except StoreUnavailable as error:
            result = await self._confirmation_after(error, quote_id)
        if isinstance(result, QuoteState):
            raise UserFacingError(_CLOSED_QUOTE[result])
        if isinstance(result, QuotaRefusal):
            raise await self._refused(quote.guild_id, result, quote.estimate_micros)
        log.info("job=%s task=%s accepted from quote=%s", result.id, result.task_uuid, quote_id)
        return await self._started(result, limits)

    async def _confirmation_after(self, error: StoreUnavailable, quote_id: int) -> Job:
        """A Confirm's transaction was caught by a drop. Not `ambiguous`: nothing was written (the quote
        is still open). A lost COMMIT: read the quote back; its job if it was confirmed. Raises
        DatabaseDown otherwise (UNKNOWN when it could not be read back: its job, if any, is queued and
        will be posted)."""
        log.warning("quote=%s confirmation was interrupted (%s)", quote_id, error)
        if not error.ambiguous:
            raise DatabaseDown(Unsettled.NOTHING_CHARGED) from error
        for delay in RECHECK_DELAYS_S:
            await asyncio.sleep(delay)
            try:
                quote = await self._store.get_quote(quote_id)
                job = await self._store.get_job(quote.job_id) if quote and quote.job_id else None
            except StoreUnavailable as again:
                log.warning("quote=%s not read back yet (%s)", quote_id, again)
                continue
            if job is None:
                raise DatabaseDown(Unsettled.NOTHING_CHARGED) from error
            log.info("job=%s from quote=%s was committed; going on", job.id, quote_id)
            return job
        raise DatabaseDown(Unsettled.UNKNOWN) from error

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
        except StoreUnavailable as error:
            log.warning(
                "job=%s usage after acceptance unavailable, the database is unavailable (%s)", job.id, error
            )
            usage = None
        except Exception:
            log.exception("job=%s usage after acceptance unavailable", job.id)
            usage = None
        if usage is not None:
            try:
                await self._raise_budget_alerts(job.guild_id, usage)
            except StoreUnavailable as error:
                log.warning("job=%s budget alerts not checked (%s); the next job checks them", job.id, error)
            except Exception:
                log.exception("job=%s budget alerts failed", job.id)
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
