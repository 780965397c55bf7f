"""FakeDiscord driven by a real discord.py Bot over the gateway.

These tests double as the smoke test for the discord.py internals the test suite relies on (Route.BASE,
DiscordWebSocket.DEFAULT_GATEWAY, the callback/with_response parsing, 429 retry rules): if discord.py moves
them, these fail first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import io
import warnings
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
import pytest_asyncio
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from tests.fakes.discord import MIB, FakeDiscord, point_discord_py_at
from tests.fakes.discord_fixtures import (
    BOOSTED_CHANNEL_ID,
    BOOSTED_GUILD_ID,
    CHANNEL_ID,
    GUILD_ID,
    GUILD_READY_TIMEOUT,
    NSFW_CHANNEL_ID,
    fixture_fake_discord,  # noqa: F401 - registers "fake_discord"
    running_bot,
)

ATTACHMENT = discord.AppCommandOptionType.attachment.value
INTEGER = discord.AppCommandOptionType.integer.value
BOOLEAN = discord.AppCommandOptionType.boolean.value


class Outcomes:
    """What the test commands report back: "ok", a value, or the exception they caught."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()

    def put(self, value: object) -> None:
        self.queue.put_nowait(value)

    async def get(self) -> object:
        return await asyncio.wait_for(self.queue.get(), 5.0)


class PressView(discord.ui.View):
    """A one-button view whose click edits the message."""

    @discord.ui.button(label="Press", custom_id="press")
    async def press(self, interaction: discord.Interaction, button: discord.ui.Button[PressView]) -> None:
        await interaction.response.edit_message(content="pressed", view=None)


