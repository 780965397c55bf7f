"""`python bot.py` as operators run it: missing settings, `check`, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from tests.databases import Database
from tests.fakes.discord import FakeDiscord
from tests.fakes.runware import FakeRunware

ROOT = Path(__file__).resolve().parents[2]


async def run_bot(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    """Run bot.py with exactly this environment; returns (exit code, stdout + stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        *args,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_missing_token_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    """With no token the bot exits non-zero naming DISCORD_TOKEN and where to get it."""
    code, out = await run_bot([], {"RUNWARE_API_KEY": "k" * 20}, tmp_path)
    assert code != 0
    assert "DISCORD_TOKEN is not set" in out and "discord.com/developers" in out
    assert "Traceback" not in out


async def test_env_copied_from_example_names_the_empty_secrets(tmp_path: Path) -> None:
    """The README's quick start: `.env` copied from `.env.example` with the two secrets not filled in
    (`DISCORD_TOKEN=` and `RUNWARE_API_KEY=`, empty) stops with the missing-setting message, not a login
    attempt with an empty token and its traceback."""
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    code, out = await run_bot([], {}, tmp_path)
    assert code == 2, out
    assert "DISCORD_TOKEN is not set" in out and "discord.com/developers" in out
    assert "RUNWARE_API_KEY is not set" in out and "my.runware.ai/keys" in out
    assert "Traceback" not in out
    code, out = await run_bot(["check"], {"RUNWARE_API_KEY": "k" * 20}, tmp_path)
    assert code == 2 and "DISCORD_TOKEN is not set" in out and "RUNWARE_API_KEY" not in out


async def test_bad_value_names_the_variable(tmp_path: Path) -> None:
    """A bad setting stops start-up with its name."""
    env = {"DISCORD_TOKEN": "t" * 20, "RUNWARE_API_KEY": "k" * 20, "JOB_DEADLINE_S": "soon"}
    code, out = await run_bot([], env, tmp_path)
    assert code != 0 and "JOB_DEADLINE_S is invalid" in out and "Traceback" not in out


async def test_a_refused_value_reads_as_a_sentence(tmp_path: Path) -> None:
    """A value refused by the bot's own rule says why, without pydantic's "Value error, " in front."""
    env = {"DISCORD_TOKEN": "t" * 20, "RUNWARE_API_KEY": "k" * 20, "PUBLIC_URL": "ftp://bot.example.org"}
    code, out = await run_bot([], env, tmp_path)
    assert code == 2 and "PUBLIC_URL is invalid: must be the base URL" in out
    assert "Value error" not in out


async def test_discord_unreachable_at_start_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """When Discord cannot be reached at login (no network, DNS down), the bot exits 1 with a line naming
    Discord, not aiohttp's traceback."""
    async with FakeRunware() as runware:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]  # nothing listens here once the socket is closed
        env = {
            "DISCORD_TOKEN": "t" * 30,
            "RUNWARE_API_KEY": runware.api_key,
            "RUNWARE_API_URL": runware.url,
            "DISCORD_API_BASE": f"http://127.0.0.1:{port}/api/v10",
        }
        code, out = await run_bot([], env, tmp_path)
    assert code == 1, out
    assert "could not reach Discord" in out and "Traceback" not in out
    assert "t" * 30 not in out


def fake_env(discord: FakeDiscord, runware: FakeRunware, database: Database) -> dict[str, str]:
    return {
        "DISCORD_TOKEN": discord.token,
        "RUNWARE_API_KEY": runware.api_key,
        "RUNWARE_API_URL": runware.url,
        "DATABASE_URL": database.url,
        "DISCORD_API_BASE": discord.api_base,
        "DISCORD_GATEWAY_URL": discord.gateway_url,
        "RUNWARE_REQUEST_TIMEOUT_S": "2",
    }


async def test_check_passes_against_working_services(tmp_path: Path, database: Database) -> None:
    """`bot.py check` prints one OK line per check, migrates the database DATABASE_URL names (a SQLite
    file, or the test's PostgreSQL schema through `?search_path=`) and exits 0."""
    async with FakeDiscord() as discord, FakeRunware() as runware:
        env = fake_env(discord, runware, database)
        code, out = await run_bot(["check"], env, tmp_path)
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith(("OK", "FAIL"))]
    assert len(lines) == 6 and all(line.startswith("OK") for line in lines)
    assert f"OK   database ({database.url.split('://')[0]})" in out
    assert "OK   HTTP server off (HTTP_PORT unset)" in out and "OK   PUBLIC_URL unset" in out
    assert database.query("SELECT COUNT(*) FROM schema_version") == [(1,)]
    assert database.query("SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_check_reports_each_failure_and_exits_non_zero(tmp_path: Path, database: Database) -> None:
    """A wrong Runware key and a wrong Discord token each get a FAIL line with the reason."""
    async with FakeDiscord() as discord, FakeRunware() as runware:
        env = fake_env(discord, runware, database)
        env["RUNWARE_API_KEY"] = "wrong-key-0123456789"
        env["DISCORD_TOKEN"] = "wrong-token-0123456789"
        code, out = await run_bot(["check"], env, tmp_path)
    assert code == 1
    assert "FAIL Runware API key" in out and "FAIL Discord token" in out
    assert "OK   database" in out
    assert "wrong-key-0123456789" not in out and "wrong-token-0123456789" not in out


async def test_check_refuses_a_database_from_a_newer_bot(tmp_path: Path, database: Database) -> None:
    """A database at a newer schema version fails the database check."""
    async with FakeDiscord() as discord, FakeRunware() as runware:
        env = fake_env(discord, runware, database)
        assert (await run_bot(["check"], env, tmp_path))[0] == 0
        database.query("UPDATE schema_version SET version = 99")
        code, out = await run_bot(["check"], env, tmp_path)
    assert code == 1 and "FAIL database" in out and "99" in out


async def test_check_reports_the_http_server_settings(tmp_path: Path, database: Database) -> None:
    """`check` tries to bind HTTP_HOST:HTTP_PORT (a taken port fails, a free one passes), and refuses a
    PUBLIC_URL without a server to receive what is sent to it; PUBLIC_URL's user and password are never
    printed."""
    async with FakeDiscord() as discord, FakeRunware() as runware:
        env = fake_env(discord, runware, database)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            code, out = await run_bot(["check"], {**env, "HTTP_PORT": str(port)}, tmp_path)
        assert code == 1
        assert f"FAIL HTTP server: cannot listen on 127.0.0.1:{port}" in out and "HTTP_PORT" in out
        code, out = await run_bot(["check"], {**env, "HTTP_PORT": str(port)}, tmp_path)  # now free
        assert code == 0, out
        assert f"OK   HTTP server (127.0.0.1:{port} is free)" in out
        public = {**env, "PUBLIC_URL": "https://hook:s3cr3t-pass@bot.example.org/vq"}
        code, out = await run_bot(["check"], public, tmp_path)
        assert code == 1
        assert "FAIL PUBLIC_URL: set, but HTTP_PORT is not" in out
        code, out = await run_bot(["check"], {**public, "HTTP_PORT": "0"}, tmp_path)
        assert code == 0, out
        assert "OK   PUBLIC_URL (https://bot.example.org)" in out and "s3cr3t-pass" not in out
        assert "OK   HTTP server (127.0.0.1, a free port chosen at start)" in out
