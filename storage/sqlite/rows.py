"""Column lists and row mapping: every model is built from its row by column name, never by position.

A table's columns are named like its model's fields, so the lists come from the models themselves and a
mapper only converts what SQLite can't hold as such (enums, booleans, the JSON list of role ids).
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from aiosqlite import Row

from core.models import (
    ACTIVE,
    Ban,
    ConsentRequest,
    ConsentState,
    GuildLimits,
    Job,
    JobStatus,
    LedgerKind,
    LedgerRow,
    Quote,
    QuoteState,
    Report,
    ReportState,
    RoleTier,
    Submission,
)

# The active statuses as an SQL list (the enum's own values, never input).
ACTIVE_SQL = ", ".join(f"'{s.value}'" for s in sorted(ACTIVE))
# Spelled as in the partial index jobs_waiting (migration 0018), so that the planner sees it applies.
WAITING_SQL = "'uploading', 'queued', 'submitting'"


def _columns(model: type[Any]) -> str:
    return ", ".join(f.name for f in fields(model))


JOB_COLUMNS = _columns(Job)
QUOTE_COLUMNS = _columns(Quote)
REPORT_COLUMNS = _columns(Report)
GUILD_LIMIT_COLUMNS = _columns(GuildLimits)
TIER_COLUMNS = _columns(RoleTier)
BAN_COLUMNS = _columns(Ban)
LEDGER_COLUMNS = _columns(LedgerRow)
# A consent request's row holds its submission's fields flat.
CONSENT_REQUEST_COLUMNS = ", ".join(
    ["id", *(f.name for f in fields(Submission)), "version", "created_at", "expires_at", "state"]
)


def _named(row: Row, **converted: Any) -> dict[str, Any]:
    """The row's values by column name, with `converted` ones replaced."""
    return {**dict(zip(row.keys(), row, strict=True)), **converted}


def job_from_row(row: Row) -> Job:
    """A row of JOB_COLUMNS as a Job."""
    return Job(
        **_named(
            row,
            status=JobStatus(row["status"]),
            nsfw=bool(row["nsfw"]),
            channel_nsfw=bool(row["channel_nsfw"]),
        )
    )


def quote_from_row(row: Row) -> Quote:
    """A row of QUOTE_COLUMNS as a Quote."""
    return Quote(
        **_named(
            row,
            role_ids=tuple(json.loads(row["role_ids"])),
            channel_nsfw=bool(row["channel_nsfw"]),
            state=QuoteState(row["state"]),
        )
    )


def consent_request_from_row(row: Row) -> ConsentRequest:
    """A row of CONSENT_REQUEST_COLUMNS as a ConsentRequest and its Submission."""
    submission = Submission(
        **{
            **{f.name: row[f.name] for f in fields(Submission)},
            "role_ids": tuple(json.loads(row["role_ids"])),
            "channel_nsfw": bool(row["channel_nsfw"]),
        }
    )
    return ConsentRequest(
        id=row["id"],
        submission=submission,
        version=row["version"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        state=ConsentState(row["state"]),
    )


def report_from_row(row: Row) -> Report:
    """A row of REPORT_COLUMNS as a Report."""
    return Report(**_named(row, state=ReportState(row["state"])))


def guild_limits_from_row(row: Row) -> GuildLimits:
    """A row of GUILD_LIMIT_COLUMNS as GuildLimits."""
    return GuildLimits(**_named(row))


def role_tier_from_row(row: Row) -> RoleTier:
    """A row of TIER_COLUMNS as a RoleTier."""
    return RoleTier(**_named(row))


def ban_from_row(row: Row) -> Ban:
    """A row of BAN_COLUMNS as a Ban."""
    return Ban(**_named(row, created_at=float(row["created_at"])))


def ledger_row_from_row(row: Row) -> LedgerRow:
    """A row of LEDGER_COLUMNS as a LedgerRow."""
    return LedgerRow(
        **_named(
            row,
            created_at=float(row["created_at"]),
            counts_at=float(row["counts_at"]),
            kind=LedgerKind(row["kind"]),
        )
    )
