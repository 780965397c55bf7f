"""The "Animate" message command (issue 13) through real discord.py: right click → Apps → Animate on one's
own message with a portrait and a voice clip goes the way of /animate; another member's message, or one
missing a file, gets a private answer and nothing is downloaded or charged."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from core.models import Ban
from tests import media_factory as media
from tests.e2e.conftest import App
from tests.fakes.discord import DEFAULT_USER_ID, FakeMessage
from tests.fakes.discord_fixtures import CHANNEL_ID, GUILD_ID, NSFW_CHANNEL_ID

OTHER_MEMBER = 200_000_000_000_000_099


async def animate_message(app: App, target: dict[str, Any], user_id: int = DEFAULT_USER_ID) -> FakeMessage:
    """Run Animate on `target` as a member; the first private answer with some content."""
    payload = app.discord.make_message_command_interaction("Animate", target, user_id=user_id)
    await app.discord.send_interaction(payload)
    interaction_id = int(payload["id"])
    reply = await app.discord.wait_for_message(
        lambda m: m.interaction_id == interaction_id and not m.loading and m.content != "", 10
    )
    assert reply.ephemeral
    return reply


def attachments(app: App, *, image: bool = True, audio: bool = True) -> list[dict[str, Any]]:
    """A portrait and a voice clip as a message's attachments (either left out on request)."""
    files = []
    if image:
        files.append(
            app.discord.add_attachment("me.png", media.png(400, 500), "image/png", channel_id=CHANNEL_ID)
        )
    if audio:
        files.append(
            app.discord.add_attachment("hello.wav", media.wav(3.0), "audio/wav", channel_id=CHANNEL_ID)
        )
    return files


def voice_message(app: App, seconds: float = 3.0) -> dict[str, Any]:
    """A Discord voice message's recording: Opus in OGG, with its length and waveform."""
    return app.discord.add_attachment(
        "voice-message.ogg",
        media.ogg_opus(seconds),
        "audio/ogg",
        channel_id=CHANNEL_ID,
        duration_secs=seconds,
        waveform="AAAA",
    )


async def test_own_message_with_a_portrait_and_a_clip_is_animated(app: App) -> None:
    """Both files in one's own message: accepted like /animate (reserved, with Cancel), made and posted."""
    target = app.discord.member_message(CHANNEL_ID, DEFAULT_USER_ID, attachments(app))
    ack = await animate_message(app, target)
    assert "Job #1 accepted" in ack.content and "3.0 s" in ack.content
    post = await app.post_in_channel("ready")
    assert len(post.attachments) == 1
    await app.delivered(1)
    assert app.query("SELECT user_id, channel_id, output_format FROM jobs") == [
        (DEFAULT_USER_ID, CHANNEL_ID, "MP4")
    ]


async def test_a_photo_and_a_voice_message(app: App) -> None:
    """A voice message (IS_VOICE_MESSAGE, audio/ogg Opus) with a photo is animated; so is a voice message
    that replies to one's own photo (Discord sends a voice message alone)."""
    photo = app.discord.add_attachment("me.jpg", media.jpeg(400, 500), "image/jpeg", channel_id=CHANNEL_ID)
    both = app.discord.member_message(CHANNEL_ID, DEFAULT_USER_ID, [photo, voice_message(app)], voice=True)
    assert "Job #1 accepted" in (await animate_message(app, both)).content
    photo_message = app.discord.member_message(CHANNEL_ID, DEFAULT_USER_ID, attachments(app, audio=False))
    reply = app.discord.member_message(
        CHANNEL_ID, DEFAULT_USER_ID, [voice_message(app, 2.0)], voice=True, replying_to=photo_message
    )
    ack = await animate_message(app, reply)
    assert "Job #2 accepted" in ack.content and "2.0 s" in ack.content
    assert fetches(app, photo_message) == []  # the interaction brought it: no request for it
    await app.delivered(2)


