"""The bot's own small values on PostgreSQL (app_state), and the cheap reads of the health check and
metrics."""

from __future__ import annotations

from storage.postgres.connection import PostgresConnection


class PostgresState(PostgresConnection):
    """StateStore on PostgreSQL."""

    async def get_state(self, key: str) -> str | None:
        """A value the bot stored about itself, or None."""
        rows = await self._fetch("SELECT value FROM app_state WHERE key = $1", key)
        return str(rows[0]["value"]) if rows else None

    async def set_state(self, key: str, value: str) -> None:
        """Store a value about the bot itself (replacing the old one)."""
        async with self._write() as db:
            await db.execute(
                "INSERT INTO app_state (key, value) VALUES ($1, $2) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                key,
                value,
            )

    async def claim_duty(self, name: str, owner: str, now: float, until: float) -> bool:
        """Claim a duty when it has no claim or its claim ended (the upsert locks the row: one claimer
        wins, the other sees its claim)."""
        async with self._write() as db:
            row = await db.fetchrow(
                "INSERT INTO duties (name, owner, until) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until "
                "WHERE duties.until <= $4 RETURNING name",
                name,
                owner,
                until,
                now,
            )
            return row is not None

    async def release_duty(self, name: str, owner: str) -> None:
        """End `owner`'s claim of a duty."""
        async with self._write() as db:
            await db.execute("DELETE FROM duties WHERE name = $1 AND owner = $2", name, owner)

    async def ping(self) -> None:
        """One read of the schema version: the server answers and the bot's tables are there."""
        await self._fetch("SELECT version FROM schema_version")

    async def count_jobs_by_status(self) -> dict[str, int]:
        """Jobs per status, in one grouped COUNT."""
        rows = await self._fetch("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
        return {str(row["status"]): int(row["n"]) for row in rows}
