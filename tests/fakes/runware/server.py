"""The fake Runware server: FakeRunware, its HTTP handlers and its simulation of each task type.

See the package docstring (tests/fakes/runware/__init__.py) for what it does and how tests steer it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import aiohttp
from aiohttp import web

from tests.fakes.runware.faults import Fault, FaultQueue, fault_answer
from tests.fakes.runware.outcomes import DEFAULT_VIDEO, Outcome, Upload
from tests.fakes.runware.protocol import (
    Reject,
    decode_media,
    error_item,
    is_type,
    is_uuid,
    json_response,
)

DEFAULT_API_KEY = "fake-runware-key-0123456789abcdef"
MODEL = "bytedance:5@1"


@dataclass
class _Task:
    """Server-side state of any task the fake has accepted."""

    task_type: str
    task_uuid: str
    request: dict[str, Any]
    created: float
    result: dict[str, Any] | None = None  # uploads: the finished result item
    outcome: Outcome | None = None  # video tasks
    video_name: str | None = None
    video_uuid: str | None = None
    seed: int = 0
    polls: int = 0
    forced_done: bool = False
    expired: bool = False
    hidden: bool = False  # getResponse says "not found", but the task renders and its webhook comes
    placeholder_polls_left: int = 0  # mediaStorage with a placeholder "1" answer
    created_wall: float = 0.0  # time.time() at acceptance
    finished_wall: float | None = None  # time.time() at which the task finished (video tasks)
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class WebhookCall:
    """One POST the fake made to a task's webhookURL: the HTTP status it got, or the failure (a refused
    connection, a timeout) as `error`; `at` is time.time() when the answer (or failure) came."""

    task_uuid: str
    status: int | None
    error: str | None
    at: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class FakeRunware:
    """An aiohttp server on 127.0.0.1 that behaves like Runware's REST API. See the package docstring.

    Every constructor argument is also a public attribute that tests may change while the server runs.

    - `polls_to_finish` / `seconds_to_finish`: when a video task finishes. Its result appears in the answer to
      its Nth getResponse poll (earlier polls see "processing"), or once that many seconds have passed since
      submission; if both are given, whichever comes first. If neither is given, `polls_to_finish` is 2.
      0 polls means finished at submission.
    - `default_outcome`: the outcome of tasks without a queued (`next_outcome`) or set (`set_outcome`) one.
    - `bare_upload_data`: answer uploads with `"data": {...}` instead of `"data": [{...}]`.
    - `placeholder_media_uuid`: mediaStorage uploads first answer `mediaUUID: "1"`; the real UUID comes from
      getResponse on the upload's taskUUID after `placeholder_polls` more answers of "1" (default 0).
    - `ack_empty_data`: acknowledge videoInference with `{"data": []}`.
    - `conflict_status`: HTTP status of a `conflictTaskUUID` answer (default 400).
    - `poll_error_status`: HTTP status of a getResponse answer that carries `errors` (default 200).
    - `report_progress`: include `progress` in processing items; `processing_status`: the status word used
      ("processing"; older variants said "pending" or "queued").
    - `video_bytes`: what GET /videos/... serves by default; `omit_content_length`: stream it chunked instead.
    - `accept_inline_media`: let videoInference inputs be URLs or data URIs, not only uploaded UUIDs.

    Webhooks: a video task submitted with a `webhookURL` is POSTed there when it finishes (as its time or
    a `finish()` says; a task that finishes by polls is POSTed at the finishing poll), with the flat result
    object (a failure in the "nested" shape as a flat item with status "error", in the "errors" shape as
    `{"errors": [...]}`), as Runware does:
    - `webhooks`: "send", or "never" (the URL is accepted and never called).
    - `webhook_delay_s`: wait this long after the task finishes before the first POST.
    - `webhook_repeats`: POST the result this many more times after a delivery (duplicates happen).
    - a non-2xx answer, a refused connection or no answer within `webhook_timeout_s` (Runware: ~5 s) is
      retried after `webhook_retry_base_s` (250 ms), doubling up to `webhook_retry_cap_s` (8 s), for up
      to `webhook_attempts` POSTs in all.
    Every POST is recorded in `webhook_calls`; `finished_at(task_uuid)` tells when a task finished.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        port: int = 0,
        polls_to_finish: int | None = None,
        seconds_to_finish: float | None = None,
        default_outcome: Outcome | None = None,
        bare_upload_data: bool = False,
        placeholder_media_uuid: bool = False,
        placeholder_polls: int = 0,
        ack_empty_data: bool = False,
        conflict_status: int = 400,
        poll_error_status: int = 200,
        report_progress: bool = True,
        processing_status: str = "processing",
        video_bytes: bytes = DEFAULT_VIDEO,
        omit_content_length: bool = False,
        accept_inline_media: bool = False,
        webhooks: Literal["send", "never"] = "send",
        webhook_delay_s: float = 0.0,
        webhook_repeats: int = 0,
        webhook_timeout_s: float = 5.0,
        webhook_retry_base_s: float = 0.25,
        webhook_retry_cap_s: float = 8.0,
        webhook_attempts: int = 12,
    ) -> None:
        self.api_key = api_key
        self.port = port
        if polls_to_finish is None and seconds_to_finish is None:
            polls_to_finish = 2
        self.polls_to_finish = polls_to_finish
        self.seconds_to_finish = seconds_to_finish
        self.default_outcome = default_outcome or Outcome.success()
        self.bare_upload_data = bare_upload_data
        self.placeholder_media_uuid = placeholder_media_uuid
        self.placeholder_polls = placeholder_polls
        self.ack_empty_data = ack_empty_data
        self.conflict_status = conflict_status
        self.poll_error_status = poll_error_status
        self.report_progress = report_progress
        self.processing_status = processing_status
        self.video_bytes = video_bytes
        self.omit_content_length = omit_content_length
        self.accept_inline_media = accept_inline_media
        self.webhooks = webhooks
        self.webhook_delay_s = webhook_delay_s
        self.webhook_repeats = webhook_repeats
        self.webhook_timeout_s = webhook_timeout_s
        self.webhook_retry_base_s = webhook_retry_base_s
        self.webhook_retry_cap_s = webhook_retry_cap_s
        self.webhook_attempts = webhook_attempts

        # Recording, for assertions.
        self.requests: list[Any] = []
        """Each POST body, parsed (or its raw text when it was not JSON), in arrival order."""
        self.task_counts: Counter[str] = Counter()
        """Tasks received per taskType (every POST, including rejected and faulted ones)."""
        self.submitted: dict[str, dict[str, Any]] = {}
        """Accepted videoInference tasks by taskUUID (the first accepted submission)."""
        self.submission_counts: Counter[str] = Counter()
        """videoInference tasks received per taskUUID, conflicts, rejects and faulted POSTs included."""
        self.uploads: dict[str, Upload] = {}
        """Uploaded assets by imageUUID / mediaUUID."""
        self.video_requests: list[dict[str, str]] = []
        """Headers of each GET /videos/... request."""
        self.webhook_calls: list[WebhookCall] = []
        """Each POST made to a webhookURL, in order."""

        self._tasks: dict[str, _Task] = {}
        self._outcomes: dict[str, Outcome] = {}
        self._queued: list[Outcome] = []
        self._faults = FaultQueue()
        self._videos: dict[str, bytes] = {}
        self._outputs_deleted = False
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._webhook_tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    # --- lifecycle ---

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>, where GET /videos/... is served."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The API URL to give the client (like https://api.runware.ai/v1)."""
        return f"{self.base_url}/v1"

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port unless one was given)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)  # base64 uploads of 10 MB files
        app.router.add_post("/v1", self._handle_post)
        app.router.add_post("/", self._handle_post)
        app.router.add_get("/videos/{name}", self._handle_video)
        app.router.add_get("/media/{media_uuid}", self._handle_media)
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, shutdown_timeout=1.0).start()
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Stop serving and sending webhooks; requests held by `inject_hang` are released at once."""
        self._stopping.set()
        for task in self._webhook_tasks:
            task.cancel()
        await asyncio.gather(*self._webhook_tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- steering ---

    def next_outcome(self, *outcomes: Outcome) -> None:
        """Queue outcomes for the next video tasks submitted without a `set_outcome` (first in, first out)."""
        self._queued.extend(outcomes)

    def set_outcome(self, task_uuid: str, outcome: Outcome) -> None:
        """Fix the outcome of one task, before or after it is submitted."""
        self._outcomes[task_uuid] = outcome
        if task_uuid in self._tasks:
            self._tasks[task_uuid].outcome = outcome

    def finish(self, task_uuid: str) -> None:
        """Make a submitted task finished now, whatever its poll count or age."""
        state = self._tasks[task_uuid]
        state.forced_done = True
        self._done(state, state.outcome or self.default_outcome)

    def delete_outputs(self) -> None:
        """Every output URL answers 404 from now on, as when a video's ttl has run out."""
        self._outputs_deleted = True

    def expire(self, task_uuid: str) -> None:
        """Forget a task: getResponse answers taskFailedOrNotFound from now on (an expired task)."""
        self._tasks[task_uuid].expired = True

    def hide(self, task_uuid: str) -> None:
        """getResponse answers taskFailedOrNotFound about a task from now on, yet the task keeps rendering
        and its webhook still comes when it finishes (a lookup that lost the task while a worker had it)."""
        self._tasks[task_uuid].hidden = True

    def inject(
        self,
        status: int,
        times: int = 1,
        *,
        task_type: str | None = None,
        process: bool = False,
        code: str | None = None,
        message: str | None = None,
        envelope: Literal["errors", "error"] = "errors",
    ) -> None:
        """Answer the next `times` matching POSTs with HTTP `status` and an error body.

        `task_type`: only POSTs containing a task of that type match. `process=True`: handle the request
        normally first (so it takes effect), then send the fault instead of the real answer (a lost reply).
        `envelope="error"`: the single `{"error": {...}, "taskUUID": ..., "taskType": ...}` shape that
        Runware's SDK also reads, instead of `{"errors": [...]}`.
        """
        self._faults.add(
            Fault(
                "status",
                times,
                task_type,
                process,
                status=status,
                code=code,
                message=message,
                envelope=envelope,
            )
        )

    def inject_non_json(
        self, times: int = 1, *, task_type: str | None = None, process: bool = False, status: int = 200
    ) -> None:
        """Answer the next `times` matching POSTs with an HTML body (default HTTP 200)."""
        self._faults.add(Fault("non_json", times, task_type, process, status=status))

    def inject_hang(
        self, seconds: float, times: int = 1, *, task_type: str | None = None, process: bool = False
    ) -> None:
        """Hold the next `times` matching POSTs for `seconds` (longer than the client's timeout), then 504.

        With `process=True` the request takes effect before the hold and the real answer is sent after it.
        """
        self._faults.add(Fault("hang", times, task_type, process, status=504, seconds=seconds))

    def inject_disconnect(
        self, times: int = 1, *, task_type: str | None = None, process: bool = False
    ) -> None:
        """Drop the connection of the next `times` matching POSTs without answering."""
        self._faults.add(Fault("disconnect", times, task_type, process))

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self._faults.clear()

    # --- inspection ---

    def tasks_of_type(self, task_type: str) -> list[dict[str, Any]]:
        """Every task object of that taskType received, in order, across all POSTs."""
        return [t for body in self.requests if isinstance(body, list) for t in body if is_type(t, task_type)]

    def task(self, task_uuid: str) -> dict[str, Any] | None:
        """The request object of any accepted task (uploads included)."""
        state = self._tasks.get(task_uuid)
        return state.request if state else None

    def finished_at(self, task_uuid: str) -> float | None:
        """When (time.time()) a video task finished, or None while it runs."""
        state = self._tasks.get(task_uuid)
        return state.finished_wall if state else None

    def webhook_body(self, task_uuid: str) -> dict[str, Any]:
        """What the fake POSTs (or would) to the task's webhookURL about it now (a finished task's result)."""
        return self._webhook_body(self._tasks[task_uuid])

    def webhook_deliveries(self, task_uuid: str) -> int:
        """How many webhook POSTs about this task were answered 2xx."""
        return sum(1 for c in self.webhook_calls if c.task_uuid == task_uuid and c.ok)

    def polls_of(self, task_uuid: str) -> int:
        """How many getResponse questions about this task were answered."""
        state = self._tasks.get(task_uuid)
        return state.polls if state else 0

    # --- HTTP handlers ---

    async def _handle_post(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        self.requests.append(body)
        if isinstance(body, list):
            for task in body:
                if isinstance(task, dict):
                    self.task_counts[str(task.get("taskType"))] += 1
                    if task.get("taskType") == "videoInference":
                        self.submission_counts[str(task.get("taskUUID"))] += 1

        fault = self._faults.take(body)
        answer: web.Response | None = None
        if fault is None or fault.process:
            answer = self._answer(request, body)
        if fault is None:
            assert answer is not None
            return answer
        return await fault_answer(request, fault, answer, body, self._stopping)

    async def _handle_video(self, request: web.Request) -> web.StreamResponse:
        self.video_requests.append(dict(request.headers))
        data = self._videos.get(request.match_info["name"])
        if data is None or self._outputs_deleted:
            return web.Response(status=404, text="not found")
        name = request.match_info["name"]
        content_type = {"mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime"}.get(
            name.rsplit(".", 1)[-1], "application/octet-stream"
        )
        if not self.omit_content_length:
            return web.Response(body=data, content_type=content_type)
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(data), 16 * 1024):
            await response.write(data[start : start + 16 * 1024])
        await response.write_eof()
        return response

    async def _handle_media(self, request: web.Request) -> web.StreamResponse:
        upload = self.uploads.get(request.match_info["media_uuid"])
        if upload is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=upload.data, content_type=upload.mime or "application/octet-stream")

    # --- the API ---

    def _answer(self, request: web.Request, body: Any) -> web.Response:
        if not isinstance(body, list) or not body or not all(isinstance(t, dict) for t in body):
            if not self._authorized(request, None):
                return self._unauthorized()
            return json_response(
                400,
                {
                    "errors": [
                        error_item("invalidRequestBody", "The body must be a JSON array of task objects.")
                    ]
                },
            )
        tasks: list[dict[str, Any]] = body
        if not self._authorized(request, tasks[0]):
            return self._unauthorized()
        data: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        statuses: list[int] = []
        for task in tasks:
            task_type = task.get("taskType")
            task_uuid = task.get("taskUUID")
            try:
                if task_type == "authentication":
                    data.append({"taskType": "authentication", "connectionSessionUUID": str(uuid.uuid4())})
                elif task_type == "imageUpload":
                    data.append(self._image_upload(task))
                elif task_type == "mediaStorage":
                    data.append(self._media_storage(task))
                elif task_type == "videoInference":
                    data.extend(self._video_inference(task))
                elif task_type == "getResponse":
                    data.extend(self._get_response(task))
                elif task_type == "getTaskDetails":
                    data.append(self._get_task_details(task))
                else:
                    raise Reject(
                        "unsupportedTaskType", f"Unsupported taskType {task_type!r}.", parameter="taskType"
                    )
            except Reject as reject:
                item = error_item(
                    reject.code, reject.message, task_type=reject.task_type or task_type, task_uuid=task_uuid
                )
                if reject.parameter:
                    item["parameter"] = reject.parameter
                errors.append(item)
                statuses.append(reject.status)
        reply: dict[str, Any] = {"data": data}
        if errors:
            reply["errors"] = errors
        status = next((s for s in statuses if s != 200), 200)
        if (
            self.bare_upload_data
            and len(data) == 1
            and not errors
            and data[0].get("taskType") in ("imageUpload", "mediaStorage")
        ):
            reply["data"] = data[0]
        return json_response(status, reply)

    def _authorized(self, request: web.Request, first: dict[str, Any] | None) -> bool:
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return True
        # Runware also accepts the key as a first task {"taskType": "authentication", "apiKey": ...}.
        return (
            first is not None
            and first.get("taskType") == "authentication"
            and first.get("apiKey") == self.api_key
        )

    def _unauthorized(self) -> web.Response:
        error = error_item("invalidApiKey", "Invalid API key. Get one at https://my.runware.ai/keys")
        return json_response(401, {"errors": [error]})

    def _new_task(self, task: dict[str, Any]) -> str:
        task_uuid = task.get("taskUUID")
        if not isinstance(task_uuid, str) or not is_uuid(task_uuid):
            raise Reject("invalidTaskUUID", "taskUUID must be a UUID v4.", parameter="taskUUID")
        return task_uuid

    def _image_upload(self, task: dict[str, Any]) -> dict[str, Any]:
        task_uuid = self._new_task(task)
        image = task.get("image")
        if not isinstance(image, str) or not image:
            raise Reject("missingImage", "image is required.", parameter="image")
        data, mime, source = decode_media(image, "invalidImage")
        image_uuid = str(uuid.uuid4())
        self.uploads[image_uuid] = Upload("image", data, mime, task_uuid, source)
        result = {
            "taskType": "imageUpload",
            "taskUUID": task_uuid,
            "imageUUID": image_uuid,
            "imageURL": f"{self.base_url}/media/{image_uuid}",
        }
        self._tasks[task_uuid] = _Task("imageUpload", task_uuid, task, time.monotonic(), result=result)
        return result

    def _media_storage(self, task: dict[str, Any]) -> dict[str, Any]:
        task_uuid = self._new_task(task)
        operation = task.get("operation")
        if operation == "delete":
            media_uuid = task.get("mediaUUID")
            if not isinstance(media_uuid, str) or self.uploads.pop(media_uuid, None) is None:
                raise Reject("mediaNotFound", "No such media.", parameter="mediaUUID")
            return {
                "taskType": "mediaStorage",
                "taskUUID": task_uuid,
                "operation": "delete",
                "mediaUUID": media_uuid,
            }
        if operation != "upload":
            raise Reject("invalidOperation", "operation must be upload or delete.", parameter="operation")
        media = task.get("media")
        if not isinstance(media, str) or not media:
            raise Reject("missingMedia", "media is required.", parameter="media")
        data, mime, source = decode_media(media, "invalidMedia")
        media_uuid = str(uuid.uuid4())
        self.uploads[media_uuid] = Upload("media", data, mime, task_uuid, source)
        result = {
            "taskType": "mediaStorage",
            "taskUUID": task_uuid,
            "operation": "upload",
            "mediaUUID": media_uuid,
            "mediaURL": f"{self.base_url}/media/{media_uuid}",
        }
        state = _Task("mediaStorage", task_uuid, task, time.monotonic(), result=result)
        self._tasks[task_uuid] = state
        if self.placeholder_media_uuid:
            state.placeholder_polls_left = self.placeholder_polls
            return {**result, "mediaUUID": "1"}
        return result

    def _video_inference(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        task_uuid = self._new_task(task)
        if task_uuid in self._tasks:
            raise Reject(
                "conflictTaskUUID",
                "A task with this taskUUID already exists.",
                parameter="taskUUID",
                status=self.conflict_status,
            )
        self._validate_video(task)
        outcome = self._outcomes.get(task_uuid) or (
            self._queued.pop(0) if self._queued else self.default_outcome
        )
        ext = str(task.get("outputFormat", "MP4")).lower()
        video_uuid = str(uuid.uuid4())
        state = _Task(
            "videoInference",
            task_uuid,
            task,
            time.monotonic(),
            outcome=outcome,
            video_uuid=video_uuid,
            video_name=f"{video_uuid}.{ext}",
            seed=random.randint(1, 2**31 - 1),
            created_wall=time.time(),
        )
        self._tasks[task_uuid] = state
        self.submitted[task_uuid] = task
        url = task.get("webhookURL")
        if isinstance(url, str) and url:
            webhook = asyncio.create_task(self._send_webhook(state, url), name=f"webhook-{task_uuid}")
            self._webhook_tasks.add(webhook)
            webhook.add_done_callback(self._webhook_tasks.discard)
        if outcome.ok:
            self._videos[f"{video_uuid}.{ext}"] = (
                outcome.video if outcome.video is not None else self.video_bytes
            )
        if self.ack_empty_data:
            return []
        return [{"taskType": "videoInference", "taskUUID": task_uuid}]

    def _validate_video(self, task: dict[str, Any]) -> None:
        if "model" not in task:
            raise Reject("missingModel", "model is required.", parameter="model")
        if task["model"] != MODEL:
            raise Reject("invalidModel", f"Unknown model {task['model']!r}.", parameter="model")
        if task.get("deliveryMethod") != "async":
            raise Reject(
                "invalidDeliveryMethod",
                "This model only supports deliveryMethod async.",
                parameter="deliveryMethod",
            )
        inputs = task.get("inputs")
        if not isinstance(inputs, dict):
            raise Reject("missingInputs", "inputs is required.", parameter="inputs")
        images = inputs.get("referenceImages")
        if not isinstance(images, list) or len(images) != 1:
            raise Reject(
                "invalidReferenceImages",
                "inputs.referenceImages must hold one image.",
                parameter="referenceImages",
            )
        if not self._known_media(images[0]):
            raise Reject(
                "invalidReferenceImages",
                "inputs.referenceImages names an unknown image.",
                parameter="referenceImages",
            )
        if "audio" not in inputs:
            raise Reject("missingAudio", "inputs.audio is required.", parameter="audio")
        if not self._known_media(inputs["audio"]):
            raise Reject("invalidAudio", "inputs.audio names an unknown audio file.", parameter="audio")
        quality = task.get("outputQuality", 95)
        if not isinstance(quality, int) or isinstance(quality, bool) or not 20 <= quality <= 99:
            raise Reject("invalidOutputQuality", "outputQuality must be 20-99.", parameter="outputQuality")
        if task.get("outputFormat", "MP4") not in ("MP4", "WEBM", "MOV"):
            raise Reject(
                "invalidOutputFormat", "outputFormat must be MP4, WEBM or MOV.", parameter="outputFormat"
            )
        ttl = task.get("ttl", 86400)
        if not isinstance(ttl, int) or ttl < 60:
            raise Reject("invalidTtl", "ttl must be at least 60.", parameter="ttl")
        safety = task.get("safety", {})
        if not isinstance(safety, dict) or safety.get("mode", "none") not in ("none", "fast", "full"):
            raise Reject("invalidSafety", "safety.mode must be none, fast or full.", parameter="safety")

    def _known_media(self, ref: object) -> bool:
        if not isinstance(ref, str):
            return False
        if ref in self.uploads:
            return True
        return self.accept_inline_media and ref.startswith(("http://", "https://", "data:"))

    def _get_response(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        task_uuid = task.get("taskUUID")
        state = self._tasks.get(task_uuid) if isinstance(task_uuid, str) else None
        if state is None or state.expired or state.hidden:
            raise Reject(
                "taskFailedOrNotFound",
                "The task failed or was not found.",
                parameter="taskUUID",
                status=self.poll_error_status,
            )
        state.polls += 1
        if state.task_type == "videoInference":
            return self._video_status(state)
        assert state.result is not None
        if (
            state.task_type == "mediaStorage"
            and self.placeholder_media_uuid
            and state.placeholder_polls_left > 0
        ):
            state.placeholder_polls_left -= 1
            return [{**state.result, "mediaUUID": "1", "status": "processing"}]
        return [{**state.result, "status": "success"}]

    def _video_status(self, state: _Task) -> list[dict[str, Any]]:
        outcome = state.outcome or self.default_outcome
        base: dict[str, Any] = {"taskType": "videoInference", "taskUUID": state.task_uuid}
        if not self._done(state, outcome):
            item = {**base, "status": self.processing_status}
            if self.report_progress:
                item["progress"] = self._progress(state, outcome)
            return [item]
        if not outcome.ok:
            if outcome.shape == "nested":
                return [
                    {**base, "status": "error", "error": {"code": outcome.code, "message": outcome.message}}
                ]
            # Documented failure shape: a top-level errors item; it keeps the original taskType.
            raise Reject(
                outcome.code, outcome.message, status=self.poll_error_status, task_type="videoInference"
            )
        item = {
            **base,
            "status": "success",
            "videoUUID": state.video_uuid,
            "videoURL": f"{self.base_url}/videos/{state.video_name}",
            "seed": state.seed,
        }
        if state.request.get("includeCost") and outcome.cost_usd is not None:
            item["cost"] = outcome.cost_usd
        if state.request.get("safety", {}).get("mode", "none") != "none" or outcome.nsfw:
            item["NSFWContent"] = outcome.nsfw
        return [dict(item) for _ in range(max(1, outcome.repeat))]

    def _limits(self, outcome: Outcome) -> tuple[int | None, float | None]:
        if outcome.polls_to_finish is not None or outcome.seconds_to_finish is not None:
            return outcome.polls_to_finish, outcome.seconds_to_finish
        return self.polls_to_finish, self.seconds_to_finish

    def _done(self, state: _Task, outcome: Outcome) -> bool:
        polls, seconds = self._limits(outcome)
        by_time = seconds is not None and time.monotonic() - state.created >= seconds
        done = state.forced_done or (polls is not None and state.polls >= polls) or by_time
        if done and state.finished_wall is None:
            # Finished by its age: at the moment it came of age, whenever someone looks.
            state.finished_wall = (
                state.created_wall + seconds if by_time and seconds is not None else time.time()
            )
            state.done.set()
        return done

    # --- webhooks ---

    async def _send_webhook(self, state: _Task, url: str) -> None:
        """Wait for the task to finish, then POST its result to `url` as Runware would (see the class)."""
        outcome = state.outcome or self.default_outcome
        while not self._done(state, state.outcome or outcome):
            _, seconds = self._limits(state.outcome or outcome)
            left = None if seconds is None else max(0.0, state.created + seconds - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await state.done.wait()
        if self.webhooks == "never" or state.expired:
            return
        if self.webhook_delay_s:
            await asyncio.sleep(self.webhook_delay_s)
        body = self._webhook_body(state)
        for _ in range(1 + self.webhook_repeats):
            if not await self._post_webhook(state.task_uuid, url, body):
                return

    def _webhook_body(self, state: _Task) -> dict[str, Any]:
        """The flat result object (what getResponse would answer about the task, without `data`)."""
        try:
            return self._video_status(state)[0]
        except Reject as reject:
            item = error_item(
                reject.code, reject.message, task_type="videoInference", task_uuid=state.task_uuid
            )
            return {"errors": [item]}

    async def _post_webhook(self, task_uuid: str, url: str, body: dict[str, Any]) -> bool:
        """POST until a 2xx answer, with Runware's backoff; False when every attempt failed."""
        assert self._http is not None
        delay = self.webhook_retry_base_s
        for attempt in range(self.webhook_attempts):
            if attempt:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.webhook_retry_cap_s)
            status: int | None = None
            error: str | None = None
            try:
                async with self._http.post(
                    url, json=body, timeout=aiohttp.ClientTimeout(total=self.webhook_timeout_s)
                ) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as failure:
                error = type(failure).__name__
            call = WebhookCall(task_uuid, status, error, time.time())
            self.webhook_calls.append(call)
            if call.ok:
                return True
        return False

    def _progress(self, state: _Task, outcome: Outcome) -> int:
        polls, seconds = self._limits(outcome)
        fractions = []
        if polls:
            fractions.append(state.polls / polls)
        if seconds:
            fractions.append((time.monotonic() - state.created) / seconds)
        return min(99, int(100 * max(fractions, default=0.0)))

    def _get_task_details(self, task: dict[str, Any]) -> dict[str, Any]:
        task_uuid = task.get("taskUUID")
        state = self._tasks.get(task_uuid) if isinstance(task_uuid, str) else None
        if state is None or state.expired or state.hidden:
            raise Reject("taskFailedOrNotFound", "The task failed or was not found.", parameter="taskUUID")
        response: dict[str, Any]
        if state.task_type == "videoInference":
            # A peek at the current answer: getTaskDetails does not count as a poll.
            try:
                response = self._video_status(state)[0]
            except Reject as reject:
                response = error_item(
                    reject.code, reject.message, task_type="videoInference", task_uuid=state.task_uuid
                )
        else:
            response = dict(state.result or {})
        return {
            "taskType": "getTaskDetails",
            "taskUUID": state.task_uuid,
            "request": state.request,
            "response": response,
        }
