"""The storage the core needs, declared by the core (ports) and implemented in `storage/`.

One small protocol per use case, so that each backend can implement and test its parts one at a time;
each service is typed against the parts it uses, and `Store` is all of them (what `open_store` returns).
Implementations serialise their own write transactions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from core.models import (
    Ban,
    ConsentRequest,
    ConsentState,
    GuildLimits,
    GuildLimitsPatch,
    GuildSettings,
    GuildSettingsPatch,
    Job,
    JobAction,
    JobPlace,
    LedgerRow,
    Limits,
    NewJob,
    Pruned,
    QuotaRefusal,
    Quote,
    QuoteState,
    Report,
    RoleTier,
    SpendReport,
    StoredAck,
    Usage,
    WebhookTarget,
    Windows,
)


class NewerDatabaseError(RuntimeError):
    """The database was migrated by a newer version of the bot; this version refuses to touch it."""


class StoreUnavailable(RuntimeError):
    """The database could not be reached, or dropped the connection in the middle of a step (a restart, a
    failover, an operator ending sessions). The step did not happen, unless `ambiguous`: then the
    connection was lost after its COMMIT was sent, and it may have. Either way trying the step again later
    is safe: every step checks the job's state first, and the pool opens new connections by itself."""

    def __init__(self, message: str, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


class JobEvent(StrEnum):
    """What a notification says happened (a hint: the receiver reads the state from the database)."""

    PROGRESS = "progress"  # Runware reported progress on a job (`percent`), seen by the runner holding it
    DELIVERED = "delivered"  # a job's result (its video, late video or failure notice) was recorded as posted
    QUEUED = "queued"  # a job nobody holds became due (a quote's Confirm): any runner may take it now
    RELEASED = "released"  # a process let go of its leases (it stopped): other runners may claim its jobs now
    RESULT = "result"  # a webhook result was kept for a job: the runner holding it may apply it now
    # Not published: the subscription says it may have missed notifications (its connection dropped and
    # came back), so whoever waits on one should look at the database now.
    RESYNC = "resync"


@dataclass(frozen=True, slots=True)
class JobNotice:
    """One notification: the event, the job it is about (0 for none), and a progress percentage."""

    event: JobEvent
    job_id: int = 0
    percent: int | None = None


class NoticeStream(Protocol):
    """The notifications published since it was opened, in order, by every process on the database
    (this one's included); `close()` ends it. A notification may be missed (a dropped connection, a full
    queue), never invented: missing one may only delay whatever waits on it."""

    def __aiter__(self) -> AsyncIterator[JobNotice]: ...

    async def __anext__(self) -> JobNotice: ...

    def close(self) -> None:
        """Stop receiving notifications."""
        ...


class JobEvents(Protocol):
    """Wake-ups between processes: small notifications about jobs (the event and the job's number; the
    receiver reads the state). On PostgreSQL LISTEN/NOTIFY, so they reach every process on the database,
    and the ones tied to a state change are sent in its transaction (delivered at its commit, never before,
    never for a change rolled back); on SQLite they stay in the process."""

    async def publish(self, notice: JobNotice) -> None:
        """Send a notification on its own (not tied to a state change) to every subscriber."""
        ...

    def subscribe(self) -> NoticeStream:
        """Start receiving notifications (those published from now on)."""
        ...


class JobStore(Protocol):
    """A job's life and its money: the reservation, the runner's steps, settle and refund, the watch
    kept on an expired job, and the usage the limits are checked against.

    Several processes may share the jobs: a runner claims due jobs with a lease (`claim_due_jobs`) and
    passes its `owner` to every step it takes, and a step by an owner that no longer holds the job (its
    lease ran out and another process claimed it) changes nothing. A terminal step releases the lease."""

    async def create_job_with_reservation(
        self,
        new: NewJob,
        limits: Limits,
        now: float,
        windows: Windows,
        decide: Callable[[Usage], QuotaRefusal | None],
    ) -> Job | QuotaRefusal:
        """In one write transaction: gather the member's usage, let `decide` apply the limits, and if it
        allows, insert the job and its reservation. Concurrent calls can never overspend."""
        ...

    async def mark_job_queued(
        self, job_id: int, image_ref: str, audio_ref: str, now: float, *, owner: str | None = None
    ) -> Job | None:
        """Record the uploaded inputs; the job is ready for the runner to submit. None if it was no longer
        uploading (failed and refunded meanwhile), or, with `owner`, no longer held by it."""
        ...

    async def mark_submitting(
        self,
        job_id: int,
        now: float,
        retry_at: float,
        *,
        owner: str | None = None,
        webhook_token_hash: str | None = None,
    ) -> bool:
        """Record that a submit is about to be sent (ambiguous until mark_submitted), and in the same
        transaction the SHA-256 of the webhook token it will carry, if any. False if the job is no longer
        queued or submitting, or not held by `owner`: it must not be sent (and no token is stored)."""
        ...

    async def mark_submitted(
        self, job_id: int, now: float, next_poll_at: float, *, owner: str | None = None
    ) -> bool:
        """Record that Runware accepted the task; polling starts at next_poll_at, or now when a webhook
        result is already waiting for the job. False if the job was no longer queued or submitting, or
        not held by `owner`."""
        ...

    async def schedule_polls(
        self,
        updates: list[tuple[int, float]],
        now: float,
        *,
        owner: str | None = None,
        tried: Collection[int] = (),
    ) -> int:
        """Set the next poll time of several jobs, (job_id, next_poll_at) each, and count one poll each.
        Returns how many were changed (a job finished meanwhile, or not held by `owner`, is left alone).

        A job with a webhook result kept is made due `now` instead, read under the rows' locks in the same
        transaction: a result kept after the caller last looked (between its poll and this call) must not
        wait for the slow safety-net poll. Except the jobs in `tried`, whose kept result the caller has
        just tried to apply: their retry keeps its delay (a result that cannot be applied is not spun on)."""
        ...

    async def complete_job(
        self,
        job_id: int,
        result_url: str,
        cost_micros: int,
        nsfw: bool,
        now: float,
        *,
        owner: str | None = None,
    ) -> Job | None:
        """Mark success and settle: release the estimate, charge the real cost. None if already final, or
        not held by `owner`."""
        ...

    async def fail_job(
        self,
        job_id: int,
        code: str,
        message: str,
        now: float,
        *,
        expired: bool = False,
        member_told: bool = False,
        watch: tuple[float, float] | None = None,
        owner: str | None = None,
        lost: bool = False,
    ) -> Job | None:
        """Mark failure (or expiry) and refund the reservation. None if the job was already final, or not
        held by `owner`.

        `member_told`: the member already read why (the command's own reply), so nothing is posted.
        `watch` (until, next poll): an expired task Runware still has is asked about until then.
        `lost`: Runware kept answering "not found" (recorded as `lost_at`: its webhook may still bring
        the video, which is then posted late). None, nothing recorded and the job made due, when a webhook
        kept the task's result meanwhile: the next pass applies it."""
        ...

    async def complete_late_job(
        self,
        job_id: int,
        result_url: str,
        cost_micros: int,
        nsfw: bool,
        now: float,
        *,
        owner: str | None = None,
    ) -> Job | None:
        """A watched job's video arrived (an expired job's, or a lost one's brought by its webhook): keep it
        and book its cost to the server, not the member. None if the job was not being watched, or not
        held by `owner`."""
        ...

    async def end_late_watch(
        self, job_id: int, now: float, *, owner: str | None = None, lost: bool = False
    ) -> bool:
        """Stop asking about an expired job (`lost`: because Runware no longer knows its task, recorded as
        `lost_at`); False if it was not being watched, or not held by `owner`, or (`lost`) when a webhook
        kept the task's result meanwhile (the watch goes on, due now)."""
        ...

    async def get_job(self, job_id: int) -> Job | None:
        """One job by its number."""
        ...

    async def job_by_task(self, task_uuid: str) -> Job | None:
        """The job with this taskUUID (chosen by the bot before the reservation), to find out whether a
        reservation whose COMMIT got no answer happened."""
        ...

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 5) -> list[Job]:
        """A member's latest jobs in a guild, newest first."""
        ...

    async def member_jobs(
        self, guild_id: int, user_id: int, limit: int, *, before: int | None = None, after: int | None = None
    ) -> list[Job]:
        """A page of a member's jobs in a guild by job number (keyset pagination), newest first: the
        `limit` newest below `before`, or with `after` the `limit` oldest above it."""
        ...

    async def cancel_job(self, job_id: int, user_id: int, now: float) -> Job | None:
        """Cancel the member's job if Runware has not heard of it yet (uploading or queued): in one write,
        mark it failed as cancelled (CANCELLED_CODE), refund its reservation, let go of its lease and record
        it as told (nothing is posted; DELIVERED is notified, for the acknowledgement's holder). None when
        the job is not that member's or has gone further: a runner's mark_submitting and this are
        conditional changes of the same row, so exactly one wins."""
        ...

    async def job_places(self, job_ids: Sequence[int]) -> dict[int, JobPlace]:
        """Where each of these jobs stands (those that exist), in one read: its status, whether its outcome
        is recorded, and for a job in the line (WAITING, across the whole database) its place: one plus
        the number of waiting jobs with a smaller number. Cheap: the line is read through an index of
        waiting jobs only (jobs_waiting), up to the largest of these numbers."""
        ...

    async def claim_due_jobs(
        self, owner: str, now: float, horizon: float, limit: int, lease_until: float
    ) -> list[Job]:
        """Claim, atomically, the jobs due by `now` (submitted, polled, or watched for a late video), plus
        processing jobs due by `horizon` (to batch their polls), that nobody holds, `owner` holds, or whose
        lease ran out: each is leased to `owner` until `lease_until`. Two concurrent claimers never take
        the same job. Earliest due first."""
        ...

    async def renew_leases(self, owner: str, lease_until: float) -> int:
        """Extend every lease `owner` holds on an unfinished or watched job (uploads included) to
        `lease_until`; returns how many."""
        ...

    async def next_due_at(self, owner: str, now: float) -> float | None:
        """When `owner` may next have a job to advance: the earliest due time of an unfinished or watched
        job, where a job another process holds counts as due when its lease runs out. None if none."""
        ...

    async def lease_owners(self) -> list[str]:
        """The owners holding a lease on an unfinished or watched job, or offering an unposted result."""
        ...

    async def expire_leases(self, owners: list[str], now: float) -> int:
        """End now the job and delivery leases of `owners` (processes known to be dead, or this one as it
        stops), so their jobs and results are claimed at once; returns how many jobs were touched. When
        any were, a RELEASED notification goes with the change."""
        ...

    async def claim_stale_uploads(
        self, owner: str, now: float, before: float, lease_until: float
    ) -> list[Job]:
        """Claim the uploads that will never finish, leased to `owner` until `lease_until` (to fail them):
        uploading jobs whose holder's lease ran out (the process died), and those created before `before`
        that `owner` holds or nobody holds (an upload that hung). Another live process's uploads are left
        alone."""
        ...

    async def usage(self, guild_id: int, user_id: int, limits: Limits, windows: Windows) -> Usage:
        """The member's spend in the windows, the guild's month, active jobs, and the limits."""
        ...


