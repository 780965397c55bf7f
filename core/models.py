"""Plain data the core and storage share: job status, jobs, money and time helpers.

Money is integer micro-dollars (1 USD = 1_000_000) so sums never drift; times are UTC epoch seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

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


class LedgerKind(StrEnum):
    """Ledger row kinds. Every row's amount is its signed contribution to spend."""

    RESERVE = "reserve"  # +estimate, when the job is accepted
    RELEASE = "release"  # -estimate, when the real cost replaces the estimate
    SETTLE = "settle"  # +real cost reported by Runware
    REFUND = "refund"  # -estimate, when a job fails: the member pays nothing
    GRANT = "grant"  # a credit (negative) or debit; for a job: its cost given back when it could not be shown


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

    @property
    def is_active(self) -> bool:
        """True while the job still needs work from the runner."""
        return self.status in ACTIVE


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


@dataclass(frozen=True, slots=True)
class Limits:
    """What one member may spend and run at once in one guild."""

    daily_micros: int
    max_active_jobs: int


@dataclass(frozen=True, slots=True)
class Usage:
    """A member's spend in the current UTC day and what is left."""

    spent_micros: int
    limit_micros: int
    active_jobs: int
    max_active_jobs: int
    resets_at: float

    @property
    def left_micros(self) -> int:
        """What the member may still spend today (never negative)."""
        return max(0, self.limit_micros - self.spent_micros)


class RefusalReason(StrEnum):
    """Which limit stopped a reservation."""

    DAILY = "daily"
    ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class QuotaRefusal:
    """Storage's answer when a reservation would break a limit; nothing was written."""

    reason: RefusalReason
    usage: Usage


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
