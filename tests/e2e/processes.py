"""`python bot.py` as a real subprocess pointed at the fakes of the test process: start it, wait for its
gateway session, kill it with SIGKILL or stop it with SIGTERM, read its log. Used by the crash-recovery
tests (one process, killed and started again) and the several-processes tests (one per shard)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.runware import FakeRunware

ROOT = Path(__file__).resolve().parents[2]


class BotProcess:
    """`python bot.py` in its own process, pointed at the fakes, logging to `<name>.log` in `workdir`.
    `env` adds settings to (or overrides) the rig's defaults."""

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        discord: FakeDiscord,
        runware: FakeRunware,
        *,
        name: str = "bot",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "DISCORD_TOKEN": discord.token,
            "RUNWARE_API_KEY": runware.api_key,
            "RUNWARE_API_URL": runware.url,
            "DATABASE_URL": database_url,
            "DISCORD_API_BASE": discord.api_base,
            "DISCORD_GATEWAY_URL": discord.gateway_url,
            "POLL_INITIAL_DELAY_S": "0.1",
            "POLL_MAX_INTERVAL_S": "0.3",
            "RUNWARE_REQUEST_TIMEOUT_S": "1",
            "PRICE_PER_SECOND_USD": "0.10",
            "LOG_LEVEL": "INFO",
            **(env or {}),
        }
        self.cwd = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bot.py")], cwd=self.cwd, env=self.env, stdout=log, stderr=log
        )
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

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
def bot_processes(*processes: BotProcess) -> Iterator[tuple[BotProcess, ...]]:
    """Yield the (not yet started) processes; whichever is still running at the end is killed."""
    with ExitStack() as stack:
        for process in processes:
            stack.callback(_reap, process)
        yield processes


def _reap(process: BotProcess) -> None:
    if process.proc is not None and process.proc.poll() is None:
        process.proc.kill()
        process.proc.wait(10)


async def connected(
    discord: FakeDiscord, process: BotProcess, sessions_before: int, *, shard: int | None = None
) -> None:
    """Wait until the process has identified on the gateway (a session past the first `sessions_before`;
    of `shard` when given) and a session is connected. Fails at once with its log if it exits."""

    def identified() -> bool:
        new = discord.identify_payloads[sessions_before:]
        return any(shard is None or (p.get("shard") or [0, 1])[0] == shard for p in new)

    async def ready() -> None:
        while not identified():
            if not process.alive():
                raise AssertionError(f"{process.name} exited:\n" + process.log())
            await asyncio.sleep(0.05)
        await discord.wait_for(lambda: discord.connected_sessions > 0, 10)

    await asyncio.wait_for(ready(), 30)
