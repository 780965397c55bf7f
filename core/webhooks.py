"""Runware's webhook: the per-job tokens in its URL, and what one call does (the HTTP edge is web/).

Runware signs nothing, so a call is trusted by its URL: each submit carries PUBLIC_URL +
/runware/webhook/<job id>.<secret> (the secret from secrets.token_urlsafe), and only the SHA-256 of the whole
token is stored, before the submit is sent. The job id in the token lets a call load one job's hashes and
compare in constant time. A call that passes is read as a poll's answer is read, and a final result is kept
in the database (durably, before the 200) for the runner that holds the job to apply, with the very settle
and fail steps a poll uses, so exactly once. Polling stays as the safety net.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from core.ports import WebhookStore
from core.runware import ErrorKind, MalformedReply, RunwareError, TaskResult, TaskState

# The route's path before the token (web/runware_webhook.py serves it).
WEBHOOK_PATH = "/runware/webhook/"
# The secret's length in bytes before base64 (43 characters in the URL): far beyond guessing.
SECRET_BYTES = 32
# A token longer than this is not one of ours (checked before any database read).
MAX_TOKEN_CHARS = 80
# Compared against when the job does not exist, so an unknown job costs the same as a wrong secret.
_NO_HASH = "0" * 64


class WebhookOutcome(StrEnum):
    """What became of one call, for the metrics: kept (or a valid call with nothing to keep), refused
    for its token, a repeat of something already known, a body that is not a result, or not checked at all
    because its peer was refused too often (web/webhook_limit.py)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REPEATED = "repeated"
    INVALID = "invalid"
    LIMITED = "limited"


@dataclass(frozen=True)
class WebhookCaller:
    """A call whose token matched: the job it is about and that job's taskUUID."""

    job_id: int
    task_uuid: str


def new_token(job_id: int) -> str:
    """A fresh token for a job's webhook URL: `<job id>.<secret>`."""
    return f"{job_id}.{secrets.token_urlsafe(SECRET_BYTES)}"


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_job(token: str) -> int | None:
    """The job a token names, or None when it is not shaped like one of ours."""
    job, dot, secret = token.partition(".")
    # isascii: str.isdigit() also takes digits int() refuses ("²"), which raised here (a 500 for anyone).
    digits = job.isascii() and job.isdigit()
    if not dot or not secret or len(token) > MAX_TOKEN_CHARS or not digits or len(job) > 18:
        return None
    return int(job)


def webhook_url(public_url: str, token: str) -> str:
    """The URL Runware is given (PUBLIC_URL has no trailing slash: the settings check it)."""
    return f"{public_url}{WEBHOOK_PATH}{token}"


def is_final(result: TaskResult) -> bool:
    """A result that ends the task: a video, or an error other than "not found" (which a webhook about its
    own task cannot truthfully say; polling decides that case)."""
    if result.state is TaskState.SUCCESS:
        return True
    return (
        result.state is TaskState.ERROR
        and result.error is not None
        and result.error.kind is not ErrorKind.NOT_FOUND
    )


def encode_result(result: TaskResult) -> str:
    """A result as the JSON kept in the database (what the runner needs of it, nothing more)."""
    error = result.error
    return json.dumps(
        {
            "taskUUID": result.task_uuid,
            "state": result.state.value,
            "videoURL": result.video_url,
            "videoUUID": result.video_uuid,
            "cost": result.cost_usd,
            "nsfw": result.nsfw,
            "error": None
            if error is None
            else {
                "kind": error.kind.value,
                "code": error.code,
                "message": error.message,
                "httpStatus": error.http_status,
            },
        }
    )


def decode_result(text: str) -> TaskResult:
    """A kept result back as the TaskResult a poll would have given."""
    data = json.loads(text)
    raw_error = data.get("error")
    error = (
        None
        if raw_error is None
        else RunwareError(
            ErrorKind(raw_error["kind"]),
            raw_error["message"],
            code=raw_error.get("code"),
            task_uuid=data["taskUUID"],
            http_status=raw_error.get("httpStatus"),
        )
    )
    return TaskResult(
        data["taskUUID"],
        TaskState(data["state"]),
        video_url=data.get("videoURL"),
        video_uuid=data.get("videoUUID"),
        cost_usd=data.get("cost"),
        nsfw=bool(data.get("nsfw")),
        progress=100 if data["state"] == TaskState.SUCCESS.value else None,
        error=error,
    )


class WebhookReceiver:
    """Checks a call's token, reads its body, and keeps a final result for the runner.

    `read`: the body as a result (RunwareClient.read_webhook; MalformedReply when it is not one).
    `wake(job_id)`: called once a result is kept, to have the job's runner apply it now.
    `output_ttl_s`: how long Runware keeps a video after its submit (OUTPUT_TTL_S): a video for a job the
    runner judged lost (Runware kept answering "not found") is kept until then, to be posted late at the
    server's cost; None: such a video is a repeat, like any result for a finished job."""

    def __init__(
        self,
        store: WebhookStore,
        read: Callable[[bytes], TaskResult],
        *,
        wake: Callable[[int], None] = lambda job_id: None,
        clock: Callable[[], float] = time.time,
        output_ttl_s: float | None = None,
    ) -> None:
        self._store = store
        self._read = read
        self._wake = wake
        self._clock = clock
        self._output_ttl_s = output_ttl_s

    async def authorize(self, token: str) -> WebhookCaller | None:
        """The caller when the token is one of its job's (compared in constant time), else None. Reads
        only: a wrong token never writes anything."""
        job_id = token_job(token)
        if job_id is None:
            return None
        target = await self._store.webhook_target(job_id)
        candidate = token_hash(token)
        matched = False
        for stored in target.token_hashes if target and target.token_hashes else (_NO_HASH,):
            # Every hash is compared (no early exit), each in constant time.
            matched |= hmac.compare_digest(stored, candidate)
        if target is None or not matched:
            return None
        return WebhookCaller(job_id, target.task_uuid)

    async def receive(self, caller: WebhookCaller, body: bytes) -> WebhookOutcome:
        """Read the body and keep a final result of the caller's task. INVALID (nothing kept): not a result,
        or a result of another task. REPEATED: already kept, or the job finished (a poll got there first;
        an error, or a video once the output is gone, for a job judged lost). ACCEPTED: kept and the
        runner woken (a video for a job judged lost included: posted late), or a valid call with nothing
        final in it (progress)."""
        try:
            result = self._read(body)
        except MalformedReply:
            return WebhookOutcome.INVALID
        if result.task_uuid != caller.task_uuid:
            return WebhookOutcome.INVALID
        if not is_final(result):
            return WebhookOutcome.ACCEPTED
        video = result.state is TaskState.SUCCESS and result.video_url is not None
        kept = await self._store.record_webhook_result(
            caller.job_id,
            result.task_uuid,
            result.video_uuid,
            encode_result(result),
            self._clock(),
            video_ttl_s=self._output_ttl_s if video else None,
        )
        if not kept:
            return WebhookOutcome.REPEATED
        self._wake(caller.job_id)
        return WebhookOutcome.ACCEPTED
