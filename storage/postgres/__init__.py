"""The PostgreSQL backend (asyncpg, a connection pool), one module per port; `PostgresStore` combines them."""

from __future__ import annotations

from storage.postgres.connection import PostgresConnection, load_migrations
from storage.postgres.store import PostgresStore

__all__ = ["PostgresConnection", "PostgresStore", "load_migrations"]
