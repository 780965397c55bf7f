"""Runware's webhook end to end: the real bot with its HTTP server behind a reverse proxy, the fake Runware
POSTing real webhooks to the URL each submit carried, on each backend. Every case ends with the video
posted once and charged once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot import VideoBot
from tests.e2e.conftest import App
from tests.fakes.discord_fixtures import GUILD_READY_TIMEOUT, running_bot
from tests.fakes.runware import Outcome

COST_MICROS = 420_000  # the fake's default cost, $0.42


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Proxy:
    """A reverse proxy in front of the bot's HTTP server (as nginx would be), which can misbehave: answer
    the next `fail` calls 503 without forwarding them, or forward the next `hang` calls and hold their
    answers `hang_s` seconds. A bot that is down answers 502, as a proxy does."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = f"http://127.0.0.1:{target_port}"
        self.fail = 0
        self.hang = 0
        self.hang_s = 1.0
        self.answers: list[tuple[int, str]] = []
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._forward)
        self._http = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, shutdown_timeout=0.5).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        if self.fail:
            self.fail -= 1
            self.answers.append((503, "proxy"))
            return web.Response(status=503, text="unavailable")
        try:
            async with self._http.post(
                self.target + request.path_qs, data=body, headers={"Content-Type": "application/json"}
            ) as answer:
                status, text = answer.status, await answer.text()
        except aiohttp.ClientConnectionError:
            self.answers.append((502, "bot down"))
            return web.Response(status=502, text="bad gateway")
        if self.hang:
            self.hang -= 1
            await asyncio.sleep(self.hang_s)
        self.answers.append((status, text))
        return web.Response(status=status, text=text, content_type="application/json")

    def outcomes(self) -> list[str]:
        """The bot's answers as outcomes (accepted, repeated, …), in order."""
        return [json.loads(text)["status"] for status, text in self.answers if text.startswith("{")]


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    started = Proxy(free_port())
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
def app_settings(app_settings: dict[str, Any], proxy: Proxy) -> dict[str, Any]:
    """The bot serves HTTP on the proxy's target port; Runware is told the proxy's address. Polls (the
    safety net) start after 10 × 0.5 s, long after the fake's videos are done."""
    return {
        **app_settings,
        "http_port": int(proxy.target.rsplit(":", 1)[1]),
        "public_url": f"http://127.0.0.1:{proxy.port}",
        "poll_max_interval_s": 0.5,
    }


@pytest.fixture
def hooked(app: App) -> App:
    """The app with videos that finish 0.2 s after their submit, whatever the polls."""
    app.runware.polls_to_finish = None
    app.runware.seconds_to_finish = 0.2
    return app


def next_bot(app: App) -> VideoBot:
    """The bot of the next process, on the same database and port."""
    return VideoBot(
        settings=app.settings, store=app.store, runware=app.client, guild_ready_timeout=GUILD_READY_TIMEOUT
    )


def task_of(app: App, job_id: int = 1) -> str:
    ((task_uuid,),) = app.query("SELECT task_uuid FROM jobs WHERE id = ?", job_id)
    return str(task_uuid)


async def submitted(app: App, job_id: int = 1) -> tuple[str, str]:
    """Wait for the job's submit; its taskUUID and the webhook URL it carried."""
    await app.discord.wait_for(lambda: len(app.runware.submitted) >= job_id, 10)
    task_uuid = task_of(app, job_id)
    return task_uuid, str(app.runware.submitted[task_uuid]["webhookURL"])


def assert_once(app: App, job_id: int = 1) -> None:
    """Posted once and charged once at Runware's cost."""
    videos = [m for m in app.channel_posts() if f"#{job_id}" in m.content and m.attachments]
    assert len(videos) == 1, [m.content for m in app.channel_posts()]
    assert app.query(
        "SELECT kind, amount_micros FROM ledger WHERE job_id = ? AND kind = 'settle'", job_id
    ) == [("settle", COST_MICROS)]
    assert app.query("SELECT status FROM jobs WHERE id = ?", job_id) == [("succeeded",)]


