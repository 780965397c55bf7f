"""Report and act through real discord.py: Report and Delete under each result, the report in the
moderation log with Delete video / Ban from bot / Dismiss, permissions checked by the bot, the per-job trail,
and every button working after a restart."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from bot import VideoBot
from core.models import GuildSettingsPatch
from core.moderation import NOT_SERVED
from tests.e2e.conftest import INTEGER, MANAGE_MESSAGES, App, button, labels
from tests.fakes.discord import DEFAULT_PERMISSIONS, DEFAULT_USER_ID, FakeMessage
from tests.fakes.discord_fixtures import (
    BOOSTED_CHANNEL_ID,
    BOOSTED_GUILD_ID,
    CHANNEL_ID,
    GUILD_ID,
    GUILD_READY_TIMEOUT,
    running_bot,
)

LOG_CHANNEL_ID = 300_000_000_000_000_019
REPORTER_ID = 200_000_000_000_000_321
MODERATOR_ID = 200_000_000_000_000_555
MODERATOR = DEFAULT_PERMISSIONS | MANAGE_MESSAGES


@pytest.fixture
async def with_log(app: App) -> App:
    """The app with a moderation log channel."""
    app.discord.add_text_channel(GUILD_ID, LOG_CHANNEL_ID, "mod-log")
    await app.store.update_guild_settings(
        GUILD_ID, GuildSettingsPatch(mod_log_channel_id=LOG_CHANNEL_ID), 7, 0.0
    )
    return app


async def posted_result(app: App) -> FakeMessage:
    """A member's finished video, posted in the channel."""
    await app.animate()
    post = await app.post_in_channel("ready")
    await app.delivered(1)
    return post


async def private_answer(app: App, payload: dict[str, object], contains: str) -> FakeMessage:
    message = await app.reply_to(payload, contains)
    assert message.ephemeral
    return message


def reports_in_log(app: App) -> list[FakeMessage]:
    return [m for m in app.discord.messages_in(LOG_CHANNEL_ID) if "**Report**" in m.content]


async def reported(app: App, post: FakeMessage) -> FakeMessage:
    """Report the post as another member and return the report in the moderation log."""
    payload = await app.click(post, "Report", user_id=REPORTER_ID)
    await private_answer(app, payload, "moderators have been told")
    await app.discord.wait_for(lambda: len(reports_in_log(app)) == 1)
    return reports_in_log(app)[0]


async def test_results_carry_report_and_delete(with_log: App) -> None:
    """Every posted video has Report and Delete under it."""
    post = await posted_result(with_log)
    assert labels(post) == ["Report", "Delete"]
    assert button(post, "Report") == "vq:result:report:1"


async def test_report_reaches_the_moderators_once_per_member(with_log: App) -> None:
    """A report names the job, its member, the channel and the reporter, links the video, and offers the
    moderators three buttons; no media, no pings. The same member can't report twice; the requester is
    pointed at Delete."""
    app = with_log
    post = await posted_result(app)
    report = await reported(app, post)
    assert f"job #1 by <@{DEFAULT_USER_ID}> in <#{CHANNEL_ID}>" in report.content
    assert f"reported by <@{REPORTER_ID}>" in report.content
    assert f"https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{post.id}" in report.content
    assert labels(report) == ["Delete video", "Ban from bot", "Dismiss"]
    assert report.attachments == [] and report.allowed_mentions == {"parse": []}
    again = await app.click(post, "Report", user_id=REPORTER_ID)
    await private_answer(app, again, "already reported")
    own = await app.click(post, "Report", user_id=DEFAULT_USER_ID)
    await private_answer(app, own, "use **Delete**")
    assert len(reports_in_log(app)) == 1
    assert app.query("SELECT job_id, actor_id, action FROM audit_log WHERE job_id IS NOT NULL") == [
        (1, REPORTER_ID, "job.report")
    ]


