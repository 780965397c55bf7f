"""/healthz and /metrics over real HTTP, on the in-process bot (real discord.py on the fake Discord, the fake
Runware, each backend): 200 when all is well, 503 naming the part that is not (the database, the gateway,
the job runner), and the numbers after a job, with no ids in any label."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import ShardedVideoBot, make_bot
from core.runware import RunwareClient
from tests.conftest import SettingsFactory
from tests.databases import Database
from tests.e2e.conftest import App
from tests.e2e.test_cli import ROOT, fake_env
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_fixtures import GUILD_ID, GUILD_READY_TIMEOUT, populate_default_guilds, running_bot
from tests.fakes.runware import FakeRunware
from web.metrics import ERROR_KINDS, JOB_STATUSES, REQUEST_TASKS, WEBHOOK_OUTCOMES

HEALTHY = {"status": "ok", "database": "ok", "gateway": "ok", "runner": "ok"}


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    """The bot serves HTTP on a free port of loopback."""
    return {**app_settings, "http_port": 0}


async def get(app: App, path: str) -> tuple[int, str, dict[str, str]]:
    """GET a path of the bot's HTTP server: status, body, headers."""
    assert app.bot.web is not None
    async with aiohttp.ClientSession() as http, http.get(app.bot.web.url + path) as response:
        return response.status, await response.text(), dict(response.headers)


async def health(app: App) -> tuple[int, dict[str, str]]:
    assert app.bot.web is not None
    async with aiohttp.ClientSession() as http, http.get(app.bot.web.url + "/healthz") as response:
        return response.status, await response.json()


async def until_health(app: App, wanted: int, timeout: float = 15.0) -> dict[str, str]:
    """Ask /healthz until it answers `wanted`; its report then."""
    async with asyncio.timeout(timeout):
        while True:
            status, report = await health(app)
            if status == wanted:
                return report
            await asyncio.sleep(0.05)


async def test_healthz_answers_200_when_every_part_works(app: App) -> None:
    """Database, gateway and runner all fine: 200, the small JSON, not cached, nothing else in it."""
    await app.discord.wait_for(lambda: app.bot.runner.last_pass_at is not None)
    status, body, headers = await get(app, "/healthz")
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Cache-Control"] == "no-store"
    assert await health(app) == (200, HEALTHY)


async def test_healthz_is_503_while_the_database_does_not_answer(app: App) -> None:
    """The bot's tables gone (renamed under it by another client): 503 naming the database only; back to
    200 once they are back."""
    await until_health(app, 200)
    app.query("ALTER TABLE schema_version RENAME TO schema_version_away")
    try:
        report = await until_health(app, 503)
        assert report == {**HEALTHY, "status": "failing", "database": "failing"}
    finally:
        app.query("ALTER TABLE schema_version_away RENAME TO schema_version")
    assert await until_health(app, 200) == HEALTHY


async def test_healthz_is_503_once_the_store_is_closed(app: App) -> None:
    """The store's connection (SQLite) or pool (PostgreSQL) closed: the database is failing."""
    await until_health(app, 200)
    await app.store.close()
    status, report = await health(app)
    assert status == 503 and report["database"] == "failing" and report["status"] == "failing"


async def test_healthz_is_503_when_the_runner_is_dead(app: App) -> None:
    """The job runner's task ended (cancelled here): 503 naming the runner."""
    await until_health(app, 200)
    task = app.bot._runner_task
    assert task is not None
    task.cancel()
    await asyncio.wait({task})
    status, report = await health(app)
    assert (status, report) == (503, {**HEALTHY, "status": "failing", "runner": "failing"})


