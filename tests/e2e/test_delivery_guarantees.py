"""Delivery's guarantees at the edges: posted once even after Discord forgot the nonce, nothing lost right
after a start (before the gateway is ready), and a video made without the safety check never shown
anywhere that is not age-restricted."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

import pytest

from bot import VideoBot
from core.models import GuildLimitsPatch, GuildSettingsPatch
from tests import media_factory as media
from tests.e2e.conftest import ADMIN_ID, App
from tests.fakes.discord import MIB, FakeMessage
from tests.fakes.discord_fixtures import (
    BOOSTED_CHANNEL_ID,
    BOOSTED_GUILD_ID,
    CHANNEL_ID,
    GUILD_ID,
    GUILD_READY_TIMEOUT,
    NSFW_CHANNEL_ID,
    running_bot,
)
from tests.fakes.runware import Outcome, make_mp4


def next_bot(app: App) -> VideoBot:
    """The bot of the next process, on the same database."""
    return VideoBot(
        settings=app.settings, store=app.store, runware=app.client, guild_ready_timeout=GUILD_READY_TIMEOUT
    )


@contextlib.asynccontextmanager
async def started_before_ready(app: App) -> AsyncIterator[VideoBot]:
    """The next process's bot, logged in and identified, with READY held back: its cache stays empty."""
    app.discord.hold_ready = True
    identified = len(app.discord.identify_payloads)
    bot = next_bot(app)
    async with bot:
        start = asyncio.create_task(bot.start(app.discord.token))
        try:
            await app.discord.wait_for(lambda: len(app.discord.identify_payloads) > identified, 10)
            yield bot
            assert not bot.is_ready() and bot.get_channel(CHANNEL_ID) is None
        finally:
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(start, 10)


async def refused_once_then_stopped(app: App, channel_id: int) -> None:
    """Wait until a post in the channel was refused (503), then stop the bot as if it had died."""
    path = f"/channels/{channel_id}/messages"
    await app.discord.wait_for(
        lambda: any(r.path == path and r.status == 503 for r in app.discord.requests), 15
    )
    await app.bot.close()
    app.discord.clear_faults()


def videos(app: App) -> list[FakeMessage]:
    """Every live message anywhere that carries a video."""
    return [m for m in app.discord.messages if not m.deleted and m.attachments]


# -- exactly once, beyond Discord's nonce window ---------------------------------------------------------


async def test_a_post_made_before_a_crash_is_not_repeated_after_the_nonce_window(app: App) -> None:
    """Posted, then the process died before recording it, and came back after Discord forgot the nonce:
    the post is found in the channel and recorded, not made again."""
    await app.animate()
    post = await app.post_in_channel("ready")
    await app.delivered(1)
    await app.bot.close()
    # As if the process had died between the post and recording it, and restarted minutes later.
    app.query("UPDATE jobs SET delivered_at = NULL, result_channel_id = NULL, result_message_id = NULL")
    app.discord.nonce_ttl_s = 0.0
    async with running_bot(next_bot(app), app.discord):
        await app.delivered(1)
        await asyncio.sleep(0.3)
    assert [m.id for m in app.channel_posts() if "ready" in m.content] == [post.id]
    assert app.query("SELECT result_channel_id, result_message_id FROM jobs") == [(CHANNEL_ID, post.id)]


async def test_a_reply_whose_answer_was_lost_is_not_sent_again_nor_by_dm(app: App) -> None:
    """The bot may not post in the channel, and Discord's answer to the command's reply carrying the video
    is lost: the reply is found in the channel and recorded; the video is not sent a second time by DM."""
    await app.store.update_guild_settings(GUILD_ID, GuildSettingsPatch(dms_allowed=True), ADMIN_ID, 0.0)
    app.runware.polls_to_finish = 4
    app.discord.inject_status(f"POST /channels/{CHANNEL_ID}/messages", 403, 50013, times=10)
    payload = await app.animate()
    await app.reply_to(payload, "accepted")
    app.discord.inject_lost_answer("POST /webhooks/", None)
    await app.delivered(1)
    await asyncio.sleep(0.3)
    (video,) = videos(app)
    assert video.via == "followup" and video.interaction_id == int(payload["id"])
    assert app.discord.dm_channel_of(int(payload["member"]["user"]["id"])) is None
    assert app.query("SELECT result_message_id FROM jobs") == [(video.id,)]
    assert app.spent() == 420_000


