"""/moderation through real discord.py: bans enforced before anything is made or charged; unban; owners."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import App
from tests.fakes.discord import DEFAULT_PERMISSIONS, user_payload
from tests.fakes.discord_fixtures import BOOSTED_CHANNEL_ID, BOOSTED_GUILD_ID

MANAGE_MESSAGES = 1 << 13
MODERATOR_ID = 200_000_000_000_000_555
OWNER_ID = 200_000_000_000_000_999
MEMBER_ID = 200_000_000_000_000_001


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    return {**app_settings, "bot_owner_ids": [OWNER_ID]}


async def moderation(
    app: App, sub: str, *options: tuple[str, int, Any], actor: int = MODERATOR_ID, moderator: bool = True
) -> str:
    """Run /moderation <sub> as a moderator (or not) and return the private reply."""
    users = {str(v): user_payload(int(v), f"user{v}") for _, t, v in options if t == 6}
    payload = app.discord.make_slash_interaction(
        "moderation",
        list(options),
        subcommand=sub,
        resolved={"users": users} if users else None,
        user_id=actor,
        permissions=DEFAULT_PERMISSIONS | (MANAGE_MESSAGES if moderator else 0),
    )
    await app.discord.send_interaction(payload)
    reply = await app.reply_to(payload)
    assert reply.ephemeral
    return reply.content


async def test_banned_member_is_refused_before_anything_happens(app: App) -> None:
    """A banned member is told why; nothing is downloaded, submitted or charged. Unban lets them back."""
    text = await moderation(app, "ban", ("member", 6, str(MEMBER_ID)), ("reason", 3, "impersonation"))
    assert "can no longer use the bot in this server" in text
    image = app.discord.add_attachment("face.png", b"\x89PNG")
    payload = app.discord.make_slash_interaction("animate", [("image", 11, image), ("audio", 11, image)])
    await app.discord.send_interaction(payload)
    reply = await app.reply_to(payload, "can't use this bot here")
    assert "impersonation" in reply.content
    assert app.discord.downloads(image["id"]) == 0 and app.runware.requests == []
    assert app.query("SELECT COUNT(*) FROM ledger") == [(0,)]
    assert "can use the bot again" in await moderation(app, "unban", ("member", 6, str(MEMBER_ID)))
    again = await app.animate(user_id=MEMBER_ID)
    await app.reply_to(again, "accepted")


async def test_bans_are_listed_and_audited(app: App) -> None:
    """/moderation bans lists who, why and by whom; bans and unbans are in the audit log."""
    await moderation(app, "ban", ("member", 6, str(MEMBER_ID)), ("reason", 3, "spam"))
    text = await moderation(app, "bans")
    assert f"<@{MEMBER_ID}>: spam · by <@{MODERATOR_ID}>" in text
    await moderation(app, "unban", ("member", 6, str(MEMBER_ID)))
    assert app.query("SELECT actor_id, action FROM audit_log ORDER BY id") == [
        (MODERATOR_ID, "moderation.ban"),
        (MODERATOR_ID, "moderation.unban"),
    ]
    assert "Nobody is banned" in await moderation(app, "bans")


async def test_members_without_manage_messages_are_refused(app: App) -> None:
    """Every /moderation command refuses a member without Manage Messages, in code."""
    for sub, options in (
        ("ban", (("member", 6, str(MEMBER_ID)), ("reason", 3, "x"))),
        ("unban", (("member", 6, str(MEMBER_ID)),)),
        ("bans", ()),
    ):
        assert "Manage Messages" in await moderation(app, sub, *options, actor=MEMBER_ID, moderator=False)
    assert app.query("SELECT COUNT(*) FROM bans") == [(0,)]


async def test_only_owners_ban_everywhere(app: App) -> None:
    """A moderator cannot ban across servers; a bot owner can, and it applies in another server."""
    text = await moderation(
        app, "ban", ("member", 6, str(MEMBER_ID)), ("reason", 3, "abuse"), ("everywhere", 5, True)
    )
    assert "Only the bot's owners" in text and app.query("SELECT COUNT(*) FROM bans") == [(0,)]
    text = await moderation(
        app,
        "ban",
        ("member", 6, str(MEMBER_ID)),
        ("reason", 3, "abuse"),
        ("everywhere", 5, True),
        actor=OWNER_ID,
    )
    assert "every server" in text
    payload = await app.animate(user_id=MEMBER_ID, guild_id=BOOSTED_GUILD_ID, channel_id=BOOSTED_CHANNEL_ID)
    assert "abuse" in (await app.reply_to(payload, "can't use this bot here")).content
    # A moderator's unban here does not lift it, and says so.
    text = await moderation(app, "unban", ("member", 6, str(MEMBER_ID)))
    assert "still banned from the bot in every server (abuse)" in text


async def test_a_long_ban_list_fits_in_one_message(app: App) -> None:
    """Forty bans with long reasons: the list stops at a whole line under Discord's 2,000 characters and
    says how many more there are."""
    for n in range(40):
        await moderation(app, "ban", ("member", 6, str(MEMBER_ID + n)), ("reason", 3, "x" * 150))
    text = await moderation(app, "bans")
    assert len(text) <= 2000 and text.startswith("**Banned from the bot** (40, newest first)")
    shown = text.count("xxxxx ·")
    assert 0 < shown < 40 and text.endswith(f"…and {40 - shown} more.")


async def test_lookup_is_refused_without_manage_messages(app: App) -> None:
    """Looking up who made what is for moderators: the bot itself refuses anyone else."""
    text = await moderation(app, "lookup", ("member", 6, str(MEMBER_ID)), actor=MEMBER_ID, moderator=False)
    assert "Manage Messages" in text


async def test_lookup_by_image_member_and_number(app: App) -> None:
    """A moderator finds jobs by the image file used, by member and by job number."""
    from tests import media_factory as media

    face, other = media.png(420, 420), media.png(430, 430)
    first = await app.animate(image=face, user_id=MEMBER_ID)
    await app.reply_to(first, "accepted")
    second = await app.animate(image=other, user_id=MEMBER_ID + 1)
    await app.reply_to(second, "accepted")
    attachment = app.discord.add_attachment("found-online.png", face)
    payload = app.discord.make_slash_interaction(
        "moderation",
        [("image", 11, attachment)],
        subcommand="lookup",
        user_id=MODERATOR_ID,
        permissions=DEFAULT_PERMISSIONS | MANAGE_MESSAGES,
    )
    await app.discord.send_interaction(payload)
    text = (await app.reply_to(payload, "Jobs found")).content
    assert f"#1 · <@{MEMBER_ID}>" in text and "#2 ·" not in text
    assert "#2 ·" in await moderation(app, "lookup", ("member", 6, str(MEMBER_ID + 1)))
    assert "#1 ·" in await moderation(app, "lookup", ("job", 4, 1))
    assert "Give a member" in await moderation(app, "lookup")
