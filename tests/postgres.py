"""PostgreSQL for the tests: the server to use, whether it answers, a schema of its own per test, and a TCP
proxy in front of it that can stall or cut the way to it.

`TEST_POSTGRES_URL` names the server (default postgresql://postgres@127.0.0.1:5432/test). When it does
not answer, PostgreSQL tests skip with that reason; under `CI=true` they fail instead, so CI can never
pass without having run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

T = TypeVar("T")

TEST_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to its end on a loop of its own in another thread (callable from inside a running
    loop, as a synchronous helper of an async test is)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@functools.cache
def postgres_problem() -> str | None:
    """None when the test server answers; otherwise why not (asked once per test run)."""

    async def ping() -> None:
        conn = await asyncpg.connect(TEST_POSTGRES_URL, timeout=3)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    try:
        run_sync(ping())
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        return f"PostgreSQL at {_where(TEST_POSTGRES_URL)} does not answer ({type(error).__name__}: {error})"
    return None


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL does not answer; fail it instead under CI=true."""
    problem = postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{problem}; CI=true requires it", pytrace=False)
    pytest.skip(problem)


async def _execute(sql: str) -> None:
    conn = await asyncpg.connect(TEST_POSTGRES_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A new, empty schema for one test (its name), dropped with everything in it afterwards."""
    require_postgres()
    name = f"test_{uuid.uuid4().hex[:16]}"
    run_sync(_execute(f"CREATE SCHEMA {name}"))
    try:
        yield name
    finally:
        run_sync(_execute(f"DROP SCHEMA {name} CASCADE"))


def numbered(sql: str) -> str:
    """`?` placeholders (the tests' SQLite spelling) as PostgreSQL's `$1, $2, …`."""
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def query_schema(schema: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read tables of `schema` on a connection of its own, as another process would: rows as tuples."""

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(TEST_POSTGRES_URL, server_settings={"search_path": schema})
        try:
            return [tuple(row.values()) for row in await conn.fetch(numbered(sql), *params)]
        finally:
            await conn.close()

    return run_sync(fetch())


class PostgresProxy:
    """A TCP proxy on 127.0.0.1 to the test server, whose way there can fail: `stall()` stops forwarding on
    every connection open at that moment while keeping its sockets open (a network path that died
    silently: no RST, no FIN; connections made afterwards are forwarded as usual); `cut()` ends it (open
    connections closed, new ones refused: the database gone from this process's point of view)."""

    def __init__(self, upstream_url: str = TEST_POSTGRES_URL) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._server: asyncio.Server | None = None
        self._stalled: list[asyncio.Event] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._pumps: set[asyncio.Task[None]] = set()
        self.port = 0

    def route(self, url: str) -> str:
        """`url` (a database on the test server) through the proxy: its host and port replaced."""
        parts = urlsplit(url)
        user = parts.netloc.rpartition("@")[0]
        where = f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=f"{user}@{where}" if user else where))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        stalled = asyncio.Event()
        self._stalled.append(stalled)
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink, stalled))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, stalled: asyncio.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                if stalled.is_set():
                    await asyncio.Event().wait()  # swallowed, and nothing more is read
                sink.write(data)
                await sink.drain()
        sink.close()

    def stall(self) -> None:
        for stalled in self._stalled:
            stalled.set()

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def close(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
