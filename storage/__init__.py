"""Durable state. `open_store(url)` picks the backend from the URL scheme and migrates it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.ports import NewerDatabaseError, Store

__all__ = ["POSTGRES_SCHEMES", "NewerDatabaseError", "Store", "open_store", "sqlite_path_from_url"]

# The URL schemes that select the PostgreSQL store (libpq's two spellings).
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def sqlite_path_from_url(url: str) -> str:
    """`sqlite:///data/bot.db` -> `data/bot.db` (relative); `sqlite:////var/lib/bot.db` -> absolute."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError("a SQLite URL starts with sqlite:///")
    path = url[len(prefix) :]
    if not path:
        raise ValueError("the SQLite URL names no file")
    return path


@asynccontextmanager
async def open_store(url: str) -> AsyncIterator[Store]:
    """Open, migrate and yield the store that `url` names; close it on exit."""
    if url.startswith("sqlite:///"):
        from storage.sqlite import SqliteStore

        store: Store = await SqliteStore.open(sqlite_path_from_url(url))
    elif url.startswith(POSTGRES_SCHEMES):
        from storage.postgres import PostgresStore

        store = await PostgresStore.open(url)
    else:
        raise ValueError("the database URL must start with sqlite:///, postgresql:// or postgres://")
    try:
        yield store
    finally:
        await store.close()
