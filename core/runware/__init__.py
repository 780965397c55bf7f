"""Runware, the video service: a small typed client for its REST API (uploads, OmniHuman-1 tasks, polls).

`from core.runware import X` is the way in. The package is cut by job:

- `errors`  what went wrong: ErrorKind, RunwareError, and classify_error with the SDK-aligned code tables;
            redact_webhook_secrets for text that may quote a webhook URL
- `tasks`   a video task: VideoRequest (what is submitted), TaskResult and TaskState (what a poll learns)
- `wire`    the JSON on the wire: the task objects sent, pydantic models and parsing of the answers
- `client`  RunwareClient: uploads, submit, poll, check_auth, download, with retries and backoff
"""

from core.runware.client import RunwareClient
from core.runware.errors import (
    RETRYABLE_KINDS,
    ErrorKind,
    RunwareError,
    classify_error,
    redact_webhook_secrets,
)
from core.runware.tasks import OMNIHUMAN_MODEL, OUTPUT_FORMATS, TaskResult, TaskState, VideoRequest
from core.runware.wire import MalformedReply, WireError, WireItem

__all__ = [
    "OMNIHUMAN_MODEL",
    "OUTPUT_FORMATS",
    "RETRYABLE_KINDS",
    "ErrorKind",
    "MalformedReply",
    "RunwareClient",
    "RunwareError",
    "TaskResult",
    "TaskState",
    "VideoRequest",
    "WireError",
    "WireItem",
    "classify_error",
    "redact_webhook_secrets",
]
