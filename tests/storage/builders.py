"""What the storage tests build and read: jobs, quotes and consent requests to store, and the tables as
sums to compare against (through `query`, so the same helpers serve every backend)."""

from __future__ import annotations

import uuid
from typing import Any

from core.models import ConsentRequest, Job, JobStatus, Limits, NewJob, Quote, QuoteState, Submission
from core.ports import ConsentStore, JobStore
from core.quota import windows_at
from tests.conftest import reserve
from tests.storage.conftest import Query

# The moderation, consent and delivery tests' clock (the job and budget tests keep their own NOW).
NOW = 1_000_000.0
LIMITS = Limits(None, None)
# Retention: records older than CUT go.
OLD = NOW - 400 * 86_400
CUT = NOW - 365 * 86_400
RECENT = NOW - 10 * 86_400


def new_job(user_id: int = 7, estimate: int = 100_000, guild_id: int = 1) -> NewJob:
    return NewJob(
        task_uuid=str(uuid.uuid4()),
        guild_id=guild_id,
        channel_id=10,
        user_id=user_id,
        audio_seconds=1.0,
        estimate_micros=estimate,
        output_format="MP4",
        output_quality=85,
        upload_limit_bytes=None,
        channel_nsfw=False,
    )


async def reserved(store: JobStore, user_id: int, estimate: int, now: float, guild_id: int = 1) -> Job:
    """A job reserved without limits."""
    job = await reserve(store, new_job(user_id, estimate, guild_id), Limits(None, None), now)
    assert isinstance(job, Job)
    return job


async def posted_job(
    store: JobStore, now: float = NOW, user_id: int = 7, guild_id: int = 1, sha: str | None = "ab" * 32
) -> Job:
    """A finished job of `user_id`, created at `now`, with the SHA-256 of its inputs."""
    new = NewJob(
        task_uuid=str(uuid.uuid4()),
        guild_id=guild_id,
        channel_id=10,
        user_id=user_id,
        audio_seconds=1.0,
        estimate_micros=100_000,
        output_format="MP4",
        output_quality=85,
        upload_limit_bytes=None,
        channel_nsfw=False,
        image_sha256=sha,
        audio_sha256=sha,
    )
    job = await reserve(store, new, LIMITS, now)
    assert isinstance(job, Job)
    await store.mark_job_queued(job.id, "img", "aud", now)
    done = await store.complete_job(job.id, "https://x/v.mp4", 90_000, False, now + 5)
    assert done is not None and done.status is JobStatus.SUCCEEDED
    return done


def submission(user_id: int = 7, guild_id: int = 1) -> Submission:
    return Submission(
        guild_id=guild_id,
        channel_id=10,
        user_id=user_id,
        role_ids=(31, 32),
        output_format="WEBM",
        output_quality=70,
        upload_limit_bytes=25_000_000,
        channel_nsfw=True,
    )


async def ask(
    store: ConsentStore, created_at: float = NOW, ttl: float = 600.0, version: int = 2, user_id: int = 7
) -> ConsentRequest:
    return await store.create_consent_request(
        ConsentRequest(0, submission(user_id), version, created_at, created_at + ttl)
    )


def quote(created_at: float) -> Quote:
    return Quote(
        0, 1, 10, 7, (), "img", "aud", 5.0, 700_000, "MP4", 85, None, False, created_at, created_at + 300,
        QuoteState.OPEN, None,
    )  # fmt: skip


def audit(query: Query) -> list[tuple[Any, ...]]:
    return query("SELECT guild_id, actor_id, action, job_id, created_at FROM audit_log ORDER BY id")


def ledger_rows(query: Query) -> list[tuple[Any, ...]]:
    return query("SELECT kind, amount_micros, job_id FROM ledger ORDER BY id")


def operator_totals(query: Query) -> dict[float, int]:
    return dict(query("SELECT day_start, amount_micros FROM operator_totals"))


def totals_from_ledger(query: Query) -> dict[tuple[int, int, str, float], int]:
    """What spend_totals should hold, recomputed from the ledger in Python."""
    expected: dict[tuple[int, int, str, float], int] = {}
    for guild, user, kind, amount, counts_at in query(
        "SELECT guild_id, user_id, kind, amount_micros, counts_at FROM ledger"
    ):
        w = windows_at(counts_at)
        for who in (user, 0) if kind != "grant" else (user,):  # grants are not guild spend
            for period, start in (("day", w.day_start), ("month", w.month_start)):
                key = (guild, who, period, start)
                expected[key] = expected.get(key, 0) + amount
    return expected


def stored_totals(query: Query) -> dict[tuple[int, int, str, float], int]:
    rows = query("SELECT guild_id, user_id, period, period_start, amount_micros FROM spend_totals")
    return {(g, u, p, s): a for g, u, p, s, a in rows}
