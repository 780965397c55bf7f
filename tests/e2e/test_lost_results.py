"""A job declared lost (Runware's getResponse kept answering "not found") whose video its webhook still
brings: Runware rendered and billed it, so the video is posted once as a late result and its cost booked to
the server only, also when the webhook lands on a process that stops before applying it. The real bot with
its HTTP server, the fake Runware POSTing real webhooks, on each backend."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

import core.runner
from core.webhooks import WebhookOutcome, WebhookReceiver
from tests.e2e.conftest import App
from tests.e2e.test_budget import budget
from tests.e2e.test_webhooks import free_port, next_bot, submitted
from tests.fakes.discord_fixtures import running_bot

COST_MICROS = 420_000  # the fake's default cost, $0.42
MONTH = "SELECT user_id = 0, amount_micros FROM spend_totals WHERE period = 'month' ORDER BY 1"


@pytest.fixture
def app_settings(app_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Webhooks on (Runware reaches the bot's HTTP server directly); the safety-net poll comes after
    10 × 0.1 s, and a task Runware does not know is declared lost at once (no minute's grace)."""
    monkeypatch.setattr(core.runner, "NOT_FOUND_GRACE_S", 0.0)
    port = free_port()
    return {
        **app_settings,
        "http_port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "poll_max_interval_s": 0.1,
    }


async def declared_lost(app: App, **context: Any) -> tuple[str, str]:
    """/animate (as `context` says); Runware takes the task but its getResponse answers "not found": the
    job is failed as lost, refunded, and the channel told. Returns the taskUUID and the webhook URL its
    submit carried."""
    app.runware.polls_to_finish = None
    app.runware.seconds_to_finish = 3600.0  # finishes only when the test says so
    await app.animate(**context)
    task_uuid, url = await submitted(app)
    app.runware.hide(task_uuid)
    await app.post_in_channel("lost this job")
    await app.delivered(1)
    assert app.query("SELECT status, error_code, lost_at IS NOT NULL FROM jobs") == [
        ("failed", "taskFailedOrNotFound", 1)
    ]
    assert app.spent() == 0
    return task_uuid, url


def late_posts(app: App) -> list[str]:
    return [m.content for m in app.channel_posts() if "arrived late" in m.content]


def ledger(app: App) -> list[tuple[Any, ...]]:
    return app.query("SELECT kind, amount_micros FROM ledger WHERE job_id = 1 ORDER BY id")


async def test_a_video_brought_by_its_webhook_after_the_job_was_declared_lost_is_posted_late(
    app: App,
) -> None:
    """The webhook's video is kept (200 "accepted") and posted once as a late result; the member pays
    nothing and the server's month shows what Runware billed. The same result again is answered
    "repeated" and changes nothing; neither does a restart."""
    task_uuid, url = await declared_lost(app)
    app.runware.finish(task_uuid)
    late = await app.post_in_channel("arrived late")
    assert "not charged" in late.content and len(late.attachments) == 1
    await app.discord.wait_for(
        lambda: app.query("SELECT late_delivered_at IS NOT NULL FROM jobs") == [(1,)], 10
    )
    assert [c.status for c in app.runware.webhook_calls] == [200]
    assert app.query("SELECT status, result_message_id, late_until FROM jobs") == [("failed", late.id, None)]
    ((estimate,),) = app.query("SELECT estimate_micros FROM jobs")
    assert ledger(app) == [
        ("reserve", estimate),
        ("refund", -estimate),
        ("settle", COST_MICROS),
        ("grant", -COST_MICROS),
    ]
    assert app.query(MONTH) == [(0, 0), (1, COST_MICROS)]  # the member's month, then the server's
    before = (ledger(app), [m.id for m in app.channel_posts()])
    body = app.runware.webhook_body(task_uuid)
    async with aiohttp.ClientSession() as http:
        for again in (body, {**body, "videoUUID": "0f9e6c1e-2d7a-4c53-9a59-6d1c1b0e7a11", "cost": 9.99}):
            async with http.post(url, json=again) as answer:
                assert (answer.status, await answer.json()) == (200, {"status": "repeated"})
    async with app.replaced_bot() as bot:
        await app.discord.wait_for(lambda: bot.runner.last_pass_at is not None, 10)
        await asyncio.sleep(0.5)  # a pass or two: it finds nothing to post
    assert (ledger(app), [m.id for m in app.channel_posts()]) == before
    assert late_posts(app) == [late.content]


