"""Consent on SQLite: accepted statement versions and the /animate requests waiting for an answer."""

from __future__ import annotations

import json
from dataclasses import replace

from core.models import ConsentRequest, ConsentState
from storage.sqlite.connection import SqliteConnection
from storage.sqlite.rows import CONSENT_REQUEST_COLUMNS, consent_request_from_row
from storage.sqlite.statements import audit


class SqliteConsent(SqliteConnection):
    """ConsentStore on SQLite."""

    async def consent_version(self, guild_id: int, user_id: int) -> int | None:
        """The latest statement version the member accepted in this guild, or None."""
        rows = await self._fetchall(
            "SELECT version FROM consents WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return int(rows[0][0]) if rows else None

    async def create_consent_request(self, request: ConsentRequest) -> ConsentRequest:
        """Store an /animate waiting for consent (its id is assigned here)."""
        sub = request.submission
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "INSERT INTO consent_requests (guild_id, channel_id, user_id, role_ids, output_format, "
                "output_quality, upload_limit_bytes, channel_nsfw, version, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    sub.guild_id,
                    sub.channel_id,
                    sub.user_id,
                    json.dumps(list(sub.role_ids)),
                    sub.output_format,
                    sub.output_quality,
                    sub.upload_limit_bytes,
                    int(sub.channel_nsfw),
                    request.version,
                    request.created_at,
                    request.expires_at,
                ),
            )
            return replace(request, id=int(next(iter(rows))[0]))

    async def get_consent_request(self, request_id: int) -> ConsentRequest | None:
        """One consent request by id."""
        rows = await self._fetchall(
            f"SELECT {CONSENT_REQUEST_COLUMNS} FROM consent_requests WHERE id = ?", (request_id,)
        )
        return consent_request_from_row(rows[0]) if rows else None

    async def decide_consent_request(
        self, request_id: int, state: ConsentState, now: float
    ) -> ConsentRequest | ConsentState:
        """Close an open, unexpired request as accepted, declined or expired, in one transaction; on
        accept, record the member's consent to its version. Returns the request, or the state it already
        had (EXPIRED if it just ran out)."""
        async with self._write() as db:
            rows = list(
                await db.execute_fetchall(
                    f"SELECT {CONSENT_REQUEST_COLUMNS} FROM consent_requests WHERE id = ?", (request_id,)
                )
            )
            if not rows:
                raise KeyError(f"no consent request {request_id}")
            request = consent_request_from_row(rows[0])
            sub = request.submission
            if request.state is not ConsentState.OPEN:
                return request.state
            if now > request.expires_at and state is not ConsentState.EXPIRED:
                state = ConsentState.EXPIRED
            await db.execute(
                "UPDATE consent_requests SET state = ?, decided_at = ? WHERE id = ?",
                (state.value, now, request_id),
            )
            if state is ConsentState.EXPIRED:
                return ConsentState.EXPIRED
            if state is ConsentState.ACCEPTED:
                await db.execute(
                    "INSERT INTO consents (guild_id, user_id, version, accepted_at) VALUES (?, ?, ?, ?) "
                    # An older statement accepted late never lowers what the member agreed to.
                    "ON CONFLICT (guild_id, user_id) DO UPDATE SET version = excluded.version, "
                    "accepted_at = excluded.accepted_at WHERE excluded.version >= consents.version",
                    (sub.guild_id, sub.user_id, request.version, now),
                )
                detail = {"version": request.version}
                await audit(db, sub.guild_id, sub.user_id, "consent.accept", detail, now)
            return request
