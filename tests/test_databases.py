"""The test database of each backend (tests/databases.py): same facts read the same way on both, a dump
that sees what the tables hold, and a PostgreSQL schema that is gone after its test."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.models import GuildSettingsPatch
from core.ports import Store
from tests.databases import Database, PostgresDatabase, fresh_database
from tests.postgres import query_schema, require_postgres


async def test_reads_give_the_same_values_on_both_backends(store: Store, database: Database) -> None:
    """A BOOLEAN reads as 1, a SUM of BIGINTs as an int, a time as a float; `?` placeholders on both."""
    await store.update_guild_settings(5, GuildSettingsPatch(dms_allowed=True), 9, 12.5)
    rows = database.query(
        "SELECT dms_allowed, updated_at, (SELECT COALESCE(SUM(amount_micros), 0) FROM ledger) "
        "FROM guild_settings WHERE guild_id = ?",
        5,
    )
    assert rows == [(1, 12.5, 0)]
    assert [type(value) for value in rows[0]] == [int, float, int]
    assert database.query("SELECT COUNT(*) FROM guild_settings WHERE guild_id = ?", 6) == [(0,)]


async def test_writes_through_query_are_seen_by_the_store(store: Store, database: Database) -> None:
    """`query` commits at once, as another process's write would (tests use it to age rows)."""
    await store.update_guild_settings(5, GuildSettingsPatch(dms_allowed=True), 9, 12.5)
    database.query("UPDATE guild_settings SET dms_allowed = ? WHERE guild_id = ?", False, 5)
    assert (await store.guild_settings(5)).dms_allowed is False


async def test_a_dump_holds_what_the_tables_hold(store: Store, database: Database) -> None:
    """A value written to any text column shows in the dump (so "not in the dump" means not stored)."""
    marker = "https://cdn.example/attachments/1/2/face.png?hm=0123"
    assert marker.encode() not in database.dump()
    database.query(
        "INSERT INTO audit_log (guild_id, actor_id, action, detail, created_at) VALUES (?, ?, ?, ?, ?)",
        1,
        2,
        "x",
        marker,
        0.0,
    )
    assert marker.encode() in database.dump()


def test_a_postgresql_schema_is_dropped_after_its_test(tmp_path: Path) -> None:
    """The schema a test ran in, with its tables, is gone once the test is over."""
    require_postgres()
    with fresh_database("postgres", tmp_path) as database:
        assert isinstance(database, PostgresDatabase)
        database.query("CREATE TABLE t (x INTEGER)")
        assert database.url.endswith(f"search_path={database.schema}")
    gone = query_schema(
        "public", "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", (database.schema,)
    )
    assert gone == [(0,)]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_test_can_narrow_itself_to_one_backend(database: Database) -> None:
    """`parametrize("database", [...], indirect=True)` keeps a test to the backends it names."""
    assert database.backend == "sqlite" and database.url.startswith("sqlite:///")