def build_bot(out: Outcomes) -> commands.Bot:
    """A guilds-intent Bot with a small slash-command tree exercising the routes the project uses."""
    bot = commands.Bot(
        command_prefix=commands.when_mentioned,
        intents=discord.Intents(guilds=True),
        guild_ready_timeout=GUILD_READY_TIMEOUT,
        help_command=None,
    )

    @bot.tree.command(name="mix", description="Join two attachments.")
    async def mix(
        interaction: discord.Interaction, first: discord.Attachment, second: discord.Attachment
    ) -> None:
        await interaction.response.defer(thinking=True)
        try:
            data = await first.read() + await second.read()
            await interaction.followup.send("mixed", file=discord.File(io.BytesIO(data), "mixed.bin"))
            assert isinstance(interaction.channel, discord.TextChannel)
            await interaction.channel.send("done", nonce=f"mix{interaction.id}"[:25])
        except Exception as exc:
            out.put(exc)
        else:
            out.put("ok")

    @bot.tree.command(name="reply", description="Defer, then follow up.")
    async def reply(interaction: discord.Interaction, private_defer: bool, private_followup: bool) -> None:
        await interaction.response.defer(ephemeral=private_defer, thinking=True)
        await interaction.followup.send("answer", ephemeral=private_followup)
        out.put("ok")

    @bot.tree.command(name="fetch", description="Download one attachment.")
    async def fetch(interaction: discord.Interaction, file: discord.Attachment) -> None:
        await interaction.response.defer()
        try:
            out.put(await file.read())
        except Exception as exc:
            out.put(exc)

    @bot.tree.command(name="deliver", description="Follow up, fall back to the channel.")
    async def deliver(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        out.put(interaction.is_expired())
        try:
            await interaction.followup.send("via followup")
        except discord.HTTPException as exc:
            out.put(exc)
            assert isinstance(interaction.channel, discord.TextChannel)
            await interaction.channel.send("via channel")
        else:
            out.put("ok")

    @bot.tree.command(name="upload", description="Follow up with a file of a given size.")
    async def upload(interaction: discord.Interaction, size: int) -> None:
        await interaction.response.defer()
        try:
            await interaction.followup.send(file=discord.File(io.BytesIO(b"\0" * size), "out.mp4"))
        except Exception as exc:
            out.put(exc)
        else:
            out.put("ok")

    @bot.tree.command(name="slow", description="Acknowledge too late.")
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.3)
        try:
            await interaction.response.defer()
        except Exception as exc:
            out.put(exc)
        else:
            out.put("ok")

    @bot.tree.command(name="button", description="Post a message with a button.")
    async def button(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("press me", view=PressView())
        out.put(await interaction.original_response())

    @bot.tree.command(name="progress", description="Edit the placeholder, then follow up.")
    async def progress(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        await interaction.edit_original_response(content="working")
        await interaction.followup.send("finished")
        out.put("ok")

    group = app_commands.Group(name="admin", description="Admin commands.")

    @group.command(name="ping", description="Answer pong.")
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pong", ephemeral=True)
        out.put("ok")

    bot.tree.add_command(group)
    return bot


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


@pytest_asyncio.fixture
async def bot(fake_discord: FakeDiscord, outcomes: Outcomes) -> AsyncIterator[commands.Bot]:
    """The test bot, logged in and READY through the fake gateway."""
    the_bot = build_bot(outcomes)
    async with running_bot(the_bot, fake_discord):
        yield the_bot


def text_channel_of(bot: commands.Bot, channel_id: int) -> discord.TextChannel:
    channel = bot.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


def test_discord_py_internals_the_fake_relies_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """discord.py is the pinned version and point_discord_py_at redirects REST routes and the gateway."""
    assert discord.__version__ == "2.7.1"
    # Re-set the current values so monkeypatch restores them after the test.
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", DiscordWebSocket.DEFAULT_GATEWAY)
    point_discord_py_at("http://127.0.0.1:9/api/v10", "ws://127.0.0.1:9/gateway")
    route = discord.http.Route(
        "POST", "/webhooks/{webhook_id}/{webhook_token}", webhook_id=1, webhook_token="t"
    )
    assert route.url == "http://127.0.0.1:9/api/v10/webhooks/1/t"
    assert yarl.URL("ws://127.0.0.1:9/gateway") == DiscordWebSocket.DEFAULT_GATEWAY


async def test_login_identifies_and_fills_the_guild_cache(
    fake_discord: FakeDiscord, bot: commands.Bot
) -> None:
    """Login hits /users/@me and /oauth2/applications/@me, IDENTIFY carries the intents, guilds are cached."""
    assert bot.user is not None and bot.user.id == fake_discord.bot_user_id
    assert bot.application_id == fake_discord.application_id
    assert fake_discord.request_log()[:2] == [("GET", "/users/@me"), ("GET", "/oauth2/applications/@me")]
    assert fake_discord.gateway_connections[0].items() >= {"v": "10", "encoding": "json"}.items()
    assert fake_discord.identify_payloads[0]["intents"] == discord.Intents(guilds=True).value
    assert {g.id for g in bot.guilds} == {GUILD_ID, BOOSTED_GUILD_ID}
    assert not fake_discord.unexpected_requests


async def test_wrong_token_fails_login(fake_discord: FakeDiscord) -> None:
    """A token the fake does not know answers 401, which discord.py raises as LoginFailure."""
    client = discord.Client(intents=discord.Intents(guilds=True))
    async with client:
        with pytest.raises(discord.LoginFailure):
            await client.login("not-" + fake_discord.token)


async def test_guild_cache_reflects_boost_tier_and_nsfw(fake_discord: FakeDiscord, bot: commands.Bot) -> None:
    """Guild.filesize_limit follows the premium tier and TextChannel.is_nsfw() the channel flag."""
    guild, boosted = bot.get_guild(GUILD_ID), bot.get_guild(BOOSTED_GUILD_ID)
    assert guild is not None and boosted is not None
    assert guild.filesize_limit == fake_discord.guild_filesize_limit(GUILD_ID) == 10 * MIB
    assert boosted.filesize_limit == fake_discord.guild_filesize_limit(BOOSTED_GUILD_ID) == 50 * MIB
    assert text_channel_of(bot, NSFW_CHANNEL_ID).is_nsfw()
    assert not text_channel_of(bot, CHANNEL_ID).is_nsfw()


async def test_slash_command_round_trip(
    fake_discord: FakeDiscord, bot: commands.Bot, outcomes: Outcomes
) -> None:
    """A deferred command downloads two attachments, follows up with a file and posts in the channel."""
    first = fake_discord.add_attachment("a.png", b"AAA", "image/png")
    second = fake_discord.add_attachment("b.mp3", b"BBBB", "audio/mpeg")
    payload = fake_discord.make_slash_interaction(
        "mix", [("first", ATTACHMENT, first), ("second", ATTACHMENT, second)]
    )
    await fake_discord.send_interaction(payload)

    assert await outcomes.get() == "ok"
    done = await fake_discord.wait_for_message(lambda m: m.content == "done")
    assert done.via == "channel" and done.channel_id == CHANNEL_ID and done.nonce is not None
    events = fake_discord.interaction_responses(payload["id"])
    assert [(e.kind, e.callback_type) for e in events] == [("callback", 5), ("followup", None)]
    video = fake_discord.message(events[1].message_id or 0)
    assert video.id == events[0].message_id  # the first followup filled the deferred placeholder
    assert [(a.filename, a.data) for a in video.attachments] == [("mixed.bin", b"AAABBBB")]
    assert fake_discord.downloads(first["id"]) == fake_discord.downloads(second["id"]) == 1


async def test_ephemeral_defer_makes_the_followup_private(
    fake_discord: FakeDiscord, bot: commands.Bot
) -> None:
    """defer(ephemeral=True) then a plain followup gives a message with flag 64."""
    payload = fake_discord.make_slash_interaction(
        "reply", [("private_defer", BOOLEAN, True), ("private_followup", BOOLEAN, False)]
    )
    await fake_discord.send_interaction(payload)
    message = await fake_discord.wait_for_message(lambda m: m.content == "answer")
    assert fake_discord.ephemeral(message.id)


async def test_public_defer_ignores_an_ephemeral_followup(
    fake_discord: FakeDiscord, bot: commands.Bot
) -> None:
    """defer() then followup.send(ephemeral=True) stays public: the placeholder's visibility wins."""
    payload = fake_discord.make_slash_interaction(
        "reply", [("private_defer", BOOLEAN, False), ("private_followup", BOOLEAN, True)]
    )
    await fake_discord.send_interaction(payload)
    message = await fake_discord.wait_for_message(lambda m: m.content == "answer")
    assert not message.ephemeral
    assert fake_discord.interaction_responses(payload["id"])[1].payload["flags"] == 64


async def test_expired_attachment_url_raises_not_found(
    fake_discord: FakeDiscord, bot: commands.Bot, outcomes: Outcomes
) -> None:
    """Attachment.read() of an expired signed URL raises discord.NotFound."""
    attachment = fake_discord.add_attachment("old.png", b"x", "image/png")
    fake_discord.expire_attachment(attachment["id"])
    await fake_discord.send_interaction(
        fake_discord.make_slash_interaction("fetch", [("file", ATTACHMENT, attachment)])
    )
    assert isinstance(await outcomes.get(), discord.NotFound)
    assert fake_discord.downloads(attachment["id"]) == 0


async def test_cdn_rejects_a_tampered_signature(fake_discord: FakeDiscord) -> None:
    """A CDN URL whose hm parameter was altered answers 404; the genuine one serves the bytes."""
    attachment = fake_discord.add_attachment("my clip #1.bin", b"payload")
    async with aiohttp.ClientSession() as session:
        async with session.get(attachment["url"]) as good:
            assert good.status == 200 and await good.read() == b"payload"
        async with session.get(attachment["url"].replace("hm=", "hm=0")) as bad:
            assert bad.status == 404


async def test_expired_token_fails_followup_but_channel_send_works(
    fake_discord: FakeDiscord, bot: commands.Bot, outcomes: Outcomes
) -> None:
    """Once the token expired, followups raise HTTPException 50027; a bot-token channel post still works."""
    payload = fake_discord.make_slash_interaction("deliver")
    fake_discord.expire_interaction_token(payload["token"])
    await fake_discord.send_interaction(payload)
    assert await outcomes.get() is False
    error = await outcomes.get()
    assert isinstance(error, discord.HTTPException) and error.status == 401 and error.code == 50027
    fallback = await fake_discord.wait_for_message(lambda m: m.content == "via channel")
    assert fallback.via == "channel"


async def test_old_interaction_is_expired_and_its_token_dead(
    fake_discord: FakeDiscord, bot: commands.Bot, outcomes: Outcomes
) -> None:
    """created_at 16 minutes ago makes Interaction.is_expired() true and the followup fail with 50027."""
    created = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)
    await fake_discord.send_interaction(fake_discord.make_slash_interaction("deliver", created_at=created))
    assert await outcomes.get() is True
    error = await outcomes.get()
    assert isinstance(error, discord.HTTPException) and error.code == 50027


async def test_late_callback_is_unknown_interaction(
    fake_discord: FakeDiscord, bot: commands.Bot, outcomes: Outcomes
) -> None:
    """An initial response after the callback window fails with 404 code 10062."""
    fake_discord.callback_window_s = 0.1
    await fake_discord.send_interaction(fake_discord.make_slash_interaction("slow"))
    error = await outcomes.get()
    assert isinstance(error, discord.NotFound) and error.code == 10062


async def test_second_ack_is_rejected(fake_discord: FakeDiscord) -> None:
    """A second interaction callback answers 400 code 40060."""
    payload = fake_discord.make_slash_interaction("mix")
    url = f"{fake_discord.api_base}/interactions/{payload['id']}/{payload['token']}/callback"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"type": 5}) as first:
            assert first.status == 200 and first.headers["Content-Type"] == "application/json"
        async with session.post(url, json={"type": 5}) as second:
            assert second.status == 400 and (await second.json())["code"] == 40060


