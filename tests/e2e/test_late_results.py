"""A job that outlives its deadline: the member is refunded, and a video that still arrives is posted."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from tests.e2e.conftest import App
from tests.e2e.test_delivery_guarantees import lose_age_restriction, next_bot, unchecked_job, videos
from tests.fakes.discord import FakeMessage
from tests.fakes.discord_fixtures import CHANNEL_ID, GUILD_ID, NSFW_CHANNEL_ID, running_bot
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


async def test_a_late_video_posted_before_a_crash_is_found_in_a_busy_channel(app: App) -> None:
    """The late video was posted but its answer lost, an hour after the expiry notice, with more than two
    pages of chatter between them: the next start finds the late post (searched from when the video
    arrived, not from the expiry notice's try) and does not post the video a second time."""
    app.runware.next_outcome(Outcome.success(cost_usd=0.27, polls_to_finish=10_000))
    await app.animate()
    await app.post_in_channel("took too long")
    await app.delivered(1)
    # As if the notice had been posted an hour ago, and members had talked in the channel since.
    # From a thread: a write that waits for the running bot's transaction must not block the event loop
    # that transaction needs to commit (on SQLite that ended in "database is locked").
    await asyncio.to_thread(app.query, "UPDATE post_attempts SET started_at = started_at - 3600")
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    for n in range(250):
        when = an_hour_ago + dt.timedelta(seconds=10 * n)
        app.discord.messages.append(
            FakeMessage(app.discord.new_id(when), CHANNEL_ID, GUILD_ID, 42, "member", f"chatter {n}")
        )
    app.discord.inject_lost_answer(f"POST /channels/{CHANNEL_ID}/messages", 503)
    ((task_uuid,),) = app.query("SELECT task_uuid FROM jobs WHERE id = 1")
    app.runware.finish(task_uuid)
    await app.post_in_channel("arrived late")
    path = f"/channels/{CHANNEL_ID}/messages"
    await app.discord.wait_for(lambda: any(r.path == path and r.status == 503 for r in app.discord.requests))
    await asyncio.sleep(0.3)
    await app.bot.close()
    assert app.query("SELECT late_delivered_at FROM jobs") == [(None,)]
    app.discord.nonce_ttl_s = 0.0  # the restart comes after Discord forgot the nonce
    async with running_bot(next_bot(app), app.discord):
        await app.discord.wait_for(
            lambda: app.query("SELECT late_delivered_at IS NOT NULL FROM jobs") == [(1,)], 10
        )
        await asyncio.sleep(0.3)
    (late,) = [m for m in app.channel_posts() if "arrived late" in m.content]
    assert app.query("SELECT result_message_id FROM jobs") == [(late.id,)]


async def test_a_late_withheld_notice_posted_before_a_crash_is_not_repeated(app: App) -> None:
    """A late video the safety check flagged is withheld with a notice in the channel; the notice's answer
    was lost and the process restarted after Discord forgot the nonce: the notice is found, not repeated
    (it is not the expiry notice, nor does it say the video arrived)."""
    app.runware.next_outcome(Outcome.success(nsfw=True, polls_to_finish=10_000))
    await app.animate()
    await app.post_in_channel("took too long")
    await app.delivered(1)
    app.discord.inject_lost_answer(f"POST /channels/{CHANNEL_ID}/messages", 503)
    ((task_uuid,),) = app.query("SELECT task_uuid FROM jobs WHERE id = 1")
    app.runware.finish(task_uuid)
    await app.post_in_channel("couldn't be posted in this channel")
    path = f"/channels/{CHANNEL_ID}/messages"
    await app.discord.wait_for(lambda: any(r.path == path and r.status == 503 for r in app.discord.requests))
    await asyncio.sleep(0.3)
    await app.bot.close()
    app.discord.nonce_ttl_s = 0.0
    async with running_bot(next_bot(app), app.discord):
        await app.discord.wait_for(
            lambda: app.query("SELECT late_delivered_at IS NOT NULL FROM jobs") == [(1,)], 10
        )
        await asyncio.sleep(0.3)
    notices = [m for m in app.channel_posts() if "couldn't be posted" in m.content]
    assert len(notices) == 1 and videos(app) == []


async def late_video_posted_but_unanswered(app: App) -> dict[str, Any]:
    """The expiry notice was refused, then the late video arrived and was posted but its answer lost; the
    member's private acknowledgement is still live. Returns the /animate payload."""
    path = f"/channels/{CHANNEL_ID}/messages"
    app.runware.next_outcome(Outcome.success(cost_usd=0.27, polls_to_finish=10_000))
    app.discord.inject_status(f"POST {path}", 503, times=1)
    payload = await app.animate()
    await app.reply_to(payload, "accepted")
    await app.discord.wait_for(
        lambda: any(r.path == path and r.status == 503 for r in app.discord.requests), 10
    )
    await asyncio.sleep(0.3)
    app.discord.inject_lost_answer(f"POST {path}", 503)
    ((task_uuid,),) = app.query("SELECT task_uuid FROM jobs WHERE id = 1")
    app.runware.finish(task_uuid)
    await app.post_in_channel("arrived late")
    await app.discord.wait_for(
        lambda: sum(r.path == path and r.status == 503 for r in app.discord.requests) == 2, 10
    )
    await asyncio.sleep(0.3)
    assert app.query("SELECT delivered_at, late_delivered_at FROM jobs") == [(None, None)]
    return payload


async def test_a_late_post_found_on_the_next_try_is_told_privately_as_late(app: App) -> None:
    """A late video posted but not recorded is found by the next try, and the member's private reply says it
    arrived late (not the expiry notice's "if the video still arrives")."""
    payload = await late_video_posted_but_unanswered(app)
    job = await app.bot.jobs.get_job(1)
    app.bot.dispatch("job_finished", job)  # as the runner offers it again
    await app.discord.wait_for(
        lambda: app.query("SELECT late_delivered_at IS NOT NULL FROM jobs") == [(1,)], 10
    )
    reply = await app.reply_to(payload, "arrived late")
    assert "still arrives" not in reply.content
    assert len([m for m in app.channel_posts() if "arrived late" in m.content]) == 1


async def test_a_stale_offer_after_the_late_video_posts_no_expiry_notice(app: App) -> None:
    """A job read before its late video arrived, offered after the video was posted (and the channel's
    history can't be read), posts nothing: no expiry notice after the video, the video once."""
    app.runware.next_outcome(Outcome.success(cost_usd=0.27, polls_to_finish=10_000))
    app.discord.inject_status(f"POST /channels/{CHANNEL_ID}/messages", 503, times=1)
    await app.animate()
    path = f"/channels/{CHANNEL_ID}/messages"
    await app.discord.wait_for(
        lambda: any(r.path == path and r.status == 503 for r in app.discord.requests), 10
    )
    stale = await app.bot.jobs.get_job(1)  # expired, its notice not posted, no video yet
    assert stale is not None and stale.delivered_at is None and stale.result_url is None
    ((task_uuid,),) = app.query("SELECT task_uuid FROM jobs WHERE id = 1")
    app.runware.finish(task_uuid)
    late = await app.post_in_channel("arrived late")
    await app.discord.wait_for(
        lambda: app.query("SELECT late_delivered_at IS NOT NULL FROM jobs") == [(1,)], 10
    )
    app.discord.inject_status(f"GET {path}", 403, code=50001, times=1000)  # no Read Message History
    app.discord.nonce_ttl_s = 0.0
    app.bot.dispatch("job_finished", stale)
    await asyncio.sleep(1.0)
    after = [m for m in app.channel_posts() if m.id > late.id]
    assert after == []
    assert len([m for m in app.channel_posts() if m.attachments]) == 1
