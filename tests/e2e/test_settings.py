"""/settings through real discord.py: channel allow-list, safety mode, moderation log, permissions, audit."""

from __future__ import annotations

import hashlib
from typing import Any

from tests import media_factory as media
from tests.e2e.conftest import App
from tests.fakes.discord import DEFAULT_PERMISSIONS
from tests.fakes.discord_fixtures import CHANNEL_ID, GUILD_ID, NSFW_CHANNEL_ID

MANAGE_GUILD = 1 << 5
ADMIN_ID = 200_000_000_000_000_777


def channel_payload(channel_id: int) -> dict[str, Any]:
    return {"id": str(channel_id), "name": f"c{channel_id}", "type": 0, "permissions": "0"}


async def settings(app: App, sub: str, *options: tuple[str, int, Any], admin: bool = True) -> str:
    """Run /settings <sub> and return the private reply."""
    channels = {str(v): channel_payload(int(v)) for _, t, v in options if t == 7}
    payload = app.discord.make_slash_interaction(
        "settings",
        list(options),
        subcommand=sub,
        resolved={"channels": channels} if channels else None,
        user_id=ADMIN_ID if admin else 200_000_000_000_000_001,
        permissions=DEFAULT_PERMISSIONS | (MANAGE_GUILD if admin else 0),
    )
    await app.discord.send_interaction(payload)
    reply = await app.reply_to(payload)
    assert reply.ephemeral
    return reply.content


async def test_show_has_the_defaults(app: App) -> None:
    """By default /animate works everywhere, the safety check is the setting's, and no log is set."""
    text = await settings(app, "show")
    assert "every channel" in text and "Safety check: fast" in text and "Moderation log: not set" in text


async def test_allow_list_gates_animate_before_any_download(app: App) -> None:
    """With an allow-list, /animate elsewhere is refused naming where it works; nothing is downloaded."""
    text = await settings(app, "channel", ("channel", 7, str(CHANNEL_ID)))
    assert f"allowed in <#{CHANNEL_ID}>" in text
    image = app.discord.add_attachment("face.png", media.png(400, 500))
    audio = app.discord.add_attachment("voice.wav", media.wav(2.0))
    payload = app.discord.make_slash_interaction(
        "animate", [("image", 11, image), ("audio", 11, audio)], channel_id=NSFW_CHANNEL_ID
    )
    await app.discord.send_interaction(payload)
    reply = await app.reply_to(payload, "can't be used in this channel")
    assert f"<#{CHANNEL_ID}>" in reply.content
    assert app.discord.downloads(image["id"]) == 0 and app.query("SELECT COUNT(*) FROM jobs") == [(0,)]
    allowed = await app.animate(channel_id=CHANNEL_ID)
    await app.reply_to(allowed, "accepted")


async def test_removing_the_last_channel_opens_every_channel(app: App) -> None:
    """allow:False takes a channel off the list; an empty list means every channel."""
    await settings(app, "channel", ("channel", 7, str(CHANNEL_ID)))
    text = await settings(app, "channel", ("channel", 7, str(CHANNEL_ID)), ("allow", 5, False))
    assert "off the list, which is now empty: /animate works in every channel" in text
    assert "no longer allowed" not in text
    await settings(app, "channel", ("channel", 7, str(CHANNEL_ID)))
    await settings(app, "channel", ("channel", 7, str(NSFW_CHANNEL_ID)))
    text = await settings(app, "channel", ("channel", 7, str(CHANNEL_ID)), ("allow", 5, False))
    assert f"no longer allowed in <#{CHANNEL_ID}>" in text


