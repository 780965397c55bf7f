"""Plain data the core and storage share: job status, jobs, money and time helpers.

Money is integer micro-dollars (1 USD = 1_000_000) so sums never drift; times are UTC epoch seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from typing import Any, Final

MICROS_PER_USD = 1_000_000
MICROS_PER_CENT = 10_000


class JobStatus(StrEnum):
    """Where a job is in its life. See ACTIVE and TERMINAL."""

    UPLOADING = "uploading"  # reserved; inputs being uploaded to Runware during the command
    QUEUED = "queued"  # inputs uploaded; waiting for the runner to submit
    SUBMITTING = "submitting"  # submit sent, answer not recorded: ambiguous after a crash
    PROCESSING = "processing"  # Runware accepted the task; polling
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


ACTIVE: frozenset[JobStatus] = frozenset(
    {JobStatus.UPLOADING, JobStatus.QUEUED, JobStatus.SUBMITTING, JobStatus.PROCESSING}
)
TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.EXPIRED})
# The final statuses a late video can follow: the job was refunded, then Runware delivered after all (an
# expired job's video, or the webhook of a task judged lost).
LATE_CAPABLE: frozenset[JobStatus] = frozenset({JobStatus.FAILED, JobStatus.EXPIRED})
# What a member may still cancel: Runware has not heard of the job (its submit is not yet on its way).
CANCELLABLE: frozenset[JobStatus] = frozenset({JobStatus.UPLOADING, JobStatus.QUEUED})
# The error code of a job its member cancelled (status FAILED: refunded, never submitted, nothing posted).
# A code rather than a status of its own: a new status would mean rebuilding SQLite's jobs table (its CHECK).
CANCELLED_CODE = "cancelled"
# The line: jobs the bot accepted that Runware has not accepted yet (being uploaded, waiting for the runner,
# or being sent). The runner sends them oldest first, a few at a time (MAX_CONCURRENT_SUBMITS per process).
WAITING: frozenset[JobStatus] = frozenset({JobStatus.UPLOADING, JobStatus.QUEUED, JobStatus.SUBMITTING})


class LedgerKind(StrEnum):
    """Ledger row kinds. Every row's amount is its signed contribution to spend."""

    RESERVE = "reserve"  # +estimate, when the job is accepted
    RELEASE = "release"  # -estimate, when the real cost replaces the estimate
    SETTLE = "settle"  # +real cost reported by Runware
    REFUND = "refund"  # -estimate, when a job fails: the member pays nothing
    GRANT = "grant"  # a credit (negative) or debit; for a job: its cost given back when it could not be shown


@dataclass(frozen=True, slots=True)
class JobPlace:
    """Where a job stands, for its member's acknowledgement: its status, whether its outcome is recorded
    (posted, or nothing to post), and while it waits (WAITING), its place in the line (1: next)."""

    job_id: int
    status: JobStatus
    delivered: bool
    place: int | None


@dataclass(frozen=True, slots=True)
class Job:
    """One /animate request, as stored."""

    id: int
    task_uuid: str
    guild_id: int
    channel_id: int
    user_id: int
    status: JobStatus
    audio_seconds: float
    estimate_micros: int
    cost_micros: int | None
    output_format: str
    output_quality: int
    image_ref: str | None
    audio_ref: str | None
    created_at: float
    updated_at: float
    submitted_at: float | None
    next_poll_at: float | None
    poll_count: int
    finished_at: float | None
    delivered_at: float | None
    result_url: str | None
    nsfw: bool
    error_code: str | None
    error_message: str | None
    upload_limit_bytes: int | None
    channel_nsfw: bool
    safety_mode: str | None = None
    image_sha256: str | None = None
    audio_sha256: str | None = None
    # Where the result was posted (to delete it later), and when it was removed.
    result_channel_id: int | None = None
    result_message_id: int | None = None
    removed_at: float | None = None
    # An expired job that Runware still renders is asked about until `late_until` (None: not watched); a
    # video that arrives is posted once more, as a late result, at `late_delivered_at`. A job judged lost
    # (`lost_at`: Runware kept answering "not found") whose webhook still brings a video is watched again
    # until the video is applied, and posted late the same way.
    late_until: float | None = None
    late_delivered_at: float | None = None
    lost_at: float | None = None
    # The process advancing the job (or uploading its inputs) and until when; None when nobody holds it
    # (a finished job, or one waiting to be claimed). See Lease.
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    # The process offering the finished job's result for posting, and until when it may before another
    # process offers it again.
    delivery_owner: str | None = None
    delivery_expires_at: float | None = None

    @property
    def cancelled(self) -> bool:
        """Its member cancelled it before it reached Runware (refunded, never submitted)."""
        return self.status is JobStatus.FAILED and self.error_code == CANCELLED_CODE

    @property
    def arrived_late(self) -> bool:
        """A job refunded without a video (expired at its deadline, or failed as lost by Runware) whose
        video arrived afterwards: posted late, at the server's cost."""
        return self.status in LATE_CAPABLE and self.result_url is not None

    @property
    def late_reason(self) -> str:
        """The ledger's reason on the grant that gives a late video's cost back to its member."""
        if self.status is JobStatus.EXPIRED:
            return "arrived after the deadline"
        return "arrived after the job was declared lost"

    @property
    def late_video_waiting(self) -> bool:
        """A job whose video arrived late (`arrived_late`) and has not been posted yet."""
        return self.arrived_late and self.late_delivered_at is None


