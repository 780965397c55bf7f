"""Copy a SQLite installation into an empty PostgreSQL database (`python bot.py migrate-db --to URL`).

Both databases are first migrated to the schema version of this code. Then every table of the SQLite file
is copied generically, in one PostgreSQL transaction: its columns are read from both sides (a column the
target lacks refuses the copy), ids are copied as they are and the identity sequences set past them, and
tables go in foreign-key order. The running totals (spend_totals, operator_totals) are not copied: the
ledger's own insert triggers on PostgreSQL rebuild them from the copied ledger, and the verification checks
that they equal the SQLite file's totals and what the ledger implies. Any difference in row counts, ledger
sums or totals rolls the whole copy back, so the target is left as empty as it was found.
"""

from __future__ import annotations

import graphlib
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from core.ports import NewerDatabaseError
from storage import POSTGRES_SCHEMES, sqlite_path_from_url
from storage.postgres.connection import PostgresConnection
from storage.sqlite.connection import SqliteConnection

# Tables kept by the ledger's insert triggers on both backends: rebuilt on the target, then compared.
DERIVED_TABLES = ("spend_totals", "operator_totals")
# Not copied: credentials that live minutes (the members' interaction tokens, cogs/acks.py).
SECRET_TABLES = ("acknowledgements",)
# Not copied: both sides are at the same version before the copy starts.
SCHEMA_TABLE = "schema_version"
# Rows sent per COPY command (the whole copy is still one transaction).
BATCH_ROWS = 5000

TotalsKey = tuple[Any, ...]


class MigrationError(Exception):
    """The copy did not happen; the message says why. The target holds no copied rows."""


class MigrationRefused(MigrationError):
    """A source or target the copy will not work with (nothing was copied)."""


class MigrationMismatch(MigrationError):
    """The copy differed from the source in a count or a sum; it was rolled back."""


def redact(url: str) -> str:
    """A database URL without its password, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def count_rows(count: int) -> str:
    """'1 row', '3 rows'."""
    return f"{count} row" if count == 1 else f"{count} rows"


def dollars(micros: int) -> str:
    """Micro-dollars as dollars, to the micro-dollar when it is not whole cents: $1,234.56, $0.123456."""
    sign = "-" if micros < 0 else ""
    whole, rest = divmod(abs(micros), 1_000_000)
    fraction = f"{rest:06d}"
    if fraction.endswith("0000"):
        fraction = fraction[:2]
    return f"{sign}${whole:,}.{fraction}"


@dataclass(frozen=True)
class MigrationSummary:
    """What was copied and checked."""

    source: str
    target: str
    schema_version: int
    rows: dict[str, int]
    ledger_by_kind: dict[str, int]
    totals_rows: dict[str, int] = field(default_factory=dict)

    @property
    def ledger_net_micros(self) -> int:
        return sum(self.ledger_by_kind.values())

    def lines(self) -> list[str]:
        """A short report: tables and rows, then the money."""
        out = [f"copied {self.source} to {self.target} (schema version {self.schema_version})"]
        width = max((len(t) for t in [*self.rows, *self.totals_rows]), default=0)
        out += [f"  {table:<{width}}  {count_rows(count):>12}" for table, count in self.rows.items()]
        out += [
            f"  {table:<{width}}  {count_rows(count):>12} (rebuilt from the ledger, equal to the source's)"
            for table, count in self.totals_rows.items()
        ]
        kinds = ", ".join(f"{kind} {dollars(amount)}" for kind, amount in sorted(self.ledger_by_kind.items()))
        out.append(
            f"OK: {len(self.rows) + len(self.totals_rows)} tables, "
            f"{sum(self.rows.values()) + sum(self.totals_rows.values())} rows; "
            f"ledger net {dollars(self.ledger_net_micros)}" + (f" ({kinds})" if kinds else "")
        )
        return out


async def migrate_sqlite_to_postgres(source_url: str, target_url: str) -> MigrationSummary:
    """Copy the SQLite database `source_url` names into the empty PostgreSQL database of `target_url`.

    Raises MigrationRefused (nothing copied) or MigrationMismatch (copy rolled back)."""
    if not source_url.startswith("sqlite:///"):
        raise MigrationRefused(
            f"the source (DATABASE_URL) must be a SQLite database, sqlite:///…; it is {redact(source_url)}"
        )
    if not target_url.startswith(POSTGRES_SCHEMES):
        raise MigrationRefused(
            f"the target (--to) must be a PostgreSQL database, postgresql://…; it is {redact(target_url)}"
        )
    path = _existing_sqlite_file(source_url)
    try:
        sqlite_db = await SqliteConnection.open(path)
        version = await sqlite_db.schema_version()
        await sqlite_db.close()
    except NewerDatabaseError as error:
        raise MigrationRefused(f"the source {source_url}: {error}") from error

    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        source.execute("BEGIN")  # one snapshot of the file for the copy and the checks
        tables = _sqlite_tables(source)
        target = await _connect(target_url)
        try:
            await _refuse_unless_empty(target, tables, target_url)
        finally:
            await target.close()
        try:
            target_db = await PostgresConnection.open(target_url, min_size=1, max_size=1)
            await target_db.close()
        except NewerDatabaseError as error:
            raise MigrationRefused(f"the target {redact(target_url)}: {error}") from error
        target = await _connect(target_url)
        try:
            async with target.transaction():
                summary = await _copy(source, target, tables, version, source_url, target_url)
        except (asyncpg.PostgresError, sqlite3.Error) as error:
            raise MigrationError(
                f"the copy failed and was rolled back: {type(error).__name__}: {error}"
            ) from error
        finally:
            await target.close()
        source.execute("COMMIT")
    finally:
        source.close()
    return summary


def _existing_sqlite_file(url: str) -> str:
    """The path of the SQLite file `url` names; refused when there is no such file (opening it would
    create an empty one)."""
    path = sqlite_path_from_url(url)
    if not Path(path).is_file():
        raise MigrationRefused(f"there is no SQLite database at {path} (DATABASE_URL={url})")
    return path


async def _connect(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as error:
        raise MigrationRefused(
            f"could not connect to {redact(url)}: {type(error).__name__}: {error}"
        ) from error


def _sqlite_tables(source: sqlite3.Connection) -> list[str]:
    """The source's tables of ours (SQLite's own, the version table and the secrets' aside)."""
    rows = source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    return [name for (name,) in rows if name != SCHEMA_TABLE and name not in SECRET_TABLES]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _target_tables(target: asyncpg.Connection) -> set[str]:
    rows = await target.fetch(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    )
    return {row["table_name"] for row in rows}


