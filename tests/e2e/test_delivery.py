"""Delivery when things go wrong: no permission, no channel, no video, failures told once."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from core.models import GuildSettingsPatch
from tests.e2e.conftest import ADMIN_ID, App
from tests.fakes.discord_fixtures import CHANNEL_ID, GUILD_ID


async def allow_dms(app: App) -> None:
    await app.store.update_guild_settings(GUILD_ID, GuildSettingsPatch(dms_allowed=True), ADMIN_ID, 0.0)


async def test_without_permission_and_without_interaction_the_result_goes_by_dm(app: App) -> None:
    """If the bot may not post and the interaction is gone, the member gets the video in a DM (where the
    server allows DMs)."""
    await allow_dms(app)
    app.discord.inject_status(f"POST /channels/{CHANNEL_ID}/messages", 403, 50013, times=10)
    # An interaction from 20 minutes ago: its token is dead, so the command's own reply cannot be used.
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    payload = await app.animate(created_at=old)
    user_id = int(payload["member"]["user"]["id"])
    await app.delivered(1)
    dm = app.discord.dm_channel_of(user_id)
    assert dm is not None
    (post,) = [m for m in app.discord.messages_in(dm) if "ready" in m.content]
    assert len(post.attachments) == 1
    assert app.spent() == 420_000


async def test_no_dm_when_the_server_does_not_allow_dms(app: App) -> None:
    """DMs are off by default (moderators can't see them): nothing is sent by DM, the cost is given back."""
    app.discord.inject_status(f"POST /channels/{CHANNEL_ID}/messages", 403, 50013, times=10)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    payload = await app.animate(created_at=old)
    await app.delivered(1)
    assert app.discord.dm_channel_of(int(payload["member"]["user"]["id"])) is None
    assert app.spent() == 0


async def test_result_that_can_be_posted_nowhere_is_given_back(app: App) -> None:
    """No channel permission, no interaction, DMs closed: the job is closed and its cost given back."""
    await allow_dms(app)
    app.discord.inject_status(f"POST /channels/{CHANNEL_ID}/messages", 403, 50013, times=10)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    payload = await app.animate(created_at=old)
    app.discord.close_dms(int(payload["member"]["user"]["id"]))
    await app.delivered(1)
    assert app.spent() == 0


async def test_expired_output_is_explained_and_given_back(app: App) -> None:
    """A video that Runware deleted before it could be posted is explained, and costs nothing."""
    app.runware.delete_outputs()
    await app.animate()
    post = await app.post_in_channel("expired before it could be posted")
    assert "not charged" in post.content
    await app.delivered(1)
    assert app.spent() == 0


async def test_upload_failure_is_told_privately_once(app: App) -> None:
    """When Runware refuses the upload, the member reads why in private and nothing is posted publicly."""
    app.runware.inject(402, task_type="mediaStorage", code="insufficientCredits")
    payload = await app.animate()
    reply = await app.reply_to(payload, "not charged")
    assert reply.ephemeral and "credit" in reply.content
    await asyncio.sleep(0.5)
    assert app.channel_posts() == []
    assert app.query("SELECT status, delivered_at IS NOT NULL FROM jobs") == [("failed", 1)]
    assert app.spent() == 0


async def test_acknowledgement_failure_does_not_say_try_again(app: App) -> None:
    """If the private acknowledgement cannot be sent, the job still runs and no apology asks for a retry."""
    app.discord.inject_status("POST /webhooks/", 500, 0, times=20)
    payload = await app.animate()
    post = await app.post_in_channel("ready", timeout=30)
    assert len(post.attachments) == 1
    replies = [m for m in app.discord.messages if m.interaction_id == int(payload["id"])]
    assert not any("try again" in m.content for m in replies)


async def test_a_connection_dropped_during_a_post_is_a_warning_not_an_error(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """Discord's connection dropping while a result is posted (a network hiccup, or the bot stopping with
    SIGTERM mid-post) is an expected, retried failure: one WARNING line like a refused post, not an ERROR
    with aiohttp's traceback that an operator would take for a bug (it was one, with the traceback)."""
    caplog.set_level(logging.INFO)
    app.discord.inject_lost_answer(f"POST /channels/{CHANNEL_ID}/messages", None)
    await app.animate()
    await app.discord.wait_for(lambda: any("delivery failed" in r.message for r in caplog.records), 10)
    (failed,) = [r for r in caplog.records if "delivery failed" in r.message]
    assert failed.levelno == logging.WARNING and failed.exc_info is None, failed.getMessage()
    assert "Server disconnected" in failed.getMessage()
