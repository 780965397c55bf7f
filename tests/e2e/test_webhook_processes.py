"""Runware's webhook with two bot processes (sharded, real discord.py, each with its HTTP server) on one
PostgreSQL schema: the webhook reaches the process that does not hold the job's lease, and the holder
applies the kept result at once, woken by the notification sent with it (JobEvent.RESULT), without asking
Runware."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bot import VideoBot
from tests import media_factory as media
from tests.conftest import SettingsFactory
from tests.databases import Database
from tests.e2e.conftest import ATTACHMENT, run_bots, shard_bots
from tests.e2e.test_webhooks import free_port
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_fixtures import CHANNEL_ID
from tests.fakes.runware import FakeRunware

# Long enough that neither a poll (the safety net comes after 10 × this) nor a lease's end (3 × this)
# can finish the job while the test runs: only the webhook and the wake-up can.
POLL_MAX_INTERVAL_S = 60.0


@dataclass
class Two:
    """Process `a` serves GUILD_ID's shard and holds its jobs; its submits give Runware process `b`'s
    address, as a load balancer in front of several processes may."""

    fake: FakeDiscord
    runware: FakeRunware
    a: VideoBot
    b: VideoBot
    database: Database
    b_url: str

    def query(self, sql: str) -> list[tuple[object, ...]]:
        return self.database.query(sql)


@pytest.fixture
async def two(
    fake_discord: FakeDiscord, make_settings: SettingsFactory, database: Database
) -> AsyncIterator[Two]:
    if database.backend == "sqlite":
        pytest.skip("SQLite's notifications stay in one process (see the README: several processes)")
    port_a, port_b = free_port(), free_port()
    b_url = f"http://127.0.0.1:{port_b}"
    async with FakeRunware(seconds_to_finish=3600.0) as runware, contextlib.AsyncExitStack() as stack:
        common = {"public_url": b_url, "poll_max_interval_s": POLL_MAX_INTERVAL_S}
        bots = await shard_bots(
            stack,
            runware,
            database,
            make_settings,
            {"http_port": port_a, **common},
            {"http_port": port_b, **common},
        )
        for bot in bots:
            # A runner with nothing due sleeps for an hour: only a wake-up makes it look sooner.
            bot.runner.idle_sleep_s = 3600.0
        await run_bots(stack, fake_discord, bots)
        yield Two(fake_discord, runware, bots[0], bots[1], database, b_url)


async def test_a_webhook_reaching_another_process_wakes_the_holder(two: Two) -> None:
    image = two.fake.add_attachment("face.png", media.png(400, 500))
    audio = two.fake.add_attachment("voice.wav", media.wav(3.0))
    payload = two.fake.make_slash_interaction(
        "animate", [("image", ATTACHMENT, image), ("audio", ATTACHMENT, audio)]
    )
    await two.fake.send_interaction(payload)
    await two.fake.wait_for(lambda: two.query("SELECT status FROM jobs") == [("processing",)], 20)
    ((task_uuid, owner, next_poll_at, submitted_at),) = two.query(
        "SELECT task_uuid, lease_owner, next_poll_at, submitted_at FROM jobs"
    )
    # A holds the job and will not poll it for 600 s; the webhook URL it gave Runware is B's.
    assert owner == two.a.runner.owner
    assert float(next_poll_at) - float(submitted_at) >= 10 * POLL_MAX_INTERVAL_S  # type: ignore[arg-type]
    assert str(two.runware.submitted[str(task_uuid)]["webhookURL"]).startswith(
        f"{two.b_url}/runware/webhook/1."
    )
    assert two.a.metrics is not None and two.b.metrics is not None
    two.runware.finish(str(task_uuid))
    post = await two.fake.wait_for_message(
        lambda m: m.via == "channel" and m.channel_id == CHANNEL_ID and "#1" in m.content, 20
    )
    assert post.attachments
    # B took the call (A's server was never asked); A applied it: Runware was never polled.
    assert two.b.metrics.webhook_calls.labels("accepted")._value.get() == 1
    assert two.a.metrics.webhook_calls.labels("accepted")._value.get() == 0
    assert two.runware.task_counts["getResponse"] == 0
    assert two.query("SELECT status, cost_micros FROM jobs") == [("succeeded", 420_000)]
    assert two.runware.submission_counts.total() == 1