# -- nothing lost before the gateway is ready ------------------------------------------------------------


async def test_a_result_right_after_a_start_keeps_a_boosted_servers_file_limit(app: App) -> None:
    """Right after a restart, before the gateway fills the cache, a 12 MB video is attached in a boosted
    server (50 MB limit, as its command reported), not linked as if the limit were 10 MB."""
    app.runware.next_outcome(Outcome.success(video=make_mp4(12 * MIB)))
    app.discord.inject_status(f"POST /channels/{BOOSTED_CHANNEL_ID}/messages", 503, times=1000)
    await app.animate(guild_id=BOOSTED_GUILD_ID, channel_id=BOOSTED_CHANNEL_ID)
    await refused_once_then_stopped(app, BOOSTED_CHANNEL_ID)
    async with started_before_ready(app):
        post = await app.post_in_channel("ready", channel_id=BOOSTED_CHANNEL_ID)
        await app.delivered(1)
    assert [a.size for a in post.attachments] == [12 * MIB]


async def test_a_flagged_log_entry_right_after_a_start_is_not_lost(app: App) -> None:
    """Right after a restart, before the gateway fills the cache, a withheld video's moderation log entry is
    posted (the log channel is fetched)."""
    await app.store.update_guild_settings(
        GUILD_ID, GuildSettingsPatch(mod_log_channel_id=NSFW_CHANNEL_ID), ADMIN_ID, 0.0
    )
    app.runware.next_outcome(Outcome.success(nsfw=True))
    app.discord.inject_status(f"POST /channels/{CHANNEL_ID}/messages", 503, times=1000)
    # An interaction from 20 minutes ago: no private reply, so the channel gets the neutral notice.
    await app.animate(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20))
    await refused_once_then_stopped(app, CHANNEL_ID)
    async with started_before_ready(app):
        notice = await app.post_in_channel("couldn't be posted in this channel")
        entry = await app.post_in_channel("was flagged", channel_id=NSFW_CHANNEL_ID)
    assert notice.attachments == [] and "withheld" in entry.content


async def test_a_budget_alert_whose_post_failed_is_posted_by_the_next_start(app: App) -> None:
    """The alerts channel refused the 50 % alert: the next start posts it, before the gateway is ready."""
    await app.store.update_guild_limits(
        GUILD_ID,
        GuildLimitsPatch(guild_monthly_micros=1_000_000, log_channel_id=NSFW_CHANNEL_ID),
        ADMIN_ID,
        0.0,
    )
    app.discord.inject_status(f"POST /channels/{NSFW_CHANNEL_ID}/messages", 503, times=1)
    job = await app.animate(audio=media.wav(6.0))  # $0.60 of the $1.00 budget
    await app.reply_to(job, "accepted")
    path = f"/channels/{NSFW_CHANNEL_ID}/messages"
    await app.discord.wait_for(lambda: any(r.path == path and r.status == 503 for r in app.discord.requests))
    await asyncio.sleep(0.3)  # time to record that it was not posted
    await app.bot.close()

    def alerts() -> list[str]:
        return [m.content for m in app.discord.messages_in(NSFW_CHANNEL_ID) if "monthly budget" in m.content]

    assert alerts() == []
    async with started_before_ready(app):
        await app.discord.wait_for(lambda: len(alerts()) == 1, 10)
        await app.discord.wait_for(
            lambda: app.query("SELECT posted_at IS NOT NULL FROM budget_alerts") == [(1,)]
        )
    assert "50% of its $1.00 monthly budget ($0.60)" in alerts()[0]


