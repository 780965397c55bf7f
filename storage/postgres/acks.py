"""The members' private acknowledgements kept for a restart, on PostgreSQL (table acknowledgements)."""

from __future__ import annotations

from core.models import StoredAck
from storage.postgres.connection import PostgresConnection, rowcount

COLUMNS = "job_id, guild_id, application_id, token, locale, head, shown, expires_at"


class PostgresAcks(PostgresConnection):
    """AckStore on PostgreSQL."""

    async def save_acknowledgement(self, ack: StoredAck) -> None:
        """Keep a job's acknowledgement (replacing one kept for the job)."""
        async with self._write() as db:
            await db.execute(
                f"INSERT INTO acknowledgements ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (job_id) DO UPDATE SET guild_id = excluded.guild_id, "
                "application_id = excluded.application_id, token = excluded.token, "
                "locale = excluded.locale, head = excluded.head, shown = excluded.shown, "
                "expires_at = excluded.expires_at",
                ack.job_id,
                ack.guild_id,
                ack.application_id,
                ack.token,
                ack.locale,
                ack.head,
                ack.shown,
                ack.expires_at,
            )

    async def stored_acknowledgements(self, now: float) -> list[StoredAck]:
        """The acknowledgements whose tokens are still valid at `now`, by job number."""
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM acknowledgements WHERE expires_at > $1 ORDER BY job_id", now
        )
        return [
            StoredAck(
                int(r["job_id"]),
                int(r["guild_id"]),
                int(r["application_id"]),
                str(r["token"]),
                str(r["locale"]),
                str(r["head"]),
                str(r["shown"]),
                float(r["expires_at"]),
            )
            for r in rows
        ]

    async def forget_acknowledgement(self, job_id: int) -> None:
        """Delete a job's acknowledgement."""
        async with self._write() as db:
            await db.execute("DELETE FROM acknowledgements WHERE job_id = $1", job_id)

    async def prune_acknowledgements(self, now: float) -> int:
        """Delete the acknowledgements whose tokens expired by `now`."""
        async with self._write() as db:
            return rowcount(await db.execute("DELETE FROM acknowledgements WHERE expires_at <= $1", now))
