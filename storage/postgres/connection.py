"""The connection pool every part shares: open, migrate under an advisory lock, and run transactions.

Several bot processes may share one database, so nothing here relies on being the only client: each write
is one PostgreSQL transaction (READ COMMITTED), rows a step checks then changes are locked (`FOR UPDATE`),
and the money checks are serialised per guild with transaction-scoped advisory locks (statements.py).

The database may drop the connections (a restart, a failover, an operator ending sessions). The pool opens
new ones by itself; a step caught by the drop raises StoreUnavailable (core/ports.py), and is retried here
only where that is certainly safe: a transaction whose BEGIN failed (nothing ran), and a plain read. A
transaction that fails after a statement ran is rolled back by the server and reported; one whose COMMIT
was sent and got no answer is reported as ambiguous and never repeated here (the caller's next pass reads
the state again). A connection that breaks only while it is handed back, after its COMMIT succeeded, does
not undo the step: the pool drops it, and the step's result stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import resources
from typing import Any, Self, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from core.ports import JobNotice, NewerDatabaseError, StoreUnavailable
from storage.events import Fanout, encode

log = logging.getLogger(__name__)

# A connection of the pool, as the parts run their statements on it.
Db: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

# The first key of each advisory lock the bot takes says what is locked ("VQ" in ASCII, then the kind);
# the second key which one. The two-key form never meets a one-key lock of another application.
LOCK_MIGRATIONS = 0x5651_0001
LOCK_GUILD = 0x5651_0002
LOCK_OPERATOR_DAY = 0x5651_0003

# A transaction whose BEGIN fails on a dropped connection is tried on another connection of the pool, up
# to this many times in all (a drop leaves every idle connection of the pool dead at once, and the pool
# notices each only when it is next used or the event loop reads its end).
BEGIN_ATTEMPTS = 3
# A read on a dropped connection is asked again this many times in all (a read changes nothing).
READ_ATTEMPTS = 2
# What asyncpg raises when the server ended the session or cannot be reached. An InterfaceError counts
# only when its connection is closed (otherwise it is a misuse, a bug to see); InternalClientError is what
# a connection whose session was ended while idle raises on its next use, before the pool notices.
SERVER_GONE = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)


def connection_lost(error: BaseException, conn: Db | None = None) -> bool:
    """True when `error` says the connection to the database is gone (not that a statement was wrong)."""
    if isinstance(error, (asyncpg.ConnectionDoesNotExistError, *SERVER_GONE)):
        return True
    return isinstance(error, asyncpg.InterfaceError) and conn is not None and is_closed(conn)


def is_closed(conn: Db) -> bool:
    """Whether a pooled connection is closed. A connection whose session the server ended inside a
    transaction is taken back by the pool as it closes, and its proxy then refuses every call (an
    InterfaceError, "released back to the pool"): closed too."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


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


