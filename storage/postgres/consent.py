"""Consent on PostgreSQL: accepted statement versions and the /animate requests waiting for an answer."""

from __future__ import annotations

import json
from dataclasses import replace

from core.models import ConsentRequest, ConsentState
from storage.postgres.connection import PostgresConnection
from storage.postgres.rows import CONSENT_REQUEST_COLUMNS, consent_request_from_row
from storage.postgres.statements import audit


class PostgresConsent(PostgresConnection):
    """ConsentStore on PostgreSQL."""

    async def consent_version(self, guild_id: int, user_id: int) -> int | None:
        """The latest statement version the member accepted in this guild, or None."""
        rows = await self._fetch(
            "SELECT version FROM consents WHERE guild_id = $1 AND user_id = $2", guild_id, user_id
        )
        return int(rows[0]["version"]) if rows else None

    async def create_consent_request(self, request: ConsentRequest) -> ConsentRequest:
        """Store an /animate waiting for consent (its id is assigned here)."""
        sub = request.submission
        async with self._write() as db:
            request_id = await db.fetchval(
                "INSERT INTO consent_requests (guild_id, channel_id, user_id, role_ids, output_format, "
                "output_quality, upload_limit_bytes, channel_nsfw, version, created_at, expires_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                sub.guild_id,
                sub.channel_id,
                sub.user_id,
                json.dumps(list(sub.role_ids)),
                sub.output_format,
                sub.output_quality,
                sub.upload_limit_bytes,
                sub.channel_nsfw,
                request.version,
                request.created_at,
                request.expires_at,
            )
            return replace(request, id=int(request_id))

    async def get_consent_request(self, request_id: int) -> ConsentRequest | None:
        """One consent request by id."""
        rows = await self._fetch(
            f"SELECT {CONSENT_REQUEST_COLUMNS} FROM consent_requests WHERE id = $1", request_id
        )
        return consent_request_from_row(rows[0]) if rows else None

    async def decide_consent_request(
        self, request_id: int, state: ConsentState, now: float
    ) -> ConsentRequest | ConsentState:
        """Close an open, unexpired request as accepted, declined or expired, in one transaction (its row
        locked, so two presses in two processes decide it once); on accept, record the member's consent to
        its version. Returns the request, or the state it already had (EXPIRED if it just ran out)."""
        async with self._write() as db:
            row = await db.fetchrow(
                f"SELECT {CONSENT_REQUEST_COLUMNS} FROM consent_requests WHERE id = $1 FOR UPDATE", request_id
            )
            if row is None:
                raise KeyError(f"no consent request {request_id}")
            request = consent_request_from_row(row)
            sub = request.submission
            if request.state is not ConsentState.OPEN:
                return request.state
            if now > request.expires_at and state is not ConsentState.EXPIRED:
                state = ConsentState.EXPIRED
            await db.execute(
                "UPDATE consent_requests SET state = $1, decided_at = $2 WHERE id = $3",
                state.value,
                now,
                request_id,
            )
            if state is ConsentState.EXPIRED:
                return ConsentState.EXPIRED
            if state is ConsentState.ACCEPTED:
                await db.execute(
                    "INSERT INTO consents (guild_id, user_id, version, accepted_at) VALUES ($1, $2, $3, $4) "
                    # An older statement accepted late never lowers what the member agreed to.
                    "ON CONFLICT (guild_id, user_id) DO UPDATE SET version = excluded.version, "
                    "accepted_at = excluded.accepted_at WHERE excluded.version >= consents.version",
                    sub.guild_id,
                    sub.user_id,
                    request.version,
                    now,
                )
                detail = {"version": request.version}
                await audit(db, sub.guild_id, sub.user_id, "consent.accept", detail, now)
            return request
