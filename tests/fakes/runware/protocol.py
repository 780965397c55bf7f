"""Runware's wire conventions as the fake writes and reads them: error items, JSON answers, task-level
rejections, and the media forms an upload may take (data URI, bare base64, URL)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any, Literal

from aiohttp import web


class Reject(Exception):
    """A task-level error answer: one `errors` item and the HTTP status it implies."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        parameter: str | None = None,
        status: int = 400,
        task_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.parameter = parameter
        self.status = status
        self.task_type = task_type  # None: the type of the task that was asked


def is_type(task: Any, task_type: str) -> bool:
    return isinstance(task, dict) and task.get("taskType") == task_type


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def error_item(code: str, message: str, *, task_type: Any = None, task_uuid: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {"code": code, "status": "error", "message": message}
    if task_type is not None:
        item["taskType"] = task_type
    if task_uuid is not None:
        item["taskUUID"] = task_uuid
    item["documentation"] = "https://runware.ai/docs/en/getting-started/introduction"
    return item


def decode_media(value: str, code: str) -> tuple[bytes, str | None, Literal["data_uri", "base64", "url"]]:
    if value.startswith(("http://", "https://")):
        return value.encode(), None, "url"
    if value.startswith("data:"):
        header, sep, payload = value.partition(",")
        if not sep or not header.endswith(";base64"):
            raise Reject(code, "Only base64 data URIs are accepted.")
        mime = header[len("data:") : -len(";base64")] or None
        return _b64(payload, code), mime, "data_uri"
    return _b64(value, code), None, "base64"


def _b64(payload: str, code: str) -> bytes:
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise Reject(code, "The media is not valid base64.") from None


def json_response(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")
