"""A job that outlives its deadline: the member is refunded, and a video that still arrives is posted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import App
from tests.e2e.test_delivery_guarantees import lose_age_restriction, unchecked_job, videos
from tests.fakes.discord_fixtures import CHANNEL_ID, NSFW_CHANNEL_ID
from tests.fakes.runware import Outcome


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    return {**app_settings, "job_deadline_s": 1.0}


async def test_a_video_that_arrives_after_the_deadline_is_posted_late(app: App) -> None:
    """The channel reads that the job took too long, then gets the late video; only the server pays."""
    app.runware.next_outcome(Outcome.success(cost_usd=0.27, polls_to_finish=10_000))
    await app.animate()
    notice = await app.post_in_channel("took too long")
    assert "not charged" in notice.content and "still arrives" in notice.content
    ((task_uuid,),) = app.query("SELECT task_uuid FROM jobs WHERE id = 1")
    app.runware.finish(task_uuid)
    late = await app.post_in_channel("arrived late")
    assert "not charged" in late.content and len(late.attachments) == 1
    await app.discord.wait_for(
        lambda: app.query("SELECT late_delivered_at IS NOT NULL FROM jobs WHERE id = 1") == [(1,)], 10
    )
    assert [m.id for m in app.channel_posts() if "arrived late" in m.content] == [late.id]
    assert app.query("SELECT result_message_id FROM jobs WHERE id = 1") == [(late.id,)]
    month = "SELECT user_id = 0, amount_micros FROM spend_totals WHERE period = 'month' ORDER BY 1"
    assert app.query(month) == [(0, 0), (1, 270_000)]  # the member's month, then the server's


async def test_a_late_unchecked_video_is_withheld_outside_age_restriction(app: App) -> None:
    """A late video made without the safety check, whose channel lost its age restriction, is not posted."""
    task_uuid = await unchecked_job(app)
    await app.post_in_channel("took too long", channel_id=NSFW_CHANNEL_ID)
    await lose_age_restriction(app, NSFW_CHANNEL_ID)
    app.runware.finish(task_uuid)
    await app.discord.wait_for(
        lambda: app.query("SELECT late_delivered_at IS NOT NULL FROM jobs WHERE id = 1") == [(1,)], 10
    )
    await app.post_in_channel("without the safety check", channel_id=CHANNEL_ID)
    assert videos(app) == []
    month = "SELECT user_id = 0, amount_micros > 0 FROM spend_totals WHERE period = 'month' ORDER BY 1"
    assert app.query(month) == [(0, 0), (1, 1)]  # the member pays nothing; the server's bill shows it
