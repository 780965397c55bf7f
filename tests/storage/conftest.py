"""Storage tests run once per backend: a port's tests take `store` (and `query`, to read its tables as
another process would), so a new backend is one more entry in BACKENDS and the tests it must pass."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.ports import Store
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from tests.postgres import TEST_POSTGRES_URL, fresh_schema, query_schema

Query = Callable[..., list[tuple[Any, ...]]]

BACKENDS = ["sqlite", "postgres"]


@dataclass(frozen=True)
class Backend:
    """One database of one backend: open stores on it (each as another process would), read its tables."""

    name: str
    open: Callable[[], Awaitable[Store]]
    query: Query


def sqlite_backend(path: Path) -> Backend:
    async def open_store() -> Store:
        return await SqliteStore.open(str(path))

    def query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as db:
            return list(db.execute(sql, params).fetchall())

    return Backend("sqlite", open_store, query)


def postgres_backend(schema: str) -> Backend:
    """The PostgreSQL test server, seen through `schema` (each store opens a pool of its own, as another
    process would; `query` reads with a connection of its own). `query` takes SQLite's `?` placeholders."""

    async def open_store() -> Store:
        return await PostgresStore.open(
            TEST_POSTGRES_URL, server_settings={"search_path": schema}, min_size=1, max_size=10
        )

    def query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return query_schema(schema, sql, params)

    return Backend("postgres", open_store, query)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh database of each backend: a new SQLite file, or a new PostgreSQL schema dropped after the
    test (skipped when PostgreSQL does not answer, failed instead under CI=true)."""
    if request.param == "sqlite":
        yield sqlite_backend(tmp_path / "store.db")
    elif request.param == "postgres":
        with fresh_schema() as schema:
            yield postgres_backend(schema)
    else:
        raise AssertionError(f"no such backend: {request.param}")


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    """A migrated store on the backend's fresh database."""
    opened = await backend.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def query(backend: Backend) -> Query:
    """Read the backend's tables with a connection of its own: `query(sql, params) -> rows as tuples`."""
    return backend.query