def output_expires_at(job: Job, ttl_s: float) -> float:
    """When Runware deletes a job's output: its `ttl` counts from the task, and submitted_at is before it."""
    return (job.submitted_at or job.created_at) + ttl_s


def lost_video_watch(job: Job, output_ttl_s: float | None, now: float) -> float | None:
    """Until when a job judged lost (`lost_at`) is watched again because its webhook brought a video: its
    output's expiry (`output_ttl_s` after the submit, OUTPUT_TTL_S), while that is ahead of `now` and the
    job has no video yet. None for any other job, or when the output is gone (or no TTL is given: the
    result is not a video)."""
    if output_ttl_s is None or job.lost_at is None or job.status not in LATE_CAPABLE:
        return None
    if job.result_url is not None or job.late_until is not None:
        return None
    until = output_expires_at(job, output_ttl_s)
    return until if now < until else None


@dataclass(frozen=True, slots=True)
class NewJob:
    """What the service asks storage to create, together with its reservation."""

    task_uuid: str
    guild_id: int
    channel_id: int
    user_id: int
    audio_seconds: float
    estimate_micros: int
    output_format: str
    output_quality: int
    upload_limit_bytes: int | None
    channel_nsfw: bool
    safety_mode: str | None = None
    image_sha256: str | None = None
    audio_sha256: str | None = None
    # The process whose command uploads the inputs holds the new job (None: nobody, e.g. no runner). Called
    # by the store as it writes the row, after the guild's lock: the hold counts from then, not from the
    # command's start (a reservation can wait longer than a lease on a busy database, and a lease born
    # expired let another process take the live upload for a dead one's and refund it).
    lease: Callable[[], Lease] | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """A process's hold on a job: `owner` names the process, and the hold ends at `expires_at` unless
    renewed. Only the holder advances the job; once the hold has run out another process may claim it."""

    owner: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class StoredAck:
    """What a process needs to edit a job's private acknowledgement after a restart: the interaction's
    webhook (application id and token), its member's locale, its text (`head`, and the whole text
    `shown`), and when the token expires (epoch seconds). The token is a short-lived credential: it is
    left out of the repr, so it never reaches a log line or an exception."""

    job_id: int
    guild_id: int
    application_id: int
    token: str = field(repr=False)
    locale: str
    head: str
    shown: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """What a webhook call for one job is checked against: the job's taskUUID and the SHA-256 (hex) of
    each token its submits carried (only hashes are stored)."""

    task_uuid: str
    token_hashes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one member may spend and run in one guild, and the guild's shared budget. None: unlimited."""

    daily_micros: int | None
    max_active_jobs: int | None
    monthly_micros: int | None = None
    cooldown_s: float = 0.0
    guild_monthly_micros: int | None = None
    # The operator's ceiling on what all guilds together spend per UTC day (OPERATOR_DAILY_USD).
    operator_daily_micros: int | None = None


# Stored in a guild's limit column to mean "no limit" (NULL means "use the default").
UNLIMITED = -1


@dataclass(frozen=True, slots=True)
class GuildLimits:
    """A guild's own choices, as stored. None: use the default from settings; UNLIMITED: no limit."""

    guild_id: int
    user_daily_micros: int | None = None
    user_monthly_micros: int | None = None
    max_active_jobs: int | None = None
    cooldown_s: float | None = None
    guild_monthly_micros: int | None = None
    log_channel_id: int | None = None
    confirm_above_micros: int | None = None

    def resolve(self, field: str, default: int | None) -> int | None:
        """This guild's value of a limit field: its own if set (None if unlimited), else the default."""
        value = getattr(self, field)
        if value is None:
            return default
        return None if value == UNLIMITED else int(value)