async def test_nonce_deduplicates_channel_posts(fake_discord: FakeDiscord, bot: commands.Bot) -> None:
    """Two sends with the same nonce create one message and return it both times."""
    channel = text_channel_of(bot, CHANNEL_ID)
    first = await channel.send("once", file=discord.File(io.BytesIO(b"v"), "v.mp4"), nonce="job-42")
    second = await channel.send("once", file=discord.File(io.BytesIO(b"v"), "v.mp4"), nonce="job-42")
    assert first.id == second.id
    assert [m.content for m in fake_discord.messages_in(CHANNEL_ID)] == ["once"]


async def test_nonce_repeat_after_the_window_posts_again(
    fake_discord: FakeDiscord, bot: commands.Bot
) -> None:
    """Discord drops a repeated nonce only for a few minutes: after nonce_ttl_s a repeat is a new message."""
    channel = text_channel_of(bot, CHANNEL_ID)
    first = await channel.send("once", nonce="job-43")
    fake_discord.nonce_ttl_s = 0.0
    second = await channel.send("once", nonce="job-43")
    assert first.id != second.id
    assert [m.content for m in fake_discord.messages_in(CHANNEL_ID)] == ["once", "once"]


async def test_history_pages_newest_first(fake_discord: FakeDiscord, bot: commands.Bot) -> None:
    """channel.history with limit, before, after and around reads the channel like Discord, no nonces."""
    channel = text_channel_of(bot, CHANNEL_ID)
    sent = [await channel.send(f"m{i}", nonce=f"n{i}") for i in range(5)]
    latest = [m.content async for m in channel.history(limit=3)]
    assert latest == ["m4", "m3", "m2"]
    after = [m.content async for m in channel.history(after=sent[1], limit=2)]
    assert after == ["m2", "m3"]  # oldest first: discord.py reverses Discord's newest-first page
    before = [m.content async for m in channel.history(before=sent[3], limit=10)]
    assert before == ["m2", "m1", "m0"]
    around = [m.content async for m in channel.history(around=sent[2], limit=3)]
    assert sorted(around) == ["m1", "m2", "m3"]
    all_of_them = [m async for m in channel.history(limit=None)]
    assert len(all_of_them) == 5 and all(m.nonce is None for m in all_of_them)