async def test_moderator_deletes_the_reported_video(with_log: App) -> None:
    """Delete video removes the post, closes the report, and shows who did it; a member without Manage
    Messages is refused by the bot and nothing happens."""
    app = with_log
    post = await posted_result(app)
    report = await reported(app, post)
    refused = await app.click(report, "Delete video", user_id=REPORTER_ID)
    await app.discord.wait_for_message(
        lambda m: m.interaction_id == int(refused["id"]) and "Manage Messages" in m.content
    )
    assert not app.discord.message(post.id).deleted
    await app.click(report, "Delete video", user_id=MODERATOR_ID, permissions=MODERATOR)
    await app.discord.wait_for(lambda: app.discord.message(post.id).deleted)
    await app.discord.wait_for(lambda: "Video deleted by" in app.discord.message(report.id).content)
    assert f"<@{MODERATOR_ID}>" in app.discord.message(report.id).content
    assert labels(app.discord.message(report.id)) == ["Ban from bot"]
    assert app.query("SELECT state, decided_by FROM reports") == [("deleted", MODERATOR_ID)]
    assert app.query("SELECT removed_at IS NOT NULL FROM jobs") == [(1,)]
    assert app.spent() == 420_000  # a deleted video was still made: its cost stands


async def test_moderator_bans_the_member_from_a_report(with_log: App) -> None:
    """Ban from bot bans the video's member here, recorded against the job; their next /animate is refused."""
    app = with_log
    post = await posted_result(app)
    report = await reported(app, post)
    await app.click(report, "Ban from bot", user_id=MODERATOR_ID, permissions=MODERATOR)
    await app.discord.wait_for(lambda: "banned from the bot by" in app.discord.message(report.id).content)
    assert labels(app.discord.message(report.id)) == ["Delete video", "Dismiss"]
    assert app.query("SELECT guild_id, user_id, reason, banned_by FROM bans") == [
        (GUILD_ID, DEFAULT_USER_ID, "a moderator acted on a report of your video (job #1)", MODERATOR_ID)
    ]
    assert app.query("SELECT action FROM audit_log WHERE job_id = 1 ORDER BY id") == [
        ("job.report",),
        ("moderation.ban",),
    ]
    refused = await app.animate()
    await app.reply_to(refused, "can't use this bot here")


async def test_moderator_dismisses_a_report(with_log: App) -> None:
    """Dismiss closes the report and leaves the video up."""
    app = with_log
    post = await posted_result(app)
    report = await reported(app, post)
    await app.click(report, "Dismiss", user_id=MODERATOR_ID, permissions=MODERATOR)
    await app.discord.wait_for(lambda: "Dismissed by" in app.discord.message(report.id).content)
    assert labels(app.discord.message(report.id)) == ["Delete video", "Ban from bot"]
    assert not app.discord.message(post.id).deleted
    assert app.query("SELECT state FROM reports") == [("dismissed",)]


async def test_delete_on_the_result_is_for_its_member_and_moderators(with_log: App) -> None:
    """Another member's Delete is refused; the requester's works, and an open report shows it."""
    app = with_log
    post = await posted_result(app)
    report = await reported(app, post)
    other = await app.click(post, "Delete", user_id=REPORTER_ID)
    await private_answer(app, other, "Only the member who made this video or a moderator")
    assert not app.discord.message(post.id).deleted
    own = await app.click(post, "Delete", user_id=DEFAULT_USER_ID)
    await private_answer(app, own, "Deleted the video of job #1")
    assert app.discord.message(post.id).deleted
    await app.discord.wait_for(
        lambda: f"Video deleted by <@{DEFAULT_USER_ID}>" in app.discord.message(report.id).content
    )
    again = await app.click(post, "Delete", user_id=MODERATOR_ID, permissions=MODERATOR)
    await private_answer(app, again, "already deleted")


async def test_moderator_deletes_from_the_result_itself(app: App) -> None:
    """A moderator's Delete on the result works without any report (and without a log channel)."""
    post = await posted_result(app)
    payload = await app.click(post, "Delete", user_id=MODERATOR_ID, permissions=MODERATOR)
    await private_answer(app, payload, "Deleted")
    assert app.discord.message(post.id).deleted
    assert app.query("SELECT actor_id, action FROM audit_log WHERE job_id = 1") == [
        (MODERATOR_ID, "job.delete")
    ]