class QuoteStore(Protocol):
    """Costly jobs waiting for their member's Confirm."""

    async def create_quote(self, quote: Quote) -> Quote:
        """Store an open quote (its id is assigned here)."""
        ...

    async def get_quote(self, quote_id: int) -> Quote | None:
        """One quote by id."""
        ...

    async def close_quote(self, quote_id: int, state: QuoteState, now: float) -> bool:
        """Cancel or expire an open quote; False if it was no longer open."""
        ...

    async def confirm_quote(
        self,
        quote_id: int,
        new: NewJob,
        limits: Limits,
        now: float,
        windows: Windows,
        decide: Callable[[Usage], QuotaRefusal | None],
    ) -> Job | QuotaRefusal | QuoteState:
        """In one transaction: reserve and queue the quoted job (with a QUEUED notification), or say why
        the quote is closed."""
        ...


class DeliveryStore(Protocol):
    """Posting finished jobs exactly once: what is waiting, where it went, and credits for results
    that could not be shown."""

    async def undelivered_jobs(self) -> list[Job]:
        """Finished jobs whose result has not been posted yet."""
        ...

    async def claim_deliveries(self, owner: str, now: float, lease_until: float, limit: int) -> list[Job]:
        """Claim, atomically, finished jobs whose result has not been posted and that no process is
        offering (never offered, or its delivery lease ran out): each is leased to `owner` until
        `lease_until`. Two concurrent claimers never take the same job."""
        ...

    async def claim_delivery(self, job_id: int, owner: str, now: float, lease_until: float) -> Job | None:
        """Claim one finished job's delivery as claim_deliveries would; the job, or None if it is posted
        already or another process is offering it."""
        ...

    async def mark_delivered(self, job_id: int, now: float, posted_at: tuple[int, int] | None = None) -> bool:
        """Record the result as posted (and where: channel id, message id). True only for the call that
        recorded it, whose change carries a DELIVERED notification."""
        ...

    async def mark_late_delivered(
        self, job_id: int, now: float, posted_at: tuple[int, int] | None = None
    ) -> bool:
        """Record a late video as posted (and where). True only for the call that recorded it (with a
        DELIVERED notification)."""
        ...

    async def record_post_attempt(self, job_id: int, channel_id: int, now: float) -> None:
        """Record that the job's result is about to be posted in a channel (the first try's time is kept)."""
        ...

    async def post_attempts(self, job_id: int) -> list[tuple[int, float]]:
        """Where the job's result was about to be posted, and since when: (channel id, first try)."""
        ...

    async def credit_job_cost(self, job_id: int, reason: str, now: float) -> int:
        """Give a finished job's cost back to its member (once); returns the amount credited."""
        ...


