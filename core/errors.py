"""Errors that carry a message meant for the member who ran the command."""

from __future__ import annotations


class UserFacingError(Exception):
    """An error whose `message` is shown to the member as it is: short, plain, says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidMedia(UserFacingError):
    """An attachment is not an accepted image or audio clip."""


class QuotaExceeded(UserFacingError):
    """The member's limits do not allow this job now."""
