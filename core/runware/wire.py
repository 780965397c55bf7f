"""The JSON Runware speaks: the task objects the client sends, and the pydantic models answers are read into.

Every request is one JSON array of tasks POSTed to one URL (see docs/runware-api.md). Answers are read
leniently: a result item of unexpected shape is skipped and an unreadable error kept as a bare message; only a
body that is not the promised JSON object raises MalformedReply.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.runware.tasks import OMNIHUMAN_MODEL, VideoRequest

log = logging.getLogger(__name__)


# --- requests ----------------------------------------------------------------------------------------------


def encode_tasks(tasks: list[dict[str, Any]]) -> bytes:
    """The request body: the task array as JSON bytes."""
    return json.dumps(tasks).encode()


def carries_media(task: dict[str, Any]) -> bool:
    """True for upload tasks, whose bodies hold a whole file."""
    return task.get("taskType") == "mediaStorage"


def data_uri(data: bytes, mime: str) -> str:
    """A file as the base64 data URI a mediaStorage upload carries."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def video_task(req: VideoRequest) -> dict[str, Any]:
    """The videoInference task object for one OmniHuman-1 request."""
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": req.task_uuid,
        "model": OMNIHUMAN_MODEL,
        "deliveryMethod": "async",  # the only method OmniHuman-1 allows
        "inputs": {"referenceImages": [req.image_ref], "audio": req.audio_ref},
        "outputFormat": req.output_format,
        "outputQuality": req.output_quality,
        "includeCost": True,
        "safety": {"mode": req.safety_mode.value},
        "ttl": req.ttl_s,
    }
    if req.webhook_url is not None:
        task["webhookURL"] = req.webhook_url
    return task


def webhook_reply(raw: bytes) -> tuple[str, Reply]:
    """Read a webhook body: Runware POSTs the flat result object (no `data` wrapper); an error may come
    as the `{"error": {...}, "taskUUID": ...}` or `{"errors": [...]}` envelope (what Runware sends on
    failure is undocumented), and a `{"data": [...]}` envelope is read too. Returns the one taskUUID the
    body is about and the body as a Reply; MalformedReply when it is not JSON, not an object, or names
    no taskUUID or several."""
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise MalformedReply("the webhook body is not a JSON object")
        enveloped = "data" in body or "errors" in body or ("error" in body and "status" not in body)
        reply = parse_body(raw if enveloped else json.dumps({"data": [body]}).encode(), 200)
    except RecursionError as exc:
        # Nested deeper than the JSON reader (or writer) recurses, within the size cap: not a result.
        raise MalformedReply("the webhook body is nested too deeply") from exc
    except ValueError as exc:
        raise MalformedReply("the webhook body is not JSON") from exc
    named = {i.task_uuid for i in reply.items} | {e.task_uuid for e in reply.errors}
    named.discard(None)
    if len(named) != 1:
        raise MalformedReply("the webhook body does not name exactly one taskUUID")
    return str(named.pop()), reply


# --- replies -----------------------------------------------------------------------------------------------


