"""A small typed client for Runware's REST API: uploads, OmniHuman-1 video tasks, polling and downloads.

The wire protocol is one URL taking a JSON array of tasks (see docs/runware-api.md). Transient failures
are retried here a few times; anything still failing is raised as a `RunwareError` whose `retryable` flag
tells the job loop whether trying again later makes sense.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
from pydantic import SecretStr
from yarl import URL

from core.observe import NULL_OBSERVER, Observer
from core.runware.errors import ErrorKind, RunwareError, classify_error, redact_webhook_secrets
from core.runware.tasks import TaskResult, TaskState, VideoRequest
from core.runware.wire import (
    MalformedReply,
    Reply,
    WireError,
    WireItem,
    carries_media,
    data_uri,
    encode_tasks,
    parse_body,
    video_task,
    webhook_reply,
)
from core.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Runware does not document a cap on the task array; 50 keeps one poll request modest.
POLL_BATCH_SIZE = 50
# One integration saw mediaStorage answer mediaUUID "1" before the real UUID was known.
_PLACEHOLDER_MEDIA_UUIDS = frozenset({"", "1"})
# How many getResponse questions to ask for a placeholder mediaUUID before giving up.
_MEDIA_RESOLVE_TRIES = 5
_MAX_BACKOFF_S = 30.0
_MAX_MESSAGE_CHARS = 300
_DOWNLOAD_CHUNK = 64 * 1024
# The task types the request metrics name; any other is "other" (labels stay few).
_OBSERVED_TASK_TYPES = frozenset({"videoInference", "getResponse", "mediaStorage"})


class _Transient(Exception):
    """An attempt failed in a way worth retrying. `maybe_processed`: Runware may have acted on it."""

    def __init__(self, error: RunwareError, *, maybe_processed: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.maybe_processed = maybe_processed


class RunwareClient:
    """Talks to Runware over one shared aiohttp session. Safe to use from many coroutines at once."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        api_url: str,
        api_key: SecretStr,
        timeout_s: float = 30.0,
        max_attempts: int = 4,
        retry_base_s: float = 0.5,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._http = http
        self._api_url = api_url
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self.requests_sent = 0
        """HTTP POSTs sent to the API URL, retries and probes included."""
        self.observer: Observer = NULL_OBSERVER
        """Told of each request's duration and of each error (bot.py sets the metrics here)."""

    @classmethod
    def from_settings(cls, http: aiohttp.ClientSession, settings: Settings) -> RunwareClient:
        """A client configured from the bot's settings."""
        return cls(
            http,
            api_url=settings.runware_api_url,
            api_key=settings.runware_api_key,
            timeout_s=settings.runware_request_timeout_s,
        )

    def __repr__(self) -> str:
        return f"RunwareClient(api_url={self._api_url!r})"

    # --- public operations ---

    async def upload_image(self, data: bytes, mime: str) -> str:
        """Upload an image as a data URI (mediaStorage upload) and return its mediaUUID."""
        return await self._store_media(data, mime, "image")

    async def upload_audio(self, data: bytes, mime: str) -> str:
        """Upload audio as a data URI (mediaStorage upload) and return its mediaUUID."""
        return await self._store_media(data, mime, "audio")

    async def _store_media(self, data: bytes, mime: str, what: str) -> str:
        """Upload any media with mediaStorage and return its real mediaUUID."""
        # Runware's SDK marks the older imageUpload task deprecated in favour of mediaStorage.
        media = data_uri(data, mime)

        async def attempt() -> tuple[str | None, str]:
            # A fresh taskUUID per attempt: reusing one after a lost reply would only earn conflictTaskUUID.
            task_uuid = str(uuid.uuid4())
            reply = await self._send(
                [{"taskType": "mediaStorage", "taskUUID": task_uuid, "operation": "upload", "media": media}]
            )
            self._raise_for_errors(reply, task_uuid, retry_transient=True)
            return _first_with(reply, task_uuid, lambda i: i.media_uuid), task_uuid

        # The answer's mediaURL is not needed (nor logged: it shows the member's file): the video task
        # names the upload by its mediaUUID.
        media_uuid, task_uuid = await self._retrying(f"mediaStorage upload ({what})", attempt)
        if media_uuid is None or media_uuid in _PLACEHOLDER_MEDIA_UUIDS:
            # Seen in one integration: "1" first, the real UUID only via getResponse on the upload's taskUUID.
            log.info(
                "Runware answered placeholder mediaUUID=%r task=%s; asking getResponse", media_uuid, task_uuid
            )
            media_uuid = await self._resolve_media_uuid(task_uuid)
        log.info("Runware %s uploaded media=%s bytes=%d", what, media_uuid, len(data))
        return media_uuid

    async def submit_video(self, req: VideoRequest) -> None:
        """Submit the OmniHuman-1 task. Returns once Runware has it (conflictTaskUUID counts as accepted).

        After an ambiguous failure (timeout, 5xx, lost connection) the task may already exist, so getResponse
        is asked before the same taskUUID is sent again; if that question cannot be answered, the original
        (retryable) error is raised and the job stays ambiguous for the caller to settle.
        """
        task = video_task(req)
        last: _Transient | None = None
        for attempt in range(1, self._max_attempts + 1):
            if last is not None:
                await self._backoff(attempt - 1)
                if last.maybe_processed and await self._task_exists(req.task_uuid, last):
                    log.info("Runware already has task=%s after an ambiguous submit", req.task_uuid)
                    return
            try:
                reply = await self._send([task])
            except _Transient as failure:
                last = failure
                self._log_attempt("videoInference", attempt, failure.error)
                continue
            self._read_submit_ack(reply, req.task_uuid)
            return
        assert last is not None
        log.error("Runware videoInference gave up after %d attempts: %s", self._max_attempts, last.error)
        raise last.error

    def read_webhook(self, raw: bytes) -> TaskResult:
        """A webhook body (Runware's flat result object, or an error envelope) as its task's result, read
        as a poll's answer is: the same errors, codes and scrubbing. Raises MalformedReply when the body
        is not JSON, not an object, or does not name exactly one taskUUID."""
        task_uuid, reply = webhook_reply(raw)
        try:
            return self._read_poll([task_uuid], reply)[task_uuid]
        except RunwareError as error:
            # An account-level error about this task: the task failed.
            return TaskResult(task_uuid, TaskState.ERROR, error=_with(error, task_uuid=task_uuid))

    async def poll(self, task_uuids: Sequence[str]) -> dict[str, TaskResult]:
        """Ask getResponse about many tasks, POLL_BATCH_SIZE per request. Every input UUID gets a result."""
        wanted = list(dict.fromkeys(task_uuids))
        results: dict[str, TaskResult] = {}
        for start in range(0, len(wanted), POLL_BATCH_SIZE):
            results.update(await self._poll_chunk(wanted[start : start + POLL_BATCH_SIZE]))
        return results

    async def check_auth(self) -> None:
        """Make one cheap authenticated call; raise RunwareError(kind=AUTH) if the key is refused."""
        probe = str(uuid.uuid4())

        async def attempt() -> Reply:
            return await self._send([{"taskType": "getResponse", "taskUUID": probe}])

        try:
            reply = await self._retrying("getResponse (auth check)", attempt)
        except RunwareError as exc:
            if exc.kind is ErrorKind.PERMISSION:
                # 403: the key is known but may not be used; for a start-up check that is an auth failure.
                raise _with(exc, kind=ErrorKind.AUTH) from None
            raise
        for wire in reply.errors:
            error = self._error(wire, reply.status)
            if error.kind in (ErrorKind.AUTH, ErrorKind.PERMISSION):
                raise _with(error, kind=ErrorKind.AUTH)
            if error.kind is ErrorKind.FUNDS:
                raise error
        # Anything else (typically taskFailedOrNotFound for the random UUID) means the key was accepted.
        log.info("Runware API key accepted")

    async def download(self, url: str, max_bytes: int) -> bytes | None:
        """GET an output file (no Authorization header). None if it is larger than max_bytes."""
        # No total timeout: a large video on a slow link is fine as long as bytes keep arriving.
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout_s, sock_read=self._timeout_s)
        shown = str(URL(url).with_query(None))  # the query may hold a signature: keep it out of logs

        async def attempt() -> bytes | None:
            try:
                async with self._http.get(url, timeout=timeout) as resp:
                    if resp.status == 429 or resp.status >= 500:
                        error = RunwareError(
                            classify_error(None, resp.status),
                            f"download answered HTTP {resp.status}",
                            http_status=resp.status,
                        )
                        raise _Transient(error, maybe_processed=False)
                    if resp.status >= 400:
                        kind = ErrorKind.NOT_FOUND if resp.status in (403, 404, 410) else ErrorKind.UNKNOWN
                        raise RunwareError(
                            kind, f"download answered HTTP {resp.status}", http_status=resp.status
                        )
                    if resp.content_length is not None and resp.content_length > max_bytes:
                        log.info("Runware output %s is %d bytes > %d", shown, resp.content_length, max_bytes)
                        return None
                    buf = bytearray()
                    async for chunk in resp.content.iter_chunked(_DOWNLOAD_CHUNK):
                        buf += chunk
                        if len(buf) > max_bytes:
                            log.info("Runware output %s exceeds %d bytes while streaming", shown, max_bytes)
                            return None
                    return bytes(buf)
            except TimeoutError as exc:
                error = RunwareError(ErrorKind.TIMEOUT, f"download stalled for {self._timeout_s:g} s")
                raise _Transient(error, maybe_processed=False) from exc
            except aiohttp.ClientError as exc:
                error = RunwareError(ErrorKind.CONNECTION, f"download failed: {type(exc).__name__}")
                raise _Transient(error, maybe_processed=False) from exc

        return await self._retrying(f"download {shown}", attempt)

    # --- polling helpers ---

    async def _poll_chunk(self, chunk: list[str]) -> dict[str, TaskResult]:
        tasks = [{"taskType": "getResponse", "taskUUID": task_uuid} for task_uuid in chunk]

        async def attempt() -> dict[str, TaskResult]:
            return self._read_poll(chunk, await self._send(tasks))

        return await self._retrying("getResponse", attempt)

    def _read_poll(self, chunk: list[str], reply: Reply) -> dict[str, TaskResult]:
        unattributed = [self._error(e, reply.status) for e in reply.unattributed_errors]
        attribute_to_only_task = False
        if unattributed:
            first = unattributed[0]
            # A failed request, or an account-level problem, concerns every task: raise it.
            account_kinds = (ErrorKind.AUTH, ErrorKind.FUNDS, ErrorKind.PERMISSION, ErrorKind.RATE_LIMIT)
            # A server or connection error without a taskUUID is about the request, not the task (an
            # `internalServerError` answered with HTTP 200): ask again later rather than fail a task that
            # may still finish and be billed.
            request_kinds = (ErrorKind.SERVER, ErrorKind.CONNECTION)
            if not reply.ok or first.kind in account_kinds or first.kind in request_kinds:
                raise first
            attribute_to_only_task = len(chunk) == 1
            if not attribute_to_only_task:
                log.warning("Runware getResponse error without taskUUID ignored: %s", first)
        elif not reply.ok and not reply.items and not reply.errors:
            raise RunwareError(
                classify_error(None, reply.status),
                f"getResponse answered HTTP {reply.status}",
                http_status=reply.status,
            )
        results = {}
        for task_uuid in chunk:
            errors = [self._error(e, reply.status) for e in reply.errors_for(task_uuid)]
            if attribute_to_only_task:
                errors += [_with(e, task_uuid=task_uuid) for e in unattributed]
            results[task_uuid] = self._task_result(task_uuid, reply.items_for(task_uuid), errors)
        return results

    def _task_result(self, task_uuid: str, items: list[WireItem], errors: list[RunwareError]) -> TaskResult:
        successes = [i for i in items if i.is_success]
        if successes:
            # Polls return the cumulative list (and duplicates happen): the first success wins.
            first = successes[0]
            distinct = {i.video_uuid or i.video_url for i in successes}
            if len(distinct) > 1:
                log.info("Runware task=%s has %d results; using the first", task_uuid, len(distinct))
            if not first.video_url:
                error = RunwareError(
                    ErrorKind.PROVIDER, "Runware reported success without a videoURL", task_uuid=task_uuid
                )
                log.warning("Runware task failed: %s", error)
                return TaskResult(task_uuid, TaskState.ERROR, error=error)
            return TaskResult(
                task_uuid,
                TaskState.SUCCESS,
                video_url=first.video_url,
                video_uuid=first.video_uuid,
                cost_usd=first.cost,
                nsfw=first.nsfw,
                progress=100,
            )
        for item in items:
            if item.is_error:
                wire = item.error or WireError(message="Runware reported the task failed")
                errors.append(self._error(wire, 200, task_uuid=task_uuid))
        if errors:
            # Already logged by _send, with its code, message and taskUUID.
            return TaskResult(task_uuid, TaskState.ERROR, error=errors[0])
        if items:
            progress = [i.progress for i in items if i.progress is not None]
            return TaskResult(task_uuid, TaskState.PROCESSING, progress=max(progress) if progress else None)
        return TaskResult(task_uuid, TaskState.UNKNOWN)

    async def _task_exists(self, task_uuid: str, failure: _Transient) -> bool:
        """Ask once whether Runware knows task_uuid; raise the submit's own error if the answer is unclear."""
        try:
            reply = await self._send([{"taskType": "getResponse", "taskUUID": task_uuid}])
            result = self._read_poll([task_uuid], reply)[task_uuid]
        except (_Transient, RunwareError) as exc:
            log.warning("Runware could not say whether task=%s exists: %s", task_uuid, exc)
            raise failure.error from None
        if result.state is TaskState.UNKNOWN:
            return False
        # taskFailedOrNotFound: Runware does not have it, so sending it again is safe.
        return not (result.error is not None and result.error.kind is ErrorKind.NOT_FOUND)

    async def _resolve_media_uuid(self, task_uuid: str) -> str:
        async def ask() -> str | None:
            reply = await self._send([{"taskType": "getResponse", "taskUUID": task_uuid}])
            self._raise_for_errors(reply, task_uuid, retry_transient=True)
            return _first_with(reply, task_uuid, lambda i: i.media_uuid)

        for attempt in range(_MEDIA_RESOLVE_TRIES):
            if attempt:
                await self._backoff(attempt)
            found = await self._retrying("getResponse (mediaUUID)", ask)
            if found and found not in _PLACEHOLDER_MEDIA_UUIDS:
                return found
        error = RunwareError(
            ErrorKind.PROVIDER,
            f"Runware did not give the real mediaUUID after {_MEDIA_RESOLVE_TRIES} questions",
            task_uuid=task_uuid,
        )
        log.warning("Runware upload unresolved: %s", error)
        raise error

    # --- transport ---

    def _read_submit_ack(self, reply: Reply, task_uuid: str) -> None:
        wires = reply.task_errors(task_uuid)
        for wire in wires:
            if (wire.code or "").lower() == "conflicttaskuuid":
                # Runware already has this taskUUID: an earlier submit got through. Poll it.
                log.info("Runware already accepted task=%s (conflictTaskUUID)", task_uuid)
                return
        if wires:
            error = self._error(wires[0], reply.status, task_uuid=task_uuid)
            raise error
        if not reply.ok:
            raise RunwareError(
                classify_error(None, reply.status),
                f"videoInference answered HTTP {reply.status}",
                task_uuid=task_uuid,
                http_status=reply.status,
            )
        # {"data":[{"taskUUID":...}]} and {"data":[]} are both acknowledgements.
        log.info("Runware accepted task=%s", task_uuid)

    def _raise_for_errors(self, reply: Reply, task_uuid: str, *, retry_transient: bool) -> None:
        """Raise the reply's first error about task_uuid (or about no task); transient ones as _Transient."""
        wires = reply.task_errors(task_uuid)
        if wires:
            error = self._error(wires[0], reply.status, task_uuid=task_uuid)
        elif not reply.ok:
            error = RunwareError(
                classify_error(None, reply.status),
                f"Runware answered HTTP {reply.status}",
                task_uuid=task_uuid,
                http_status=reply.status,
            )
        else:
            return
        if retry_transient and error.retryable:
            raise _Transient(error, maybe_processed=True)
        raise error

    async def _send(self, tasks: list[dict[str, Any]]) -> Reply:
        """POST one task array once. Raise _Transient for retryable failures, RunwareError for 401/402/403.
        The observer hears how long it took and of every error it met."""
        task_type = str(tasks[0].get("taskType")) if tasks else "?"
        started = time.monotonic()
        try:
            return await self._send_once(tasks, task_type)
        except _Transient as failure:
            self.observer.runware_error(failure.error.kind.value)
            raise
        except RunwareError as error:
            self.observer.runware_error(error.kind.value)
            raise
        finally:
            shown = task_type if task_type in _OBSERVED_TASK_TYPES else "other"
            self.observer.runware_request(shown, time.monotonic() - started)

    async def _send_once(self, tasks: list[dict[str, Any]], task_type: str) -> Reply:
        """_send's work: the POST, and the reply read and sorted."""
        self.requests_sent += 1
        headers = {
            "Authorization": f"Bearer {self._api_key.get_secret_value()}",
            "Content-Type": "application/json",
        }
        # Uploads carry up to ~14 MB of base64: encode off the event loop, and hand aiohttp a stream
        # (raw bytes that large would be written in one blocking go).
        if any(carries_media(task) for task in tasks):
            body = await asyncio.to_thread(encode_tasks, tasks)
        else:
            body = encode_tasks(tasks)
        try:
            post = self._http.post(
                self._api_url, data=io.BytesIO(body), headers=headers, timeout=self._timeout
            )
            async with post as resp:
                status = resp.status
                raw = await resp.read()
        except TimeoutError as exc:
            error = RunwareError(ErrorKind.TIMEOUT, f"{task_type} got no answer within {self._timeout_s:g} s")
            raise _Transient(error, maybe_processed=True) from exc
        except aiohttp.ClientConnectorError as exc:
            # Never connected: the request cannot have reached Runware.
            error = RunwareError(ErrorKind.CONNECTION, f"{task_type} could not connect: {type(exc).__name__}")
            raise _Transient(error, maybe_processed=False) from exc
        except aiohttp.ClientError as exc:
            error = RunwareError(ErrorKind.CONNECTION, f"{task_type} connection failed: {type(exc).__name__}")
            raise _Transient(error, maybe_processed=True) from exc

        transient = status == 429 or status >= 500
        try:
            reply = parse_body(raw, status)
        except MalformedReply as exc:
            if 200 <= status < 300 or transient:
                kind = classify_error(None, status) if transient else ErrorKind.SERVER
                error = RunwareError(kind, f"{task_type}: {exc}", http_status=status)
                raise _Transient(error, maybe_processed=status != 429) from None
            reply = Reply(status=status, items=[], errors=[])
        # Every error, in either failure shape, is logged once here with its code, message and taskUUID.
        nested = [(i.error, i.task_uuid) for i in reply.items if i.is_error and i.error is not None]
        for wire, item_task in [(e, e.task_uuid) for e in reply.errors] + nested:
            log.warning(
                "Runware error http=%s type=%s code=%s task=%s: %s",
                status,
                wire.task_type or task_type,
                wire.code,
                item_task,
                self._scrub(wire.message or ""),
            )
        if not transient and status not in (401, 402, 403):
            # Errors raised below are observed by _send; these (in an answered reply) are observed here.
            for wire in [*reply.errors, *(e for e, _ in nested)]:
                self.observer.runware_error(classify_error(wire.code, status).value)
        if transient or status in (401, 402, 403):
            first = (
                reply.errors[0] if reply.errors else WireError(message=f"{task_type} answered HTTP {status}")
            )
            error = self._error(first, status)
            if transient:
                # 429 means "not taken"; a 5xx may have been processed before it failed.
                raise _Transient(error, maybe_processed=status != 429)
            raise error
        return reply

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run attempt() up to max_attempts times, backing off after each _Transient failure."""
        last: RunwareError | None = None
        for number in range(1, self._max_attempts + 1):
            if number > 1:
                await self._backoff(number - 1)
            try:
                return await attempt()
            except _Transient as failure:
                last = failure.error
                self._log_attempt(what, number, last)
        assert last is not None
        log.error("Runware %s gave up after %d attempts: %s", what, self._max_attempts, last)
        raise last

    async def _backoff(self, failures: int) -> None:
        # Exponential with jitter so many jobs retrying at once spread out over Runware's shared queues.
        delay = min(self._retry_base_s * 2 ** (failures - 1), _MAX_BACKOFF_S)
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))

    def _log_attempt(self, what: str, number: int, error: RunwareError) -> None:
        log.warning("Runware %s attempt %d/%d failed: %s", what, number, self._max_attempts, error)

    def _error(self, wire: WireError, http_status: int, *, task_uuid: str | None = None) -> RunwareError:
        message = self._scrub(wire.message or wire.code or "Runware reported an error")
        if wire.parameter:
            message = f"{message} (parameter {self._scrub(wire.parameter)})"
        return RunwareError(
            classify_error(wire.code, http_status),
            message,
            code=self._scrub(wire.code) if wire.code else None,
            task_uuid=wire.task_uuid or task_uuid,
            http_status=http_status,
        )

    def _malformed_reply(self, reply: Reply, message: str, task_uuid: str) -> _Transient:
        error = RunwareError(ErrorKind.SERVER, message, task_uuid=task_uuid, http_status=reply.status)
        return _Transient(error, maybe_processed=True)

    def _scrub(self, text: str) -> str:
        """Remove the API key and webhook URLs' secrets from text that came from the server (an error may
        echo what it was sent, e.g. a refused webhookURL)."""
        secret = self._api_key.get_secret_value()
        if secret:
            text = text.replace(secret, "***")
        text = redact_webhook_secrets(text)
        if len(text) > _MAX_MESSAGE_CHARS:
            text = text[: _MAX_MESSAGE_CHARS - 1] + "…"
        return text


def _first_with(reply: Reply, task_uuid: str, pick: Callable[[WireItem], str | None]) -> str | None:
    """The first value pick() finds, preferring items about task_uuid (some replies omit the taskUUID)."""
    for item in reply.items_for(task_uuid) + [i for i in reply.items if i.task_uuid != task_uuid]:
        value = pick(item)
        if value:
            return value
    return None


def _with(
    error: RunwareError, *, kind: ErrorKind | None = None, task_uuid: str | None = None
) -> RunwareError:
    """A copy of error with another kind or taskUUID."""
    return RunwareError(
        kind or error.kind,
        error.message,
        code=error.code,
        task_uuid=task_uuid or error.task_uuid,
        http_status=error.http_status,
    )
