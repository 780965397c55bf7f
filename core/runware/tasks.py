"""A video task as the bot sees it: what is submitted (VideoRequest) and what a poll learns (TaskResult)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.runware.errors import RunwareError
from core.settings import SafetyMode

# Runware's model identifier for ByteDance OmniHuman-1, the one model the bot runs.
OMNIHUMAN_MODEL = "bytedance:5@1"
OUTPUT_FORMATS = frozenset({"MP4", "WEBM", "MOV"})


class TaskState(StrEnum):
    """A task's state as one poll saw it. UNKNOWN: the reply did not mention the taskUUID at all."""

    PROCESSING = "processing"
    SUCCESS = "success"
    ERROR = "error"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TaskResult:
    """What one poll learned about one task."""

    task_uuid: str
    state: TaskState
    video_url: str | None = None
    video_uuid: str | None = None
    cost_usd: float | None = None
    nsfw: bool = False
    progress: int | None = None
    error: RunwareError | None = None


@dataclass(frozen=True)
class VideoRequest:
    """Everything needed to submit one OmniHuman-1 video task. The bot chooses `task_uuid`, once per job."""

    task_uuid: str
    image_ref: str
    audio_ref: str
    output_format: str
    output_quality: int
    safety_mode: SafetyMode
    ttl_s: int
    # Where Runware POSTs the finished result (PUBLIC_URL + /runware/webhook/<token>); a secret: never log it.
    webhook_url: str | None = None

    def __post_init__(self) -> None:
        # Runware would answer 400 for these; failing here gives a clearer traceback.
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {sorted(OUTPUT_FORMATS)}")
        if not 20 <= self.output_quality <= 99:
            raise ValueError("output_quality must be 20-99")
        if self.ttl_s < 60:
            raise ValueError("ttl_s must be at least 60")