async def test_a_budget_alert_its_channel_refuses_is_given_up(app: App) -> None:
    """The alerts channel answered 403 (hidden from the bot): the alert is given up for good, not posted
    again by the retry pass of this process or the next start."""
    await app.store.update_guild_limits(
        GUILD_ID,
        GuildLimitsPatch(guild_monthly_micros=1_000_000, log_channel_id=NSFW_CHANNEL_ID),
        ADMIN_ID,
        0.0,
    )
    path = f"/channels/{NSFW_CHANNEL_ID}/messages"
    app.discord.inject_status(f"POST {path}", 403, code=50001, times=1)
    job = await app.animate(audio=media.wav(6.0))  # $0.60 of the $1.00 budget
    await app.reply_to(job, "accepted")
    await app.discord.wait_for(lambda: any(r.path == path and r.status == 403 for r in app.discord.requests))
    await app.discord.wait_for(lambda: app.query("SELECT posted_at IS NOT NULL FROM budget_alerts") == [(1,)])
    await app.bot.close()
    async with started_before_ready(app):
        await asyncio.sleep(1.0)  # the retry pass runs at start
    assert [r.status for r in app.discord.requests if r.method == "POST" and r.path == path] == [403]


async def test_a_budget_alert_whose_channel_is_gone_is_given_up(app: App) -> None:
    """The alerts channel was deleted: the alert is given up for good (settled), not queued for the retry
    pass every minute."""
    gone = 300_000_000_000_000_099
    await app.store.update_guild_limits(
        GUILD_ID, GuildLimitsPatch(guild_monthly_micros=1_000_000, log_channel_id=gone), ADMIN_ID, 0.0
    )
    job = await app.animate(audio=media.wav(6.0))  # $0.60 of the $1.00 budget
    await app.reply_to(job, "accepted")
    await app.discord.wait_for(lambda: app.query("SELECT posted_at IS NOT NULL FROM budget_alerts") == [(1,)])
    assert await app.bot.budgets.alerts_to_retry() == []


# -- a video made without the safety check stays where that was allowed ---------------------------------


async def unchecked_job(app: App, *, log_channel: int = CHANNEL_ID, **context: object) -> str:
    """Start a job in the age-restricted channel of a server whose safety check is `none`; its taskUUID
    once submitted (it finishes when the test says so)."""
    await app.store.update_guild_settings(
        GUILD_ID, GuildSettingsPatch(safety_mode="none", mod_log_channel_id=log_channel), ADMIN_ID, 0.0
    )
    app.runware.polls_to_finish = 10**9
    await app.animate(channel_id=NSFW_CHANNEL_ID, **context)
    await app.discord.wait_for(lambda: len(app.runware.submitted) == 1, 15)
    (task_uuid,) = app.runware.submitted
    assert app.query("SELECT safety_mode FROM jobs") == [("none",)]
    return task_uuid


async def lose_age_restriction(app: App, channel_id: int) -> None:
    """The channel's age restriction is turned off (the bot hears of it through the gateway)."""
    await app.discord.dispatch("CHANNEL_UPDATE", app.discord.set_channel_nsfw(channel_id, False))
    await app.discord.wait_for(lambda: not app.bot.get_channel(channel_id).is_nsfw())  # type: ignore[union-attr]


async def withheld_as_unchecked(app: App) -> None:
    """Nothing with the video anywhere, the cost given back, and a moderation log entry."""
    await app.delivered(1)
    entry = await app.post_in_channel("without the safety check", channel_id=CHANNEL_ID)
    assert "Job #1" in entry.content and "withheld" in entry.content
    assert videos(app) == []
    assert app.spent() == 0


async def test_unchecked_video_is_withheld_when_its_channel_lost_its_age_restriction(app: App) -> None:
    """Made without the safety check in an age-restricted channel that is no longer one: not posted; the
    member is told privately; not charged; logged."""
    task_uuid = await unchecked_job(app)
    await lose_age_restriction(app, NSFW_CHANNEL_ID)
    app.runware.finish(task_uuid)
    reply = await app.discord.wait_for_message(
        lambda m: "without the safety check" in m.content and m.ephemeral
    )
    assert "not charged" in reply.content
    await withheld_as_unchecked(app)
    assert app.channel_posts(NSFW_CHANNEL_ID) == []


