"""Several bot processes (issue 11): each serves the interactions of its shards, and the work that must
happen once (syncing the commands, the daily pruning) is done by one of them. Real VideoBots (real
discord.py, sharded) on one database, against the fake Discord, which routes a guild's events to the
session of shard (guild_id >> 22) % SHARD_COUNT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest

from bot import ShardedVideoBot, VideoBot, make_bot
from core.runware import RunwareClient
from storage import open_store
from tests.conftest import SettingsFactory
from tests.fakes.discord import FakeDiscord, text_channel
from tests.fakes.discord.gateway import shard_of
from tests.fakes.discord_fixtures import GUILD_ID, GUILD_READY_TIMEOUT, running_bot
from tests.postgres import TEST_POSTGRES_URL, fresh_schema

# GUILD_ID (a default guild of the fake, as is BOOSTED_GUILD_ID) is on shard 0 of 2; this one on shard 1.
SHARD1_GUILD_ID = ((GUILD_ID >> 22) + 1) << 22
SHARD1_CHANNEL_ID = SHARD1_GUILD_ID + 11
GUILD_CHANNEL_ID = 300_000_000_000_000_011


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """One database that both processes use."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        with fresh_schema() as schema:
            yield f"{TEST_POSTGRES_URL}?search_path={schema}"


def test_the_shard_settings_choose_the_bot(make_settings: SettingsFactory) -> None:
    """No SHARD_COUNT: one connection (discord.py's Bot, no shard); SHARD_COUNT alone: every shard in
    this process; with SHARD_IDS: those shards only."""
    store: Any = None
    runware: Any = None
    plain = make_bot(settings=make_settings(), store=store, runware=runware)
    assert type(plain) is VideoBot and plain.shard_count is None and plain.shard_id is None
    every = make_bot(settings=make_settings(shard_count=3), store=store, runware=runware)
    assert isinstance(every, ShardedVideoBot)
    assert (every.shard_count, every.shard_ids) == (3, None)
    some = make_bot(settings=make_settings(shard_count=3, shard_ids="2, 0"), store=store, runware=runware)
    assert isinstance(some, ShardedVideoBot) and isinstance(some, discord.AutoShardedClient)
    assert (some.shard_count, some.shard_ids) == (3, [0, 2])


async def test_each_process_serves_its_shards_and_one_syncs_and_prunes(
    fake_discord: FakeDiscord,
    make_settings: SettingsFactory,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two processes (SHARD_COUNT=2, SHARD_IDS=0 and 1) started at once on one database: each gets the
    guilds of its shard and answers their commands only (each command once); the commands are synced by
    one of them (one PUT); the moderation records are pruned by one of them."""
    fake = fake_discord
    fake.add_guild(SHARD1_GUILD_ID, "Shard One", channels=[text_channel(SHARD1_CHANNEL_ID, "one")])
    assert (shard_of(GUILD_ID, 2), shard_of(SHARD1_GUILD_ID, 2)) == (0, 1)
    caplog.set_level(logging.INFO, logger="ventriloquist")
    seen: dict[int, list[int | None]] = {0: [], 1: []}
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        bots = []
        for shard in (0, 1):
            settings = make_settings(database_url=database_url, shard_count=2, shard_ids=str(shard))
            store = await stack.enter_async_context(open_store(settings.database_url))
            runware = RunwareClient.from_settings(http, settings)
            bot = make_bot(
                settings=settings, store=store, runware=runware, guild_ready_timeout=GUILD_READY_TIMEOUT
            )

            async def record(interaction: discord.Interaction, shard: int = shard) -> None:
                seen[shard].append(interaction.guild_id)

            bot.add_listener(record, "on_interaction")
            bots.append(bot)
        # Both start at once: both find the commands not synced yet, and the pruning due.
        await asyncio.gather(*(stack.enter_async_context(running_bot(b, fake)) for b in bots))

        assert [sorted(g.id for g in b.guilds) for b in bots] == [
            sorted({GUILD_ID, 300_000_000_000_000_002}),
            [SHARD1_GUILD_ID],
        ]
        assert len(fake.command_syncs) == 1
        # The other process either found the claim held, or (if it came a moment later) the sync done.
        waited = caplog.text.count("another process is syncing the slash commands")
        assert waited + caplog.text.count("slash commands unchanged; not syncing") == 1
        await fake.wait_for(lambda: caplog.text.count("pruned moderation records") >= 1)
        await asyncio.sleep(0.2)  # the other process's pruner has run its start pass by now
        assert caplog.text.count("pruned moderation records") == 1

        sent = []
        for guild_id, channel_id in ((GUILD_ID, GUILD_CHANNEL_ID), (SHARD1_GUILD_ID, SHARD1_CHANNEL_ID)):
            payload = fake.make_slash_interaction("usage", guild_id=guild_id, channel_id=channel_id)
            await fake.send_interaction(payload)
            sent.append(payload)
        for payload in sent:
            await fake.wait_for(lambda p=payload: len(fake.interaction_responses(p["id"])) >= 2)
        await asyncio.sleep(0.2)
        assert seen == {0: [GUILD_ID], 1: [SHARD1_GUILD_ID]}
        # Acknowledged (deferred) once each: one process answered each command.
        kinds = [[e.kind for e in fake.interaction_responses(p["id"])] for p in sent]
        assert kinds == [["callback", "followup"]] * 2
