"""The whole bot, in-process: real VideoBot and discord.py against the fake Discord and fake Runware, on
each backend (the `database` fixture: a new SQLite file or a new PostgreSQL schema per test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot import VideoBot, make_bot
from core.models import GuildSettingsPatch
from core.ports import Store
from core.runware import RunwareClient
from core.settings import Settings
from tests import media_factory as media
from tests.conftest import SettingsFactory
from tests.databases import Database
from tests.fakes.discord import DEFAULT_PERMISSIONS, FakeDiscord, FakeMessage, user_payload
from tests.fakes.discord_fixtures import (
    BOOSTED_GUILD_ID,
    CHANNEL_ID,
    GUILD_ID,
    GUILD_READY_TIMEOUT,
    running_bot,
)
from tests.fakes.runware import FakeRunware

ATTACHMENT = 11
USER = 6
CHANNEL = 7
BOOLEAN = 5
MANAGE_GUILD = 1 << 5
MANAGE_MESSAGES = 1 << 13
# Who set up the test guilds (recorded in their audit log).
ADMIN_ID = 200_000_000_000_000_900
STRING = 3
INTEGER = 4


def button(message: FakeMessage, label: str) -> str:
    """The custom_id of a button on a message, by its label."""
    for row in message.components:
        for component in row.get("components", []):
            if component.get("label") == label:
                return str(component["custom_id"])
    raise AssertionError(f"no {label} button in {message.components}")


def labels(message: FakeMessage) -> list[str]:
    """The labels of a message's buttons, in order."""
    return [str(c.get("label")) for row in message.components for c in row.get("components", [])]


@dataclass
class App:
    """A running bot with both fakes, and helpers to act as a member and read what they would read."""

    discord: FakeDiscord
    runware: FakeRunware
    bot: VideoBot
    database: Database
    settings: Settings
    store: Store
    client: RunwareClient

    async def animate(
        self,
        image: bytes | None = None,
        audio: bytes | None = None,
        *,
        image_name: str = "face.png",
        audio_name: str = "voice.wav",
        options: list[tuple[str, int, Any]] | None = None,
        **context: Any,
    ) -> dict[str, Any]:
        """Run /animate as a member; returns the interaction payload sent."""
        image_att = self.discord.add_attachment(image_name, media.png(400, 500) if image is None else image)
        audio_att = self.discord.add_attachment(audio_name, media.wav(3.0) if audio is None else audio)
        payload = self.discord.make_slash_interaction(
            "animate",
            [("image", ATTACHMENT, image_att), ("audio", ATTACHMENT, audio_att), *(options or [])],
            **context,
        )
        await self.discord.send_interaction(payload)
        return payload

    async def reply_to(
        self, payload: dict[str, Any], contains: str = "", timeout: float = 10.0
    ) -> FakeMessage:
        """The (first) response message of an interaction whose content contains `contains`."""
        interaction_id = int(payload["id"])
        return await self.discord.wait_for_message(
            lambda m: m.interaction_id == interaction_id and contains in m.content, timeout
        )

    async def post_in_channel(
        self, contains: str, channel_id: int = CHANNEL_ID, timeout: float = 15.0
    ) -> FakeMessage:
        """The first channel post (bot token) whose content contains `contains`."""
        return await self.discord.wait_for_message(
            lambda m: m.via == "channel" and m.channel_id == channel_id and contains in m.content, timeout
        )

    async def command(
        self,
        name: str,
        sub: str,
        *options: tuple[str, int, Any],
        user_id: int,
        permissions: int = DEFAULT_PERMISSIONS,
    ) -> str:
        """Run /<name> <sub> with options (users and channels resolved) as a member; the private reply."""
        users = {str(v): user_payload(int(v), f"user{v}") for _, t, v in options if t == USER}
        channels = {
            str(v): {"id": str(v), "name": f"c{v}", "type": 0, "permissions": "0"}
            for _, t, v in options
            if t == CHANNEL
        }
        resolved = {k: v for k, v in (("users", users), ("channels", channels)) if v}
        payload = self.discord.make_slash_interaction(
            name,
            list(options),
            subcommand=sub,
            resolved=resolved or None,
            user_id=user_id,
            permissions=permissions,
        )
        await self.discord.send_interaction(payload)
        reply = await self.reply_to(payload)
        assert reply.ephemeral
        return reply.content

    async def click(
        self, message: FakeMessage, label: str, user_id: int | None = None, **context: Any
    ) -> dict[str, Any]:
        """Press a button of a message (by its label) as a member; returns the interaction payload."""
        if user_id is not None:
            context["user_id"] = user_id
        payload = self.discord.make_component_interaction(button(message, label), message.id, **context)
        await self.discord.send_interaction(payload)
        return payload

    async def forge(self, custom_id: str, message_id: int, **context: Any) -> FakeMessage:
        """Press a custom_id on any message, as a forged interaction can; the bot's private refusal. The
        message shows the button (else discord.py drops the press before any of our code runs)."""
        payload = self.discord.make_component_interaction(custom_id, message_id, **context)
        forged = {"type": 2, "style": 2, "label": "Forged", "custom_id": custom_id}
        payload["message"]["components"] = [{"type": 1, "components": [forged]}]
        await self.discord.send_interaction(payload)
        refusal = await self.reply_to(payload, "This button doesn't belong here.")
        assert refusal.ephemeral
        return refusal

    def channel_posts(self, channel_id: int = CHANNEL_ID) -> list[FakeMessage]:
        return [m for m in self.discord.messages_in(channel_id) if m.via == "channel"]

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement on the bot's database, as another process would, on either backend: `?`
        placeholders; booleans come back as 0/1 and whole numbers as ints (see tests/databases.py)."""
        return self.database.query(sql, *params)

    async def delivered(self, job_id: int = 1, timeout: float = 10.0) -> None:
        """Wait until the job's result is recorded as posted."""
        await self.discord.wait_for(
            lambda: self.query("SELECT delivered_at IS NOT NULL FROM jobs WHERE id = ?", job_id) == [(1,)],
            timeout,
        )

    def spent(self) -> int:
        return int(self.query("SELECT COALESCE(SUM(amount_micros), 0) FROM ledger")[0][0])

    @asynccontextmanager
    async def replaced_bot(self, **options: Any) -> AsyncIterator[VideoBot]:
        """The app's bot closed and replaced, for the block, by a new one on the same settings, store and
        client, made with `options` (a restart, or a bot that runs otherwise)."""
        await self.bot.close()
        bot = VideoBot(
            settings=self.settings,
            store=self.store,
            runware=self.client,
            guild_ready_timeout=GUILD_READY_TIMEOUT,
            **options,
        )
        async with running_bot(bot, self.discord):
            yield bot


