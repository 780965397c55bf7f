"""Storage tests run once per backend: a port's tests take `store` (and `query`, to read its tables as
another process would), so a new backend is one more entry in BACKENDS and the tests it must pass."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.ports import Store
from storage.sqlite import SqliteStore

Query = Callable[..., list[tuple[Any, ...]]]

BACKENDS = ["sqlite"]


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


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh database of each backend."""
    if request.param == "sqlite":
        return sqlite_backend(tmp_path / "store.db")
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