async def test_members_messages_can_be_fetched_until_deleted(
    fake_discord: FakeDiscord, bot: commands.Bot
) -> None:
    """A member's message (member_message) is kept: GET returns it with its attachments in its own channel
    only; a reply brings the message it replies to (even when its own payload left it out), null once that
    one is deleted; a deleted message is 404 10008."""
    photo_file = fake_discord.add_attachment("me.png", b"png", "image/png", channel_id=CHANNEL_ID)
    photo = fake_discord.member_message(CHANNEL_ID, 200_000_000_000_000_077, [photo_file])
    reply = fake_discord.member_message(
        CHANNEL_ID, 200_000_000_000_000_077, content="this", replying_to=photo, with_referenced_message=False
    )
    assert "referenced_message" not in reply
    channel = text_channel_of(bot, CHANNEL_ID)
    fetched = await channel.fetch_message(int(photo["id"]))
    assert fetched.author.id == 200_000_000_000_000_077 and fetched.attachments[0].filename == "me.png"
    fetched_reply = await channel.fetch_message(int(reply["id"]))
    assert fetched_reply.reference is not None
    assert isinstance(fetched_reply.reference.resolved, discord.Message)
    assert fetched_reply.reference.resolved.id == int(photo["id"])
    with pytest.raises(discord.NotFound):
        await text_channel_of(bot, NSFW_CHANNEL_ID).fetch_message(int(photo["id"]))
    fake_discord.delete_member_message(photo)
    with pytest.raises(discord.NotFound) as info:
        await channel.fetch_message(int(photo["id"]))
    assert info.value.code == 10008
    fetched_reply = await channel.fetch_message(int(reply["id"]))
    assert fetched_reply.reference is not None
    assert isinstance(fetched_reply.reference.resolved, discord.DeletedReferencedMessage)


