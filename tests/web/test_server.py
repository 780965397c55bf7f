"""The HTTP server: it serves the routes added to it, on a free port, and a taken port stops start-up
with a message that names it (the server itself, and `python bot.py` as shipped)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

from web.server import MAX_BODY_BYTES, HttpServer, HttpServerError

ROOT = Path(__file__).resolve().parents[2]


async def test_serves_its_routes_on_a_free_port_and_stops() -> None:
    """Port 0 picks a free port, which `port` then tells; a route answers; after stop() nothing listens."""
    server = HttpServer("127.0.0.1", 0)

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": len(await request.read())})

    server.app.router.add_post("/hello", hello)
    await server.start()
    try:
        assert server.port != 0
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/hello", data=b"x" * 10) as response:
                assert (response.status, await response.json()) == (200, {"hello": 10})
            async with http.post(f"{server.url}/hello", data=b"x" * (MAX_BODY_BYTES + 1)) as response:
                assert response.status == 413
            async with http.get(f"{server.url}/nothing") as response:
                assert response.status == 404
    finally:
        await server.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0


async def test_a_taken_port_is_refused_with_its_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HttpServer("127.0.0.1", port)
        try:
            await server.start()
        except HttpServerError as error:
            assert f"127.0.0.1:{port}" in str(error)
            assert "HTTP_PORT" in str(error)
        else:
            await server.stop()
            raise AssertionError("a taken port was not refused")


def test_bot_py_stops_with_a_clear_line_when_its_port_is_taken(tmp_path: Path) -> None:
    """`python bot.py` with HTTP_PORT taken exits 1 and says which address, before it needs Discord."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "DISCORD_TOKEN": "t" * 30,
            "RUNWARE_API_KEY": "k" * 30,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            # Nothing answers here: the server starts in setup_hook, before the gateway is needed.
            "DISCORD_API_BASE": "http://127.0.0.1:9/api/v10",
            "HTTP_PORT": str(port),
        }
        done = subprocess.run(
            [sys.executable, str(ROOT / "bot.py")], cwd=tmp_path, env=env, capture_output=True, timeout=60
        )
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err
    assert "voice will NOT be supported" not in err  # the bot never uses voice: no warning about it