async def test_report_without_a_log_channel_is_kept(app: App) -> None:
    """With no moderation log the report is still recorded, and the reporter is told to tell a moderator."""
    post = await posted_result(app)
    payload = await app.click(post, "Report", user_id=REPORTER_ID)
    await private_answer(app, payload, "no moderation log channel")
    assert app.query("SELECT job_id, reporter_id, state FROM reports") == [(1, REPORTER_ID, "open")]


async def test_lookup_by_job_shows_its_moderation_trail(with_log: App) -> None:
    """/moderation lookup job:N lists who reported, deleted and banned, and when."""
    app = with_log
    post = await posted_result(app)
    report = await reported(app, post)
    await app.click(report, "Delete video", user_id=MODERATOR_ID, permissions=MODERATOR)
    await app.discord.wait_for(lambda: app.discord.message(post.id).deleted)
    # The message goes first, then the record of it: wait for both before looking the job up.
    await app.discord.wait_for(lambda: app.query("SELECT removed_at IS NOT NULL FROM jobs") == [(1,)])
    text = await app.command(
        "moderation", "lookup", ("job", INTEGER, 1), user_id=MODERATOR_ID, permissions=MODERATOR
    )
    assert "#1" in text and "deleted" in text
    assert f"reported by <@{REPORTER_ID}>" in text and f"video deleted by <@{MODERATOR_ID}>" in text


async def test_every_button_works_after_a_restart(with_log: App) -> None:
    """Result and report buttons posted by one process are answered by the next, on the same database."""
    app = with_log
    post = await posted_result(app)
    await app.bot.close()

    def next_bot() -> VideoBot:
        return VideoBot(
            settings=app.settings,
            store=app.store,
            runware=app.client,
            guild_ready_timeout=GUILD_READY_TIMEOUT,
        )

    async with running_bot(next_bot(), app.discord):
        report = await reported(app, post)
    async with running_bot(next_bot(), app.discord):
        await app.click(report, "Dismiss", user_id=MODERATOR_ID, permissions=MODERATOR)
        await app.discord.wait_for(lambda: "Dismissed by" in app.discord.message(report.id).content)
    async with running_bot(next_bot(), app.discord):
        await app.click(report, "Ban from bot", user_id=MODERATOR_ID, permissions=MODERATOR)
        await app.discord.wait_for(lambda: "banned from the bot" in app.discord.message(report.id).content)
    async with running_bot(next_bot(), app.discord):
        await app.click(report, "Delete video", user_id=MODERATOR_ID, permissions=MODERATOR)
        await app.discord.wait_for(lambda: app.discord.message(post.id).deleted)
        await app.discord.wait_for(lambda: app.discord.message(report.id).components == [])
    await asyncio.sleep(0)
    assert [a for (a,) in app.query("SELECT action FROM audit_log WHERE job_id = 1 ORDER BY id")] == [
        "job.report",
        "job.dismiss",
        "moderation.ban",
        "job.delete",
    ]


async def test_a_report_that_could_not_reach_the_log_is_posted_on_the_next_try(with_log: App) -> None:
    """If the log post fails, the reporter is told the truth; pressing Report again posts it."""
    app = with_log
    post = await posted_result(app)
    app.discord.inject_status(f"POST /channels/{LOG_CHANNEL_ID}/messages", 403, 50013)
    first = await app.click(post, "Report", user_id=REPORTER_ID)
    await private_answer(app, first, "couldn't post it to the moderators' channel")
    assert reports_in_log(app) == []
    second = await app.click(post, "Report", user_id=REPORTER_ID)
    await private_answer(app, second, "moderators have been told")
    assert len(reports_in_log(app)) == 1
    assert app.query("SELECT COUNT(*), MAX(log_message_id) IS NOT NULL FROM reports") == [(1, 1)]


