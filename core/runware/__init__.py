"""Runware, the video service: a small typed client for its REST API (uploads, OmniHuman-1 tasks, polls).

`from core.runware import X` is the way in; the code lives in `client`.
"""

from core.runware.client import (
    OMNIHUMAN_MODEL,
    OUTPUT_FORMATS,
    RETRYABLE_KINDS,
    ErrorKind,
    RunwareClient,
    RunwareError,
    TaskResult,
    TaskState,
    VideoRequest,
    WireError,
    WireItem,
    classify_error,
)

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