class Unset(Enum):
    """The type of UNSET."""

    UNSET = "unset"


# A patch field left at UNSET leaves the stored value as it is (None sets it back to the default).
UNSET: Final = Unset.UNSET


@dataclass(frozen=True, slots=True)
class GuildLimitsPatch:
    """An admin's changes to a guild's limits (the fields of GuildLimits but its id); UNSET: unchanged."""

    user_daily_micros: int | Unset | None = UNSET
    user_monthly_micros: int | Unset | None = UNSET
    max_active_jobs: int | Unset | None = UNSET
    cooldown_s: float | Unset | None = UNSET
    guild_monthly_micros: int | Unset | None = UNSET
    log_channel_id: int | Unset | None = UNSET
    confirm_above_micros: int | Unset | None = UNSET

    def changes(self) -> dict[str, int | float | None]:
        """The fields this patch sets, by name, in field order."""
        return _set_fields(self)


@dataclass(frozen=True, slots=True)
class RoleTier:
    """A role's own limits for its members. None: the guild's value; UNLIMITED: no limit."""

    role_id: int
    daily_micros: int | None = None
    monthly_micros: int | None = None
    max_active_jobs: int | None = None
    cooldown_s: float | None = None


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """A guild's moderation choices. None: the default (SAFETY_MODE; no moderation log)."""

    guild_id: int
    safety_mode: str | None = None
    mod_log_channel_id: int | None = None
    allowed_channels: tuple[int, ...] = ()  # empty: every channel
    consent_required: bool = True
    dms_allowed: bool = False  # may a result be sent to its member by DM (moderators can't see DMs)
    withhold_flagged: bool = False  # withhold flagged videos in age-restricted channels too


@dataclass(frozen=True, slots=True)
class GuildSettingsPatch:
    """An admin's changes to a guild's moderation settings (not its allow-list); UNSET: unchanged."""

    safety_mode: str | Unset | None = UNSET
    mod_log_channel_id: int | Unset | None = UNSET
    consent_required: bool | Unset | None = UNSET
    dms_allowed: bool | Unset | None = UNSET
    withhold_flagged: bool | Unset | None = UNSET

    def changes(self) -> dict[str, str | int | bool | None]:
        """The fields this patch sets, by name, in field order."""
        return _set_fields(self)


def _set_fields(patch: GuildLimitsPatch | GuildSettingsPatch) -> dict[str, Any]:
    return {f.name: value for f in fields(patch) if (value := getattr(patch, f.name)) is not UNSET}


# The guild id of a ban that applies in every guild.
EVERY_GUILD = 0


@dataclass(frozen=True, slots=True)
class Ban:
    """A member barred from the bot in one guild, or everywhere (guild_id EVERY_GUILD)."""

    guild_id: int
    user_id: int
    reason: str
    banned_by: int
    created_at: float


@dataclass(frozen=True, slots=True)
class Windows:
    """The UTC day and month that contain a moment (epoch seconds); spend is summed over them."""

    day_start: float
    day_end: float
    month_start: float
    month_end: float


@dataclass(frozen=True, slots=True)
class Usage:
    """A member's spend in the current UTC day and month, the guild's month, and the limits."""

    spent_today_micros: int
    spent_month_micros: int
    guild_spent_month_micros: int
    active_jobs: int
    last_job_at: float | None
    limits: Limits
    windows: Windows
    # What all guilds together have spent today (the operator's ceiling; never shown to members).
    operator_spent_today_micros: int = 0

    @property
    def left_today_micros(self) -> int | None:
        """What the member may still spend today (None: no daily limit)."""
        return _left(self.limits.daily_micros, self.spent_today_micros)

    @property
    def left_month_micros(self) -> int | None:
        """What the member may still spend this month (None: no monthly limit)."""
        return _left(self.limits.monthly_micros, self.spent_month_micros)

    @property
    def guild_left_micros(self) -> int | None:
        """What is left of the guild's monthly budget (None: no budget)."""
        return _left(self.limits.guild_monthly_micros, self.guild_spent_month_micros)

    @property
    def left_micros(self) -> int | None:
        """What the member may spend now: the tightest of the three (None: no money limit at all)."""
        lefts = [
            v
            for v in (self.left_today_micros, self.left_month_micros, self.guild_left_micros)
            if v is not None
        ]
        return min(lefts) if lefts else None


def _left(limit: int | None, spent: int) -> int | None:
    return None if limit is None else max(0, limit - spent)