async def test_safety_none_still_checks_outside_age_restricted_channels(app: App) -> None:
    """Safety `none` is sent as `none` only in an age-restricted channel; elsewhere at least `fast`."""
    text = await settings(app, "safety", ("mode", 3, "none"))
    assert "Safety check: none (set here)" in text
    normal = await app.animate(channel_id=CHANNEL_ID, user_id=1)
    await app.reply_to(normal, "accepted")
    adult = await app.animate(channel_id=NSFW_CHANNEL_ID, user_id=2)
    await app.reply_to(adult, "accepted")
    await app.discord.wait_for(lambda: len(app.runware.tasks_of_type("videoInference")) == 2)
    modes = {t["safety"]["mode"] for t in app.runware.tasks_of_type("videoInference")}
    assert modes == {"fast", "none"}
    assert sorted(app.query("SELECT channel_id, safety_mode FROM jobs")) == sorted(
        [(CHANNEL_ID, "fast"), (NSFW_CHANNEL_ID, "none")]
    )


async def test_jobs_record_file_hashes_and_no_media(app: App) -> None:
    """A job keeps the SHA-256 of the member's files; the database holds none of their bytes."""
    image, audio = media.png(401, 503), media.wav(2.5)
    payload = await app.animate(image=image, audio=audio)
    await app.reply_to(payload, "accepted")
    await app.delivered(1)
    assert app.query("SELECT image_sha256, audio_sha256 FROM jobs") == [
        (hashlib.sha256(image).hexdigest(), hashlib.sha256(audio).hexdigest())
    ]
    raw = app.database.dump()  # the SQLite file and WAL; every text and bytea value on PostgreSQL
    assert hashlib.sha256(image).hexdigest().encode() in raw  # the scan does see the jobs
    assert image[100:164] not in raw and audio[1000:1064] not in raw


async def test_settings_changes_are_audited_and_refused_without_permission(app: App) -> None:
    """Every change is in the audit log with who made it; a member without Manage Server is refused."""
    await settings(app, "log", ("channel", 7, str(NSFW_CHANNEL_ID)))
    await settings(app, "safety", ("mode", 3, "full"))
    for sub, options in (
        ("show", ()),
        ("safety", (("mode", 3, "none"),)),
        ("channel", (("channel", 7, str(CHANNEL_ID)),)),
        ("log", (("channel", 7, str(CHANNEL_ID)),)),
        ("consent", (("required", 5, False),)),
        ("dms", (("allowed", 5, True),)),
        ("flagged", (("withhold_everywhere", 5, True),)),
    ):
        assert "Manage Server" in await settings(app, sub, *options, admin=False)
    assert app.query("SELECT actor_id, action FROM audit_log ORDER BY id") == [
        (ADMIN_ID, "settings.set"),
        (ADMIN_ID, "settings.set"),
    ]
    text = await settings(app, "show")
    assert f"Moderation log: <#{NSFW_CHANNEL_ID}>" in text and "Safety check: full (set here)" in text


async def test_flagged_results_are_logged_for_moderators(app: App) -> None:
    """Withheld, spoilered and refused results each get a log entry: member, job, channel, reason."""
    from tests.fakes.runware import Outcome

    log_channel = NSFW_CHANNEL_ID
    await settings(app, "log", ("channel", 7, str(log_channel)))
    app.runware.next_outcome(
        Outcome.success(nsfw=True), Outcome.success(nsfw=True), Outcome.failure("contentPolicyViolation")
    )
    first = await app.animate(channel_id=CHANNEL_ID, user_id=11)
    await app.reply_to(first, "flagged as adult content")
    await app.delivered(1)
    second = await app.animate(channel_id=NSFW_CHANNEL_ID, user_id=12)
    post = await app.post_in_channel("ready", channel_id=NSFW_CHANNEL_ID)
    assert post.attachments[0].filename.startswith("SPOILER_")
    await app.delivered(2)
    third = await app.animate(channel_id=CHANNEL_ID, user_id=13)
    # A refusal for content is explained privately; the channel is not told that a member was flagged.
    await app.reply_to(third, "failed")
    await app.delivered(3)
    assert [m for m in app.channel_posts(CHANNEL_ID) if "#3" in m.content] == []

    def entries() -> list[str]:
        return [m.content for m in app.discord.messages_in(log_channel) if m.content.startswith("🚩")]

    await app.discord.wait_for(lambda: len(entries()) == 3)
    withheld, spoilered, refused = entries()
    assert "Job #1 by <@11>" in withheld and f"<#{CHANNEL_ID}>" in withheld and "withheld" in withheld
    assert "Job #2 by <@12>" in spoilered and "posted as a spoiler" in spoilered
    assert "Job #3 by <@13>" in refused and "contentPolicyViolation" in refused
    flagged = [m for m in app.discord.messages_in(log_channel) if m.content.startswith("🚩")]
    assert all(m.attachments == [] for m in flagged)  # no media in the log
    del second