async def test_a_video_is_delivered_by_its_webhook_without_a_poll(
    hooked: App, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    """The submit carries PUBLIC_URL/runware/webhook/<job>.<secret>; the token is stored only as its
    SHA-256, before the submit; the flat result POSTed there is kept and posted; Runware is never polled."""
    app = hooked
    caplog.set_level(logging.DEBUG)
    await app.animate()
    task_uuid, url = await submitted(app)
    prefix = f"http://127.0.0.1:{proxy.port}/runware/webhook/1."
    assert url.startswith(prefix) and len(url) - len(prefix) >= 40
    token = url.rsplit("/", 1)[1]
    await app.delivered(1)
    assert_once(app)
    assert app.runware.task_counts["getResponse"] == 0
    assert app.runware.submission_counts[task_uuid] == 1
    assert proxy.outcomes() == ["accepted"]
    assert app.query("SELECT job_id, token_hash FROM webhook_tokens") == [
        (1, hashlib.sha256(token.encode()).hexdigest())
    ]
    assert app.query("SELECT job_id, task_uuid FROM webhook_results") == [(1, task_uuid)]
    assert app.database.query(
        "SELECT COUNT(*) FROM webhook_tokens WHERE token_hash LIKE ?", f"%{token}%"
    ) == [(0,)]
    assert not [r for r in caplog.records if token in r.getMessage()]


async def test_repeated_webhooks_change_nothing(hooked: App, proxy: Proxy) -> None:
    """Runware sends the same result three times: the first is kept, the others answered "repeated"."""
    app = hooked
    app.runware.webhook_repeats = 2
    await app.animate()
    await app.delivered(1)
    await app.discord.wait_for(lambda: len(app.runware.webhook_calls) == 3, 10)
    assert [c.status for c in app.runware.webhook_calls] == [200, 200, 200]
    assert proxy.outcomes() == ["accepted", "repeated", "repeated"]
    await asyncio.sleep(0.3)
    assert_once(app)
    assert app.runware.task_counts["getResponse"] == 0


async def test_a_failing_or_slow_endpoint_is_retried_and_delivered_once(hooked: App, proxy: Proxy) -> None:
    """The first two POSTs get a 503 from the proxy, the third is kept but its answer comes after the
    fake's timeout: Runware retries each, and the video is posted and charged once."""
    app = hooked
    app.runware.webhook_timeout_s = 0.5
    proxy.fail, proxy.hang, proxy.hang_s = 2, 1, 1.0
    await app.animate()
    await app.delivered(1)
    await app.discord.wait_for(lambda: app.runware.webhook_deliveries(task_of(app)) == 1, 15)
    calls = app.runware.webhook_calls
    assert [c.status for c in calls[:2]] == [503, 503]
    assert calls[2].status is None and calls[2].error == "TimeoutError"
    assert calls[3].status == 200
    assert proxy.outcomes() == ["accepted", "repeated"]
    assert_once(app)


async def test_a_webhook_arriving_while_the_bot_restarts_is_retried_and_delivered_once(
    hooked: App, proxy: Proxy
) -> None:
    """The bot stops with its job at Runware; the video finishes meanwhile and its webhook finds no bot
    (502 from the proxy) until the next process listens on the same port: then it is kept, posted once."""
    app = hooked
    app.runware.seconds_to_finish = 60.0
    app.runware.webhook_retry_cap_s = 0.5
    await app.animate()
    task_uuid, _ = await submitted(app)
    await app.discord.wait_for(lambda: app.query("SELECT status FROM jobs") == [("processing",)], 10)
    await app.bot.close()
    app.runware.finish(task_uuid)
    await app.discord.wait_for(lambda: len(app.runware.webhook_calls) >= 2, 10)
    assert not any(c.ok for c in app.runware.webhook_calls)
    async with running_bot(next_bot(app), app.discord):
        await app.delivered(1, timeout=15)
        await app.discord.wait_for(lambda: app.runware.webhook_deliveries(task_uuid) == 1, 10)
        await asyncio.sleep(0.3)
    assert {status for status, _ in proxy.answers[:-1]} == {502}
    assert proxy.outcomes() == ["accepted"]
    assert_once(app)


async def test_a_webhook_that_never_comes_is_replaced_by_polling(hooked: App, proxy: Proxy) -> None:
    """Runware never calls: the slow safety-net poll (10 × POLL_MAX_INTERVAL_S) finds the video."""
    app = hooked
    app.runware.webhooks = "never"
    await app.animate()
    await app.delivered(1, timeout=20)
    assert_once(app)
    assert app.runware.webhook_calls == [] and proxy.answers == []
    assert app.runware.task_counts["getResponse"] >= 1
    assert app.query("SELECT COUNT(*) FROM webhook_results") == [(0,)]


async def test_a_webhook_for_a_job_polling_finished_is_a_repeat(hooked: App, proxy: Proxy) -> None:
    """The webhook comes after the safety-net poll has already settled and posted the job: 200 "repeated",
    nothing kept, nothing charged or posted again."""
    app = hooked
    app.runware.webhook_delay_s = 60.0  # held back until the poll has finished the job
    await app.animate()
    task_uuid, url = await submitted(app)
    await app.delivered(1, timeout=20)
    body = {"taskType": "videoInference", "taskUUID": task_uuid, "status": "success", "cost": 9.99}
    body |= {"videoUUID": "0f9e6c1e-2d7a-4c53-9a59-6d1c1b0e7a11", "videoURL": f"{app.runware.base_url}/x.mp4"}
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as answer:
        assert (answer.status, await answer.json()) == (200, {"status": "repeated"})
    assert app.query("SELECT COUNT(*) FROM webhook_results") == [(0,)]
    assert_once(app)


@pytest.mark.parametrize("shape", ["nested", "errors"])
async def test_a_failed_task_by_webhook_is_refunded_once(hooked: App, proxy: Proxy, shape: str) -> None:
    """A failure POSTed in either shape fails the job as a polled failure would: refunded, member told."""
    app = hooked
    app.runware.next_outcome(Outcome.failure("timeoutProvider", shape=shape, seconds_to_finish=0.2))  # type: ignore[arg-type]
    await app.animate()
    await app.delivered(1)
    assert app.query("SELECT status, error_code FROM jobs") == [("failed", "timeoutProvider")]
    assert app.spent() == 0
    assert app.runware.task_counts["getResponse"] == 0
    assert proxy.outcomes() == ["accepted"]
    assert len([m for m in app.channel_posts() if "#1" in m.content]) == 1


def snapshot(app: App) -> list[tuple[Any, ...]]:
    """Everything a webhook call could change."""
    return [
        *app.query("SELECT id, status, next_poll_at, updated_at, lease_owner FROM jobs ORDER BY id"),
        *app.query("SELECT job_id, task_uuid FROM webhook_results"),
        *app.query("SELECT job_id, token_hash FROM webhook_tokens"),
    ]


async def test_bad_calls_are_refused_and_write_nothing(hooked: App, proxy: Proxy) -> None:
    """A wrong or unknown token: 401; a body over 16 KiB (declared or streamed): 413; not JSON, not an
    object, no taskUUID or another task's: 400. None of them writes anything, and the job still finishes
    by its real webhook."""
    app = hooked
    app.runware.seconds_to_finish = 60.0
    await app.animate()
    task_uuid, url = await submitted(app)
    await app.discord.wait_for(lambda: app.query("SELECT status FROM jobs") == [("processing",)], 10)
    base, token = url.rsplit("/", 1)
    good = {
        "taskType": "videoInference",
        "taskUUID": task_uuid,
        "status": "success",
        "videoURL": "http://x/y",
    }
    before = snapshot(app)

    async def post(target: str, data: bytes | Any) -> int:
        async with aiohttp.ClientSession() as http, http.post(target, data=data) as answer:
            return answer.status

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 1024

    wrong_secret = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert await post(f"{base}/{wrong_secret}", json.dumps(good).encode()) == 401
    assert await post(f"{base}/2.{token.split('.', 1)[1]}", json.dumps(good).encode()) == 401
    assert await post(f"{base}/{token.split('.', 1)[1]}", json.dumps(good).encode()) == 401
    assert await post(f"{base}/1", json.dumps(good).encode()) == 401
    assert await post(url, b" " * (16 * 1024 + 1)) == 413
    assert await post(url, chunks()) == 413
    assert await post(url, b"{not json") == 400
    assert await post(url, b"[1, 2]") == 400
    assert await post(url, json.dumps({"status": "success", "videoURL": "http://x/y"}).encode()) == 400
    other = {**good, "taskUUID": "7b0c7b8e-3a57-4d1c-9d6f-0c3c9e0b7d21"}
    assert await post(url, json.dumps(other).encode()) == 400
    assert snapshot(app) == before
    app.runware.finish(task_uuid)
    await app.delivered(1)
    assert_once(app)


async def test_the_daily_pruning_forgets_the_webhook_rows_of_jobs_long_ended(
    hooked: App, proxy: Proxy
) -> None:
    """A job delivered by webhook keeps its token and result (a late repeat is still "repeated"); once it
    ended more than OUTPUT_TTL_S ago, the next process's daily pruning deletes them, and a call with its
    old token is then refused (401) without a write."""
    app = hooked
    await app.animate()
    _, url = await submitted(app)
    await app.delivered(1)
    assert app.query("SELECT COUNT(*) FROM webhook_tokens") == [(1,)]
    assert app.query("SELECT COUNT(*) FROM webhook_results") == [(1,)]
    await app.bot.close()
    # A day and more later (OUTPUT_TTL_S is a day), when the last pruning's claim has run out.
    app.query("UPDATE jobs SET finished_at = finished_at - ?", app.settings.output_ttl_s + 60)
    app.query("UPDATE duties SET until = 0")
    async with running_bot(next_bot(app), app.discord):
        await app.discord.wait_for(
            lambda: (
                app.query("SELECT COUNT(*) FROM webhook_tokens") == [(0,)]
                and app.query("SELECT COUNT(*) FROM webhook_results") == [(0,)]
            ),
            10,
        )
        async with aiohttp.ClientSession() as http, http.post(url, json={"taskUUID": task_of(app)}) as answer:
            assert answer.status == 401
    assert_once(app)


async def test_a_runware_error_quoting_the_webhook_url_does_not_spread_its_token(
    hooked: App, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    """Runware refuses the submit with a validation error that quotes the webhookURL it was sent (as its
    validation errors may quote a refused value): the job fails and is refunded, and the token's secret
    is in no log line, no database value and no Discord message."""
    app = hooked
    caplog.set_level(logging.DEBUG)
    app.runware.inject(
        400, task_type="videoInference", code="invalidWebhookURL", message="Invalid webhookURL: {webhookURL}"
    )
    await app.animate()
    await app.delivered(1)
    assert app.query("SELECT status, error_code FROM jobs") == [("failed", "invalidWebhookURL")]
    assert app.spent() == 0
    (url,) = [
        str(task["webhookURL"])
        for body in app.runware.requests
        if isinstance(body, list)
        for task in body
        if isinstance(task, dict) and task.get("taskType") == "videoInference"
    ]
    secret = url.rsplit(".", 1)[1]
    assert len(secret) >= 40
    assert [r for r in caplog.records if "Invalid webhookURL" in r.getMessage()]  # the error was logged
    assert not [r for r in caplog.records if secret in r.getMessage()]
    assert secret.encode() not in app.database.dump()
    assert not [m for m in app.discord.messages if secret in m.content]


def test_the_log_filter_redacts_webhook_secrets_and_the_configured_ones() -> None:
    """bot.py's log filter (on the one handler setup_logging installs) takes out a webhook URL's secret
    as well as the configured secrets, whatever logged it; other lines pass as they were."""
    from bot import SecretsFilter

    token = "12." + "s3cr3t_Secret-" * 3
    record = logging.LogRecord(
        "x",
        logging.WARNING,
        __file__,
        1,
        "%s sent to %s",
        ("key-0123456789", f"/runware/webhook/{token}"),
        None,
    )
    assert SecretsFilter(["key-0123456789"]).filter(record)
    assert record.getMessage() == "[redacted] sent to /runware/webhook/12.***"
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "job=%s done", (12,), None)
    assert SecretsFilter([]).filter(plain) and plain.getMessage() == "job=12 done" and plain.args == (12,)
