"""The SQLite backend (aiosqlite), one module per port; `SqliteStore` combines them on one connection."""

from __future__ import annotations

from storage.sqlite.connection import SqliteConnection, load_migrations
from storage.sqlite.store import SqliteStore

__all__ = ["SqliteConnection", "SqliteStore", "load_migrations"]