async def test_a_result_the_bot_may_not_delete_is_explained(with_log: App) -> None:
    """Discord refusing the delete: the moderator is told to delete it by hand (with the link), nothing is
    recorded as deleted, and the report keeps its Delete button."""
    app = with_log
    post = await posted_result(app)
    report = await reported(app, post)
    app.discord.inject_status(f"DELETE /channels/{CHANNEL_ID}/messages/{post.id}", 403, 50001)
    payload = await app.click(report, "Delete video", user_id=MODERATOR_ID, permissions=MODERATOR)
    refused = await app.discord.wait_for_message(
        lambda m: m.interaction_id == int(payload["id"]) and "delete it by hand" in m.content
    )
    assert str(post.id) in refused.content and refused.ephemeral
    assert not app.discord.message(post.id).deleted
    assert app.query("SELECT removed_at FROM jobs") == [(None,)]
    assert "Delete video" in labels(app.discord.message(report.id))


async def test_delete_on_the_result_works_after_a_restart(app: App) -> None:
    """The requester's Delete under a video posted by an earlier process."""
    post = await posted_result(app)
    await app.bot.close()
    bot = VideoBot(
        settings=app.settings, store=app.store, runware=app.client, guild_ready_timeout=GUILD_READY_TIMEOUT
    )
    async with running_bot(bot, app.discord):
        payload = await app.click(post, "Delete", user_id=DEFAULT_USER_ID)
        await private_answer(app, payload, "Deleted the video of job #1")
    assert app.discord.message(post.id).deleted


async def test_result_buttons_from_another_server_do_nothing(with_log: App) -> None:
    """A result's Report and Delete, forged from another server (even by a moderator there), change nothing;
    the genuine Report still works."""
    app = with_log
    post = await posted_result(app)
    elsewhere = {"guild_id": BOOSTED_GUILD_ID, "channel_id": BOOSTED_CHANNEL_ID, "permissions": MODERATOR}
    await app.forge(button(post, "Report"), app.discord.new_id(), user_id=REPORTER_ID, **elsewhere)
    await app.forge(button(post, "Delete"), app.discord.new_id(), user_id=MODERATOR_ID, **elsewhere)
    assert not app.discord.message(post.id).deleted
    assert app.query("SELECT COUNT(*) FROM reports") == [(0,)]
    assert app.query("SELECT COUNT(*) FROM audit_log WHERE job_id IS NOT NULL") == [(0,)]
    await reported(app, post)


async def test_result_buttons_on_another_message_do_nothing(app: App) -> None:
    """A result's Delete pressed on another message of the same channel, even by its own member, changes
    nothing; on the result itself it works."""
    post = await posted_result(app)
    await app.forge(
        button(post, "Delete"), app.discord.new_id(), user_id=DEFAULT_USER_ID, channel_id=CHANNEL_ID
    )
    assert not app.discord.message(post.id).deleted
    assert app.query("SELECT removed_at FROM jobs") == [(None,)]
    payload = await app.click(post, "Delete", user_id=DEFAULT_USER_ID)
    await private_answer(app, payload, "Deleted the video of job #1")


async def test_report_buttons_from_another_server_do_nothing(with_log: App) -> None:
    """A report's Delete video, Ban and Dismiss, forged from another server by a moderator there, change
    nothing; the genuine Ban still works."""
    app = with_log
    post = await posted_result(app)
    report = await reported(app, post)
    elsewhere = {"guild_id": BOOSTED_GUILD_ID, "channel_id": BOOSTED_CHANNEL_ID, "permissions": MODERATOR}
    for label in ("Delete video", "Ban from bot", "Dismiss"):
        await app.forge(button(report, label), app.discord.new_id(), user_id=MODERATOR_ID, **elsewhere)
    assert not app.discord.message(post.id).deleted
    assert app.query("SELECT state FROM reports") == [("open",)]
    assert app.query("SELECT COUNT(*) FROM bans") == [(0,)]
    assert app.query("SELECT action FROM audit_log WHERE job_id = 1") == [("job.report",)]
    await app.click(report, "Ban from bot", user_id=MODERATOR_ID, permissions=MODERATOR)
    await app.discord.wait_for(lambda: "banned from the bot by" in app.discord.message(report.id).content)