class GuildConfigStore(Protocol):
    """A guild's own choices: its limits, its role tiers, its moderation settings and allow-list.
    Every change is recorded with who made it."""

    async def guild_limits(self, guild_id: int) -> GuildLimits | None:
        """A guild's own limit choices, or None if it has made none."""
        ...

    async def update_guild_limits(
        self, guild_id: int, patch: GuildLimitsPatch, actor_id: int, now: float
    ) -> GuildLimits:
        """Apply an admin's changes to a guild's limits and record who did it, in one transaction."""
        ...

    async def role_tiers(self, guild_id: int, role_ids: Iterable[int] | None = None) -> list[RoleTier]:
        """The guild's role tiers (only those of `role_ids` when given), by role id."""
        ...

    async def set_role_tier(self, guild_id: int, tier: RoleTier, actor_id: int, now: float) -> None:
        """Create or replace a role's tier, recorded with who did it."""
        ...

    async def remove_role_tier(self, guild_id: int, role_id: int, actor_id: int, now: float) -> bool:
        """Remove a role's tier; False if it had none. Recorded with who did it."""
        ...

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        """A guild's moderation settings (defaults when it has chosen none)."""
        ...

    async def update_guild_settings(
        self, guild_id: int, patch: GuildSettingsPatch, actor_id: int, now: float
    ) -> None:
        """Apply an admin's moderation-setting changes, recorded with who made them."""
        ...

    async def set_channel_allowed(
        self, guild_id: int, channel_id: int, allowed: bool, actor_id: int, now: float
    ) -> None:
        """Add a channel to (or remove it from) the guild's /animate allow-list, recorded."""
        ...


