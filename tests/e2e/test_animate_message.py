"""The "Animate" message command (issue 13) through real discord.py: right click → Apps → Animate on one's
own message with a portrait and a voice clip goes the way of /animate; another member's message, or one
missing a file, gets a private answer and nothing is downloaded or charged."""

from __future__ import annotations

from typing import Any

from core.models import Ban
from tests import media_factory as media
from tests.e2e.conftest import App
from tests.fakes.discord import DEFAULT_USER_ID, FakeMessage
from tests.fakes.discord_fixtures import CHANNEL_ID, GUILD_ID

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
    await app.delivered(2)


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