def notice_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of the bot's tables in `schema`. Channels are database-wide, so two
    installations (or two tests) in schemas of one database each get their own; a channel name is an
    identifier of at most 63 bytes, so a long schema name is replaced by its hash."""
    name = f"vq_jobs:{schema}"
    if len(name.encode()) <= 63:
        return name
    return f"vq_jobs:{hashlib.sha256(schema.encode()).hexdigest()[:40]}"


def rowcount(status: str) -> int:
    """The number of rows a command touched, from its status tag ("UPDATE 3", "INSERT 0 1")."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresConnection:
    """One PostgreSQL database through an asyncpg pool: transactions, reads and the schema. Each part of
    the store (jobs.py, quotes.py, …) builds on it; PostgresStore combines them on one pool."""

    def __init__(
        self, pool: asyncpg.Pool, dsn: str = "", server_settings: Mapping[str, str] | None = None
    ) -> None:
        self._pool = pool
        # How to open a connection of its own outside the pool (the LISTEN connection: events.py).
        self._dsn = dsn
        self._server_settings = dict(server_settings or {})
        # The subscribers in this process, and the channel of this schema (set by migrate()).
        self._fanout = Fanout()
        self._channel = notice_channel("public")

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
            store = cls(pool, dsn, server_settings)
            await store.migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        """Close the pool (waits for the connections in use to be released)."""
        await self._pool.close()

    def _write(self) -> AbstractAsyncContextManager[Db]:
        """One transaction on a connection of the pool: committed when the block ends, rolled back when
        it raises (or is cancelled; asyncpg then resets or drops the connection before reusing it).

        A dropped connection raises StoreUnavailable: before any statement ran, the transaction is begun
        again on another connection (BEGIN_ATTEMPTS); during the block, nothing was committed; during the
        COMMIT, it is `ambiguous`."""
        return self._transaction(snapshot=False)

    def _snapshot(self) -> AbstractAsyncContextManager[Db]:
        """A read-only transaction on one snapshot (REPEATABLE READ), for reads that must agree with each
        other. A dropped connection is handled as in `_write`: begun again on another connection when the
        BEGIN meets it, StoreUnavailable later (a lost COMMIT too, though it changed nothing)."""
        return self._transaction(snapshot=True)

    @asynccontextmanager
    async def _transaction(self, *, snapshot: bool) -> AsyncIterator[Db]:
        """`_write`'s transaction, or `_snapshot`'s when `snapshot`."""
        conn, tx = await self._begin(snapshot=snapshot)
        try:
            try:
                yield conn
            except BaseException as error:
                # A rollback on a dropped connection fails: the server rolled back when the session ended.
                with contextlib.suppress(Exception):
                    await tx.rollback()
                if isinstance(error, Exception) and connection_lost(error, conn):
                    raise StoreUnavailable(f"the database dropped the connection: {error}") from error
                raise
            try:
                await tx.commit()
            except Exception as error:
                if connection_lost(error, conn):
                    raise StoreUnavailable(
                        f"the database dropped the connection during COMMIT: {error}", ambiguous=not snapshot
                    ) from error
                raise
        finally:
            await self._release(conn)

    async def _notify(self, db: Db, notice: JobNotice) -> None:
        """Inside the caller's transaction: send `notice` to every process listening on this schema.
        PostgreSQL delivers it at the COMMIT, and never if the transaction rolls back."""
        await db.execute("SELECT pg_notify($1, $2)", self._channel, encode(notice))

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Db]:
        """A connection of the pool for reads; a dropped connection raises StoreUnavailable."""
        conn = await self._acquire()
        try:
            yield conn
        except Exception as error:
            if connection_lost(error, conn):
                raise StoreUnavailable(f"the database dropped the connection: {error}") from error
            raise
        finally:
            await self._release(conn)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run one read on its own (its own implicit transaction); asked again once on a dropped
        connection."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            conn = await self._acquire()
            try:
                return list(await conn.fetch(sql, *args))
            except Exception as error:
                if not connection_lost(error, conn):
                    raise
                if attempt == READ_ATTEMPTS:
                    raise StoreUnavailable(f"the database dropped the connection: {error}") from error
                log.info("a database connection was gone (%s); reading again on another", error)
            finally:
                await self._release(conn)
            await asyncio.sleep(0)  # lets the pool see the other connections the drop closed
        raise AssertionError("unreachable")

    async def _begin(self, *, snapshot: bool = False) -> tuple[Db, Transaction]:
        """A connection of the pool with a transaction begun on it (read-only, REPEATABLE READ when
        `snapshot`); begun again on another connection when the server had dropped the first (no
        statement of the step has run: safe)."""
        for attempt in range(1, BEGIN_ATTEMPTS + 1):
            conn = await self._acquire()
            tx = (
                conn.transaction(isolation="repeatable_read", readonly=True)
                if snapshot
                else conn.transaction()
            )
            try:
                await tx.start()
            except BaseException as error:
                # Cancelled too: the BEGIN may have reached the server, and a connection kept out of the
                # pool in its transaction would make close() wait forever. The pool's reset rolls it back.
                await self._release(conn)
                if not isinstance(error, Exception) or not connection_lost(error, conn):
                    raise
                if attempt == BEGIN_ATTEMPTS:
                    raise StoreUnavailable(f"the database dropped the connection: {error}") from error
                log.info("a database connection was gone (%s); beginning again on another", error)
                await asyncio.sleep(0)  # lets the pool see the other connections the drop closed
                continue
            return conn, tx
        raise AssertionError("unreachable")

    async def _acquire(self) -> Db:
        """A connection of the pool (a new one when the pool's was closed); StoreUnavailable when the
        database cannot be reached."""
        try:
            return await self._pool.acquire()
        except Exception as error:
            if connection_lost(error):
                raise StoreUnavailable(f"the database cannot be reached: {error}") from error
            raise

    async def _release(self, conn: Db) -> None:
        """Hand a connection back. One the server dropped fails its reset here, after the step is over:
        the pool closes it (and opens another when needed); the step's outcome stands."""
        try:
            # Shielded: a caller cancelled meanwhile must not keep the connection out of the pool.
            await asyncio.shield(self._pool.release(conn))
        except Exception as error:
            log.info("a dropped database connection was discarded (%s)", error)

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
            self._channel = notice_channel(schema)
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