class BudgetStore(Protocol):
    """A guild's money seen by its admins: grants and resets on the ledger, spend reports, the ledger
    export, and the budget alerts posted once each."""

    async def guild_month_spend(self, guild_id: int, windows: Windows) -> int:
        """What the whole guild has spent in the month of `windows`."""
        ...

    async def grant(
        self, guild_id: int, user_id: int, amount_micros: int, reason: str, actor_id: int, now: float
    ) -> None:
        """Record an admin's credit (negative) or debit for a member on the ledger and in the audit log."""
        ...

    async def reset_member_window(
        self, guild_id: int, user_id: int, period: str, windows: Windows, actor_id: int, now: float
    ) -> int:
        """Give back a member's spend in the current day or month; returns the amount credited."""
        ...

    async def spend_report(self, guild_id: int, start: float, end: float, top: int = 5) -> SpendReport:
        """A guild's spend in [start, end): the total, the top spenders, and its jobs by outcome."""
        ...

    async def ledger_rows(self, guild_id: int, start: float, end: float) -> list[LedgerRow]:
        """The guild's ledger rows that count in [start, end), oldest first (for the CSV export)."""
        ...

    async def claim_budget_alert(
        self,
        guild_id: int,
        month_start: float,
        budget_micros: int,
        threshold: int,
        now: float,
        spent_micros: int | None = None,
    ) -> bool:
        """Record that a budget alert is being posted; True only for the first claim of that month."""
        ...

    async def reclaim_unposted_budget_alerts(
        self, month_start: float, now: float, tried_before: float
    ) -> list[tuple[int, int, int, int | None]]:
        """Claim again the month's alerts not posted yet whose last try began before `tried_before`:
        (guild id, budget, threshold, spend announced)."""
        ...

    async def settle_budget_alert(
        self, guild_id: int, month_start: float, budget_micros: int, threshold: int, now: float | None
    ) -> None:
        """Record a budget alert as posted (`now`), or as not posted (None: the next retry pass takes it)."""
        ...