async def _occupied(target: asyncpg.Connection, tables: Iterable[str]) -> list[str]:
    """Those of `tables` (present on the target) that hold rows, as 'name (N rows)'."""
    present = await _target_tables(target)
    found = []
    for table in sorted(set(tables) & present):
        count = await target.fetchval(f"SELECT COUNT(*) FROM {_quote(table)}")
        if count:
            found.append(f"{table} ({count_rows(count)})")
    return found


async def _refuse_unless_empty(target: asyncpg.Connection, tables: list[str], url: str) -> None:
    """The target must hold none of our rows: no tables of ours at all, or only empty ones (a database
    that `bot.py check` has migrated, say)."""
    if await target.fetchval("SELECT current_schema()") is None:
        raise MigrationRefused(
            f"no schema of the search_path of {redact(url)} exists in that database; create it first"
        )
    occupied = await _occupied(target, [*tables, *DERIVED_TABLES])
    if occupied:
        raise MigrationRefused(
            f"the target {redact(url)} is not empty: {', '.join(occupied)}; "
            "migrate-db only copies into an empty database"
        )


async def _column_types(target: asyncpg.Connection, table: str) -> dict[str, str]:
    rows = await target.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return {row["column_name"]: row["data_type"] for row in rows}


async def _foreign_key_order(target: asyncpg.Connection, tables: list[str]) -> list[str]:
    """`tables` with every table after the tables its foreign keys point at."""
    rows = await target.fetch(
        "SELECT child.relname AS child, parent.relname AS parent FROM pg_constraint c "
        "JOIN pg_class child ON child.oid = c.conrelid JOIN pg_class parent ON parent.oid = c.confrelid "
        "WHERE c.contype = 'f' AND child.relnamespace = current_schema()::regnamespace"
    )
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for table in tables:
        sorter.add(table)
    for row in rows:
        if row["child"] in tables and row["parent"] in tables and row["child"] != row["parent"]:
            sorter.add(row["child"], row["parent"])
    return list(sorter.static_order())


