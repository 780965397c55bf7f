"""/videos and Cancel (issue 13) through real discord.py: a member's videos paged with buttons that work
after a restart, Cancel before the submit (refunded, never sent), after it (told it will finish and be
charged), and racing the runner's submit."""

from __future__ import annotations

import time
import uuid
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from bot import VideoBot
from core.models import Job, Limits, NewJob
from tests.conftest import reserve
from tests.e2e.conftest import App, acknowledged, button, labels
from tests.fakes.discord import DEFAULT_USER_ID, FakeMessage
from tests.fakes.discord_fixtures import (
    BOOSTED_CHANNEL_ID,
    BOOSTED_GUILD_ID,
    CHANNEL_ID,
    GUILD_ID,
    NSFW_CHANNEL_ID,
)

OTHER_MEMBER = 200_000_000_000_000_099


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    """Room for several videos at once."""
    return {**app_settings, "quota_user_daily_usd": 20.0, "quota_user_max_active_jobs": 20}


def bot_without_runner(app: App) -> AbstractAsyncContextManager[VideoBot]:
    """The app's bot replaced by one whose job runner does not run: accepted jobs stay queued (Runware hears
    of nothing) until the test runs a runner pass itself."""
    return app.replaced_bot(run_jobs=False)


async def videos(app: App, **context: Any) -> FakeMessage:
    """Run /videos as a member; its private reply."""
    payload = app.discord.make_slash_interaction("videos", **context)
    await app.discord.send_interaction(payload)
    reply = await app.reply_to(payload, "")
    await app.discord.wait_for(lambda: not app.discord.message(reply.id).loading and reply.content != "")
    assert reply.ephemeral
    return reply


async def answer_to(app: App, payload: dict[str, Any], contains: str) -> FakeMessage:
    """A private message sent for an interaction (a press's followup) containing `contains`."""
    return await app.reply_to(payload, contains)


async def stored_jobs(app: App, n: int, user_id: int = DEFAULT_USER_ID) -> list[Job]:
    """`n` finished jobs of a member in the test guild, made straight in the store (as earlier videos)."""
    jobs = []
    for i in range(n):
        new = NewJob(str(uuid.uuid4()), GUILD_ID, CHANNEL_ID, user_id, 2.0, 200_000, "MP4", 85, None, False)
        job = await reserve(app.store, new, Limits(None, None), 1_000.0 + i)
        assert isinstance(job, Job)
        await app.store.mark_job_queued(job.id, "img", "aud", 1_000.0 + i)
        if i % 3 == 2:
            await app.store.fail_job(job.id, "x", "It failed.", 1_010.0 + i, member_told=True)
        else:
            await app.store.complete_job(
                job.id, f"https://vid.example/{job.id}.mp4", 190_000, False, 1_010.0 + i
            )
            await app.store.mark_delivered(job.id, 1_020.0 + i)
        jobs.append(job)
    return jobs


async def press_cancel(app: App, ack: FakeMessage, job_id: int) -> dict[str, Any]:
    """Press Cancel on a job's acknowledgement as the member saw it when it appeared (the message may have
    changed since: the job may be done and the button gone from it)."""
    payload = app.discord.make_component_interaction(f"vq:cancel:{job_id}:{CHANNEL_ID}:ack", ack.id)
    shown_then = {
        "type": 2,
        "style": 4,
        "label": "Cancel",
        "custom_id": f"vq:cancel:{job_id}:{CHANNEL_ID}:ack",
    }
    payload["message"]["components"] = [{"type": 1, "components": [shown_then]}]
    await app.discord.send_interaction(payload)
    return payload


def shown(message: FakeMessage) -> list[int]:
    """The job numbers a /videos page shows, in order."""
    return [
        int(line.split("**#")[1].split("**")[0]) for line in message.content.splitlines() if "**#" in line
    ]


# ------------------------------------------------------------------ /videos


async def test_videos_shows_the_members_videos_and_pages_after_a_restart(app: App) -> None:
    """Six older videos and one just made: the newest five first, each with its number, status, length,
    cost and time, the new one with a jump link to its post and its download link; Older and Newer page
    through them, also pressed on a new bot process (same database)."""
    await stored_jobs(app, 6)
    await stored_jobs(app, 2, user_id=OTHER_MEMBER)  # another member's: never shown
    await acknowledged(app)
    post = await app.post_in_channel("ready")
    await app.delivered(9)
    page = await videos(app)
    assert shown(page) == [9, 6, 5, 4, 3]
    newest = page.content.splitlines()[1]
    cost = app.query("SELECT cost_micros FROM jobs WHERE id = 9")[0][0]
    assert "ready" in newest and "3.0 s" in newest and f"${cost / 1e6:.2f}" in newest and "<t:" in newest
    assert f"[post](https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{post.id})" in newest
    assert "[download](" in newest and "works until <t:" in newest
    assert "failed, not charged" in page.content  # job 3
    assert "download link expired" in page.content  # the stored videos are from 1970
    assert labels(page) == ["Older"]
    async with app.replaced_bot():
        await app.click(page, "Older")
        await app.discord.wait_for(lambda: shown(app.discord.message(page.id)) == [2, 1])
        older = app.discord.message(page.id)
        assert labels(older) == ["Newer"]
        await app.click(older, "Newer")
        await app.discord.wait_for(lambda: shown(app.discord.message(page.id)) == [9, 6, 5, 4, 3])