async def test_withhold_everywhere_keeps_flagged_videos_out_of_age_restricted_channels(app: App) -> None:
    """With /settings flagged withhold_everywhere:True, a flagged video is not posted even in an
    age-restricted channel: the member is told why, the log says so, the cost is given back."""
    from tests.fakes.runware import Outcome

    text = await settings(app, "flagged", ("withhold_everywhere", 5, True))
    assert "Flagged videos: withheld everywhere" in text
    await settings(app, "log", ("channel", 7, str(CHANNEL_ID)))
    app.runware.next_outcome(Outcome.success(nsfw=True))
    payload = await app.animate(channel_id=NSFW_CHANNEL_ID)
    reply = await app.reply_to(payload, "flagged as adult content")
    assert "This server doesn't post flagged videos" in reply.content and "not charged" in reply.content
    await app.delivered(1)
    assert app.channel_posts(NSFW_CHANNEL_ID) == []
    entry = await app.post_in_channel("was flagged", channel_id=CHANNEL_ID)
    assert "withheld" in entry.content and entry.attachments == []
    assert app.spent() == 0


async def test_dms_and_consent_switches_show_and_persist(app: App) -> None:
    """The yes/no settings are shown by /settings show with their defaults, and saved when changed."""
    text = await settings(app, "show")
    assert "Results sent by DM when the channel can't be used: no" in text
    assert "Flagged videos: spoilered in age-restricted channels" in text
    assert "Results sent by DM when the channel can't be used: yes" in await settings(
        app, "dms", ("allowed", 5, True)
    )
    assert app.query("SELECT dms_allowed FROM guild_settings WHERE guild_id = ?", GUILD_ID) == [(1,)]


async def test_threads_follow_their_parent_channel(app: App) -> None:
    """Allowing a channel allows its threads (the video is posted in the thread); a thread under a channel
    off the list is refused, and one under an age-restricted channel counts as age-restricted."""
    await settings(app, "channel", ("channel", 7, str(CHANNEL_ID)))
    allowed_thread, other_thread = 300_000_000_000_000_031, 300_000_000_000_000_032
    app.discord.add_thread(GUILD_ID, CHANNEL_ID, allowed_thread, "ideas")
    app.discord.add_thread(GUILD_ID, NSFW_CHANNEL_ID, other_thread, "late")
    payload = await app.animate(channel_id=allowed_thread)
    await app.reply_to(payload, "accepted")
    post = await app.post_in_channel("ready", channel_id=allowed_thread)
    assert len(post.attachments) == 1
    refused = await app.animate(channel_id=other_thread, user_id=5)
    await app.reply_to(refused, "can't be used in this channel")
    await settings(app, "channel", ("channel", 7, str(NSFW_CHANNEL_ID)))
    adult = await app.animate(channel_id=other_thread, user_id=6)
    await app.reply_to(adult, "accepted")
    assert app.query("SELECT channel_id, channel_nsfw FROM jobs ORDER BY id") == [
        (allowed_thread, 0),
        (other_thread, 1),
    ]


async def test_the_log_channel_can_be_unset(app: App) -> None:
    """/settings log without a channel stops the moderation log."""
    await settings(app, "log", ("channel", 7, str(CHANNEL_ID)))
    assert "Moderation log: not set" in await settings(app, "log")
    assert app.query("SELECT mod_log_channel_id FROM guild_settings WHERE guild_id = ?", GUILD_ID) == [
        (None,)
    ]