def fetches(app: App, message: dict[str, Any]) -> list[int]:
    """The statuses of the bot's requests for a message (GET /channels/{c}/messages/{m})."""
    path = f"/channels/{message['channel_id']}/messages/{message['id']}"
    return [r.status for r in app.discord.requests if r.method == "GET" and r.path == path]


def reply_without_the_photo(app: App, photo_message: dict[str, Any], seconds: float = 2.0) -> dict[str, Any]:
    """A voice message replying to `photo_message` whose payload leaves `referenced_message` out (Discord
    may not send it in a message command's resolved message)."""
    return app.discord.member_message(
        CHANNEL_ID,
        DEFAULT_USER_ID,
        [voice_message(app, seconds)],
        voice=True,
        replying_to=photo_message,
        with_referenced_message=False,
    )


async def test_a_voice_message_replying_to_a_photo_discord_left_out(app: App) -> None:
    """A voice message replying to one's own photo, the replied message not in the interaction: the bot
    reads it from Discord (one request) and animates that photo; so too when the photo is in another
    channel of the server."""
    photo_file = attachments(app, audio=False)[0]
    photo_message = app.discord.member_message(CHANNEL_ID, DEFAULT_USER_ID, [photo_file])
    ack = await animate_message(app, reply_without_the_photo(app, photo_message))
    assert "Job #1 accepted" in ack.content and "2.0 s" in ack.content
    assert fetches(app, photo_message) == [200]
    assert app.discord.downloads(photo_file["id"]) == 1
    await app.delivered(1)
    elsewhere_file = app.discord.add_attachment(
        "me.jpg", media.jpeg(400, 500), "image/jpeg", channel_id=NSFW_CHANNEL_ID
    )
    elsewhere = app.discord.member_message(NSFW_CHANNEL_ID, DEFAULT_USER_ID, [elsewhere_file])
    ack = await animate_message(app, reply_without_the_photo(app, elsewhere, 3.0))
    assert "Job #2 accepted" in ack.content and "3.0 s" in ack.content
    assert fetches(app, elsewhere) == [200]
    assert app.discord.downloads(elsewhere_file["id"]) == 1


async def test_a_reply_to_a_deleted_photo_names_the_missing_portrait(app: App) -> None:
    """The replied photo deleted (Discord answers 404): the answer names the missing portrait; nothing
    downloaded, charged or sent."""
    photo_file = attachments(app, audio=False)[0]
    photo_message = app.discord.member_message(CHANNEL_ID, DEFAULT_USER_ID, [photo_file])
    reply = reply_without_the_photo(app, photo_message)
    app.discord.delete_member_message(photo_message)
    answer = await animate_message(app, reply)
    assert "no portrait" in answer.content and "no voice clip" not in answer.content
    assert fetches(app, photo_message) == [404]
    assert app.discord.downloads(photo_file["id"]) == 0
    assert app.query("SELECT COUNT(*) FROM jobs") == [(0,)] and app.spent() == 0
    assert app.runware.tasks_of_type("videoInference") == []