async def test_report_buttons_on_another_message_do_nothing(with_log: App) -> None:
    """A report's buttons pressed by a moderator on another message of the same server (here the reported
    post itself) change nothing; on the report they work."""
    app = with_log
    post = await posted_result(app)
    report = await reported(app, post)
    for label in ("Delete video", "Ban from bot", "Dismiss"):
        await app.forge(button(report, label), post.id, user_id=MODERATOR_ID, permissions=MODERATOR)
    assert not app.discord.message(post.id).deleted
    assert app.query("SELECT state FROM reports") == [("open",)]
    assert app.query("SELECT COUNT(*) FROM bans") == [(0,)]
    assert app.query("SELECT action FROM audit_log WHERE job_id = 1") == [("job.report",)]
    await app.click(report, "Dismiss", user_id=MODERATOR_ID, permissions=MODERATOR)
    await app.discord.wait_for(lambda: "Dismissed by" in app.discord.message(report.id).content)


async def test_report_buttons_of_a_report_not_in_the_log_do_nothing(with_log: App) -> None:
    """A report whose log post failed has no buttons anywhere: a press with its id, even in the log
    channel, changes nothing (the reporter's next Report posts it, with buttons that work)."""
    app = with_log
    post = await posted_result(app)
    app.discord.inject_status(f"POST /channels/{LOG_CHANNEL_ID}/messages", 403, 50013)
    first = await app.click(post, "Report", user_id=REPORTER_ID)
    await private_answer(app, first, "couldn't post it to the moderators' channel")
    await app.forge(
        "vq:report:delete:1", app.discord.new_id(), channel_id=LOG_CHANNEL_ID, permissions=MODERATOR
    )
    assert not app.discord.message(post.id).deleted
    assert app.query("SELECT state FROM reports") == [("open",)]


async def test_delete_on_a_result_sent_by_dm_works(app: App) -> None:
    """A result sent by DM (no server there) is deleted by its member's Delete in the DM."""
    await app.store.update_guild_settings(GUILD_ID, GuildSettingsPatch(dms_allowed=True), 7, 0.0)
    app.discord.inject_status(f"POST /channels/{CHANNEL_ID}/messages", 403, 50013, times=10)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)  # the command's own reply can't be used
    await app.animate(created_at=old)
    await app.delivered(1)
    dm = app.discord.dm_channel_of(DEFAULT_USER_ID)
    assert dm is not None
    (post,) = [m for m in app.discord.messages_in(dm) if "ready" in m.content]
    payload = await app.click(post, "Delete", user_id=DEFAULT_USER_ID, dm=True)
    await private_answer(app, payload, "Deleted the video of job #1")
    assert app.discord.message(post.id).deleted


async def test_result_and_report_buttons_in_a_server_no_longer_served_do_nothing(with_log: App) -> None:
    """After the operator drops a server from ALLOWED_GUILD_IDS, its results' Report and Delete and its
    reports' buttons get the same private refusal as its commands, and nothing is written."""
    app = with_log
    post = await posted_result(app)
    report = await reported(app, post)
    await app.bot.close()
    narrower = app.settings.model_copy(update={"allowed_guild_ids": [BOOSTED_GUILD_ID]})
    bot = VideoBot(
        settings=narrower, store=app.store, runware=app.client, guild_ready_timeout=GUILD_READY_TIMEOUT
    )
    async with running_bot(bot, app.discord):
        presses = [
            (post, "Report", MODERATOR_ID),
            (post, "Delete", DEFAULT_USER_ID),
            *((report, label, MODERATOR_ID) for label in ("Delete video", "Ban from bot", "Dismiss")),
        ]
        for message, label, user_id in presses:
            payload = await app.click(message, label, user_id=user_id, permissions=MODERATOR)
            await private_answer(app, payload, NOT_SERVED)
    assert not app.discord.message(post.id).deleted
    assert app.query("SELECT state FROM reports") == [("open",)]
    assert app.query("SELECT COUNT(*) FROM bans") == [(0,)]
    assert app.query("SELECT action FROM audit_log WHERE job_id = 1") == [("job.report",)]