def _converter(table: str, column: str, pg_type: str) -> Callable[[Any], Any]:
    """How a SQLite value goes into a PostgreSQL column of `pg_type` (strictly: no silent rounding)."""

    def bad(value: Any) -> MigrationError:
        return MigrationError(
            f"{table}.{column}: the value {value!r} ({type(value).__name__}) does not fit a {pg_type} column"
        )

    def to_bool(value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad(value)

    def to_int(value: Any) -> Any:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad(value)

    def to_float(value: Any) -> Any:
        if value is None or isinstance(value, float):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        raise bad(value)

    def to_text(value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        raise bad(value)

    if pg_type == "boolean":
        return to_bool
    if pg_type in ("bigint", "integer", "smallint"):
        return to_int
    if pg_type in ("double precision", "real"):
        return to_float
    if pg_type == "text":
        return to_text
    return lambda value: value


async def _copy(
    source: sqlite3.Connection,
    target: asyncpg.Connection,
    tables: list[str],
    version: int,
    source_url: str,
    target_url: str,
) -> MigrationSummary:
    """Copy and verify inside the caller's transaction on `target` (raising rolls it all back)."""
    present = await _target_tables(target)
    missing = [t for t in tables if t not in present]
    if missing:
        raise MigrationRefused(f"the target has no table {', '.join(missing)} (is it at schema {version}?)")
    ours = sorted({*tables, *(t for t in DERIVED_TABLES if t in present)})
    # Nobody writes to these tables until the copy is committed (a bot started too early waits).
    await target.execute(f"LOCK TABLE {', '.join(_quote(t) for t in ours)} IN EXCLUSIVE MODE")
    occupied = await _occupied(target, ours)
    if occupied:
        raise MigrationRefused(f"the target is not empty: {', '.join(occupied)}")

    copied = [t for t in tables if t not in DERIVED_TABLES]
    rows: dict[str, int] = {}
    for table in await _foreign_key_order(target, copied):
        rows[table] = await _copy_table(source, target, table)
    await _move_sequences_past_ids(source, target, copied)

    for table in copied:
        on_target = await target.fetchval(f"SELECT COUNT(*) FROM {_quote(table)}")
        if on_target != rows[table] or on_target != _count(source, table):
            raise MigrationMismatch(
                f"table {table}: {_count(source, table)} rows in the source, {on_target} on the target"
            )
    ledger_by_kind = await _check_ledger_sums(source, target)
    totals_rows = await _check_totals(source, target)
    return MigrationSummary(
        source=source_url,
        target=redact(target_url),
        schema_version=version,
        rows=rows,
        ledger_by_kind=ledger_by_kind,
        totals_rows=totals_rows,
    )


def _count(source: sqlite3.Connection, table: str) -> int:
    return int(source.execute(f"SELECT COUNT(*) FROM {_quote(table)}").fetchone()[0])


async def _copy_table(source: sqlite3.Connection, target: asyncpg.Connection, table: str) -> int:
    """COPY every row of `table`, the columns both sides have; returns the number of rows sent."""
    source_columns = [row[1] for row in source.execute(f"PRAGMA table_info({_quote(table)})")]
    target_types = await _column_types(target, table)
    lacking = [c for c in source_columns if c not in target_types]
    if lacking:
        raise MigrationRefused(f"the target's table {table} has no column {', '.join(lacking)}")
    converters = [_converter(table, c, target_types[c]) for c in source_columns]
    cursor = source.execute(f"SELECT {', '.join(_quote(c) for c in source_columns)} FROM {_quote(table)}")
    sent = 0
    while batch := cursor.fetchmany(BATCH_ROWS):
        records = [tuple(convert(v) for convert, v in zip(converters, row, strict=True)) for row in batch]
        await target.copy_records_to_table(table, records=records, columns=source_columns)
        sent += len(records)
    return sent


async def _move_sequences_past_ids(
    source: sqlite3.Connection, target: asyncpg.Connection, tables: list[str]
) -> None:
    """Set each identity (or serial) column's sequence past the largest id copied, and past SQLite's
    AUTOINCREMENT high-water mark, so no id is ever handed out twice (pruned audit rows included)."""
    columns = await target.fetch(
        "SELECT table_name, column_name, pg_get_serial_sequence(quote_ident(table_name), column_name) AS seq "
        "FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')"
    )
    high_water: dict[str, int] = {}
    if source.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        high_water = {name: int(seq) for name, seq in source.execute("SELECT name, seq FROM sqlite_sequence")}
    for row in columns:
        table, column, sequence = row["table_name"], row["column_name"], row["seq"]
        if table not in tables or sequence is None:
            continue
        largest = await target.fetchval(f"SELECT MAX({_quote(column)}) FROM {_quote(table)}")
        past = max(int(largest or 0), high_water.get(table, 0))
        if past > 0:
            await target.execute("SELECT setval($1::regclass, $2, true)", sequence, past)


async def _check_ledger_sums(source: sqlite3.Connection, target: asyncpg.Connection) -> dict[str, int]:
    """SUM(amount_micros) of the ledger per kind and per guild, equal on both sides; returns per kind."""
    checks = {
        "kind": "SELECT kind, SUM(amount_micros), COUNT(*) FROM ledger GROUP BY kind",
        "guild": "SELECT guild_id, SUM(amount_micros), COUNT(*) FROM ledger GROUP BY guild_id",
    }
    by_kind: dict[str, int] = {}
    for what, sql in checks.items():
        before = {key: (int(total), count) for key, total, count in source.execute(sql)}
        after = {row[0]: (int(row[1]), row[2]) for row in await target.fetch(sql)}
        if before != after:
            differ = sorted(str(k) for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            raise MigrationMismatch(
                f"ledger: SUM(amount_micros) per {what} differs for {what} {', '.join(differ)}: "
                + "; ".join(
                    f"{k}: source {_money(before.get(k))}, target {_money(after.get(k))}"
                    for k in before.keys() | after.keys()
                    if str(k) in differ
                )
            )
        if what == "kind":
            by_kind = {str(kind): total for kind, (total, _) in before.items()}
    return by_kind


def _money(entry: tuple[int, int] | None) -> str:
    return "none" if entry is None else f"{dollars(entry[0])} in {entry[1]} rows"


# The running totals as the ledger implies them, computed on the target with its own day and month
# functions (the same ones its triggers use): a member's rows include grants, the guild's (user 0) and the
# operator's do not.
_SPEND_FROM_LEDGER = (
    "SELECT guild_id, user_id, 'day', utc_day_start(counts_at), SUM(amount_micros) "
    "FROM ledger GROUP BY 1, 2, 4 "
    "UNION ALL SELECT guild_id, user_id, 'month', utc_month_start(counts_at), SUM(amount_micros) "
    "FROM ledger GROUP BY 1, 2, 4 "
    "UNION ALL SELECT guild_id, 0, 'day', utc_day_start(counts_at), SUM(amount_micros) "
    "FROM ledger WHERE kind <> 'grant' GROUP BY 1, 4 "
    "UNION ALL SELECT guild_id, 0, 'month', utc_month_start(counts_at), SUM(amount_micros) "
    "FROM ledger WHERE kind <> 'grant' GROUP BY 1, 4"
)
_OPERATOR_FROM_LEDGER = (
    "SELECT utc_day_start(counts_at), SUM(amount_micros) FROM ledger WHERE kind <> 'grant' GROUP BY 1"
)
_TOTALS = {
    "spend_totals": (
        "SELECT guild_id, user_id, period, period_start, amount_micros FROM spend_totals",
        _SPEND_FROM_LEDGER,
    ),
    "operator_totals": ("SELECT day_start, amount_micros FROM operator_totals", _OPERATOR_FROM_LEDGER),
}


def _keyed(rows: Iterable[Iterable[Any]]) -> dict[TotalsKey, int]:
    """Totals rows as {key: amount}, adding up rows that share a key."""
    totals: dict[TotalsKey, int] = defaultdict(int)
    for row in rows:
        *key, amount = tuple(row)
        totals[tuple(key)] += int(amount)
    return dict(totals)


async def _check_totals(source: sqlite3.Connection, target: asyncpg.Connection) -> dict[str, int]:
    """The totals the target's triggers built equal the source's, and what the ledger implies."""
    counts = {}
    for table, (stored_sql, implied_sql) in _TOTALS.items():
        before = _keyed(source.execute(stored_sql))
        after = _keyed(await target.fetch(stored_sql))
        implied = _keyed(await target.fetch(implied_sql))
        for name, other in (("the source's", before), ("what the ledger implies", implied)):
            if after != other:
                differ = [k for k in after.keys() | other.keys() if after.get(k) != other.get(k)]
                shown = "; ".join(
                    f"{k}: target {after.get(k)}, expected {other.get(k)}"
                    for k in sorted(differ, key=str)[:5]
                )
                raise MigrationMismatch(
                    f"{table}: the target's totals differ from {name} in {len(differ)} rows ({shown})"
                )
        counts[table] = len(after)
    return counts