async def acknowledged(app: App, **context: Any) -> FakeMessage:
    """Run /animate; its private acknowledgement."""
    payload = await app.animate(**context)
    ack = await app.reply_to(payload, "accepted")
    assert ack.ephemeral
    return ack


@pytest.fixture
def app_settings(database: Database) -> dict[str, Any]:
    """Overrides for the app's settings; tests may change them before using `app`. The database is the
    test's own, of the backend the test runs on."""
    return {
        "price_per_second_usd": 0.10,
        "quota_user_daily_usd": 1.0,
        "quota_user_max_active_jobs": 2,
        "database_url": database.url,
        "dev_guild_id": GUILD_ID,
        "confirm_above_usd": None,  # quotes have tests of their own
    }


@pytest.fixture
def consent_required() -> bool:
    """Whether the test guilds ask for consent (their default). Off here so that each test of something
    else needs no Accept first; the consent tests turn it on."""
    return False


@pytest.fixture
def open_store(database: Database) -> Callable[[], Awaitable[Store]]:
    """How the app opens its store on the test's database: the backend's own store (a test file may hand
    in a store of its own making)."""
    return database.open


@pytest.fixture
async def app(
    fake_discord: FakeDiscord,
    make_settings: SettingsFactory,
    app_settings: dict[str, Any],
    consent_required: bool,
    database: Database,
    open_store: Callable[[], Awaitable[Store]],
) -> AsyncIterator[App]:
    async with FakeRunware(polls_to_finish=2) as runware, aiohttp.ClientSession() as http:
        settings = make_settings(runware_api_url=runware.url, runware_api_key=runware.api_key, **app_settings)
        assert settings.database_url == database.url
        store = await open_store()
        if not consent_required:
            for guild_id in (GUILD_ID, BOOSTED_GUILD_ID):
                await store.update_guild_settings(
                    guild_id, GuildSettingsPatch(consent_required=False), ADMIN_ID, 0.0
                )
        client = RunwareClient(
            http, api_url=runware.url, api_key=settings.runware_api_key, timeout_s=2.0, retry_base_s=0.01
        )
        bot = VideoBot(
            settings=settings, store=store, runware=client, guild_ready_timeout=GUILD_READY_TIMEOUT
        )
        try:
            async with running_bot(bot, fake_discord):
                yield App(fake_discord, runware, bot, database, settings, store, client)
        finally:
            await store.close()


async def shard_bots(
    stack: AsyncExitStack,
    runware: FakeRunware,
    database: Database,
    make_settings: SettingsFactory,
    *per_shard: dict[str, Any],
) -> list[VideoBot]:
    """One bot per entry of `per_shard` (its own extra settings), shard i of len(per_shard), each with a
    store of its own on the test's database (closed with `stack`), as separate processes would have;
    GUILD_ID asks no consent. Made, not started: see `run_bots`."""
    http = await stack.enter_async_context(aiohttp.ClientSession())
    bots: list[VideoBot] = []
    for shard, extra in enumerate(per_shard):
        settings = make_settings(
            runware_api_url=runware.url,
            runware_api_key=runware.api_key,
            database_url=database.url,
            dev_guild_id=GUILD_ID,
            confirm_above_usd=None,
            shard_count=len(per_shard),
            shard_ids=str(shard),
            **extra,
        )
        store: Store = await database.open()
        stack.push_async_callback(store.close)
        if shard == 0:
            await store.update_guild_settings(
                GUILD_ID, GuildSettingsPatch(consent_required=False), ADMIN_ID, 0.0
            )
        client = RunwareClient(
            http, api_url=runware.url, api_key=settings.runware_api_key, timeout_s=2.0, retry_base_s=0.01
        )
        bots.append(
            make_bot(settings=settings, store=store, runware=client, guild_ready_timeout=GUILD_READY_TIMEOUT)
        )
    return bots


async def run_bots(stack: AsyncExitStack, fake_discord: FakeDiscord, bots: list[VideoBot]) -> None:
    """Start the bots together against the fake Discord; they stop with `stack`."""
    await asyncio.gather(*(stack.enter_async_context(running_bot(b, fake_discord)) for b in bots))
