"""A fresh database of each backend for one test: its URL (for the settings and for `python bot.py`),
stores opened on it, and reads of its tables as another process would make them.

The `database` fixture (tests/conftest.py) is parametrized over BACKENDS, so every test that takes it, or
`store`, or the e2e `app`, runs once on SQLite and once on PostgreSQL. A test that is truly about one
backend narrows it with `@pytest.mark.parametrize("database", ["sqlite"], indirect=True)`.

`query` takes SQLite's `?` placeholders on both backends and gives plain Python values back (a BOOLEAN as
0/1, an integral NUMERIC such as PostgreSQL's SUM of a BIGINT as an int), so each test asserts the same
facts on both.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncpg

from core.ports import Store
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from tests.postgres import TEST_POSTGRES_URL, fresh_schema, numbered

T = TypeVar("T")
Row = tuple[Any, ...]
BackendName = Literal["sqlite", "postgres"]

BACKENDS: tuple[BackendName, ...] = ("sqlite", "postgres")


def plain(value: Any) -> Any:
    """One column's value as both backends agree on it: booleans as 0/1, integral decimals as ints."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def plain_rows(rows: Sequence[Sequence[Any]]) -> list[Row]:
    return [tuple(plain(value) for value in row) for row in rows]


class Database:
    """One test's database. Subclasses: SqliteDatabase (a new file) and PostgresDatabase (a new schema)."""

    backend: BackendName
    url: str  # what DATABASE_URL / settings.database_url is for this database

    async def open(self) -> Store:
        """A migrated store on this database (a second call opens a second store, as another process)."""
        raise NotImplementedError

    def query(self, sql: str, *params: Any) -> list[Row]:
        """Run one statement on a connection of the test's own (committed at once); the rows as tuples.
        `?` placeholders on both backends."""
        raise NotImplementedError

    def dump(self) -> bytes:
        """Every byte the database holds that could carry a member's file or a link: the SQLite file and
        its WAL; on PostgreSQL every text, JSON and bytea value of every table of the schema."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of the reading connection (the database itself is dropped by `fresh_database`)."""


class SqliteDatabase(Database):
    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._reader: sqlite3.Connection | None = None

    async def open(self) -> Store:
        return await SqliteStore.open(str(self.path))

    def query(self, sql: str, *params: Any) -> list[Row]:
        if self._reader is None:  # one connection for the test, in autocommit mode
            # Any thread: a test may write from a worker thread (asyncio.to_thread) so that the bot's own
            # transaction, which needs the event loop to commit, is not blocked behind it.
            self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        return plain_rows(self._reader.execute(sql, params).fetchall())

    def dump(self) -> bytes:
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None


class _Loop:
    """An event loop in a thread of its own, so synchronous helpers (called from inside a test's running
    loop, in a `wait_for` predicate say) can use asyncpg."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-db-reader", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def schema_url(schema: str) -> str:
    """TEST_POSTGRES_URL narrowed to `schema`: asyncpg passes a URL's unknown query parameters to the server
    as session settings, so `search_path` puts the bot's tables (and its migrations) in that schema."""
    separator = "&" if "?" in TEST_POSTGRES_URL else "?"
    return f"{TEST_POSTGRES_URL}{separator}search_path={schema}"


class PostgresDatabase(Database):
    backend = "postgres"

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.url = schema_url(schema)
        self._loop: _Loop | None = None
        self._conn: asyncpg.Connection | None = None

    async def open(self) -> Store:
        # Through the URL, as the bot opens it (`open_store(settings.database_url)`).
        return await PostgresStore.open(self.url)

    def _reader(self) -> tuple[_Loop, asyncpg.Connection]:
        if self._loop is None or self._conn is None:
            self._loop = _Loop()
            self._conn = self._loop.run(
                asyncpg.connect(TEST_POSTGRES_URL, server_settings={"search_path": self.schema})
            )
        return self._loop, self._conn

    def query(self, sql: str, *params: Any) -> list[Row]:
        loop, conn = self._reader()
        return plain_rows([tuple(row.values()) for row in loop.run(conn.fetch(numbered(sql), *params))])

    def dump(self) -> bytes:
        columns = self.query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND data_type IN ('text', 'character varying', 'bytea', 'json', 'jsonb') "
            "ORDER BY table_name, ordinal_position",
            self.schema,
        )
        assert columns, f"no text or bytea columns in schema {self.schema}"
        out = bytearray()
        for table, column, _ in columns:
            for (value,) in self.query(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL'):
                out += value if isinstance(value, bytes) else str(value).encode()
        return bytes(out)

    def close(self) -> None:
        if self._loop is not None:
            if self._conn is not None:
                self._loop.run(self._conn.close())
            self._loop.stop()
        self._loop = self._conn = None


@contextmanager
def fresh_database(backend: str, tmp_path: Path, name: str = "test.db") -> Iterator[Database]:
    """A new, empty database of `backend`: a SQLite file in tmp_path, or a PostgreSQL schema dropped with
    everything in it afterwards (skipped when PostgreSQL does not answer; failed instead under CI=true)."""
    database: Database
    if backend == "sqlite":
        database = SqliteDatabase(tmp_path / name)
        try:
            yield database
        finally:
            database.close()
    elif backend == "postgres":
        with fresh_schema() as schema:
            database = PostgresDatabase(schema)
            try:
                yield database
            finally:
                database.close()
    else:
        raise AssertionError(f"no such backend: {backend}")