async def test_lost_answer_carries_out_the_request(fake_discord: FakeDiscord, bot: commands.Bot) -> None:
    """inject_lost_answer: the message is created, the caller gets an error."""
    fake_discord.inject_lost_answer(f"POST /channels/{CHANNEL_ID}/messages", 503)
    with pytest.raises(discord.HTTPException) as info:
        await text_channel_of(bot, CHANNEL_ID).send("made anyway")
    assert info.value.status == 503
    assert [m.content for m in fake_discord.messages_in(CHANNEL_ID)] == ["made anyway"]


async def test_ready_can_be_held_back(fake_discord: FakeDiscord) -> None:
    """With hold_ready the client logs in and identifies but gets no READY (empty cache) until released."""
    fake_discord.hold_ready = True
    bot = commands.Bot(
        command_prefix="!", intents=discord.Intents(guilds=True), guild_ready_timeout=GUILD_READY_TIMEOUT
    )
    async with bot:
        start = asyncio.create_task(bot.start(fake_discord.token))
        await fake_discord.wait_for(lambda: len(fake_discord.identify_payloads) == 1)
        await asyncio.sleep(0.1)
        assert not bot.is_ready() and bot.get_channel(CHANNEL_ID) is None
        await fake_discord.release_ready()
        await asyncio.wait_for(bot.wait_until_ready(), 5)
        assert bot.get_channel(CHANNEL_ID) is not None
        await bot.close()
        await asyncio.wait_for(start, 5)


async def test_channel_upload_over_guild_limit_is_413(fake_discord: FakeDiscord, bot: commands.Bot) -> None:
    """A file over the guild's limit fails with 413 code 40005; a boosted guild accepts it."""
    too_big = b"\0" * (10 * MIB + 1)
    with pytest.raises(discord.HTTPException) as info:
        await text_channel_of(bot, CHANNEL_ID).send(file=discord.File(io.BytesIO(too_big), "big.mp4"))
    assert info.value.status == 413 and info.value.code == 40005
    message = await text_channel_of(bot, BOOSTED_CHANNEL_ID).send(
        file=discord.File(io.BytesIO(too_big), "big.mp4")
    )
    assert fake_discord.message(message.id).attachments[0].size == len(too_big)


