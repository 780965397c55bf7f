"""PostgreSQL for the tests: the server to use, whether it answers, and a schema of its own per test.

`TEST_POSTGRES_URL` names the server (default postgresql://postgres@127.0.0.1:5432/test). When it does
not answer, PostgreSQL tests skip with that reason; under `CI=true` they fail instead, so CI can never
pass without having run them.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

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
