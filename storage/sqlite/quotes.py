"""Quotes on SQLite: costly jobs waiting for their member's Confirm."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from core.models import Job, Limits, NewJob, QuotaRefusal, Quote, QuoteState, Usage, Windows
from core.ports import JobEvent, JobNotice
from storage.sqlite.connection import SqliteConnection
from storage.sqlite.jobs import reserve
from storage.sqlite.rows import QUOTE_COLUMNS, quote_from_row


class SqliteQuotes(SqliteConnection):
    """QuoteStore on SQLite."""

    async def create_quote(self, quote: Quote) -> Quote:
        """Store an open quote (its id is assigned here)."""
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "INSERT INTO quotes (guild_id, channel_id, user_id, role_ids, image_ref, audio_ref, "
                "audio_seconds, estimate_micros, output_format, output_quality, upload_limit_bytes, "
                "channel_nsfw, created_at, expires_at, safety_mode, image_sha256, audio_sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (
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
                    int(quote.channel_nsfw),
                    quote.created_at,
                    quote.expires_at,
                    quote.safety_mode,
                    quote.image_sha256,
                    quote.audio_sha256,
                ),
            )
            return replace(quote, id=int(next(iter(rows))[0]))

    async def get_quote(self, quote_id: int) -> Quote | None:
        """One quote by id."""
        rows = await self._fetchall(f"SELECT {QUOTE_COLUMNS} FROM quotes WHERE id = ?", (quote_id,))
        return quote_from_row(rows[0]) if rows else None

    async def close_quote(self, quote_id: int, state: QuoteState, now: float) -> bool:
        """Cancel or expire an open quote; False if it was no longer open."""
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE quotes SET state = ?, decided_at = ? WHERE id = ? AND state = 'open'",
                (state.value, now, quote_id),
            )
            return cursor.rowcount == 1

    async def confirm_quote(
        self,
        quote_id: int,
        new: NewJob,
        limits: Limits,
        now: float,
        windows: Windows,
        decide: Callable[[Usage], QuotaRefusal | None],
    ) -> Job | QuotaRefusal | QuoteState:
        """In one transaction: check the quote is open and in time, reserve under the limits, queue the
        job with the quote's uploaded inputs, and mark the quote confirmed. Returns the quote's state
        instead when it is no longer open (or has just expired)."""
        async with self._write() as db:
            rows = await db.execute_fetchall(f"SELECT {QUOTE_COLUMNS} FROM quotes WHERE id = ?", (quote_id,))
            quote = quote_from_row(next(iter(rows)))
            if quote.state is not QuoteState.OPEN:
                return quote.state
            if now > quote.expires_at:
                await db.execute(
                    "UPDATE quotes SET state = 'expired', decided_at = ? WHERE id = ?", (now, quote_id)
                )
                return QuoteState.EXPIRED
            result = await reserve(
                db, new, limits, now, windows, decide, refs=(quote.image_ref, quote.audio_ref)
            )
            if isinstance(result, Job):
                await db.execute(
                    "UPDATE quotes SET state = 'confirmed', job_id = ?, decided_at = ? WHERE id = ?",
                    (result.id, now, quote_id),
                )
        if isinstance(result, Job):  # after the COMMIT: nobody holds the job, any runner may submit it
            self._fanout.deliver(JobNotice(JobEvent.QUEUED, result.id))
        return result
