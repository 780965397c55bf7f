"""The member's private acknowledgement survives a restart (issue 13 item 5: never a stale "being made"),
through real discord.py on both backends: a bot that accepted a job and had it made is closed (as on
SIGTERM), and a new bot on the same database finishes and posts the job; it adopts the stored
acknowledgement and shows the outcome in it, in the member's language, without the Cancel button, then
deletes the stored token. An expired token is never used, and its row is deleted. No token reaches a log."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bot import QUIET_LOGGERS
from tests.e2e.conftest import App, acknowledged, labels
from tests.e2e.test_progress import QUICK_S, passes_until, quick_bot, shows


async def stored_token(app: App, job_id: int) -> str:
    """The job's stored interaction token, once kept (just after the acknowledgement was sent)."""
    select = "SELECT token FROM acknowledgements WHERE job_id = ?"
    await app.discord.wait_for(lambda: len(app.query(select, job_id)) == 1, 10.0)
    return str(app.query(select, job_id)[0][0])


def watch_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Every record of the bot's own loggers, and its libraries' at INFO, as bot.py's setup_logging sets
    them (their DEBUG prints request URLs and SQL parameters, and is never on)."""
    caplog.set_level(logging.DEBUG)
    for name in QUIET_LOGGERS:
        caplog.set_level(logging.INFO, logger=name)


async def test_a_restart_shows_the_outcome_in_the_acknowledgement(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """The job is being made when the bot closes; the next bot posts it, and the member's acknowledgement
    shows the outcome (German, the member's language) and the post's link, without its Cancel button."""
    watch_logs(caplog)
    app.runware.polls_to_finish = 1000  # made, not finished, while the first bot runs
    async with quick_bot(app, run_jobs=False) as bot:
        ack = await app.reply_to(await app.animate(locale="de"), "#1")
        assert labels(ack)  # its Cancel button
        await passes_until(
            bot, lambda: "Wird vom Videodienst erstellt" in app.discord.message(ack.id).content
        )
        token = await stored_token(app, 1)
    assert "Wird vom Videodienst erstellt" in app.discord.message(ack.id).content
    assert app.discord.message(ack.id).components != []
    app.runware.polls_to_finish = 1
    async with app.replaced_bot(ack_interval_s=QUICK_S):
        await app.delivered()
        post = app.channel_posts()[-1]
        await shows(app, ack, "✅ Auftrag #1 ist fertig.")
        await app.discord.wait_for(lambda: app.query("SELECT COUNT(*) FROM acknowledgements") == [(0,)], 10.0)
    message = app.discord.message(ack.id)
    assert message.content.splitlines()[-1].endswith(f"/{post.id}")
    assert "Wird vom Videodienst erstellt" not in message.content
    assert message.components == []
    assert token not in caplog.text


async def test_a_job_posted_at_once_after_a_restart_is_shown_in_the_members_language(app: App) -> None:
    """The next bot posts the job before its first refresh (a long refresh interval): the acknowledgement is
    adopted as the bot starts, before its runner, so the outcome is shown in German, not the English a
    delivery renders for an acknowledgement it does not hold (CI found this race)."""
    app.runware.polls_to_finish = 1000
    async with quick_bot(app, run_jobs=False) as bot:
        ack = await app.reply_to(await app.animate(locale="de"), "#1")
        await passes_until(
            bot, lambda: "Wird vom Videodienst erstellt" in app.discord.message(ack.id).content
        )
        await stored_token(app, 1)
    app.runware.polls_to_finish = 1
    async with app.replaced_bot(ack_interval_s=600.0):  # its refresher's first pass comes after the test
        await app.delivered()
        await shows(app, ack, "✅ Auftrag #1 ist fertig.")
    assert "Job #1" not in app.discord.message(ack.id).content


async def test_an_expired_token_is_not_used_and_its_row_is_deleted(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored acknowledgement whose token expired (its stored expiry passed) is not adopted: the job is
    posted, the acknowledgement is left as it was (Discord would refuse the edit), and the row goes."""
    watch_logs(caplog)
    async with quick_bot(app, run_jobs=False):
        ack = await acknowledged(app)
        token = await stored_token(app, 1)
    before = app.discord.message(ack.id).content
    app.query("UPDATE acknowledgements SET expires_at = ? WHERE job_id = 1", time.time() - 1)
    async with app.replaced_bot(ack_interval_s=QUICK_S):
        await app.delivered()
        await app.discord.wait_for(lambda: app.query("SELECT COUNT(*) FROM acknowledgements") == [(0,)], 10.0)
        await asyncio.sleep(20 * QUICK_S)  # many refreshes: none edits it
    assert app.discord.message(ack.id).content == before
    assert token not in caplog.text


async def test_the_outcome_shown_deletes_the_stored_token(app: App) -> None:
    """Without a restart: once the outcome is shown in the live acknowledgement, its row is gone."""
    async with quick_bot(app, run_jobs=True):
        ack = await acknowledged(app)
        await app.delivered()
        await shows(app, ack, "✅ Job #1 is ready.")
        await app.discord.wait_for(lambda: app.query("SELECT COUNT(*) FROM acknowledgements") == [(0,)], 10.0)


async def test_a_row_the_database_refuses_leaves_the_member_no_apology(app: App) -> None:
    """Keeping the acknowledgement for a restart is a courtesy: when the database refuses its row (here
    its table is gone, any error but a dropped connection), the member's job was accepted and charged
    all the same, so they get no "something went wrong" after their acknowledgement; the job goes on."""
    app.query("ALTER TABLE acknowledgements RENAME TO acknowledgements_gone")
    async with quick_bot(app, run_jobs=True):
        payload = await app.animate()
        ack = await app.reply_to(payload, "accepted")
        await app.delivered()
        await shows(app, ack, "✅ Job #1 is ready.")
        answers = [e.payload.get("content") or "" for e in app.discord.interaction_responses(payload["id"])]
    assert not [a for a in answers if "Something went wrong" in a]


async def test_a_token_discord_refuses_is_let_go(app: App) -> None:
    """An adopted acknowledgement whose token Discord refuses (401: revoked, or a clock behind Discord's)
    is let go and its row deleted at the first refusal, not edited again every refresh until the stored
    expiry (refused requests count towards Discord's limit of invalid requests)."""
    app.runware.polls_to_finish = 1000  # made, not finished: "being made" differs from what it shows
    async with quick_bot(app, run_jobs=False):
        await acknowledged(app)
        token = await stored_token(app, 1)
    app.discord.expire_interaction_token(token)
    before = len(app.discord.request_log())  # the acknowledgement itself is a PATCH of @original too
    async with app.replaced_bot(ack_interval_s=QUICK_S):
        await app.discord.wait_for(lambda: app.query("SELECT COUNT(*) FROM acknowledgements") == [(0,)], 10.0)
        await asyncio.sleep(20 * QUICK_S)  # many refreshes: none tries again
    after_restart = app.discord.request_log()[before:]
    refused = [path for method, path in after_restart if method == "PATCH" and token in path]
    assert len(refused) == 1
