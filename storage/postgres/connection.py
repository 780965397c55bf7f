"""The connection pool every part shares: open, migrate under an advisory lock, and run transactions.

Several bot processes may share one database, so nothing here relies on being the only client: each write
is one PostgreSQL transaction (READ COMMITTED), rows a step checks then changes are locked (`FOR UPDATE`),
and the money checks are serialised per guild with transaction-scoped advisory locks (statements.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, Self, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from core.ports import NewerDatabaseError

log = logging.getLogger(__name__)

# A connection of the pool, as the parts run their statements on it.
Db: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

# The first key of each advisory lock the bot takes says what is locked ("VQ" in ASCII, then the kind);
# the second key which one. The two-key form never meets a one-key lock of another application.
LOCK_MIGRATIONS = 0x5651_0001
LOCK_GUILD = 0x5651_0002
LOCK_OPERATOR_DAY = 0x5651_0003


def load_migrations() -> list[tuple[int, str, str]]:
    """The numbered PostgreSQL migration scripts shipped with the code: (version, name, sql), in order.
    Their numbers run in step with the SQLite ones: a schema version means the same tables on both."""
    folder = resources.files("storage") / "migrations" / "postgres"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration numbers must run 1..n without gaps, found {versions}")
    return found


def rowcount(status: str) -> int:
    """The number of rows a command touched, from its status tag ("UPDATE 3", "INSERT 0 1")."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresConnection:
    """One PostgreSQL database through an asyncpg pool: transactions, reads and the schema. Each part of
    the store (jobs.py, quotes.py, …) builds on it; PostgresStore combines them on one pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        server_settings: Mapping[str, str] | None = None,
        min_size: int = 1,
        max_size: int = 10,
    ) -> Self:
        """Connect a pool to `dsn` (postgresql://user@host:port/db) and migrate the database.

        `server_settings` are session settings for every connection (the tests give each test its own
        schema with {"search_path": name})."""
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings=dict(server_settings or {}),
            # Statements are prepared per connection and cached by asyncpg; SQL here is fixed text.
        )
        try:
            store = cls(pool)
            await store.migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        """Close the pool (waits for the connections in use to be released)."""
        await self._pool.close()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Db]:
        """One transaction on a connection of the pool: committed when the block ends, rolled back when
        it raises (or is cancelled; asyncpg then resets or drops the connection before reusing it)."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run one read on its own (its own implicit transaction)."""
        return list(await self._pool.fetch(sql, *args))

    async def schema_version(self) -> int:
        """The version the database (the first schema of the search path) is at (0 for a new one)."""
        async with self._pool.acquire() as conn:
            return await _version(conn)

    async def migrate(self) -> None:
        """Apply pending migrations in one transaction; refuse a database newer than this code.

        The transaction first takes an advisory lock (keyed on the schema): of two processes starting at
        once, one migrates while the other waits, then finds nothing left to do."""
        migrations = load_migrations()
        latest = migrations[-1][0] if migrations else 0
        async with self._write() as conn:
            schema = await conn.fetchval("SELECT current_schema()")
            if schema is None:
                raise RuntimeError(
                    "no schema of the connection's search_path exists in the database; create it first"
                )
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_MIGRATIONS, schema)
            current = await _version(conn)
            if current > latest:
                raise NewerDatabaseError(
                    f"the database is at schema version {current}, but this version of the bot only knows "
                    f"up to {latest}; run a newer version of the bot"
                )
            pending = [m for m in migrations if m[0] > current]
            if not pending:
                return
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            for _, _, sql in pending:
                await conn.execute(sql)
            await conn.execute("DELETE FROM schema_version")
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", latest)
        log.info("database migrated from version %s to %s (%s)", current, latest, [m[1] for m in pending])


async def _version(conn: Db) -> int:
    """The schema version as seen on `conn` (0 when there is no schema_version table yet)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    value = await conn.fetchval("SELECT MAX(version) FROM schema_version")
    return int(value) if value is not None else 0
