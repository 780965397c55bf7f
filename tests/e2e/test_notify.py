"""Wake-ups and messages between processes (issue 11): two real bots (sharded, real discord.py) on one
PostgreSQL schema against the fake Discord and the fake Runware. The process whose shard received /animate
holds the member's private acknowledgement; when another process advances and posts the job, the
acknowledgement still shows the progress and then the outcome (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bot import VideoBot
from tests import media_factory as media
from tests.conftest import SettingsFactory
from tests.databases import Database
from tests.e2e.conftest import ATTACHMENT, run_bots, shard_bots
from tests.fakes.discord import FakeDiscord, FakeMessage
from tests.fakes.discord_fixtures import CHANNEL_ID, GUILD_ID
from tests.fakes.runware import FakeRunware


@dataclass
class Two:
    """Two bot processes on one database: `a` serves GUILD_ID's shard (0 of 2), `b` the other shard."""

    fake: FakeDiscord
    runware: FakeRunware
    a: VideoBot
    b: VideoBot
    database: Database

    async def animate(self) -> dict[str, object]:
        image = self.fake.add_attachment("face.png", media.png(400, 500))
        audio = self.fake.add_attachment("voice.wav", media.wav(3.0))
        payload = self.fake.make_slash_interaction(
            "animate", [("image", ATTACHMENT, image), ("audio", ATTACHMENT, audio)]
        )
        await self.fake.send_interaction(payload)
        return payload

    async def ack(self, payload: dict[str, object], contains: str, timeout: float = 20.0) -> FakeMessage:
        """The command's private acknowledgement once its content contains `contains`."""
        interaction_id = int(str(payload["id"]))
        return await self.fake.wait_for_message(
            lambda m: m.interaction_id == interaction_id and contains in m.content, timeout
        )


@pytest.fixture
async def two(
    fake_discord: FakeDiscord, make_settings: SettingsFactory, database: Database
) -> AsyncIterator[Two]:
    if database.backend == "sqlite":
        pytest.skip("SQLite's notifications stay in one process (see the README: several processes)")
    async with FakeRunware(polls_to_finish=4) as runware, contextlib.AsyncExitStack() as stack:
        bots = await shard_bots(stack, runware, database, make_settings, {}, {})
        await run_bots(stack, fake_discord, bots)
        yield Two(fake_discord, runware, bots[0], bots[1], database)


async def stop_runner(bot: VideoBot) -> None:
    """Stop a process's job runner (the process itself keeps serving its shard and its notifications)."""
    task = bot._runner_task
    assert task is not None
    task.cancel()
    await asyncio.wait({task})


async def test_the_acknowledgement_shows_what_another_process_did(two: Two) -> None:
    """Process A answers /animate (its shard) but its runner is stopped; process B claims the job once
    A's upload lease runs out, renders and posts it. A's private acknowledgement shows B's progress, then
    the outcome with a link to B's post, as it would had A done the work."""
    await stop_runner(two.a)
    payload = await two.animate()
    await two.ack(payload, "Job #1 accepted")
    rendering = await two.ack(payload, "Being made by the video service:")
    assert rendering.ephemeral and "Job #1 accepted" in rendering.content
    post = await two.fake.wait_for_message(
        lambda m: m.via == "channel" and m.channel_id == CHANNEL_ID and "ready" in m.content, 20
    )
    ack = await two.ack(payload, "is ready")
    assert ack.content.startswith("✅ Job #1 is ready. It cost")
    assert ack.content.endswith(f"/channels/{GUILD_ID}/{CHANNEL_ID}/{post.id}")
    # B did the work: A's runner never ran, and the job's lease was B's.
    assert two.database.query("SELECT delivered_at IS NOT NULL FROM jobs WHERE id = 1") == [(1,)]
    assert two.runware.submission_counts.total() == 1


async def test_a_stopping_process_hands_its_jobs_over_at_once(two: Two) -> None:
    """A process that stops lets go of its leases and says so: the other claims its job at once (not
    after its lease would have run out), and the job is still submitted and posted once."""
    two.runware.polls_to_finish = 10_000
    two.a.runner.lease_s = 3600.0  # without the hand-over, B would wait an hour
    payload = await two.animate()
    await two.ack(payload, "Being made by the video service:")
    owner_a = two.a.runner.owner
    assert two.database.query("SELECT lease_owner FROM jobs WHERE id = 1") == [(owner_a,)]
    await two.a.close()
    two.runware.polls_to_finish = 1
    await two.fake.wait_for(
        lambda: two.database.query("SELECT delivered_at IS NOT NULL FROM jobs WHERE id = 1") == [(1,)],
        timeout=20,
    )
    assert two.runware.submission_counts.total() == 1


async def test_the_acknowledgement_shows_a_post_another_process_made_while_this_one_waited(
    two: Two,
) -> None:
    """Process A holds the acknowledgement and claimed the job's delivery, but its deliveries are all
    busy (a backlog); its delivery lease ends and B posts the job. B's DELIVERED notice reaches A while A
    still has the job in hand, so A must show the outcome itself once it finds the job posted, or the
    acknowledgement would stay at "Rendering" for good."""
    from cogs.delivery import MAX_CONCURRENT_DELIVERIES

    cog = two.a.get_cog("DeliveryCog")
    assert cog is not None
    slots: asyncio.Semaphore = cog._delivery_slots  # type: ignore[union-attr]
    for _ in range(MAX_CONCURRENT_DELIVERIES):
        await slots.acquire()  # every delivery of A is busy
    payload = await two.animate()
    await two.ack(payload, "Job #1 accepted")
    owner_a = two.a.runner.owner
    # A advanced the job (its upload lease made it A's) and took its delivery, which waits for a slot.
    await two.fake.wait_for(
        lambda: (
            two.database.query("SELECT delivery_owner FROM jobs WHERE id = 1") == [(owner_a,)]
            and 1 in cog._delivering
        ),  # type: ignore[union-attr]
        timeout=20,
    )
    await stop_runner(two.a)
    # A's delivery lease ends (as it would after REDELIVER_AFTER_S): B claims the delivery and posts.
    assert await two.a.store.expire_leases([owner_a], time.time()) >= 1
    post = await two.fake.wait_for_message(
        lambda m: m.via == "channel" and m.channel_id == CHANNEL_ID and "ready" in m.content, 20
    )
    await two.fake.wait_for(
        lambda: two.database.query("SELECT delivered_at IS NOT NULL FROM jobs WHERE id = 1") == [(1,)],
        timeout=20,
    )
    for _ in range(MAX_CONCURRENT_DELIVERIES):
        slots.release()
    ack = await two.ack(payload, "is ready")
    assert ack.content.endswith(f"/channels/{GUILD_ID}/{CHANNEL_ID}/{post.id}")
    posts = [m for m in two.fake.messages_in(CHANNEL_ID) if m.via == "channel" and "ready" in m.content]
    assert len(posts) == 1