@pytest.mark.parametrize("locale", ["en-US", "de", "es-ES", "pt-BR"])
async def test_a_page_of_videos_with_long_links_fits_one_message_and_hides_none(
    app: App, locale: str
) -> None:
    """Five ready videos whose download links are long (Runware's URLs are its own to choose): the page
    stays within Discord's 2000 characters in every language and shows all five, since the next page
    starts below the fifth (a video cut from this one would be on no page)."""
    now = time.time()
    for _ in range(6):
        new = NewJob(
            str(uuid.uuid4()), GUILD_ID, CHANNEL_ID, DEFAULT_USER_ID, 29.9, 9_990_000, "MP4", 85, None, False
        )
        job = await reserve(app.store, new, Limits(None, None), now)
        assert isinstance(job, Job)
        await app.store.mark_job_queued(job.id, "img", "aud", now)
        url = f"https://vm.runware.ai/video/ws/5/vi/{uuid.uuid4()}.mp4?signature={'a' * 300}&n={job.id}"
        await app.store.complete_job(job.id, url, 9_990_000, False, now)
        await app.store.mark_delivered(job.id, now, (CHANNEL_ID, 1_400_000_000_000_000_000 + job.id))
    page = await videos(app, locale=locale)
    assert len(page.content) <= 2000
    assert shown(page) == [6, 5, 4, 3, 2]
    await app.click(page, labels(page)[-1])
    await app.discord.wait_for(lambda: shown(app.discord.message(page.id)) == [1])


async def test_videos_with_none_says_how_to_make_one(app: App) -> None:
    """A member without videos here is told how to make one; no buttons."""
    await stored_jobs(app, 1, user_id=OTHER_MEMBER)
    page = await videos(app)
    assert "no videos in this server yet" in page.content and page.components == []


async def test_a_page_button_of_another_member_or_place_does_nothing(app: App) -> None:
    """Older pressed by another member (a forged press on the page), or on the member's page in another
    channel, shows nothing of the member's videos and changes no page."""
    await stored_jobs(app, 6)
    page = await videos(app)
    before = page.content
    forged = await app.click(page, "Older", user_id=OTHER_MEMBER)
    refusal = await answer_to(app, forged, "another member's videos")
    assert refusal.ephemeral and "**#" not in refusal.content
    elsewhere = await videos(app, channel_id=NSFW_CHANNEL_ID)  # their own page in another channel
    await app.forge(button(page, "Older"), elsewhere.id)
    assert app.discord.message(page.id).content == before
    assert shown(app.discord.message(elsewhere.id)) == [6, 5, 4, 3, 2]


# ------------------------------------------------------------------ Cancel


async def test_cancel_before_the_submit_refunds_and_nothing_is_sent(app: App) -> None:
    """Two queued jobs; Cancel on the first one's acknowledgement refunds it at once and says so; the
    runner's next pass sends only the second to Runware; nothing is posted about the first."""
    async with bot_without_runner(app) as bot:
        first = await acknowledged(app)
        await acknowledged(app)
        assert labels(first) == ["Cancel"]
        await app.click(first, "Cancel")
        await app.discord.wait_for(
            lambda: "cancelled before it started" in app.discord.message(first.id).content
        )
        assert app.discord.message(first.id).components == []
        assert app.query("SELECT status, error_code FROM jobs WHERE id = 1") == [("failed", "cancelled")]
        assert app.query("SELECT kind, amount_micros FROM ledger WHERE job_id = 1 ORDER BY id") == [
            ("reserve", 300_000),
            ("refund", -300_000),
        ]
        await bot.runner.run_once()
        await bot.runner.submits_done()
        sent = {t["taskUUID"] for t in app.runware.tasks_of_type("videoInference")}
        uuids = dict(app.query("SELECT id, task_uuid FROM jobs"))
        assert sent == {uuids[2]}
        await bot.runner.run_once()  # the first job's refund was its end: nothing to post
    assert not any("job #1" in m.content.lower() for m in app.channel_posts())


async def test_cancel_on_videos_refunds_and_shows_the_page_again(app: App) -> None:
    """/videos offers Cancel for a job not yet sent; pressing it refunds it and shows the page again,
    the job now cancelled and its button gone."""
    async with bot_without_runner(app):
        await acknowledged(app)
        page = await videos(app)
        assert labels(page) == ["Cancel #1"] and "waiting to start" in page.content
        await app.click(page, "Cancel #1")
        await app.discord.wait_for(
            lambda: "cancelled before it started" in app.discord.message(page.id).content
        )
        again = app.discord.message(page.id)
        assert "cancelled, not charged" in again.content and again.components == []
    assert app.spent() == 0