class ModerationStore(Protocol):
    """Bans, job lookups, reports and what moderators did about them (the audit trail), and pruning
    old moderation records."""

    async def ban(self, ban: Ban, audit_guild_id: int, now: float, job_id: int | None = None) -> None:
        """Ban a member (replacing an earlier ban of the same scope), recorded with who did it (and the
        job that led to it, if any)."""
        ...

    async def unban(
        self, guild_id: int, user_id: int, actor_id: int, audit_guild_id: int, now: float
    ) -> bool:
        """Lift a ban of this scope; False if there was none. Recorded."""
        ...

    async def bans_in(self, guild_id: int) -> list[Ban]:
        """The bans that apply in a guild (its own and the everywhere ones), newest first."""
        ...

    async def ban_of(self, guild_id: int, user_id: int) -> Ban | None:
        """The ban that keeps this member from the bot in this guild, if any."""
        ...

    async def lookup_jobs(
        self,
        guild_id: int,
        *,
        user_id: int | None = None,
        job_id: int | None = None,
        image_sha256: str | None = None,
        limit: int = 10,
    ) -> list[Job]:
        """A guild's jobs by member, by number or by the SHA-256 of their image, newest first."""
        ...

    async def create_report(self, job_id: int, reporter_id: int, now: float) -> Report | None:
        """Record a member's report of a job's result; None if they reported it before."""
        ...

    async def set_report_message(self, report_id: int, channel_id: int, message_id: int) -> None:
        """Remember the moderation-log message of a report."""
        ...

    async def get_report(self, report_id: int) -> Report | None:
        """One report by id."""
        ...

    async def reports_of_job(self, job_id: int) -> list[Report]:
        """A job's reports, oldest first."""
        ...

    async def remove_result(self, job_id: int, actor_id: int, now: float) -> bool:
        """Record that a job's posted result was deleted, and close its open reports. True the first time."""
        ...

    async def dismiss_report(self, report_id: int, actor_id: int, now: float) -> bool:
        """Close an open report without action; False if it was already closed."""
        ...

    async def job_actions(self, job_id: int) -> list[JobAction]:
        """The moderation actions recorded on a job, oldest first."""
        ...

    async def prune(self, before: float, now: float) -> Pruned:
        """Forget moderation records older than `before` (never jobs or the ledger)."""
        ...


class ConsentStore(Protocol):
    """Who accepted which consent statement, and the /animate requests waiting for an answer."""

    async def consent_version(self, guild_id: int, user_id: int) -> int | None:
        """The latest statement version the member accepted in this guild, or None."""
        ...

    async def create_consent_request(self, request: ConsentRequest) -> ConsentRequest:
        """Store an /animate waiting for consent (its id is assigned here)."""
        ...

    async def get_consent_request(self, request_id: int) -> ConsentRequest | None:
        """One consent request by id."""
        ...

    async def decide_consent_request(
        self, request_id: int, state: ConsentState, now: float
    ) -> ConsentRequest | ConsentState:
        """Close an open, unexpired request (accepted: the member's consent is recorded). Returns the
        request as it was, or the state it already had (EXPIRED if it just ran out)."""
        ...