async def test_followup_over_interaction_limit_is_413(
    fake_discord: FakeDiscord, bot: commands.Bot, outcomes: Outcomes
) -> None:
    """A followup file over the interaction's attachment_size_limit fails with 413 code 40005."""
    payload = fake_discord.make_slash_interaction(
        "upload", [("size", INTEGER, 1001)], attachment_size_limit=1000
    )
    await fake_discord.send_interaction(payload)
    error = await outcomes.get()
    assert isinstance(error, discord.HTTPException) and error.status == 413 and error.code == 40005


async def test_429_is_retried_by_discord_py(fake_discord: FakeDiscord, bot: commands.Bot) -> None:
    """An injected 429 with Via and retry_after is retried transparently."""
    fake_discord.inject_429(f"POST /channels/{CHANNEL_ID}/messages", retry_after=0.05)
    await text_channel_of(bot, CHANNEL_ID).send("after a 429")
    statuses = [r.status for r in fake_discord.requests if r.path == f"/channels/{CHANNEL_ID}/messages"]
    assert statuses == [429, 200]
    assert [m.content for m in fake_discord.messages_in(CHANNEL_ID)] == ["after a 429"]


async def test_injected_403_raises_forbidden(fake_discord: FakeDiscord, bot: commands.Bot) -> None:
    """inject_status(403, 50013) surfaces as discord.Forbidden with that code."""
    fake_discord.inject_status("/messages", 403, 50013, message="Missing Permissions")
    with pytest.raises(discord.Forbidden) as info:
        await text_channel_of(bot, CHANNEL_ID).send("nope")
    assert info.value.code == 50013


async def test_tree_sync_records_commands(fake_discord: FakeDiscord, bot: commands.Bot) -> None:
    """tree.sync() globally and to a guild records the commands, groups included."""
    synced = await bot.tree.sync()
    assert {c.name for c in synced} == {c["name"] for c in fake_discord.synced_commands()}
    assert "admin" in {c.name for c in synced}
    bot.tree.copy_global_to(guild=discord.Object(GUILD_ID))
    await bot.tree.sync(guild=discord.Object(GUILD_ID))
    assert "mix" in {c["name"] for c in fake_discord.synced_commands(GUILD_ID)}
    assert [guild for guild, _ in fake_discord.command_syncs] == [None, GUILD_ID]


async def test_subcommand_in_dm(fake_discord: FakeDiscord, bot: commands.Bot, outcomes: Outcomes) -> None:
    """A subcommand interaction from a DM reaches the group's command and answers ephemerally."""
    payload = fake_discord.make_slash_interaction("admin", subcommand="ping", dm=True)
    await fake_discord.send_interaction(payload)
    assert await outcomes.get() == "ok"
    pong = await fake_discord.wait_for_message(lambda m: m.content == "pong")
    assert pong.ephemeral and pong.via == "callback" and pong.guild_id is None


async def test_button_click_edits_the_message(
    fake_discord: FakeDiscord, bot: commands.Bot, outcomes: Outcomes
) -> None:
    """A component interaction on a message with a View runs the button and updates the message."""
    await fake_discord.send_interaction(fake_discord.make_slash_interaction("button"))
    original = await outcomes.get()
    assert isinstance(original, discord.InteractionMessage)
    assert fake_discord.message(original.id).components  # the button was sent
    click = fake_discord.make_component_interaction("press", original.id)
    await fake_discord.send_interaction(click)
    await fake_discord.wait_for(lambda: fake_discord.message(original.id).content == "pressed")
    edited = fake_discord.message(original.id)
    assert edited.components == [] and edited.edits[0]["content"] == "press me"
    assert fake_discord.interaction_responses(click["id"])[0].callback_type == 7


