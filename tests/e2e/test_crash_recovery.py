"""Crash recovery: the bot as a real subprocess, killed with SIGKILL mid-job and started again.

Whatever the moment of the kill, the job is submitted once, charged once and delivered once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from tests import media_factory as media
from tests.databases import Database
from tests.e2e.conftest import ATTACHMENT, button
from tests.fakes.discord import FakeDiscord, FakeMessage
from tests.fakes.discord_fixtures import CHANNEL_ID
from tests.fakes.runware import FakeRunware, Outcome, make_mp4

ROOT = Path(__file__).resolve().parents[2]
VIDEO = make_mp4(30_000)


class BotProcess:
    """`python bot.py` in its own process, pointed at the fakes, logging to a file."""

    def __init__(
        self, tmp_path: Path, database: Database, discord: FakeDiscord, runware: FakeRunware
    ) -> None:
        self.log_path = tmp_path / "bot.log"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "DISCORD_TOKEN": discord.token,
            "RUNWARE_API_KEY": runware.api_key,
            "RUNWARE_API_URL": runware.url,
            "DATABASE_URL": database.url,
            "DISCORD_API_BASE": discord.api_base,
            "DISCORD_GATEWAY_URL": discord.gateway_url,
            "POLL_INITIAL_DELAY_S": "0.1",
            "POLL_MAX_INTERVAL_S": "0.3",
            "RUNWARE_REQUEST_TIMEOUT_S": "1",
            "PRICE_PER_SECOND_USD": "0.10",
            "LOG_LEVEL": "INFO",
        }
        self.cwd = tmp_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bot.py")], cwd=self.cwd, env=self.env, stdout=log, stderr=log
        )
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(15)
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def bot_process(
    tmp_path: Path, database: Database, discord: FakeDiscord, runware: FakeRunware
) -> Iterator[BotProcess]:
    process = BotProcess(tmp_path, database, discord, runware)
    try:
        yield process
    finally:
        if process.proc is not None and process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(10)


@asynccontextmanager
async def fakes() -> AsyncIterator[tuple[FakeDiscord, FakeRunware]]:
    from tests.fakes.discord_fixtures import populate_default_guilds

    async with FakeDiscord() as discord, FakeRunware(polls_to_finish=10**9) as runware:
        populate_default_guilds(discord)
        yield discord, runware


async def connected(discord: FakeDiscord, process: BotProcess, sessions_before: int) -> None:
    """Wait until the process has identified on the gateway (a new session)."""

    async def ready() -> None:
        while len(discord.identify_payloads) <= sessions_before:
            assert process.proc is not None
            if process.proc.poll() is not None:
                raise AssertionError("the bot exited:\n" + process.log())
            await asyncio.sleep(0.05)
        await discord.wait_for(lambda: discord.connected_sessions > 0, 10)

    await asyncio.wait_for(ready(), 30)


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
        with bot_process(tmp_path, database, discord, runware) as process:
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
        with bot_process(tmp_path, database, discord, runware) as process:
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
        with bot_process(tmp_path, database, discord, runware) as process:
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
