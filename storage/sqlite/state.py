"""The bot's own small values on SQLite (app_state), and the health check's and metrics' cheap reads."""

from __future__ import annotations

from storage.sqlite.connection import SqliteConnection


class SqliteState(SqliteConnection):
    """StateStore on SQLite."""

    async def get_state(self, key: str) -> str | None:
        """A value the bot stored about itself, or None."""
        rows = await self._fetchall("SELECT value FROM app_state WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def set_state(self, key: str, value: str) -> None:
        """Store a value about the bot itself (replacing the old one)."""
        async with self._write() as db:
            await db.execute(
                "INSERT INTO app_state (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    async def claim_duty(self, name: str, owner: str, now: float, until: float) -> bool:
        """Claim a duty when it has no claim or its claim ended (BEGIN IMMEDIATE: one claimer at a time)."""
        async with self._write() as db:
            cursor = await db.execute(
                "INSERT INTO duties (name, owner, until) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until "
                "WHERE duties.until <= ?",
                (name, owner, until, now),
            )
            return cursor.rowcount == 1

    async def release_duty(self, name: str, owner: str) -> None:
        """End `owner`'s claim of a duty."""
        async with self._write() as db:
            await db.execute("DELETE FROM duties WHERE name = ? AND owner = ?", (name, owner))

    async def ping(self) -> None:
        """One read of the schema version: the file is open and the bot's tables are there."""
        await self._fetchall("SELECT version FROM schema_version")

    async def count_jobs_by_status(self) -> dict[str, int]:
        """Jobs per status, in one grouped COUNT (it reads the jobs_member_status index, not the table)."""
        rows = await self._fetchall("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        return {str(status): int(count) for status, count in rows}