async def test_gateway_resume_after_disconnect(
    fake_discord: FakeDiscord, bot: commands.Bot, outcomes: Outcomes
) -> None:
    """A dropped socket is RESUMEd and events keep flowing."""
    await fake_discord.disconnect_gateway(4000)
    await fake_discord.wait_for(lambda: fake_discord.resumes == 1 and fake_discord.connected_sessions == 1)
    await fake_discord.send_interaction(fake_discord.make_slash_interaction("admin", subcommand="ping"))
    assert await outcomes.get() == "ok"
    assert len(fake_discord.identify_payloads) == 1


async def test_edit_original_fills_the_placeholder(
    fake_discord: FakeDiscord, bot: commands.Bot, outcomes: Outcomes
) -> None:
    """edit_original_response fills the deferred placeholder, so the next followup is a new message."""
    payload = fake_discord.make_slash_interaction("progress")
    await fake_discord.send_interaction(payload)
    assert await outcomes.get() == "ok"
    events = fake_discord.interaction_responses(payload["id"])
    assert [e.kind for e in events] == ["callback", "edit_original", "followup"]
    placeholder, final = (
        fake_discord.message(events[0].message_id or 0),
        fake_discord.message(events[2].message_id or 0),
    )
    assert (placeholder.content, placeholder.via, placeholder.ephemeral) == ("working", "original", True)
    assert placeholder.edits[0]["flags"] & 128  # it was the "thinking" placeholder
    assert (final.content, final.via, final.ephemeral) == ("finished", "followup", False)


async def test_invalid_session_makes_discord_py_identify_again(
    fake_discord: FakeDiscord, bot: commands.Bot, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With resume refused, the RESUME gets INVALID_SESSION and discord.py sends a new IDENTIFY."""

    async def identify_now(shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py's default hook sleeps 5 s before every IDENTIFY but the first."""

    monkeypatch.setattr(bot, "before_identify_hook", identify_now)
    fake_discord.allow_resume = False
    await fake_discord.disconnect_gateway(4000)
    await fake_discord.wait_for(lambda: len(fake_discord.identify_payloads) == 2)
    await fake_discord.wait_for(lambda: fake_discord.connected_sessions == 1)
    await fake_discord.send_interaction(fake_discord.make_slash_interaction("admin", subcommand="ping"))
    assert await outcomes.get() == "ok"
    assert fake_discord.resumes == 0


async def test_heartbeats_are_acknowledged(fake_discord: FakeDiscord, bot: commands.Bot) -> None:
    """discord.py heartbeats on HELLO and gets an ACK (its latency becomes finite)."""
    await fake_discord.wait_for(lambda: fake_discord.heartbeats >= 1)
    await asyncio.sleep(0.05)
    assert bot.latency != float("inf")


async def test_unknown_route_is_recorded(fake_discord: FakeDiscord, bot: commands.Bot) -> None:
    """A route the fake does not implement answers 404 JSON and lands in unexpected_requests."""
    with pytest.raises(discord.NotFound):
        await bot.fetch_guild(1)
    assert fake_discord.unexpected_requests == [("GET", "/guilds/1")]


async def test_dm_channel_and_closed_dms(fake_discord: FakeDiscord, bot: commands.Bot) -> None:
    """The bot can open a DM and post in it; a user with DMs closed makes the post fail with 50007."""
    user = await bot.fetch_user(42)
    message = await user.send("hello")
    assert fake_discord.dm_channel_of(42) == message.channel.id
    fake_discord.close_dms(42)
    with pytest.raises(discord.Forbidden) as info:
        await user.send("again")
    assert info.value.code == 50007


async def test_close_is_clean(fake_discord: FakeDiscord, outcomes: Outcomes) -> None:
    """bot.close() ends bot.start() without error, closes the socket and leaves no resource warnings."""
    the_bot = build_bot(outcomes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with running_bot(the_bot, fake_discord):
            await fake_discord.wait_for_ready()
        await fake_discord.wait_for(lambda: fake_discord.connected_sessions == 0)
        gc.collect()
    assert the_bot.is_closed()
    assert [str(w.message) for w in caught] == []