async def test_a_lost_job_s_video_kept_by_a_process_that_stopped_is_posted_by_the_next(app: App) -> None:
    """The webhook reaches a process that keeps the video (in the database before its 200) and stops
    before its runner applies it: the next process's runner claims the job and posts the video once,
    booked to the server; a third process posts nothing more."""
    task_uuid, url = await declared_lost(app)
    await app.bot.close()
    app.runware.webhooks = "never"
    app.runware.finish(task_uuid)
    # That process's webhook handler: the token checked, the video kept; its runner is gone.
    receiver = WebhookReceiver(app.store, app.client.read_webhook, output_ttl_s=app.settings.output_ttl_s)
    caller = await receiver.authorize(url.rsplit("/", 1)[1])
    assert caller is not None
    body = json.dumps(app.runware.webhook_body(task_uuid)).encode()
    assert await receiver.receive(caller, body) is WebhookOutcome.ACCEPTED
    assert await receiver.receive(caller, body) is WebhookOutcome.REPEATED
    assert app.query("SELECT status, late_until IS NOT NULL, result_url FROM jobs") == [("failed", 1, None)]
    assert late_posts(app) == []
    async with running_bot(next_bot(app), app.discord):
        await app.post_in_channel("arrived late")
        await app.discord.wait_for(
            lambda: app.query("SELECT late_delivered_at IS NOT NULL FROM jobs") == [(1,)], 10
        )
    assert app.query(MONTH) == [(0, 0), (1, COST_MICROS)]
    third = next_bot(app)
    async with running_bot(third, app.discord):
        await app.discord.wait_for(lambda: third.runner.last_pass_at is not None, 10)
        await asyncio.sleep(0.5)
    assert len(late_posts(app)) == 1
    assert len([m for m in app.channel_posts() if m.attachments]) == 1
    assert app.query("SELECT COUNT(*) FROM ledger WHERE job_id = 1 AND kind IN ('settle', 'grant')") == [(2,)]


async def test_the_member_reads_why_their_job_was_lost_in_their_language(app: App) -> None:
    """The reason a lost job failed is shown in the member's language in their acknowledgement, like
    every other sentence there (it was stored, and shown, in English: "Auftrag #1 ist fehlgeschlagen: The
    video service lost this job.")."""
    payload_count = len(app.discord.messages)
    await declared_lost(app, locale="de")
    (ack,) = [m for m in app.discord.messages[payload_count:] if m.interaction_id is not None]
    await app.discord.wait_for(lambda: "fehlgeschlagen" in app.discord.message(ack.id).content, 10)
    shown = app.discord.message(ack.id).content
    assert "Der Videodienst hat diesen Auftrag verloren." in shown, shown
    assert "lost" not in shown


async def test_the_admins_report_does_not_call_the_late_video_s_give_back_their_credit(app: App) -> None:
    """/budget usage shows what the late video cost the server, and no credit "given to members by
    admins": no admin gave any, the bot gave the member the cost of a video it had declared lost (the
    report counted that automatic give-back as admins' credit)."""
    task_uuid, _ = await declared_lost(app)
    app.runware.finish(task_uuid)
    await app.post_in_channel("arrived late")
    await app.discord.wait_for(
        lambda: app.query("SELECT COUNT(*) FROM ledger WHERE kind = 'grant'") == [(1,)], 10
    )
    text = await budget(app, "usage")
    assert "**Spending this month**: $0.42" in text, text
    assert "by admins" not in text, text
