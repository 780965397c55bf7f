"""What tests steer the fake Runware with (Outcome), what it records of uploads (Upload), its video."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


def make_mp4(size: int = 4096) -> bytes:
    """`size` bytes that start like a real MP4: an `ftyp` box, then an `mdat` box of zeros."""
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    if size < len(ftyp) + 8:
        return ftyp[:size]
    body = size - len(ftyp)
    return ftyp + body.to_bytes(4, "big") + b"mdat" + bytes(body - 8)


DEFAULT_VIDEO = make_mp4()


@dataclass(frozen=True)
class Outcome:
    """How a video task ends. Build with `Outcome.success(...)` or `Outcome.failure(code, ...)`.

    `shape` picks the failure format: "errors" (documented: a top-level `errors` item carrying the taskUUID)
    or "nested" (newer SDK: a `data` item with status "error" and a nested `error` object).
    `repeat` > 1 repeats the success item in every answer (a cumulative list or duplicate delivery).
    `polls_to_finish` / `seconds_to_finish` override the fake's defaults for this task.
    """

    ok: bool = True
    cost_usd: float | None = 0.42
    nsfw: bool = False
    video: bytes | None = None  # None: the fake's `video_bytes`
    code: str = "timeoutProvider"
    message: str = "The provider timed out."
    shape: Literal["errors", "nested"] = "errors"
    repeat: int = 1
    polls_to_finish: int | None = None
    seconds_to_finish: float | None = None

    @classmethod
    def success(
        cls,
        *,
        cost_usd: float | None = 0.42,
        nsfw: bool = False,
        video: bytes | None = None,
        repeat: int = 1,
        polls_to_finish: int | None = None,
        seconds_to_finish: float | None = None,
    ) -> Outcome:
        """A finished video with this cost, NSFW flag and content."""
        return cls(
            ok=True,
            cost_usd=cost_usd,
            nsfw=nsfw,
            video=video,
            repeat=repeat,
            polls_to_finish=polls_to_finish,
            seconds_to_finish=seconds_to_finish,
        )

    @classmethod
    def failure(
        cls,
        code: str = "timeoutProvider",
        message: str | None = None,
        *,
        shape: Literal["errors", "nested"] = "errors",
        polls_to_finish: int | None = None,
        seconds_to_finish: float | None = None,
    ) -> Outcome:
        """A failed task reporting `code` in the given shape."""
        return cls(
            ok=False,
            code=code,
            message=message or f"Task failed: {code}.",
            shape=shape,
            polls_to_finish=polls_to_finish,
            seconds_to_finish=seconds_to_finish,
        )


@dataclass(frozen=True)
class Upload:
    """An uploaded asset: `data` is the decoded bytes (or the URL's text when a URL was given)."""

    kind: Literal["image", "media"]
    data: bytes
    mime: str | None
    task_uuid: str
    source: Literal["data_uri", "base64", "url"]
