"""Runware, the video service: a small typed client for its REST API (uploads, OmniHuman-1 tasks, polls).

`from core.runware import X` is the way in; `errors` holds what can go wrong, `client` the rest.
"""

from core.runware.client import (
    OMNIHUMAN_MODEL,
    OUTPUT_FORMATS,
    RunwareClient,
    TaskResult,
    TaskState,
    VideoRequest,
    WireError,
    WireItem,
)
from core.runware.errors import RETRYABLE_KINDS, ErrorKind, RunwareError, classify_error

__all__ = [
    "OMNIHUMAN_MODEL",
    "OUTPUT_FORMATS",
    "RETRYABLE_KINDS",
    "ErrorKind",
    "RunwareClient",
    "RunwareError",
    "TaskResult",
    "TaskState",
    "VideoRequest",
    "WireError",
    "WireItem",
    "classify_error",
]
