"""The SQLite connection every part shares: open with its pragmas, migrate, and serialise transactions.

aiosqlite runs one thread per connection and coroutines sharing it would interleave their statements, so
every transaction holds `self._lock` from BEGIN to COMMIT. One connection is enough: SQLite has one writer.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Self

import aiosqlite

from core.ports import NewerDatabaseError
from storage.events import Fanout

log = logging.getLogger(__name__)


def load_migrations() -> list[tuple[int, str, str]]:
    """The numbered migration scripts shipped with the code: (version, name, sql), in order."""
    folder = resources.files("storage") / "migrations" / "sqlite"
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


class SqliteConnection:
    """One SQLite file: the connection, its lock, write transactions and the schema. Each part of the
    store (jobs.py, quotes.py, …) builds on it; SqliteStore combines them on one connection."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        # The subscribers to notifications: on SQLite they never leave the process (events.py).
        self._fanout = Fanout()
        # Every part reads its rows by column name (rows.py).
        conn.row_factory = aiosqlite.Row

    @classmethod
    async def open(cls, path: str) -> Self:
        """Open (creating folders as needed), configure and migrate the database at `path`."""
        parent = Path(path).parent
        if str(parent) not in ("", "."):
            os.makedirs(parent, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed reservation survives a power cut, not only a process crash.
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            # 64 MiB of page cache (the default is 2 MiB): the hot index pages of a large ledger stay in
            # memory, so reservations keep their speed as the history grows (bench/ledger_scale.py).
            await conn.execute("PRAGMA cache_size=-65536")
            store = cls(conn)
            await store.migrate()
        except BaseException:
            await conn.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connection (waits for a running transaction)."""
        async with self._lock:
            await self._conn.close()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction: BEGIN IMMEDIATE takes the write lock up front, so the reads inside it
        see exactly what the writes will be checked against (no 'database is locked' on upgrade)."""
        async with self._lock:
            try:
                await self._settled("BEGIN IMMEDIATE")
                yield self._conn
                await self._settled("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    await self._settled("ROLLBACK")
                raise

    async def _settled(self, sql: str) -> None:
        """Run BEGIN, COMMIT or ROLLBACK to its end even if the caller is cancelled meanwhile.

        The statement runs on the connection's thread whatever happens to the awaiting task: a BEGIN left
        behind by a cancelled caller would make every later BEGIN fail. So the cancellation waits until the
        statement is done (and the transaction state is known), then goes on."""
        statement = asyncio.ensure_future(self._conn.execute(sql))
        cancelled = False
        while True:
            try:
                await asyncio.shield(statement)
                break
            except asyncio.CancelledError:
                if statement.done():
                    raise
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError

    async def _fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """Run one read on its own (no transaction): the lock keeps it from interleaving with a write."""
        async with self._lock:
            return list(await self._conn.execute_fetchall(sql, tuple(params)))

    async def schema_version(self) -> int:
        """The version the database is at (0 for a new file)."""
        rows = await self._fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        )
        if not rows:
            return 0
        rows = await self._fetchall("SELECT version FROM schema_version")
        return int(rows[0][0]) if rows else 0

    async def migrate(self) -> None:
        """Apply pending migrations in one transaction; refuse a database newer than this code."""
        migrations = load_migrations()
        latest = migrations[-1][0] if migrations else 0
        current = await self.schema_version()
        if current > latest:
            raise NewerDatabaseError(
                f"the database is at schema version {current}, but this version of the bot only knows "
                f"up to {latest}; run a newer version of the bot"
            )
        pending = [m for m in migrations if m[0] > current]
        if not pending:
            return
        script = ["BEGIN IMMEDIATE;", "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"]
        for _, _, sql in pending:
            script.append(sql)
        script.append("DELETE FROM schema_version;")
        script.append(f"INSERT INTO schema_version (version) VALUES ({latest});")
        script.append("COMMIT;")
        async with self._lock:
            try:
                await self._conn.executescript("\n".join(script))
            except BaseException:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise
        log.info("database migrated from version %s to %s (%s)", current, latest, [m[1] for m in pending])
