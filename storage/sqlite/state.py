"""The bot's own small values on SQLite (app_state)."""

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
