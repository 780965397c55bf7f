"""`python -m web.healthcheck`, the image's HEALTHCHECK: the URL it asks, and its exit status for an
answer of 200, of 503, no answer at all, and no server configured."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from web.healthcheck import health_url, main
from web.server import HttpServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, None),
        ({"HTTP_PORT": ""}, None),
        ({"HTTP_PORT": "0"}, None),
        ({"HTTP_PORT": "8080"}, "http://127.0.0.1:8080/healthz"),
        ({"HTTP_PORT": "8080", "HTTP_HOST": "0.0.0.0"}, "http://127.0.0.1:8080/healthz"),
        ({"HTTP_PORT": "8080", "HTTP_HOST": "::"}, "http://[::1]:8080/healthz"),
        ({"HTTP_PORT": " 9000 ", "HTTP_HOST": "10.1.2.3"}, "http://10.1.2.3:9000/healthz"),
    ],
)
def test_it_asks_the_server_the_settings_describe(env: dict[str, str], url: str | None) -> None:
    assert health_url(env) == url


def test_no_server_configured_is_not_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main({"HTTP_PORT": ""}) == 0
    assert "HTTP server off" in capsys.readouterr().out


async def test_exit_status_follows_the_answer() -> None:
    """200: exit 0; 503: exit 1; nothing listening: exit 1 (run in a thread: urllib blocks)."""
    answers = [200, 503]
    server = HttpServer("127.0.0.1", 0)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, status=answers.pop(0))

    server.app.router.add_get("/healthz", healthz)
    await server.start()
    try:
        env = {"HTTP_PORT": str(server.port)}
        assert await asyncio.to_thread(main, env) == 0
        assert await asyncio.to_thread(main, env) == 1
    finally:
        await server.stop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    assert await asyncio.to_thread(main, {"HTTP_PORT": str(closed)}) == 1


async def test_a_proxy_in_the_environment_is_not_used() -> None:
    """Docker passes its configured proxies to containers as HTTP_PROXY/http_proxy, often without
    127.0.0.1 in NO_PROXY: the check asks its own server directly all the same (run as the HEALTHCHECK
    runs it, a fresh `python -m web.healthcheck`, since urllib reads the proxies when it starts)."""
    server = HttpServer("127.0.0.1", 0)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    server.app.router.add_get("/healthz", healthz)
    await server.start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HTTP_PORT": str(server.port),
        "HTTP_PROXY": nowhere,
        "http_proxy": nowhere,
    }
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "web.healthcheck"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=30,
        )
    finally:
        await server.stop()
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
