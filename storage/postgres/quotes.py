"""Quotes on PostgreSQL: costly jobs waiting for their member's Confirm."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from core.models import Job, Limits, NewJob, QuotaRefusal, Quote, QuoteState, Usage, Windows
from core.ports import JobEvent, JobNotice
from storage.postgres.connection import PostgresConnection, rowcount
from storage.postgres.jobs import reserve
from storage.postgres.rows import QUOTE_COLUMNS, quote_from_row


class PostgresQuotes(PostgresConnection):
    """QuoteStore on PostgreSQL."""

    async def create_quote(self, quote: Quote) -> Quote:
        """Store an open quote (its id is assigned here)."""
        async with self._write() as db:
            quote_id = await db.fetchval(
                "INSERT INTO quotes (guild_id, channel_id, user_id, role_ids, image_ref, audio_ref, "
                "audio_seconds, estimate_micros, output_format, output_quality, upload_limit_bytes, "
                "channel_nsfw, created_at, expires_at, safety_mode, image_sha256, audio_sha256) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) "
                "RETURNING id",
                quote.guild_id,
                quote.channel_id,
                quote.user_id,
                json.dumps(list(quote.role_ids)),
                quote.image_ref,
                quote.audio_ref,
                quote.audio_seconds,
                quote.estimate_micros,
                quote.output_format,
                quote.output_quality,
                quote.upload_limit_bytes,
                quote.channel_nsfw,
                quote.created_at,
                quote.expires_at,
                quote.safety_mode,
                quote.image_sha256,
                quote.audio_sha256,
            )
            return replace(quote, id=int(quote_id))

    async def get_quote(self, quote_id: int) -> Quote | None:
        """One quote by id."""
        rows = await self._fetch(f"SELECT {QUOTE_COLUMNS} FROM quotes WHERE id = $1", quote_id)
        return quote_from_row(rows[0]) if rows else None

    async def close_quote(self, quote_id: int, state: QuoteState, now: float) -> bool:
        """Cancel or expire an open quote; False if it was no longer open."""
        async with self._write() as db:
            status = await db.execute(
                "UPDATE quotes SET state = $1, decided_at = $2 WHERE id = $3 AND state = 'open'",
                state.value,
                now,
                quote_id,
            )
            return rowcount(status) == 1

    async def confirm_quote(
        self,
        quote_id: int,
        new: NewJob,
        limits: Limits,
        now: float,
        windows: Windows,
        decide: Callable[[Usage], QuotaRefusal | None],
    ) -> Job | QuotaRefusal | QuoteState:
        """In one transaction: check the quote is open and in time (its row locked, so two presses in two
        processes confirm it once), reserve under the limits, queue the job with the quote's uploaded
        inputs, and mark the quote confirmed. Returns the quote's state instead when it is no longer open
        (or has just expired)."""
        async with self._write() as db:
            row = await db.fetchrow(f"SELECT {QUOTE_COLUMNS} FROM quotes WHERE id = $1 FOR UPDATE", quote_id)
            if row is None:
                raise KeyError(f"no quote {quote_id}")
            quote = quote_from_row(row)
            if quote.state is not QuoteState.OPEN:
                return quote.state
            if now > quote.expires_at:
                await db.execute(
                    "UPDATE quotes SET state = 'expired', decided_at = $1 WHERE id = $2", now, quote_id
                )
                return QuoteState.EXPIRED
            result = await reserve(
                db, new, limits, now, windows, decide, refs=(quote.image_ref, quote.audio_ref)
            )
            if isinstance(result, Job):
                await db.execute(
                    "UPDATE quotes SET state = 'confirmed', job_id = $1, decided_at = $2 WHERE id = $3",
                    result.id,
                    now,
                    quote_id,
                )
                # Delivered at the COMMIT: nobody holds the job, any process's runner may submit it.
                await self._notify(db, JobNotice(JobEvent.QUEUED, result.id))
            return result