def _text_or_none(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return str(value)
    return None


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class WireError(_Wire):
    """One error object, from the top-level `errors` array or nested in a result item."""

    code: str | None = None
    message: str | None = None
    task_uuid: str | None = Field(default=None, alias="taskUUID")
    task_type: str | None = Field(default=None, alias="taskType")
    parameter: str | None = None

    @field_validator("code", "message", "task_uuid", "task_type", mode="before")
    @classmethod
    def _lenient_text(cls, value: object) -> str | None:
        return _text_or_none(value)

    @field_validator("parameter", mode="before")
    @classmethod
    def _lenient_parameter(cls, value: object) -> str | None:
        # Documented as a string or an array of strings.
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return _text_or_none(value)


class WireItem(_Wire):
    """One result item from `data`: an ack, an upload result, or a task's status."""

    task_type: str | None = Field(default=None, alias="taskType")
    task_uuid: str | None = Field(default=None, alias="taskUUID")
    status: str | None = None
    progress: int | None = None
    media_uuid: str | None = Field(default=None, alias="mediaUUID")
    media_url: str | None = Field(default=None, alias="mediaURL")
    video_uuid: str | None = Field(default=None, alias="videoUUID")
    video_url: str | None = Field(default=None, alias="videoURL")
    cost: float | None = None
    nsfw: bool = Field(default=False, alias="NSFWContent")
    error: WireError | None = None

    @field_validator(
        "task_type",
        "task_uuid",
        "media_uuid",
        "media_url",
        "video_uuid",
        "video_url",
        mode="before",
    )
    @classmethod
    def _lenient_text(cls, value: object) -> str | None:
        return _text_or_none(value)

    @field_validator("status", mode="before")
    @classmethod
    def _lower_status(cls, value: object) -> str | None:
        text = _text_or_none(value)
        return text.strip().lower() if text is not None else None

    @field_validator("progress", mode="before")
    @classmethod
    def _lenient_progress(cls, value: object) -> int | None:
        number = _number_or_none(value)
        return None if number is None else max(0, min(100, int(number)))

    @field_validator("cost", mode="before")
    @classmethod
    def _lenient_cost(cls, value: object) -> float | None:
        return _number_or_none(value)

    @field_validator("nsfw", mode="before")
    @classmethod
    def _lenient_bool(cls, value: object) -> bool:
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return bool(value)

    @field_validator("error", mode="before")
    @classmethod
    def _lenient_error(cls, value: object) -> object:
        if isinstance(value, str):
            return {"message": value}
        return value if isinstance(value, dict) else None

    @property
    def is_success(self) -> bool:
        """A finished result. Items without a status but with a video URL are finished too."""
        return self.status == "success" or (self.status is None and self.video_url is not None)

    @property
    def is_error(self) -> bool:
        """A failed result in the second (nested `error`) failure shape."""
        return self.status == "error"


def _number_or_none(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().rstrip("%"))
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Reply:
    """A parsed answer: HTTP status plus the result items and errors, each list possibly empty."""

    status: int
    items: list[WireItem]
    errors: list[WireError]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def items_for(self, task_uuid: str) -> list[WireItem]:
        return [i for i in self.items if i.task_uuid == task_uuid]

    def errors_for(self, task_uuid: str) -> list[WireError]:
        return [e for e in self.errors if e.task_uuid == task_uuid]

    @property
    def unattributed_errors(self) -> list[WireError]:
        return [e for e in self.errors if not e.task_uuid]

    def task_errors(self, task_uuid: str) -> list[WireError]:
        """Errors about task_uuid or about no task, in either failure shape (for single-task requests)."""
        nested = [
            i.error or WireError(message="task failed") for i in self.items_for(task_uuid) if i.is_error
        ]
        return self.errors_for(task_uuid) + self.unattributed_errors + nested


class MalformedReply(Exception):
    """The reply body is not the JSON object Runware promises."""


def parse_body(raw: bytes, status: int) -> Reply:
    """Read a reply body into a Reply; raise MalformedReply if it is not the promised JSON object."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise MalformedReply("the reply is not JSON") from exc
    if not isinstance(body, dict):
        raise MalformedReply("the reply is not a JSON object")
    data = body.get("data")
    if data is not None and not isinstance(data, dict | list):
        raise MalformedReply("`data` is neither an array nor an object")
    # The upload doc examples show `data` as a bare object instead of an array.
    raw_items = [data] if isinstance(data, dict) else data or []
    items = []
    for raw_item in raw_items:
        if not isinstance(raw_item, dict):
            log.warning("Runware reply has a non-object data item; ignored")
            continue
        try:
            items.append(WireItem.model_validate(raw_item))
        except ValidationError:
            log.warning("Runware reply has a data item of unexpected shape; ignored")
    raw_errors = body.get("errors")
    if isinstance(raw_errors, dict):
        raw_errors = [raw_errors]
    if not raw_errors and body.get("error"):
        raw_errors = [_single_error(body)]
    errors = []
    for raw_error in raw_errors if isinstance(raw_errors, list) else []:
        if not isinstance(raw_error, dict):
            raw_error = {"message": str(raw_error)}
        try:
            errors.append(WireError.model_validate(raw_error))
        except ValidationError:
            errors.append(WireError(message="unreadable error object"))
    return Reply(status=status, items=items, errors=errors)


def _single_error(body: dict[str, Any]) -> object:
    """The error of a single `{"error": {...}, "taskUUID": ..., "taskType": ...}` envelope."""
    error = body["error"]
    if not isinstance(error, dict):
        return {"message": str(error)}
    # The envelope may carry the task's identity beside the error rather than inside it.
    return {"taskUUID": body.get("taskUUID"), "taskType": body.get("taskType"), **error}
