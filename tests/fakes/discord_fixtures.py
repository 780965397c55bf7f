"""Reusable pytest fixtures and helpers for running real discord.py against ``FakeDiscord``.

Import the fixture where it is needed (e.g. in tests/conftest.py); it is registered under the name
``fake_discord`` while the Python name differs, so test parameters called ``fake_discord`` do not trip
ruff's F811::

    from tests.fakes.discord_fixtures import fixture_fake_discord  # noqa: F401

and run a bot through the gateway with ``async with running_bot(bot, fake): ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import discord
import discord.gateway
import discord.http
import pytest
import pytest_asyncio
import yarl

from tests.fakes.discord import FakeDiscord, text_channel

GUILD_ID = 300_000_000_000_000_001  # boost tier 0: 10 MiB uploads
CHANNEL_ID = 300_000_000_000_000_011
NSFW_CHANNEL_ID = 300_000_000_000_000_012
BOOSTED_GUILD_ID = 300_000_000_000_000_002  # boost tier 2: 50 MiB uploads
BOOSTED_CHANNEL_ID = 300_000_000_000_000_021

# READY waits this long after the last GUILD_CREATE (default 2 s); pass it to the Bot constructor.
GUILD_READY_TIMEOUT = 0.05


def populate_default_guilds(fake: FakeDiscord) -> None:
    """A tier-0 guild with a normal and an age-restricted channel, and a tier-2 guild with one channel."""
    fake.add_guild(
        GUILD_ID,
        "Test Guild",
        premium_tier=0,
        channels=[
            text_channel(CHANNEL_ID, "general"),
            text_channel(NSFW_CHANNEL_ID, "after-dark", nsfw=True),
        ],
    )
    fake.add_guild(
        BOOSTED_GUILD_ID, "Boosted Guild", premium_tier=2, channels=[text_channel(BOOSTED_CHANNEL_ID, "b")]
    )


@pytest_asyncio.fixture(name="fake_discord")
async def fixture_fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord with the default guilds; discord.py is pointed at it for this test."""
    async with FakeDiscord() as fake:
        populate_default_guilds(fake)
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
        yield fake


@contextlib.asynccontextmanager
async def running_bot(
    bot: discord.Client, fake: FakeDiscord, *, ready_timeout_s: float = 10.0
) -> AsyncIterator[None]:
    """Run ``bot.start(fake.token)`` in a task until the bot is ready; close it and await the task on exit."""
    async with bot:
        start = asyncio.create_task(bot.start(fake.token), name="bot.start")
        ready = asyncio.create_task(bot.wait_until_ready(), name="bot.wait_until_ready")
        try:
            done, _ = await asyncio.wait(
                {start, ready}, timeout=ready_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if start in done:
                start.result()  # re-raises a login/connect failure
                raise RuntimeError("bot.start() returned before the bot became ready")
            if ready not in done:
                raise TimeoutError(f"bot not ready after {ready_timeout_s}s")
            yield
        finally:
            ready.cancel()
            await bot.close()
            try:
                await asyncio.wait_for(start, ready_timeout_s)
            except asyncio.CancelledError:
                if not start.cancelled():
                    raise
