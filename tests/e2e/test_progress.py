"""The private acknowledgement a member can trust (issue 13 item 5), through real discord.py on both
backends: its place in line while the job waits (going down as the jobs ahead leave the line), then
"being made" and Runware's percent, then the outcome, which is its last edit, even when a progress edit
was on its way as the job ended; for a job that fails and one that is cancelled too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from bot import VideoBot
from tests.e2e.conftest import App, acknowledged
from tests.fakes.discord import FakeMessage
from tests.fakes.runware import Outcome

# Members whose jobs are in line before the tested member's.
OTHERS = [200_000_000_000_000_101, 200_000_000_000_000_102, 200_000_000_000_000_103]
# Edits of an acknowledgement at most this often here (5 s in production): the tests wait for each change.
QUICK_S = 0.05


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    """Room for several videos at once."""
    return {**app_settings, "quota_user_daily_usd": 20.0, "quota_user_max_active_jobs": 20}


def quick_bot(app: App, *, run_jobs: bool) -> AbstractAsyncContextManager[VideoBot]:
    """The app's bot replaced by one whose acknowledgements may change every QUICK_S; with
    `run_jobs=False` its runner does not run, and accepted jobs wait in line until the test runs a pass."""
    return app.replaced_bot(run_jobs=run_jobs, ack_interval_s=QUICK_S)


def texts(app: App, ack: FakeMessage) -> list[str]:
    """Every text the acknowledgement showed, in order (the deferred "thinking" placeholder left out)."""
    message = app.discord.message(ack.id)
    return [t for t in [*(e["content"] for e in message.edits), message.content] if t]


def state_lines(app: App, ack: FakeMessage) -> list[str]:
    """What each text said of the job: its last line (place, progress, or the outcome's link)."""
    return [t.splitlines()[-1] for t in texts(app, ack)]


async def shows(app: App, ack: FakeMessage, phrase: str, timeout: float = 10.0) -> None:
    await app.discord.wait_for(lambda: phrase in app.discord.message(ack.id).content, timeout)


async def passes_until(bot: VideoBot, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Run runner passes (the bot's own runner does not run) until `done()`."""
    async with asyncio.timeout(timeout):
        while not done():
            await bot.runner.run_once()
            await bot.runner.submits_done()
            await asyncio.sleep(QUICK_S)


async def no_edit_after_the_outcome(app: App, ack: FakeMessage, outcome: str) -> None:
    """The outcome is the acknowledgement's last text: nothing changes it over many refreshes."""
    await shows(app, ack, outcome)
    count = len(texts(app, ack))
    await asyncio.sleep(20 * QUICK_S)
    assert len(texts(app, ack)) == count
    assert outcome in app.discord.message(ack.id).content
    assert app.discord.message(ack.id).components == []  # its Cancel button is gone


async def test_place_in_line_then_progress_then_the_outcome(app: App) -> None:
    """Three other members' jobs wait before the member's: the acknowledgement says 3 are ahead, then 2
    (one was cancelled from its own acknowledgement), 1 (one cancelled by another process), next; then
    being made and Runware's percent (going up); then the outcome with the post's link, and nothing after."""
    app.runware.polls_to_finish = 3
    async with quick_bot(app, run_jobs=False) as bot:
        others = [await acknowledged(app, user_id=user) for user in OTHERS]
        ack = await acknowledged(app)
        assert "3 videos are ahead of yours" in ack.content
        assert "This message follows the job until <t:" in ack.content
        await app.click(others[0], "Cancel", user_id=OTHERS[0])
        await shows(app, ack, "2 videos are ahead of yours")
        assert await app.store.cancel_job(2, OTHERS[1], time.time()) is not None  # as another process would
        await shows(app, ack, "1 video is ahead of yours")
        assert await app.store.cancel_job(3, OTHERS[2], time.time()) is not None
        await shows(app, ack, "Next in line")
        await passes_until(bot, lambda: "% done" in app.discord.message(ack.id).content)
        await passes_until(
            bot, lambda: app.query("SELECT delivered_at IS NOT NULL FROM jobs WHERE id = 4") == [(1,)]
        )
        post = await app.post_in_channel("ready")
        await no_edit_after_the_outcome(app, ack, "✅ Job #4 is ready.")
    lines = state_lines(app, ack)
    assert lines[:4] == [
        "⏳ In line: 3 videos are ahead of yours.",
        "⏳ In line: 2 videos are ahead of yours.",
        "⏳ In line: 1 video is ahead of yours.",
        "⏳ Next in line: it goes to the video service in a moment.",
    ]
    making = lines[4:-1]
    assert making and all(line.startswith("🎬 Being made by the video service") for line in making)
    percents = [int(line.split(": ")[1].split("%")[0]) for line in making if "% done" in line]
    assert percents and percents == sorted(set(percents))  # going up, never back
    assert lines[-1].endswith(f"/{post.id}")
    assert all("Job #4 accepted" in text for text in texts(app, ack)[:-1])


async def test_a_progress_edit_on_its_way_never_overwrites_the_outcome(app: App) -> None:
    """A progress edit is held on its way to Discord while the job ends: the outcome waits for it and
    lands after it, so the acknowledgement ends on the outcome, not on a finished job "being made"."""
    app.runware.polls_to_finish = 10_000
    hold = app.discord.hold("PATCH /webhooks/", "% done")
    async with quick_bot(app, run_jobs=True):
        ack = await acknowledged(app)
        async with asyncio.timeout(10):
            await hold.arrived.wait()
        task_uuid = app.query("SELECT task_uuid FROM jobs")[0][0]
        app.runware.finish(task_uuid)
        await app.post_in_channel("ready")
        await app.delivered(1)
        await asyncio.sleep(10 * QUICK_S)  # the outcome is ready to be shown, and waits
        assert "is ready" not in app.discord.message(ack.id).content
        hold.release()
        await no_edit_after_the_outcome(app, ack, "✅ Job #1 is ready.")
    lines = state_lines(app, ack)
    assert "% done" in lines[-2] and "/channels/" in lines[-1]


async def test_a_place_edit_on_its_way_never_overwrites_a_cancel(app: App) -> None:
    """The job moves up to next in line, and that edit is held on its way, when its member presses Cancel
    on the acknowledgement: the press's answer (through the button's own interaction, which nothing else
    orders against the acknowledgement's edits) waits for the held edit and lands after it, so the
    acknowledgement ends on "cancelled", never on "next in line" for a job that will never start."""
    async with quick_bot(app, run_jobs=False):
        await acknowledged(app, user_id=OTHERS[0])
        ack = await acknowledged(app)
        assert "1 video is ahead of yours" in ack.content
        hold = app.discord.hold("PATCH /webhooks/", "Next in line")
        assert await app.store.cancel_job(1, OTHERS[0], time.time()) is not None  # the job ahead leaves
        async with asyncio.timeout(10):
            await hold.arrived.wait()
        await app.click(ack, "Cancel")
        await app.discord.wait_for(
            lambda: app.query("SELECT error_code FROM jobs WHERE id = 2") == [("cancelled",)]
        )
        await asyncio.sleep(10 * QUICK_S)  # the cancel's answer is ready to be shown, and waits
        assert "cancelled" not in app.discord.message(ack.id).content
        hold.release()
        await no_edit_after_the_outcome(app, ack, "🚫 Job #2 cancelled before it started.")
    lines = state_lines(app, ack)
    assert lines[-2:] == [
        "⏳ Next in line: it goes to the video service in a moment.",
        "🚫 Job #2 cancelled before it started. You were not charged.",
    ]
    assert app.spent() == 0


async def test_a_failed_job_ends_on_its_failure(app: App) -> None:
    """Runware fails the task: the acknowledgement goes from being made to the failure and the refund,
    and stays there."""
    app.runware.next_outcome(Outcome.failure("timeoutProvider", polls_to_finish=2))
    async with quick_bot(app, run_jobs=True):
        ack = await acknowledged(app)
        await app.post_in_channel("failed")
        await no_edit_after_the_outcome(app, ack, "❌ Job #1 failed:")
    assert "You were not charged." in app.discord.message(ack.id).content
    assert app.spent() == 0


async def test_a_job_cancelled_elsewhere_ends_on_its_cancel(app: App) -> None:
    """Cancelled from /videos (not from the acknowledgement): the acknowledgement, which showed the job
    next in line, says it was cancelled and not charged, loses its Cancel button, and stays so."""
    async with quick_bot(app, run_jobs=False) as bot:
        ack = await acknowledged(app)
        assert "Next in line" in ack.content and "Cancel" in str(ack.components)
        payload = app.discord.make_slash_interaction("videos")
        await app.discord.send_interaction(payload)
        page = await app.reply_to(payload, "#1")
        await app.click(page, "Cancel #1")
        await no_edit_after_the_outcome(app, ack, "🚫 Job #1 cancelled before it started.")
        await bot.runner.run_once()
        await bot.runner.submits_done()
    assert app.runware.tasks_of_type("videoInference") == []
    assert app.spent() == 0