async def test_healthz_is_503_while_the_gateway_is_down(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway drops and the session cannot be resumed; the new session's READY is held back: 503
    naming the gateway while it lasts, 200 once READY comes."""
    await until_health(app, 200)
    await drop_the_gateway(app, monkeypatch)


async def drop_the_gateway(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop every gateway socket, refuse the RESUME and hold back the new session's READY: /healthz is 503
    (the gateway) until READY is released, then 200."""

    async def identify_now(shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py's default hook sleeps 5 s before every IDENTIFY but the first."""

    monkeypatch.setattr(app.bot, "before_identify_hook", identify_now)
    app.discord.allow_resume = False
    app.discord.hold_ready = True
    await app.discord.disconnect_gateway()
    report = await until_health(app, 503)
    assert report == {**HEALTHY, "status": "failing", "gateway": "failing"}
    # Still so once the new sockets are open and wait for READY (not only while they reconnect).
    sockets = app.bot.shard_count or 1
    await app.discord.wait_for(lambda: len(app.discord.identify_payloads) == 2 * sockets)
    await app.discord.wait_for(lambda: app.discord.connected_sessions == sockets)
    await asyncio.sleep(0.2)
    assert await health(app) == (503, report)
    # on_ready runs once the new session's guilds are in: waited for, so that the bot closes after it.
    ready = asyncio.create_task(app.bot.wait_for("ready", timeout=15))
    await app.discord.release_ready()
    assert await until_health(app, 200) == HEALTHY
    await ready


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


ALLOWED_LABELS = {
    "status": set(JOB_STATUSES),
    "kind": set(ERROR_KINDS),
    "task": set(REQUEST_TASKS),
    "outcome": set(WEBHOOK_OUTCOMES),
    "le": None,  # histogram buckets
}


async def test_metrics_after_a_job(app: App) -> None:
    """After one /animate delivered: one submission, its cost spent, one delivery, one acknowledgement,
    the job counted as succeeded (read from the database), Runware's requests timed; every label from a
    fixed set (no user, guild, channel or job ids)."""
    await app.animate()
    await app.delivered(1)
    status, text, headers = await get(app, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(text)

    def value(name: str, **labels: str) -> float:
        return found[(f"ventriloquist_{name}", tuple(sorted(labels.items())))]

    assert value("submissions_total") == 1
    assert value("spend_usd_total") == pytest.approx(0.42)  # the fake Runware's cost
    assert app.spent() == 420_000
    assert value("deliveries_total") == 1
    assert value("delivery_failures_total") == 0
    assert value("jobs", status="succeeded") == 1
    assert value("jobs", status="processing") == 0
    assert value("jobs_finished_total", status="succeeded") == 1
    assert value("polled_tasks_total") >= 2  # the fake finishes a task on its second poll
    assert value("ack_seconds_count") == 1
    assert 0 <= value("ack_seconds_sum") < 3
    assert value("runware_request_seconds_count", task="videoInference") == 1
    assert value("runware_request_seconds_count", task="mediaStorage") == 2  # the image and the audio
    assert value("runware_request_seconds_count", task="getResponse") >= 1
    assert value("webhook_calls_total", outcome="accepted") == 0
    assert value("runware_errors_total", kind="server") == 0
    for (_, labels), _ in found.items():
        for label, label_value in labels:
            allowed = ALLOWED_LABELS[label]
            assert allowed is None or label_value in allowed, (label, label_value)
    assert not re.search(r'="\d{6,}"', text)  # no snowflake or job number as a label value


async def test_metrics_count_runware_errors_by_kind(app: App) -> None:
    """A Runware 500 on a poll is counted as a server error (and the job still finishes)."""
    app.runware.inject(500, task_type="getResponse")
    await app.animate()
    await app.delivered(1)
    found = samples((await get(app, "/metrics"))[1])
    assert found[("ventriloquist_runware_errors_total", (("kind", "server"),))] >= 1


async def test_each_bot_has_its_own_registry(app: App) -> None:
    """The metrics of this bot are its own: a second registry (another bot in this process) is untouched."""
    from web.metrics import Metrics

    other = Metrics()
    await app.animate()
    await app.delivered(1)
    assert app.bot.metrics is not None and app.bot.metrics is not other
    assert samples((await other.render(None)).decode())[("ventriloquist_submissions_total", ())] == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def healthcheck(env: dict[str, str]) -> tuple[int, str]:
    """`python -m web.healthcheck` (the image's HEALTHCHECK) with exactly this environment."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "web.healthcheck",
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_bot_py_serves_healthz_before_and_after_ready(tmp_path: Path, database: Database) -> None:
    """`python bot.py` as shipped, with HTTP_PORT: /healthz answers while the gateway connects (503, the
    gateway failing; the image's HEALTHCHECK exits 1), then 200 once READY came (HEALTHCHECK exits 0);
    /metrics answers; SIGTERM stops it cleanly."""
    async with FakeDiscord() as discord, FakeRunware() as runware:
        populate_default_guilds(discord)
        discord.hold_ready = True
        port = free_port()
        env = {**fake_env(discord, runware, database), "HTTP_PORT": str(port), "DEV_GUILD_ID": str(GUILD_ID)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bot.py"),
            cwd=tmp_path,
            env={"PATH": os.environ.get("PATH", ""), **env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:

                async def healthz() -> tuple[int, dict[str, str]] | None:
                    try:
                        async with http.get(url + "/healthz") as response:
                            return response.status, await response.json()
                    except aiohttp.ClientConnectionError:
                        return None  # not listening yet

                async with asyncio.timeout(30):
                    while (answer := await healthz()) is None:
                        await asyncio.sleep(0.1)
                status, report = answer
                assert status == 503 and report["gateway"] == "failing" and report["status"] == "failing"
                assert report["database"] == "ok"
                code, out = await healthcheck({"HTTP_PORT": str(port)})
                assert code == 1 and out.startswith("503"), out
                await discord.release_ready()
                async with asyncio.timeout(30):
                    while (answer := await healthz()) is None or answer[0] != 200:
                        await asyncio.sleep(0.1)
                assert answer == (200, HEALTHY)
                code, out = await healthcheck({"HTTP_PORT": str(port), "HTTP_HOST": "0.0.0.0"})
                assert code == 0 and out.startswith("200"), out
                async with http.get(url + "/metrics") as response:
                    assert response.status == 200
                    assert "ventriloquist_submissions_total 0.0" in await response.text()
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        assert "Traceback" not in err.decode()


async def test_a_sharded_bot_is_healthy_only_with_every_shard_connected(
    fake_discord: FakeDiscord,
    make_settings: SettingsFactory,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SHARD_COUNT=2, both shards in this process: 200 once both are READY; when the gateway drops and
    the sessions cannot be resumed (their new READY held back), 503 naming the gateway; 200 again after."""
    async with FakeRunware(polls_to_finish=2) as runware, aiohttp.ClientSession() as http:
        settings = make_settings(
            runware_api_url=runware.url,
            runware_api_key=runware.api_key,
            database_url=database.url,
            shard_count=2,
            http_port=0,
        )
        store = await database.open()
        client = RunwareClient(http, api_url=runware.url, api_key=settings.runware_api_key, timeout_s=2.0)
        bot = make_bot(
            settings=settings, store=store, runware=client, guild_ready_timeout=GUILD_READY_TIMEOUT
        )
        assert isinstance(bot, ShardedVideoBot)
        try:
            async with running_bot(bot, fake_discord):
                app = App(fake_discord, runware, bot, database, settings, store, client)
                assert await until_health(app, 200) == HEALTHY
                assert len(bot.shards) == 2
                await drop_the_gateway(app, monkeypatch)
        finally:
            await store.close()