async def test_unchecked_video_is_not_sent_through_the_commands_reply_outside_age_restriction(
    app: App,
) -> None:
    """The bot may not post in the channel, which lost its age restriction: the command's reply does not
    carry the video either."""
    task_uuid = await unchecked_job(app)
    app.discord.inject_status(f"POST /channels/{NSFW_CHANNEL_ID}/messages", 403, 50013, times=10)
    await lose_age_restriction(app, NSFW_CHANNEL_ID)
    app.runware.finish(task_uuid)
    await withheld_as_unchecked(app)
    assert all(m.ephemeral for m in app.discord.messages if m.via == "followup")


async def test_unchecked_video_is_not_sent_by_dm(app: App) -> None:
    """The bot may not post in the (still age-restricted) channel and the command's reply is gone: a DM has
    no age restriction, so the member gets a notice there, not the video."""
    await app.store.update_guild_settings(GUILD_ID, GuildSettingsPatch(dms_allowed=True), ADMIN_ID, 0.0)
    app.discord.inject_status(f"POST /channels/{NSFW_CHANNEL_ID}/messages", 403, 50013, times=10)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    task_uuid = await unchecked_job(app, created_at=old)
    app.runware.finish(task_uuid)
    await withheld_as_unchecked(app)
    dm = app.discord.dm_channel_of(200_000_000_000_000_001)
    assert dm is not None
    (notice,) = app.discord.messages_in(dm)
    assert "not charged" in notice.content and notice.attachments == []


async def test_unchecked_video_is_posted_in_its_age_restricted_channel(app: App) -> None:
    """Where it was allowed (the channel still age-restricted), the video is posted as usual."""
    task_uuid = await unchecked_job(app)
    app.runware.finish(task_uuid)
    post = await app.post_in_channel("ready", channel_id=NSFW_CHANNEL_ID)
    assert len(post.attachments) == 1
    await app.delivered(1)
    assert app.spent() > 0


async def test_flagged_video_is_not_sent_by_dm(app: App) -> None:
    """A video the safety check flagged may be shown (as a spoiler) only in an age-restricted channel; a DM
    has no age restriction, so the member gets a notice there, not the video."""
    await app.store.update_guild_settings(GUILD_ID, GuildSettingsPatch(dms_allowed=True), ADMIN_ID, 0.0)
    app.discord.inject_status(f"POST /channels/{NSFW_CHANNEL_ID}/messages", 403, 50013, times=10)
    app.runware.next_outcome(Outcome.success(nsfw=True))
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    await app.animate(channel_id=NSFW_CHANNEL_ID, created_at=old)
    await app.delivered(1)
    assert videos(app) == []
    assert app.spent() == 0


# -- the database drops the connection that records a post -----------------------------------------------

# PostgreSQL ends the session that records a job's post, at its first try only (a sequence counts the
# tries: it is not rolled back with the transaction), as a failover or an operator ending sessions would.
DROP_AT_DELIVERY = (
    "CREATE SEQUENCE drop_at_delivery",
    "CREATE FUNCTION drop_at_delivery() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF OLD.delivered_at IS NULL AND NEW.delivered_at IS NOT NULL AND nextval('drop_at_delivery') = 1 "
    "THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NEW; END $$",
    "CREATE TRIGGER drop_at_delivery BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION drop_at_delivery()",
)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_post_whose_record_the_database_dropped_is_recorded_soon_not_made_again(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """The video is posted, and the database drops the connection recording it: the same process tries
    again a moment later (it still holds the delivery lease; the runner would offer the job again only
    when that runs out, a minute later), finds its post in the channel and records it. One post, one
    warning line, no traceback."""
    for statement in DROP_AT_DELIVERY:
        app.query(statement)
    caplog.set_level(logging.INFO)
    await app.animate()
    await app.delivered(1, timeout=30)
    await asyncio.sleep(0.3)
    (post,) = [m for m in app.channel_posts() if "ready" in m.content]
    assert app.query("SELECT result_message_id FROM jobs") == [(post.id,)]
    assert app.query("SELECT last_value FROM drop_at_delivery") == [(2,)]  # dropped once, then recorded
    interrupted = [r for r in caplog.records if "delivery interrupted" in r.getMessage()]
    assert [r.levelno for r in interrupted] == [logging.WARNING]
    assert [r.getMessage() for r in caplog.records if r.exc_info is not None] == []
    assert app.spent() == 420_000
