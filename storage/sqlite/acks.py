"""The members' private acknowledgements kept for a restart, on SQLite (table acknowledgements)."""

from __future__ import annotations

from core.models import StoredAck
from storage.sqlite.connection import SqliteConnection

COLUMNS = "job_id, guild_id, application_id, token, locale, head, shown, expires_at"


class SqliteAcks(SqliteConnection):
    """AckStore on SQLite."""

    async def save_acknowledgement(self, ack: StoredAck) -> None:
        """Keep a job's acknowledgement (replacing one kept for the job)."""
        async with self._write() as db:
            await db.execute(
                f"INSERT INTO acknowledgements ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (job_id) DO UPDATE SET guild_id = excluded.guild_id, "
                "application_id = excluded.application_id, token = excluded.token, "
                "locale = excluded.locale, head = excluded.head, shown = excluded.shown, "
                "expires_at = excluded.expires_at",
                (
                    ack.job_id,
                    ack.guild_id,
                    ack.application_id,
                    ack.token,
                    ack.locale,
                    ack.head,
                    ack.shown,
                    ack.expires_at,
                ),
            )

    async def stored_acknowledgements(self, now: float) -> list[StoredAck]:
        """The acknowledgements whose tokens are still valid at `now`, by job number."""
        rows = await self._fetchall(
            f"SELECT {COLUMNS} FROM acknowledgements WHERE expires_at > ? ORDER BY job_id", (now,)
        )
        return [
            StoredAck(
                int(r[0]), int(r[1]), int(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[6]), float(r[7])
            )
            for r in rows
        ]

    async def forget_acknowledgement(self, job_id: int) -> None:
        """Delete a job's acknowledgement."""
        async with self._write() as db:
            await db.execute("DELETE FROM acknowledgements WHERE job_id = ?", (job_id,))

    async def prune_acknowledgements(self, now: float) -> int:
        """Delete the acknowledgements whose tokens expired by `now`."""
        async with self._write() as db:
            cursor = await db.execute("DELETE FROM acknowledgements WHERE expires_at <= ?", (now,))
            return cursor.rowcount
