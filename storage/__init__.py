"""Durable state. `open_store(url)` picks the backend from the URL scheme and migrates it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.ports import NewerDatabaseError, Store

__all__ = ["NewerDatabaseError", "Store", "open_store", "sqlite_path_from_url"]


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

        store = await SqliteStore.open(sqlite_path_from_url(url))
    else:
        raise ValueError("only sqlite:/// URLs are supported by this version (PostgreSQL comes later)")
    try:
        yield store
    finally:
        await store.close()