async def test_only_the_member_may_cancel(app: App) -> None:
    """Another member's (forged) press of Cancel is refused privately, and so is the member's own press
    in another server; neither changes anything. The member's own press then works."""
    async with bot_without_runner(app):
        ack = await acknowledged(app)
        forged = await app.click(ack, "Cancel", user_id=OTHER_MEMBER)
        refusal = await answer_to(app, forged, "Only the member who asked for this video can cancel it.")
        assert refusal.ephemeral
        assert app.query("SELECT status FROM jobs") == [("queued",)]
        # Their own acknowledgement in another server: pressed there, this job's Cancel does nothing.
        there = await acknowledged(app, guild_id=BOOSTED_GUILD_ID, channel_id=BOOSTED_CHANNEL_ID)
        await app.forge(button(ack, "Cancel"), there.id)
        assert app.query("SELECT status FROM jobs ORDER BY id") == [("queued",), ("queued",)]
        await app.click(ack, "Cancel")
        await app.discord.wait_for(
            lambda: "cancelled before it started" in app.discord.message(ack.id).content
        )


async def test_cancel_after_the_submit_says_it_will_finish_and_be_charged(app: App) -> None:
    """Runware has the job (it offers no cancel): Cancel says so plainly, and the video is posted and
    charged as usual; the acknowledgement loses its button when the video is ready."""
    app.runware.polls_to_finish = 10_000
    ack = await acknowledged(app)
    await app.discord.wait_for(lambda: app.query("SELECT status FROM jobs") == [("processing",)])
    pressed = await app.click(ack, "Cancel")
    told = await answer_to(app, pressed, "can't stop it")
    assert (
        told.ephemeral
        and "will finish, be posted, and be charged" in told.content
        and "$0.30" in told.content
    )
    task_uuid = app.query("SELECT task_uuid FROM jobs")[0][0]
    app.runware.finish(task_uuid)
    await app.post_in_channel("ready")
    await app.delivered(1)
    assert [k for (k,) in app.query("SELECT kind FROM ledger ORDER BY id")] == [
        "reserve",
        "release",
        "settle",
    ]
    await app.discord.wait_for(lambda: app.discord.message(ack.id).components == [])


async def test_cancel_racing_the_runners_submit_has_one_winner(app: App) -> None:
    """Eight jobs, each cancelled the moment its acknowledgement shows while the runner submits it: each
    ends either refunded and never sent to Runware (nothing posted), or sent, posted and charged, and
    its member is told which."""
    acks, presses = [], []
    for job_id in range(1, 9):
        acks.append(await acknowledged(app))
        presses.append(await press_cancel(app, acks[-1], job_id))
    told: dict[int, str] = {}
    for job_id, (ack, pressed) in enumerate(zip(acks, presses, strict=True), start=1):
        await app.discord.wait_for(
            lambda a=ack, p=pressed: (
                "cancelled before it started" in app.discord.message(a.id).content
                or any(m.interaction_id == int(p["id"]) for m in app.discord.messages)
            )
        )
        followups = [m.content for m in app.discord.messages if m.interaction_id == int(pressed["id"])]
        told[job_id] = followups[0] if followups else app.discord.message(ack.id).content
    outcomes = []
    for job_id, task_uuid, code in app.query("SELECT id, task_uuid, error_code FROM jobs ORDER BY id"):
        if code == "cancelled":
            assert "cancelled before it started" in told[job_id]
            kinds = [k for (k,) in app.query("SELECT kind FROM ledger WHERE job_id = ? ORDER BY id", job_id)]
            assert kinds == ["reserve", "refund"]
        else:
            assert "can't stop it" in told[job_id] or "already finished" in told[job_id]
            await app.delivered(job_id)
            kinds = [k for (k,) in app.query("SELECT kind FROM ledger WHERE job_id = ? ORDER BY id", job_id)]
            assert kinds == ["reserve", "release", "settle"]
        outcomes.append((task_uuid, code == "cancelled"))
    await app.bot.runner.submits_done()
    sent = {t["taskUUID"] for t in app.runware.tasks_of_type("videoInference")}
    assert {u for u, cancelled in outcomes if not cancelled} == sent


async def test_a_forged_press_with_a_number_too_big_for_the_database_is_refused(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """A custom_id is the sender's to write: a page or job number past the database's integers (here on
    the member's own page, in its own channel) is refused as any forged press is, never an apology with a
    traceback in the log."""
    huge = "9" * 30
    await stored_jobs(app, 6)
    page = await videos(app)
    where = f"{GUILD_ID}:{CHANNEL_ID}:{DEFAULT_USER_ID}"
    for custom_id in (
        f"vq:videos:o:{huge}:{where}",
        f"vq:cancel:{huge}:{CHANNEL_ID}:ack",
        f"vq:cancel:{huge}:{CHANNEL_ID}:0",
        # The older buttons, the same way.
        f"vq:quote:confirm:{huge}",
        f"vq:consent:accept:{huge}",
        f"vq:result:report:{huge}",
        f"vq:report:dismiss:{huge}",
    ):
        await app.forge(custom_id, page.id)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert shown(app.discord.message(page.id)) == [6, 5, 4, 3, 2]
