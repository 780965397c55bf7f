"""JobService accepting requests, against a real SQLite file and the local fake Runware server."""

from __future__ import annotations

import pytest

from core.errors import InvalidMedia, QuotaExceeded, UserFacingError
from core.jobs import AnimateRequest
from core.models import JobStatus, RefusalReason
from tests import media_factory as media
from tests.core.conftest import Rig, request
from tests.fakes.runware import Outcome


async def test_happy_path_submits_once_and_settles_the_real_cost(running: Rig) -> None:
    """Accepted → uploaded → submitted once → polled → succeeded; spend equals Runware's cost."""
    running.fake.next_outcome(Outcome.success(cost_usd=0.27))
    accepted = await running.service.accept(request(3.0))
    assert accepted.job.estimate_micros == 300_000
    assert accepted.usage.left_micros == 700_000
    done = await running.next_finished()
    assert done.status is JobStatus.SUCCEEDED and done.cost_micros == 270_000
    assert running.fake.submission_counts[done.task_uuid] == 1
    assert running.spent() == 270_000
    video = running.fake.tasks_of_type("videoInference")[0]
    assert video["taskUUID"] == done.task_uuid and video["includeCost"] is True
    assert video["safety"] == {"mode": "fast"}


async def test_uploads_are_the_validated_bytes(rig: Rig) -> None:
    """The image and audio Runware receives are exactly the member's files."""
    req = request()
    job = (await rig.service.accept(req)).job
    uploaded = [u.data for u in rig.fake.uploads.values()]
    assert req.image in uploaded and req.audio in uploaded
    assert job.status is JobStatus.QUEUED


async def test_quota_refusal_submits_and_uploads_nothing(rig: Rig) -> None:
    """Over the daily limit: refused with the numbers, nothing uploaded or written."""
    await rig.service.accept(request(6.0))  # $0.60 of $1.00
    with pytest.raises(QuotaExceeded) as info:
        await rig.service.accept(request(6.0))
    refused = info.value
    assert refused.refusal.reason is RefusalReason.DAILY and refused.estimate == 600_000
    assert refused.refusal.usage.left_today_micros == 400_000
    assert len(rig.fake.tasks_of_type("mediaStorage")) == 2
    assert rig.fake.tasks_of_type("videoInference") == []
    assert rig.spent() == 600_000


async def test_invalid_media_reserves_nothing(rig: Rig) -> None:
    """A text file posing as an image is refused before any reservation."""
    bad = AnimateRequest(guild_id=1, channel_id=2, user_id=1, image=b"hello", audio=media.wav(2))
    with pytest.raises(InvalidMedia):
        await rig.service.accept(bad)
    assert rig.ledger() == [] and rig.fake.requests == []


async def test_upload_failure_refunds_and_says_not_charged(rig: Rig) -> None:
    """A permanent upload error fails the job, refunds it, and tells the member."""
    rig.fake.inject(402, task_type="mediaStorage", code="insufficientCredits")
    with pytest.raises(UserFacingError, match="not charged"):
        await rig.service.accept(request())
    assert rig.spent() == 0 and [k for k, _ in rig.ledger()] == ["reserve", "refund"]