async def test_another_members_replied_photo_is_not_used(app: App) -> None:
    """A voice message replying to someone else's photo: the fetched photo is theirs, so it is not used
    (the answer names the missing portrait) and never downloaded."""
    photo_file = attachments(app, audio=False)[0]
    photo_message = app.discord.member_message(CHANNEL_ID, OTHER_MEMBER, [photo_file])
    answer = await animate_message(app, reply_without_the_photo(app, photo_message))
    assert "no portrait" in answer.content
    assert fetches(app, photo_message) == [200]
    assert app.discord.downloads(photo_file["id"]) == 0
    assert app.query("SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_a_replied_photo_the_bot_cannot_read(app: App, caplog: pytest.LogCaptureFixture) -> None:
    """The bot may not read the history of the channel (403 50001): the answer names the missing portrait.
    Discord failing otherwise (503): the same answer, and a warning in the log that carries no token."""
    caplog.set_level(logging.INFO, logger="cogs.video")
    photo_file = attachments(app, audio=False)[0]
    photo_message = app.discord.member_message(CHANNEL_ID, DEFAULT_USER_ID, [photo_file])
    path = f"GET /channels/{CHANNEL_ID}/messages/{photo_message['id']}"
    app.discord.inject_status(path, 403, 50001, message="Missing Access")
    assert "no portrait" in (await animate_message(app, reply_without_the_photo(app, photo_message))).content
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "cogs.video"]
    app.discord.inject_status(path, 503, 0)
    assert "no portrait" in (await animate_message(app, reply_without_the_photo(app, photo_message))).content
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "cogs.video"]
    assert len(warnings) == 1 and "503" in warnings[0].getMessage()
    assert app.discord.token not in caplog.text and "fake-interaction-" not in caplog.text
    assert fetches(app, photo_message) == [403, 503]
    assert app.discord.downloads(photo_file["id"]) == 0
    assert app.query("SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_a_message_without_audio_says_what_is_missing(app: App) -> None:
    """A photo alone: the answer names the missing voice clip; nothing downloaded, reserved or sent. A
    clip alone names the missing portrait."""
    files = attachments(app, audio=False)
    answer = await animate_message(app, app.discord.member_message(CHANNEL_ID, DEFAULT_USER_ID, files))
    assert "no voice clip" in answer.content
    assert app.discord.downloads(files[0]["id"]) == 0
    clip_only = app.discord.member_message(CHANNEL_ID, DEFAULT_USER_ID, attachments(app, image=False))
    assert "no portrait" in (await animate_message(app, clip_only)).content
    nothing = app.discord.member_message(CHANNEL_ID, DEFAULT_USER_ID, [], content="hi")
    assert "no portrait and no voice clip" in (await animate_message(app, nothing)).content
    assert app.query("SELECT COUNT(*) FROM jobs") == [(0,)]
    assert app.runware.tasks_of_type("videoInference") == []


async def test_another_members_message_is_refused(app: App) -> None:
    """Animate on someone else's message is refused privately (the consent statement forbids it): nothing
    downloaded, reserved or sent."""
    files = attachments(app)
    target = app.discord.member_message(CHANNEL_ID, OTHER_MEMBER, files)
    answer = await animate_message(app, target)
    assert "only animate your own messages" in answer.content
    assert [app.discord.downloads(f["id"]) for f in files] == [0, 0]
    assert app.query("SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_the_checks_of_animate_apply(app: App) -> None:
    """The same checks as /animate: a member banned here is refused before anything is downloaded."""
    await app.store.ban(Ban(GUILD_ID, DEFAULT_USER_ID, "impersonation", 7, 0.0), GUILD_ID, 0.0)
    files = attachments(app)
    answer = await animate_message(app, app.discord.member_message(CHANNEL_ID, DEFAULT_USER_ID, files))
    assert "can't use this bot here" in answer.content
    assert [app.discord.downloads(f["id"]) for f in files] == [0, 0]


async def test_a_file_of_a_type_animate_cannot_use_does_not_hide_one_it_can(app: App) -> None:
    """A message with a GIF before the portrait and an M4A before the voice clip (Discord lists files in
    the order they were added): the portrait and clip the bot reads are taken, not the first image and
    audio file, and the unusable ones are never downloaded."""
    gif = app.discord.add_attachment("wave.gif", b"GIF89a" + b"\0" * 64, "image/gif", channel_id=CHANNEL_ID)
    m4a = app.discord.add_attachment("memo.m4a", b"\0" * 64, "audio/mp4", channel_id=CHANNEL_ID)
    target = app.discord.member_message(CHANNEL_ID, DEFAULT_USER_ID, [gif, m4a, *attachments(app)])
    ack = await animate_message(app, target)
    assert "Job #1 accepted" in ack.content and "3.0 s" in ack.content
    assert [app.discord.downloads(f["id"]) for f in (gif, m4a)] == [0, 0]
