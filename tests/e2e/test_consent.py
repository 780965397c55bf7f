"""Consent through real discord.py: asked first, nothing sent or charged before Accept, Accept goes ahead
with the same files, Not now, expiry, a new statement version, per server, the server's switch, failures
after Accept, and a restart."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import pytest

from bot import VideoBot
from core import consent
from core.consent import STATEMENT, Statement
from core.models import GuildLimitsPatch
from tests import media_factory as media
from tests.e2e.conftest import BOOLEAN, MANAGE_GUILD, App, button, labels
from tests.fakes.discord import DEFAULT_PERMISSIONS, DEFAULT_USER_ID, FakeMessage
from tests.fakes.discord_fixtures import (
    BOOSTED_CHANNEL_ID,
    BOOSTED_GUILD_ID,
    CHANNEL_ID,
    GUILD_ID,
    GUILD_READY_TIMEOUT,
    running_bot,
)

OTHER_MEMBER = 200_000_000_000_000_099


@pytest.fixture
def consent_required() -> bool:
    return True


async def asked(app: App, **context: Any) -> tuple[dict[str, Any], FakeMessage]:
    """Run /animate and return its payload and the consent statement it shows."""
    payload = await app.animate(**context)
    return payload, await app.reply_to(payload, "I accept")


def consents(app: App) -> list[tuple[Any, ...]]:
    return app.query("SELECT guild_id, user_id, version FROM consents ORDER BY guild_id")


async def test_first_animate_shows_the_statement_and_does_nothing_else(app: App) -> None:
    """The statement comes first, privately, with two buttons. The files are read from Discord during the
    command (its links expire), but nothing is sent to the video service, stored or charged."""
    payload, statement = await asked(app)
    assert statement.ephemeral
    assert "right to use this face and this voice" in statement.content
    assert "impersonation" in statement.content and "AI-generated" in statement.content
    assert "<t:" in statement.content  # when the request expires
    assert labels(statement) == ["I accept", "Not now"]
    for attachment in payload["data"]["resolved"]["attachments"]:
        assert app.discord.downloads(attachment) == 1
    assert app.runware.requests == []
    assert app.query("SELECT COUNT(*) FROM jobs") == [(0,)] and app.spent() == 0
    assert consents(app) == []


async def test_accept_goes_ahead_with_the_same_files(app: App) -> None:
    """Accept records the consent (version, time) and the asked-for video is made from the files the
    member gave: each downloaded once, no second upload. The next /animate goes straight ahead."""
    image, audio = media.png(420, 520), media.wav(3.0)
    payload, statement = await asked(app, image=image, audio=audio)
    await app.click(statement, "I accept")
    await app.discord.wait_for(lambda: "Job #1 accepted" in app.discord.message(statement.id).content)
    # The statement's buttons gave way to the acknowledgement's own.
    assert labels(app.discord.message(statement.id)) == ["Cancel"]
    post = await app.post_in_channel("ready")
    assert len(post.attachments) == 1
    for attachment in payload["data"]["resolved"]["attachments"]:
        assert app.discord.downloads(attachment) == 1
    assert consents(app) == [(GUILD_ID, DEFAULT_USER_ID, STATEMENT.version)]
    (accepted_at,) = app.query("SELECT accepted_at FROM consents")[0]
    assert abs(accepted_at - time.time()) < 60
    assert app.query("SELECT state FROM consent_requests") == [("accepted",)]
    again = await app.animate()
    await app.reply_to(again, "Job #2 accepted")
    # No media bytes in the database, only hashes of them; and no signed links to Discord's copies.
    raw = app.database.dump()  # the SQLite file and WAL; every text and bytea value on PostgreSQL
    assert hashlib.sha256(image).hexdigest().encode() in raw  # the scan does see the jobs
    assert image[100:164] not in raw and audio[1000:1064] not in raw
    assert b"/attachments/" not in raw and b"hm=" not in raw
    assert app.query("SELECT image_sha256 FROM jobs WHERE id = 1") == [(hashlib.sha256(image).hexdigest(),)]


async def test_bad_file_after_accept_is_explained_in_place(app: App) -> None:
    """Files are checked after Accept: a bad one is explained in the same message, nothing is charged,
    and the consent stays recorded."""
    payload = await app.animate(image=b"not an image at all")
    statement = await app.reply_to(payload, "I accept")
    await app.click(statement, "I accept")
    await app.discord.wait_for(lambda: "image" in app.discord.message(statement.id).content.lower())
    text = app.discord.message(statement.id).content
    assert "PNG" in text and "accepted" not in text.split("\n")[-1]
    assert app.spent() == 0 and app.runware.requests == []
    assert len(consents(app)) == 1


async def test_not_now_closes_it_and_the_next_animate_asks_again(app: App) -> None:
    """Not now: nothing sent or charged, no consent stored; the member is asked next time."""
    _, statement = await asked(app)
    await app.click(statement, "Not now")
    await app.discord.wait_for(lambda: "nothing was sent" in app.discord.message(statement.id).content)
    assert consents(app) == [] and app.query("SELECT COUNT(*) FROM jobs") == [(0,)]
    await asked(app)


async def test_expired_request_goes_nowhere(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A statement left unanswered expires and says so; nothing is made."""
    monkeypatch.setattr(consent, "CONSENT_REQUEST_TTL_S", 0.3)
    _, statement = await asked(app)
    await app.discord.wait_for(lambda: "expired" in app.discord.message(statement.id).content, timeout=5)
    assert app.discord.message(statement.id).components == []
    assert app.query("SELECT state FROM consent_requests") == [("expired",)]
    assert consents(app) == [] and app.query("SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_accept_after_the_expiry_is_refused(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """An Accept that arrives after the request ran out (nobody closed it: the timer was lost) is told it
    expired, and nothing is recorded or made."""
    monkeypatch.setattr(consent, "CONSENT_REQUEST_TTL_S", 0.3)
    _, statement = await asked(app)
    for task in app.bot.get_cog("VideoCog")._expiries:  # type: ignore[union-attr]
        task.cancel()  # the statement keeps its buttons, as if the timer had died with a process
    await asyncio.sleep(0.5)
    await app.click(statement, "I accept")
    await app.discord.wait_for(lambda: "This request expired" in app.discord.message(statement.id).content)
    assert app.query("SELECT state FROM consent_requests") == [("expired",)]
    assert consents(app) == [] and app.query("SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_a_failure_after_accept_is_explained_in_place(app: App) -> None:
    """The video service refusing the upload after Accept: the member reads why in the same message, is
    not charged, and is not asked again next time."""
    app.runware.inject(402, task_type="mediaStorage", code="insufficientCredits")
    _, statement = await asked(app)
    await app.click(statement, "I accept")
    await app.discord.wait_for(lambda: "not charged" in app.discord.message(statement.id).content)
    assert "⏳" not in app.discord.message(statement.id).content
    assert app.spent() == 0 and len(consents(app)) == 1
    again = await app.animate()
    await app.reply_to(again, "Job #2 accepted")


async def test_consent_is_per_server(app: App) -> None:
    """Accepting in one server does not count in another."""
    _, statement = await asked(app)
    await app.click(statement, "I accept")
    await app.post_in_channel("ready")
    await asked(app, guild_id=BOOSTED_GUILD_ID, channel_id=BOOSTED_CHANNEL_ID)


async def test_admins_can_turn_consent_off(app: App) -> None:
    """/settings consent required:False (Manage Server) lets members go straight ahead; members without
    the permission are refused by the bot itself."""
    refused = await app.command("settings", "consent", ("required", BOOLEAN, False), user_id=DEFAULT_USER_ID)
    assert "Manage Server" in refused
    text = await app.command(
        "settings",
        "consent",
        ("required", BOOLEAN, False),
        user_id=7,
        permissions=DEFAULT_PERMISSIONS | MANAGE_GUILD,
    )
    assert "Consent statement before a member's first video: no" in text
    payload = await app.animate()
    await app.reply_to(payload, "Job #1 accepted")
    assert app.query("SELECT action FROM audit_log WHERE actor_id = 7") == [("settings.set",)]


def next_bot(app: App, statement: Statement = STATEMENT) -> VideoBot:
    """A new bot process on the same database (and the same fakes)."""
    return VideoBot(
        settings=app.settings,
        store=app.store,
        runware=app.client,
        guild_ready_timeout=GUILD_READY_TIMEOUT,
        statement=statement,
    )


async def test_a_new_statement_asks_everyone_again(app: App) -> None:
    """Version 1 accepted; the bot is updated to version 2 and asks again; accepting it records 2."""
    _, statement = await asked(app)
    await app.click(statement, "I accept")
    await app.post_in_channel("ready")
    await app.delivered(1)
    await app.bot.close()
    newer = Statement(STATEMENT.version + 1, STATEMENT.text + "\n• A new rule.")
    async with running_bot(next_bot(app, newer), app.discord):
        _, second = await asked(app)
        assert "A new rule" in second.content
        await app.click(second, "I accept")
        await app.discord.wait_for(lambda: "Job #2 accepted" in app.discord.message(second.id).content)
        await app.delivered(2)
    await asyncio.sleep(0)
    assert consents(app) == [(GUILD_ID, DEFAULT_USER_ID, newer.version)]
    assert app.query("SELECT COUNT(*) FROM audit_log WHERE action = 'consent.accept'") == [(2,)]


async def test_accept_after_a_restart_records_consent_and_asks_to_run_it_again(app: App) -> None:
    """The files of a waiting /animate live only in memory: after a restart, Accept still records the
    consent and tells the member to run /animate again, which then goes straight ahead. Nothing sent or
    charged in between."""
    _, statement = await asked(app)
    await app.bot.close()
    async with running_bot(next_bot(app), app.discord):
        await app.click(statement, "I accept")
        await app.discord.wait_for(lambda: "run it again" in app.discord.message(statement.id).content)
        assert app.discord.message(statement.id).components == []
        assert consents(app) == [(GUILD_ID, DEFAULT_USER_ID, STATEMENT.version)]
        assert app.runware.requests == [] and app.spent() == 0
        again = await app.animate()
        await app.reply_to(again, "Job #1 accepted")


async def test_a_statement_changed_while_it_was_read_is_shown_again(app: App) -> None:
    """Asked under version 1, accepted after the bot was updated to version 2: not accepted, asked to run
    /animate again (to read version 2)."""
    _, statement = await asked(app)
    await app.bot.close()
    newer = Statement(STATEMENT.version + 1, STATEMENT.text + "\n• A new rule.")
    async with running_bot(next_bot(app, newer), app.discord):
        await app.click(statement, "I accept")
        await app.discord.wait_for(
            lambda: "statement has changed" in app.discord.message(statement.id).content
        )
        assert consents(app) == []
        _, again = await asked(app)
        assert "A new rule" in again.content


async def test_costly_video_after_accept_shows_its_quote_in_place(app: App) -> None:
    """With a cost quote due, Accept turns the statement into the quote; Confirm then starts the job."""
    await app.store.update_guild_limits(GUILD_ID, GuildLimitsPatch(confirm_above_micros=500_000), 7, 0.0)
    payload = await app.animate(audio=media.wav(8.0))
    statement = await app.reply_to(payload, "I accept")
    await app.click(statement, "I accept")
    await app.discord.wait_for(
        lambda: "Nothing is charged until you confirm" in app.discord.message(statement.id).content
    )
    assert labels(app.discord.message(statement.id)) == ["Confirm", "Cancel"]
    assert app.spent() == 0
    await app.click(app.discord.message(statement.id), "Confirm")
    await app.discord.wait_for(lambda: "Job #1 accepted" in app.discord.message(statement.id).content)


async def test_not_now_works_after_a_restart(app: App) -> None:
    """Not now on a statement shown by an earlier process closes it; nothing is recorded or made."""
    _, statement = await asked(app)
    await app.bot.close()
    async with running_bot(next_bot(app), app.discord):
        await app.click(statement, "Not now")
        await app.discord.wait_for(lambda: "nothing was sent" in app.discord.message(statement.id).content)
    assert app.query("SELECT state FROM consent_requests") == [("declined",)] and consents(app) == []


async def test_a_statement_answered_in_another_server_does_nothing(app: App) -> None:
    """I accept pressed by the member on their statement in another server records nothing, sends nothing
    and rewrites nothing; pressed on the statement it goes ahead."""
    _, statement = await asked(app)
    _, there = await asked(app, guild_id=BOOSTED_GUILD_ID, channel_id=BOOSTED_CHANNEL_ID)
    shown = there.content
    await app.forge(button(statement, "I accept"), there.id)
    assert app.discord.message(there.id).content == shown
    assert consents(app) == [] and app.runware.requests == []
    assert app.query("SELECT state FROM consent_requests ORDER BY id") == [("open",), ("open",)]
    await app.click(statement, "I accept")
    await app.discord.wait_for(lambda: "Job #1 accepted" in app.discord.message(statement.id).content)


async def test_a_statement_answered_on_a_public_message_does_nothing(app: App) -> None:
    """Not now (or a made-up request's I accept) pressed on a public post of the bot leaves the post and
    the request as they were: the refusal is private, never in place."""
    _, first = await asked(app)
    await app.click(first, "I accept")
    post = await app.post_in_channel("ready")
    _, statement = await asked(app, user_id=OTHER_MEMBER)
    shown = (post.content, list(post.components))
    await app.forge(button(statement, "Not now"), post.id, user_id=OTHER_MEMBER, channel_id=CHANNEL_ID)
    await app.forge("vq:consent:accept:999", post.id, user_id=OTHER_MEMBER, channel_id=CHANNEL_ID)
    assert (app.discord.message(post.id).content, app.discord.message(post.id).components) == shown
    assert app.query("SELECT state FROM consent_requests ORDER BY id") == [("accepted",), ("open",)]
    await app.click(statement, "Not now", user_id=OTHER_MEMBER)
    await app.discord.wait_for(lambda: "nothing was sent" in app.discord.message(statement.id).content)