class WebhookStore(Protocol):
    """Runware's webhook: the tokens a job's submits carried (hashed), and the final results Runware
    POSTed, kept until the runner holding the job applies them as it would a poll's answer."""

    async def webhook_target(self, job_id: int) -> WebhookTarget | None:
        """The job's taskUUID and its tokens' hashes; None when there is no such job. Reads only."""
        ...

    async def record_webhook_result(
        self,
        job_id: int,
        task_uuid: str,
        video_uuid: str | None,
        result: str,
        now: float,
        *,
        video_ttl_s: float | None = None,
    ) -> bool:
        """Keep a final result for a job still waiting for one (submitting, processing, or expired and
        watched) and make a processing or watched job due now, in one transaction that also notifies
        every process (JobEvent.RESULT, delivered at its commit). With `video_ttl_s` (OUTPUT_TTL_S, given
        when the result is a video), a job judged lost (`lost_at`) whose output still lives is kept too
        and watched again until the output's expiry, due now (core.models.lost_video_watch): its runner
        posts the video late, at the server's cost. False, with nothing written, for a repeat: a result
        already kept for this job or this video, or a job already finished (by a poll)."""
        ...

    async def webhook_results(self, job_ids: list[int]) -> dict[int, str]:
        """The kept results of those jobs that have one, by job id."""
        ...

    async def prune_webhooks(self, before: float) -> int:
        """Forget the tokens and kept results of jobs that ended before `before` (terminal, and not
        watched for a late video): Runware calls no more about them. Returns how many rows went."""
        ...


class AckStore(Protocol):
    """The members' private acknowledgements kept for a restart (issue 13 item 5): a row per job while
    its interaction token lives, deleted once the outcome is shown or the token expired."""

    async def save_acknowledgement(self, ack: StoredAck) -> None:
        """Keep a job's acknowledgement (replacing one kept for the job)."""
        ...

    async def stored_acknowledgements(self, now: float) -> list[StoredAck]:
        """The acknowledgements whose tokens are still valid at `now`, by job number."""
        ...

    async def forget_acknowledgement(self, job_id: int) -> None:
        """Delete a job's acknowledgement (its outcome is shown, or nothing more will be)."""
        ...

    async def prune_acknowledgements(self, now: float) -> int:
        """Delete the acknowledgements whose tokens expired by `now`; how many went."""
        ...


class StateStore(Protocol):
    """Small values the bot keeps about itself (e.g. the hash of the synced commands)."""

    async def get_state(self, key: str) -> str | None:
        """A value the bot stored about itself, or None."""
        ...

    async def set_state(self, key: str, value: str) -> None:
        """Store a value about the bot itself (replacing the old one)."""
        ...

    async def claim_duty(self, name: str, owner: str, now: float, until: float) -> bool:
        """Claim the duty `name` (work one process does for all) for `owner` until `until`. True when it
        had no claim or its claim ended by `now`; False while another claim (`owner`'s own included)
        holds."""
        ...

    async def release_duty(self, name: str, owner: str) -> None:
        """End `owner`'s claim of the duty `name` now (nothing when another process holds it)."""
        ...


class HealthStore(Protocol):
    """What the health check and the metrics read: cheap questions answered at request time."""

    async def ping(self) -> None:
        """Ask the database one trivial question about the bot's own tables; raises when it cannot answer
        (StoreUnavailable, or the driver's error when the tables are gone)."""
        ...

    async def count_jobs_by_status(self) -> dict[str, int]:
        """How many jobs are in each status, in one grouped COUNT (statuses without jobs are absent)."""
        ...


class Store(
    JobEvents,
    JobStore,
    QuoteStore,
    DeliveryStore,
    GuildConfigStore,
    BudgetStore,
    ModerationStore,
    ConsentStore,
    StateStore,
    HealthStore,
    WebhookStore,
    AckStore,
    Protocol,
):
    """Every part at once, on one database: what `open_store` yields and the bot hands to its services."""

    async def close(self) -> None:
        """Close the connection."""
        ...


# What each service needs: the parts it calls, and no more.


class JobServiceStore(JobStore, QuoteStore, DeliveryStore, GuildConfigStore, BudgetStore, Protocol):
    """JobService: jobs, quotes and delivery, the guild's limits and settings, and budget alerts."""


class RunnerStore(JobStore, DeliveryStore, WebhookStore, Protocol):
    """JobRunner: the runner's steps, the finished jobs still to post after a restart, and the results
    Runware's webhook brought."""


class BudgetServiceStore(GuildConfigStore, BudgetStore, Protocol):
    """BudgetService: the guild's limits and tiers, and its money."""


class ModerationServiceStore(GuildConfigStore, ModerationStore, JobStore, Protocol):
    """ModerationService: the guild's settings, bans and reports, and the jobs they are about."""