class RefusalReason(StrEnum):
    """Which limit stopped a reservation."""

    DAILY = "daily"
    MONTHLY = "monthly"
    GUILD_BUDGET = "guild_budget"
    ACTIVE = "active"
    COOLDOWN = "cooldown"
    OPERATOR_DAILY = "operator_daily"  # all guilds together reached the operator's day ceiling


@dataclass(frozen=True, slots=True)
class QuotaRefusal:
    """The answer when a reservation would break a limit; nothing was written."""

    reason: RefusalReason
    usage: Usage
    frees_at: float | None = None  # when the limit stops being in the way (reset, cooldown end)


@dataclass(frozen=True, slots=True)
class SpendReport:
    """A guild's spend over a period: total, top spenders (user_id, micros), jobs by outcome."""

    total_micros: int
    top_spenders: list[tuple[int, int]]
    jobs_by_status: dict[JobStatus, int]
    granted_micros: int = 0  # net credit given to members by admins (negative: debits)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One ledger row, as exported."""

    id: int
    created_at: float
    counts_at: float
    user_id: int
    job_id: int | None
    kind: LedgerKind
    amount_micros: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A guild's monthly spend crossed a share of its budget (posted once per threshold, budget and month).

    At 100 % the budget may not be exactly spent: it is reached when the next job no longer fits."""

    guild_id: int
    log_channel_id: int
    threshold: int  # percent: 50, 80 or 100
    spent_micros: int
    budget_micros: int
    resets_at: float
    month_start: float  # with guild, budget and threshold: which alert this is


class QuoteState(StrEnum):
    """Where a cost quote stands."""

    OPEN = "open"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Quote:
    """A costly job waiting for its member's Confirm: inputs uploaded, nothing reserved yet."""

    id: int
    guild_id: int
    channel_id: int
    user_id: int
    role_ids: tuple[int, ...]
    image_ref: str
    audio_ref: str
    audio_seconds: float
    estimate_micros: int
    output_format: str
    output_quality: int
    upload_limit_bytes: int | None
    channel_nsfw: bool
    created_at: float
    expires_at: float
    state: QuoteState
    job_id: int | None
    safety_mode: str | None = None
    image_sha256: str | None = None
    audio_sha256: str | None = None


class ConsentState(StrEnum):
    """Where an /animate waiting for the consent statement stands."""

    OPEN = "open"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Submission:
    """An /animate as the member asked for it, without its files: who, where and the options. Kept while
    the member reads the consent statement."""

    guild_id: int
    channel_id: int
    user_id: int
    role_ids: tuple[int, ...]
    output_format: str = "MP4"
    output_quality: int = 85
    upload_limit_bytes: int | None = None
    channel_nsfw: bool = False


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    """A submission held until its member accepts version `version` of the consent statement."""

    id: int
    submission: Submission
    version: int
    created_at: float
    expires_at: float
    state: ConsentState = ConsentState.OPEN


class ReportState(StrEnum):
    """Where a member's report of a result stands."""

    OPEN = "open"
    DISMISSED = "dismissed"
    DELETED = "deleted"  # the reported video was deleted


@dataclass(frozen=True, slots=True)
class Report:
    """A member's report of a posted result, and the moderation-log message that carries its buttons."""

    id: int
    job_id: int
    guild_id: int
    reporter_id: int
    created_at: float
    state: ReportState = ReportState.OPEN
    log_channel_id: int | None = None
    log_message_id: int | None = None
    decided_by: int | None = None
    decided_at: float | None = None


@dataclass(frozen=True, slots=True)
class JobAction:
    """One moderation action on a job, from the audit log (who, what, when)."""

    job_id: int
    actor_id: int
    action: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one retention pass removed."""

    audit_rows: int
    reports: int
    job_hashes: int  # jobs whose file hashes were cleared
    requests: int  # closed quotes and consent requests


def usd_to_micros(usd: float) -> int:
    """Dollars to micro-dollars, rounded to the nearest micro-dollar."""
    return round(usd * MICROS_PER_USD)


def round_up_to_cent(micros: int) -> int:
    """Round micro-dollars up to a whole cent (estimates are never rounded down)."""
    return math.ceil(micros / MICROS_PER_CENT) * MICROS_PER_CENT


def format_usd(micros: int) -> str:
    """Micro-dollars as dollars for people: `$0.60`, `-$1.25`. Rounds half up to the cent."""
    sign = "-" if micros < 0 else ""
    cents = (abs(micros) + MICROS_PER_CENT // 2) // MICROS_PER_CENT
    return f"{sign}${cents // 100}.{cents % 100:02d}"
