"""Errors that carry a message, or the facts for one, meant for the member who ran the command."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import aiohttp

from core.models import QuotaRefusal

# A request whose connection was refused, dropped or timed out: aiohttp's own errors, which discord.py passes
# on as they are, OSError and TimeoutError. The cogs catch these through the core (they never import
# aiohttp themselves: tests/test_architecture.py).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError, TimeoutError)


def N_(message: str) -> str:
    """Mark an English message for the translation catalogues (locales/); the front end translates it
    where it is shown. Returns the message as it is."""
    return message


class UserFacingError(Exception):
    """An error shown to the member: short, plain, says what to do.

    `template` is an English message id with named placeholders (`{job}`), filled by `values`; the front
    end translates the template into the member's language, then fills it in (`message` is the English,
    for logs and tests). A subclass that carries facts instead (amounts, times, channels) is worded by the
    front end (cogs/_wording.py `error_text`); its `message` is then a plain summary, for logs."""

    def __init__(self, template: str, /, **values: Any) -> None:
        message = template.format(**values) if values else template
        super().__init__(message)
        self.template = template
        self.values = values
        self.message = message


class InvalidMedia(UserFacingError):
    """An attachment is not an accepted image or audio clip."""


class UploadFailed(UserFacingError):
    """The video service did not take the member's files; `reason` is its one-sentence explanation (a
    message id). Nothing was reserved."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason} You were not charged.")
        self.reason = reason


class QuotaExceeded(UserFacingError):
    """The member's limits do not allow this job now: which limit, the numbers and when it frees up (the
    refusal), and the clip's estimate (None when refused before the clip was read)."""

    def __init__(self, refusal: QuotaRefusal, estimate: int | None) -> None:
        super().__init__(f"Refused by the {refusal.reason.value} limit.")
        self.refusal = refusal
        self.estimate = estimate


class ChannelNotAllowed(UserFacingError):
    """/animate is not allowed in this channel; `allowed` are the channels where it is."""

    def __init__(self, allowed: tuple[int, ...]) -> None:
        super().__init__("/animate can't be used in this channel.")
        self.allowed = allowed


class OwnVideoReported(UserFacingError):
    """A member tried to report their own video (they can delete it instead)."""

    def __init__(self) -> None:
        super().__init__("This is your own video: use Delete to remove it.")


class Unsettled(StrEnum):
    """Where a member's request stands after the database stopped answering in the middle of it."""

    NOTHING_CHARGED = "nothing_charged"  # nothing was reserved (or what was is given back by itself)
    CANCELLED = "cancelled"  # the job was reserved but cannot start: it is refunded by itself
    UNKNOWN = "unknown"  # the job may have been queued (a lost COMMIT): posted if so, refunded if not


class DatabaseDown(UserFacingError):
    """The bot's database stopped answering during the member's request (StoreUnavailable), and what
    that means for them: `state`, and the job's number when it has one."""

    def __init__(self, state: Unsettled, job_id: int | None = None) -> None:
        super().__init__(f"The database did not answer ({state.value}, job {job_id}).")
        self.state = state
        self.job_id = job_id
