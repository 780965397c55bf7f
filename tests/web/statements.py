"""A real store that records every statement it sends its database, through the driver's own hooks
(sqlite3's trace callback; asyncpg's query logger on the store's one pooled connection): a test can see
that a step read nothing without standing a double in for the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from core.ports import Store
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from tests.databases import Database


class Sent:
    """The statements sent so far (SQL text; on PostgreSQL the pool's reset on release is one too)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def add(self, sql: str) -> None:
        self.statements.append(sql)

    async def settled(self) -> list[str]:
        """What was sent, once the loggers scheduled by the last statements have run."""
        for _ in range(5):  # asyncpg calls its loggers soon after each statement (call_soon)
            await asyncio.sleep(0)
        return list(self.statements)

    def clear(self) -> None:
        self.statements.clear()


@asynccontextmanager
async def traced_store(database: Database) -> AsyncIterator[tuple[Store, Sent]]:
    """A migrated store on `database` whose statements are recorded from here on."""
    sent = Sent()
    if database.backend == "sqlite":
        store: Any = await database.open()
        assert isinstance(store, SqliteStore)
        await store._conn.set_trace_callback(sent.add)
    else:
        # One connection in the pool, so that the logger put on it sees every statement of the store.
        store = await PostgresStore.open(database.url, min_size=1, max_size=1)
        conn = await store._pool.acquire()
        try:
            conn.add_query_logger(lambda query: sent.add(query.query))
        finally:
            await store._pool.release(conn)
    await sent.settled()
    sent.clear()
    try:
        yield store, sent
    finally:
        await store.close()
