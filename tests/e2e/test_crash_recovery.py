"""Crash recovery: the bot as a real subprocess, killed with SIGKILL mid-job and started again.

Whatever the moment of the kill, the job is submitted once, charged once and delivered once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests import media_factory as media
from tests.databases import Database
from tests.e2e.conftest import ATTACHMENT, button
from tests.e2e.processes import BotProcess, bot_processes, connected
from tests.fakes.discord import FakeDiscord, FakeMessage
from tests.fakes.discord_fixtures import CHANNEL_ID
from tests.fakes.runware import FakeRunware, Outcome, make_mp4

VIDEO = make_mp4(30_000)


@asynccontextmanager
async def fakes() -> AsyncIterator[tuple[FakeDiscord, FakeRunware]]:
    from tests.fakes.discord_fixtures import populate_default_guilds

    async with FakeDiscord() as discord, FakeRunware(polls_to_finish=10**9) as runware:
        populate_default_guilds(discord)
        yield discord, runware


async def send_animate(discord: FakeDiscord) -> dict[str, object]:
    image = discord.add_attachment("face.png", media.png(400, 500))
    audio = discord.add_attachment("voice.wav", media.wav(3.0))
    payload = discord.make_slash_interaction(
        "animate", [("image", ATTACHMENT, image), ("audio", ATTACHMENT, audio)]
    )
    await discord.send_interaction(payload)
    # A member's first /animate in the guild: they accept the consent statement, and it goes ahead.
    statement = await discord.wait_for_message(
        lambda m: m.interaction_id == int(payload["id"]) and "I accept" in m.content, timeout=20
    )
    await discord.send_interaction(
        discord.make_component_interaction(button(statement, "I accept"), statement.id)
    )
    return payload


def result_posts(discord: FakeDiscord) -> list[FakeMessage]:
    return [m for m in discord.messages_in(CHANNEL_ID) if m.via == "channel" and "ready" in m.content]


async def finish_after_restart(
    database: Database, discord: FakeDiscord, runware: FakeRunware, process: BotProcess, task_uuid: str
) -> None:
    """Restart on the same database, let the task finish, and check the once-only guarantees."""
    runware.finish(task_uuid)
    process.start()
    await connected(discord, process, len(discord.identify_payloads))
    post = await discord.wait_for_message(lambda m: m in result_posts(discord), timeout=30)
    await discord.wait_for(
        lambda: database.query("SELECT delivered_at IS NOT NULL FROM jobs") == [(1,)], timeout=10
    )
    await asyncio.sleep(1.0)  # time for a duplicate to show up, if there were one
    assert process.stop() == 0, process.log()
    assert [a.data for a in post.attachments] == [VIDEO]
    assert len(result_posts(discord)) == 1
    assert runware.submission_counts[task_uuid] == 1
    assert database.query("SELECT kind, amount_micros FROM ledger ORDER BY id") == [
        ("reserve", 300_000),
        ("release", -300_000),
        ("settle", 420_000),
    ]
    assert discord.token not in process.log() and runware.api_key not in process.log()


@pytest.mark.timeout(120)
async def test_killed_while_processing_resumes_and_delivers_once(tmp_path: Path, database: Database) -> None:
    """SIGKILL while Runware renders: the restarted bot polls the same task and posts it once."""
    async with fakes() as (discord, runware):
        runware.default_outcome = Outcome.success(cost_usd=0.42, video=VIDEO)
        with bot_processes(BotProcess(tmp_path, database.url, discord, runware)) as (process,):
            process.start()
            await connected(discord, process, 0)
            await send_animate(discord)
            await discord.wait_for(lambda: len(runware.submitted) == 1, timeout=20)
            (task_uuid,) = runware.submitted
            await discord.wait_for(lambda: runware.polls_of(task_uuid) >= 1, timeout=10)
            process.kill()
            await finish_after_restart(database, discord, runware, process, task_uuid)


@pytest.mark.timeout(120)
async def test_killed_during_an_unanswered_submit_checks_before_resubmitting(
    tmp_path: Path, database: Database
) -> None:
    """SIGKILL while Runware holds the submit's answer: on restart the task is found, not sent again."""
    async with fakes() as (discord, runware):
        runware.default_outcome = Outcome.success(cost_usd=0.42, video=VIDEO)
        runware.inject_hang(60, task_type="videoInference", process=True)
        with bot_processes(BotProcess(tmp_path, database.url, discord, runware)) as (process,):
            process.start()
            await connected(discord, process, 0)
            await send_animate(discord)
            await discord.wait_for(lambda: len(runware.submitted) == 1, timeout=20)
            await asyncio.sleep(0.3)  # the bot is now waiting on the held answer
            assert database.query("SELECT status FROM jobs") == [("submitting",)]
            (task_uuid,) = runware.submitted
            process.kill()
            runware.clear_faults()
            await finish_after_restart(database, discord, runware, process, task_uuid)


@pytest.mark.timeout(120)
async def test_killed_before_the_result_could_be_posted_posts_it_once(
    tmp_path: Path, database: Database
) -> None:
    """SIGKILL while Discord refuses the post: the restarted bot posts the finished video once."""
    async with fakes() as (discord, runware):
        runware.default_outcome = Outcome.success(cost_usd=0.42, video=VIDEO)
        runware.polls_to_finish = 1
        discord.inject_status(f"POST /channels/{CHANNEL_ID}/messages", 503, 0, times=10**6)
        with bot_processes(BotProcess(tmp_path, database.url, discord, runware)) as (process,):
            process.start()
            await connected(discord, process, 0)
            await send_animate(discord)
            await discord.wait_for(
                lambda: database.query("SELECT status FROM jobs") == [("succeeded",)], timeout=20
            )
            await asyncio.sleep(0.3)
            process.kill()
            assert database.query("SELECT delivered_at FROM jobs") == [(None,)]
            discord._faults.clear()
            (task_uuid,) = runware.submitted
            await finish_after_restart(database, discord, runware, process, task_uuid)
