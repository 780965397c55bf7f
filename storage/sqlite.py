"""SQLite store (aiosqlite): WAL, synchronous=FULL, BEGIN IMMEDIATE for every write.

aiosqlite runs one thread per connection and coroutines sharing it would interleave their statements, so
every transaction holds `self._lock` from BEGIN to COMMIT. One connection is enough: SQLite has one writer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from core.models import (
    ACTIVE,
    EVERY_GUILD,
    Ban,
    ConsentRequest,
    ConsentState,
    GuildLimits,
    GuildLimitsPatch,
    GuildSettings,
    GuildSettingsPatch,
    Job,
    JobAction,
    JobStatus,
    LedgerKind,
    LedgerRow,
    Limits,
    NewJob,
    Pruned,
    QuotaRefusal,
    Quote,
    QuoteState,
    Report,
    ReportState,
    RoleTier,
    SpendReport,
    Submission,
    Usage,
    Windows,
)
from core.ports import NewerDatabaseError

log = logging.getLogger(__name__)

# Rows pruned per write transaction (a few milliseconds each).
PRUNE_BATCH = 5000

_ACTIVE_SQL = ", ".join(f"'{s.value}'" for s in sorted(ACTIVE))
_JOB_COLUMNS = (
    "id, task_uuid, guild_id, channel_id, user_id, status, audio_seconds, estimate_micros, cost_micros, "
    "output_format, output_quality, image_ref, audio_ref, created_at, updated_at, submitted_at, "
    "next_poll_at, poll_count, finished_at, delivered_at, result_url, nsfw, error_code, error_message, "
    "upload_limit_bytes, channel_nsfw, safety_mode, image_sha256, audio_sha256, result_channel_id, "
    "result_message_id, removed_at, late_until, late_delivered_at"
)
_GUILD_LIMIT_FIELDS = (
    "user_daily_micros",
    "user_monthly_micros",
    "max_active_jobs",
    "cooldown_s",
    "guild_monthly_micros",
    "log_channel_id",
    "confirm_above_micros",
)
_GUILD_LIMIT_COLUMNS = "guild_id, " + ", ".join(_GUILD_LIMIT_FIELDS)
_TIER_COLUMNS = "role_id, daily_micros, monthly_micros, max_active_jobs, cooldown_s"
_QUOTE_COLUMNS = (
    "id, guild_id, channel_id, user_id, role_ids, image_ref, audio_ref, audio_seconds, estimate_micros, "
    "output_format, output_quality, upload_limit_bytes, channel_nsfw, created_at, expires_at, state, job_id, "
    "safety_mode, image_sha256, audio_sha256"
)
_CONSENT_REQUEST_COLUMNS = (
    "id, guild_id, channel_id, user_id, role_ids, output_format, output_quality, upload_limit_bytes, "
    "channel_nsfw, version, created_at, expires_at, state"
)
_REPORT_COLUMNS = (
    "id, job_id, guild_id, reporter_id, created_at, state, log_channel_id, log_message_id, decided_by, "
    "decided_at"
)
# The guild_settings columns an admin may change.
_GUILD_SETTING_FIELDS = (
    "safety_mode",
    "mod_log_channel_id",
    "consent_required",
    "dms_allowed",
    "withhold_flagged",
)
# Patch field -> column: the only names an update puts into SQL.
_GUILD_LIMIT_COLUMN = {name: name for name in _GUILD_LIMIT_FIELDS}
_GUILD_SETTING_COLUMN = {name: name for name in _GUILD_SETTING_FIELDS}


def _quote_from_row(row: Iterable[Any]) -> Quote:
    values = list(row)
    values[4] = tuple(json.loads(values[4]))
    values[12] = bool(values[12])
    values[15] = QuoteState(values[15])
    return Quote(*values)


def _consent_request_from_row(row: Iterable[Any]) -> ConsentRequest:
    v = list(row)
    submission = Submission(v[1], v[2], v[3], tuple(json.loads(v[4])), v[5], v[6], v[7], bool(v[8]))
    return ConsentRequest(v[0], submission, v[9], v[10], v[11], ConsentState(v[12]))


def _report_from_row(row: Iterable[Any]) -> Report:
    values = list(row)
    values[5] = ReportState(values[5])
    return Report(*values)


def _job_from_row(row: Iterable[Any]) -> Job:
    values = list(row)
    values[5] = JobStatus(values[5])
    values[21] = bool(values[21])
    values[25] = bool(values[25])
    return Job(*values)


def load_migrations() -> list[tuple[int, str, str]]:
    """The numbered migration scripts shipped with the code: (version, name, sql), in order."""
    folder = resources.files("storage") / "migrations" / "sqlite"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration numbers must run 1..n without gaps, found {versions}")
    return found


class SqliteStore:
    """The Store protocol on one SQLite file."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        """Open (creating folders as needed), configure and migrate the database at `path`."""
        parent = Path(path).parent
        if str(parent) not in ("", "."):
            os.makedirs(parent, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed reservation survives a power cut, not only a process crash.
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            # 64 MiB of page cache (the default is 2 MiB): the hot index pages of a large ledger stay in
            # memory, so reservations keep their speed as the history grows (bench/ledger_scale.py).
            await conn.execute("PRAGMA cache_size=-65536")
            store = cls(conn)
            await store.migrate()
        except BaseException:
            await conn.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connection (waits for a running transaction)."""
        async with self._lock:
            await self._conn.close()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction: BEGIN IMMEDIATE takes the write lock up front, so the reads inside it
        see exactly what the writes will be checked against (no 'database is locked' on upgrade)."""
        async with self._lock:
            try:
                await self._settled("BEGIN IMMEDIATE")
                yield self._conn
                await self._settled("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    await self._settled("ROLLBACK")
                raise

    async def _settled(self, sql: str) -> None:
        """Run BEGIN, COMMIT or ROLLBACK to its end even if the caller is cancelled meanwhile.

        The statement runs on the connection's thread whatever happens to the awaiting task: a BEGIN left
        behind by a cancelled caller would make every later BEGIN fail. So the cancellation waits until the
        statement is done (and the transaction state is known), then goes on."""
        statement = asyncio.ensure_future(self._conn.execute(sql))
        cancelled = False
        while True:
            try:
                await asyncio.shield(statement)
                break
            except asyncio.CancelledError:
                if statement.done():
                    raise
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError

    async def _fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        async with self._lock:
            return list(await self._conn.execute_fetchall(sql, tuple(params)))

    # -- schema ---------------------------------------------------------------------------------------

    async def schema_version(self) -> int:
        """The version the database is at (0 for a new file)."""
        rows = await self._fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        )
        if not rows:
            return 0
        rows = await self._fetchall("SELECT version FROM schema_version")
        return int(rows[0][0]) if rows else 0

    async def migrate(self) -> None:
        """Apply pending migrations in one transaction; refuse a database newer than this code."""
        migrations = load_migrations()
        latest = migrations[-1][0] if migrations else 0
        current = await self.schema_version()
        if current > latest:
            raise NewerDatabaseError(
                f"the database is at schema version {current}, but this version of the bot only knows "
                f"up to {latest}; run a newer version of the bot"
            )
        pending = [m for m in migrations if m[0] > current]
        if not pending:
            return
        script = ["BEGIN IMMEDIATE;", "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"]
        for _, _, sql in pending:
            script.append(sql)
        script.append("DELETE FROM schema_version;")
        script.append(f"INSERT INTO schema_version (version) VALUES ({latest});")
        script.append("COMMIT;")
        async with self._lock:
            try:
                await self._conn.executescript("\n".join(script))
            except BaseException:
                if self._conn.in_transaction:
                    await self._conn.execute("ROLLBACK")
                raise
        log.info("database migrated from version %s to %s (%s)", current, latest, [m[1] for m in pending])

    # -- jobs and the ledger -------------------------------------------------------------------------

    async def create_job_with_reservation(
        self,
        new: NewJob,
        limits: Limits,
        now: float,
        windows: Windows,
        decide: Callable[[Usage], QuotaRefusal | None],
    ) -> Job | QuotaRefusal:
        """In one write transaction: gather the member's usage, let `decide` apply the limits, and if it
        allows, insert the job and its reservation. Concurrent calls can never overspend."""
        async with self._write() as db:
            return await self._reserve(db, new, limits, now, windows, decide)

    async def _reserve(
        self,
        db: aiosqlite.Connection,
        new: NewJob,
        limits: Limits,
        now: float,
        windows: Windows,
        decide: Callable[[Usage], QuotaRefusal | None],
        refs: tuple[str, str] | None = None,
    ) -> Job | QuotaRefusal:
        usage = await self._usage(db, new.guild_id, new.user_id, limits, windows)
        refusal = decide(usage)
        if refusal is not None:
            return refusal
        # With inputs already uploaded (a confirmed quote) the job is queued at once.
        status, image_ref, audio_ref, next_at = (
            (JobStatus.QUEUED, refs[0], refs[1], now) if refs else (JobStatus.UPLOADING, None, None, None)
        )
        rows = await db.execute_fetchall(
            "INSERT INTO jobs (task_uuid, guild_id, channel_id, user_id, status, audio_seconds, "
            "estimate_micros, output_format, output_quality, created_at, updated_at, "
            "upload_limit_bytes, channel_nsfw, image_ref, audio_ref, next_poll_at, safety_mode, "
            "image_sha256, audio_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"RETURNING {_JOB_COLUMNS}",
            (
                new.task_uuid,
                new.guild_id,
                new.channel_id,
                new.user_id,
                status.value,
                new.audio_seconds,
                new.estimate_micros,
                new.output_format,
                new.output_quality,
                now,
                now,
                new.upload_limit_bytes,
                int(new.channel_nsfw),
                image_ref,
                audio_ref,
                next_at,
                new.safety_mode,
                new.image_sha256,
                new.audio_sha256,
            ),
        )
        job = _job_from_row(next(iter(rows)))
        await self._ledger(
            db, new.guild_id, new.user_id, job.id, LedgerKind.RESERVE, new.estimate_micros, now, now
        )
        return job

    # -- quotes ----------------------------------------------------------------------------------------

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
        rows = await self._fetchall(f"SELECT {_QUOTE_COLUMNS} FROM quotes WHERE id = ?", (quote_id,))
        return _quote_from_row(rows[0]) if rows else None

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
            rows = await db.execute_fetchall(f"SELECT {_QUOTE_COLUMNS} FROM quotes WHERE id = ?", (quote_id,))
            quote = _quote_from_row(next(iter(rows)))
            if quote.state is not QuoteState.OPEN:
                return quote.state
            if now > quote.expires_at:
                await db.execute(
                    "UPDATE quotes SET state = 'expired', decided_at = ? WHERE id = ?", (now, quote_id)
                )
                return QuoteState.EXPIRED
            result = await self._reserve(
                db, new, limits, now, windows, decide, refs=(quote.image_ref, quote.audio_ref)
            )
            if isinstance(result, Job):
                await db.execute(
                    "UPDATE quotes SET state = 'confirmed', job_id = ?, decided_at = ? WHERE id = ?",
                    (result.id, now, quote_id),
                )
            return result

    async def mark_job_queued(self, job_id: int, image_ref: str, audio_ref: str, now: float) -> Job | None:
        """Record the uploaded inputs; the job is ready for the runner to submit. None if it was no longer
        uploading (failed and refunded meanwhile)."""
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = ?, image_ref = ?, audio_ref = ?, next_poll_at = ?, updated_at = ? "
                "WHERE id = ? AND status = ?",
                (JobStatus.QUEUED.value, image_ref, audio_ref, now, now, job_id, JobStatus.UPLOADING.value),
            )
            return await self._job(db, job_id) if cursor.rowcount == 1 else None

    async def mark_submitting(self, job_id: int, now: float, retry_at: float) -> bool:
        """Record that a submit is about to be sent (ambiguous until mark_submitted). False if the job is
        no longer queued or submitting: it must not be sent."""
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = ?, next_poll_at = ?, updated_at = ? "
                "WHERE id = ? AND status IN (?, ?)",
                (
                    JobStatus.SUBMITTING.value,
                    retry_at,
                    now,
                    job_id,
                    JobStatus.QUEUED.value,
                    JobStatus.SUBMITTING.value,
                ),
            )
            return cursor.rowcount == 1

    async def mark_submitted(self, job_id: int, now: float, next_poll_at: float) -> bool:
        """Record that Runware accepted the task; polling starts at next_poll_at. False if the job was no
        longer queued or submitting."""
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = ?, submitted_at = COALESCE(submitted_at, ?), next_poll_at = ?, "
                "updated_at = ? WHERE id = ? AND status IN (?, ?)",
                (
                    JobStatus.PROCESSING.value,
                    now,
                    next_poll_at,
                    now,
                    job_id,
                    JobStatus.QUEUED.value,
                    JobStatus.SUBMITTING.value,
                ),
            )
            return cursor.rowcount == 1

    async def schedule_polls(self, updates: list[tuple[int, float]], now: float) -> int:
        """Set the next poll time of several jobs, (job_id, next_poll_at) each, and count one poll each.
        Returns how many were changed (a job finished meanwhile is left alone)."""
        if not updates:
            return 0
        async with self._write() as db:
            cursor = await db.executemany(
                f"UPDATE jobs SET next_poll_at = ?, poll_count = poll_count + 1, updated_at = ? "
                f"WHERE id = ? AND (status IN ({_ACTIVE_SQL}) OR late_until IS NOT NULL)",
                [(next_poll_at, now, job_id) for job_id, next_poll_at in updates],
            )
            return cursor.rowcount

    async def complete_job(
        self, job_id: int, result_url: str, cost_micros: int, nsfw: bool, now: float
    ) -> Job | None:
        """Mark success and settle: release the estimate, charge the real cost. None if already final."""
        async with self._write() as db:
            job = await self._job(db, job_id)
            if job.status not in ACTIVE:
                return None
            await db.execute(
                "UPDATE jobs SET status = ?, result_url = ?, cost_micros = ?, nsfw = ?, finished_at = ?, "
                "next_poll_at = NULL, updated_at = ? WHERE id = ?",
                (JobStatus.SUCCEEDED.value, result_url, cost_micros, int(nsfw), now, now, job_id),
            )
            await self._ledger(
                db,
                job.guild_id,
                job.user_id,
                job_id,
                LedgerKind.RELEASE,
                -job.estimate_micros,
                job.created_at,
                now,
            )
            await self._ledger(
                db, job.guild_id, job.user_id, job_id, LedgerKind.SETTLE, cost_micros, job.created_at, now
            )
            return await self._job(db, job_id)

    async def fail_job(
        self,
        job_id: int,
        code: str,
        message: str,
        now: float,
        *,
        expired: bool = False,
        member_told: bool = False,
        watch: tuple[float, float] | None = None,
    ) -> Job | None:
        """Mark failure (or expiry) and refund the reservation. None if the job was already final.

        `member_told`: the member already read why (the command's own reply), so nothing is posted.
        `watch` (until, next poll): an expired task Runware still has is asked about until then."""
        status = JobStatus.EXPIRED if expired else JobStatus.FAILED
        late_until, next_poll_at = watch if expired and watch else (None, None)
        async with self._write() as db:
            job = await self._job(db, job_id)
            if job.status not in ACTIVE:
                return None
            await db.execute(
                "UPDATE jobs SET status = ?, error_code = ?, error_message = ?, cost_micros = 0, "
                "finished_at = ?, next_poll_at = ?, updated_at = ?, delivered_at = ?, late_until = ? "
                "WHERE id = ?",
                (
                    status.value,
                    code,
                    message,
                    now,
                    next_poll_at,
                    now,
                    now if member_told else None,
                    late_until,
                    job_id,
                ),
            )
            await self._ledger(
                db,
                job.guild_id,
                job.user_id,
                job_id,
                LedgerKind.REFUND,
                -job.estimate_micros,
                job.created_at,
                now,
            )
            return await self._job(db, job_id)

    async def credit_job_cost(self, job_id: int, reason: str, now: float) -> int:
        """Give a finished job's cost back to its member (once); returns the amount credited (0 if the
        job had no cost or was credited before)."""
        async with self._write() as db:
            job = await self._job(db, job_id)
            cost = job.cost_micros or 0
            if job.status is not JobStatus.SUCCEEDED or cost <= 0:
                return 0
            cursor = await db.execute(
                "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_micros, counts_at, created_at, "
                "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    job.guild_id,
                    job.user_id,
                    job_id,
                    LedgerKind.GRANT.value,
                    -cost,
                    job.created_at,
                    now,
                    reason,
                ),
            )
            return cost if cursor.rowcount == 1 else 0

    async def complete_late_job(
        self, job_id: int, result_url: str, cost_micros: int, nsfw: bool, now: float
    ) -> Job | None:
        """A watched expired job's video arrived: keep it, and book what Runware bills to the server only
        (a settle of the cost, which the server's total counts, and a grant of it back to the member, who
        was refunded at the deadline). None if the job was not being watched (done before)."""
        async with self._write() as db:
            job = await self._job(db, job_id)
            if job.status is not JobStatus.EXPIRED or job.late_until is None:
                return None
            await db.execute(
                "UPDATE jobs SET result_url = ?, cost_micros = ?, nsfw = ?, late_until = NULL, "
                "next_poll_at = NULL, updated_at = ? WHERE id = ?",
                (result_url, cost_micros, int(nsfw), now, job_id),
            )
            for kind, amount, reason in (
                (LedgerKind.SETTLE, cost_micros, None),
                (LedgerKind.GRANT, -cost_micros, "arrived after the deadline"),
            ):
                await self._ledger(
                    db, job.guild_id, job.user_id, job_id, kind, amount, job.created_at, now, reason
                )
            return await self._job(db, job_id)

    async def end_late_watch(self, job_id: int, now: float) -> bool:
        """Stop asking about an expired job (its task ended without a video, or its time to live ran out).
        False if it was not being watched."""
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE jobs SET late_until = NULL, next_poll_at = NULL, updated_at = ? "
                "WHERE id = ? AND late_until IS NOT NULL",
                (now, job_id),
            )
            return cursor.rowcount == 1

    async def late_jobs_due(self, now: float, limit: int) -> list[Job]:
        """Watched expired jobs due for a poll by `now`."""
        rows = await self._fetchall(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE late_until IS NOT NULL AND next_poll_at <= ? "
            "ORDER BY next_poll_at LIMIT ?",
            (now, limit),
        )
        return [_job_from_row(r) for r in rows]

    async def mark_late_delivered(
        self, job_id: int, now: float, posted_at: tuple[int, int] | None = None
    ) -> bool:
        """Record a late video as posted (and where: its message replaces the expiry notice as the job's
        result). True only for the call that recorded it."""
        async with self._write() as db:
            cursor = await db.execute(
                # A late video that came before its expiry notice was posted stands for the notice too.
                "UPDATE jobs SET late_delivered_at = ?, delivered_at = COALESCE(delivered_at, ?), "
                "updated_at = ?, result_channel_id = COALESCE(?, result_channel_id), "
                "result_message_id = COALESCE(?, result_message_id) WHERE id = ? AND status = 'expired' "
                "AND result_url IS NOT NULL AND late_delivered_at IS NULL",
                (now, now, now, *(posted_at or (None, None)), job_id),
            )
            return cursor.rowcount == 1

    async def get_job(self, job_id: int) -> Job | None:
        """One job by its number."""
        rows = await self._fetchall(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _job_from_row(rows[0]) if rows else None

    async def due_jobs(self, now: float, horizon: float, limit: int) -> list[Job]:
        """Unfinished jobs due by `now`, plus processing jobs due by `horizon` (to batch their polls)."""
        rows = await self._fetchall(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status IN ({_ACTIVE_SQL}) AND status != ? "
            "AND (next_poll_at <= ? OR (status = ? AND next_poll_at <= ?)) ORDER BY next_poll_at LIMIT ?",
            (JobStatus.UPLOADING.value, now, JobStatus.PROCESSING.value, horizon, limit),
        )
        return [_job_from_row(r) for r in rows]

    async def next_due_at(self) -> float | None:
        """When the earliest unfinished job is next due, or None if there is none."""
        rows = await self._fetchall(
            "SELECT MIN(due) FROM ("
            f"SELECT MIN(next_poll_at) AS due FROM jobs WHERE status IN ({_ACTIVE_SQL}) AND status != ? "
            "UNION ALL SELECT MIN(next_poll_at) FROM jobs WHERE late_until IS NOT NULL)",
            (JobStatus.UPLOADING.value,),
        )
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None

    async def stale_uploads(self, before: float) -> list[Job]:
        """Jobs still uploading that were created before `before` (their inputs died with a process)."""
        rows = await self._fetchall(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status = 'uploading' AND created_at < ?", (before,)
        )
        return [_job_from_row(r) for r in rows]

    async def undelivered_jobs(self) -> list[Job]:
        """Finished jobs whose result has not been posted yet, and expired jobs whose late video has not."""
        rows = await self._fetchall(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE delivered_at IS NULL "
            "AND status IN ('succeeded', 'failed', 'expired') "
            f"UNION ALL SELECT {_JOB_COLUMNS} FROM jobs WHERE status = 'expired' AND result_url IS NOT NULL "
            "AND late_delivered_at IS NULL AND delivered_at IS NOT NULL ORDER BY finished_at"
        )
        return [_job_from_row(r) for r in rows]

    async def mark_delivered(self, job_id: int, now: float, posted_at: tuple[int, int] | None = None) -> bool:
        """Record the result as posted (and where: channel id, message id). True only for the call that
        recorded it."""
        channel_id, message_id = posted_at or (None, None)
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE jobs SET delivered_at = ?, updated_at = ?, result_channel_id = ?, "
                "result_message_id = ? WHERE id = ? AND delivered_at IS NULL",
                (now, now, channel_id, message_id, job_id),
            )
            return cursor.rowcount == 1

    async def record_post_attempt(self, job_id: int, channel_id: int, now: float) -> None:
        """Record that the job's result is about to be posted in a channel (the first try's time is kept)."""
        async with self._write() as db:
            await db.execute(
                "INSERT INTO post_attempts (job_id, channel_id, started_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (job_id, channel_id, now),
            )

    async def post_attempts(self, job_id: int) -> list[tuple[int, float]]:
        """Where the job's result was about to be posted, and since when: (channel id, first try)."""
        rows = await self._fetchall(
            "SELECT channel_id, started_at FROM post_attempts WHERE job_id = ? ORDER BY started_at", (job_id,)
        )
        return [(int(channel_id), float(started_at)) for channel_id, started_at in rows]

    async def usage(self, guild_id: int, user_id: int, limits: Limits, windows: Windows) -> Usage:
        """The member's spend in the windows, the guild's month, active jobs, and the limits."""
        async with self._lock:
            return await self._usage(self._conn, guild_id, user_id, limits, windows)

    async def guild_limits(self, guild_id: int) -> GuildLimits | None:
        """A guild's own limit choices, or None if it has made none."""
        rows = await self._fetchall(
            f"SELECT {_GUILD_LIMIT_COLUMNS} FROM guild_limits WHERE guild_id = ?", (guild_id,)
        )
        return GuildLimits(*rows[0]) if rows else None

    async def update_guild_limits(
        self, guild_id: int, patch: GuildLimitsPatch, actor_id: int, now: float
    ) -> GuildLimits:
        """Apply an admin's changes to a guild's limits and record who did it, in one transaction.

        A value of None resets that field to the default."""
        changes = patch.changes()
        async with self._write() as db:
            await db.execute(
                "INSERT INTO guild_limits (guild_id, updated_at, updated_by) VALUES (?, ?, ?) "
                "ON CONFLICT (guild_id) DO NOTHING",
                (guild_id, now, actor_id),
            )
            if changes:
                # Column names come from this module's table, never from the caller.
                assignments = ", ".join(f"{_GUILD_LIMIT_COLUMN[name]} = ?" for name in changes)
                await db.execute(
                    f"UPDATE guild_limits SET {assignments}, updated_at = ?, updated_by = ? "
                    "WHERE guild_id = ?",
                    (*changes.values(), now, actor_id, guild_id),
                )
            await self._audit(db, guild_id, actor_id, "budget.set", changes, now)
            rows = await db.execute_fetchall(
                f"SELECT {_GUILD_LIMIT_COLUMNS} FROM guild_limits WHERE guild_id = ?", (guild_id,)
            )
            return GuildLimits(*next(iter(rows)))

    async def guild_month_spend(self, guild_id: int, windows: Windows) -> int:
        """What the whole guild has spent in the month of `windows`."""
        rows = await self._fetchall(
            "SELECT amount_micros FROM spend_totals WHERE guild_id = ? AND user_id = 0 AND period = 'month' "
            "AND period_start = ?",
            (guild_id, windows.month_start),
        )
        return int(rows[0][0]) if rows else 0

    async def role_tiers(self, guild_id: int, role_ids: Iterable[int] | None = None) -> list[RoleTier]:
        """The guild's role tiers (only those of `role_ids` when given), by role id."""
        rows = await self._fetchall(
            f"SELECT {_TIER_COLUMNS} FROM role_tiers WHERE guild_id = ? ORDER BY role_id", (guild_id,)
        )
        wanted = None if role_ids is None else set(role_ids)
        return [RoleTier(*row) for row in rows if wanted is None or row[0] in wanted]

    async def set_role_tier(self, guild_id: int, tier: RoleTier, actor_id: int, now: float) -> None:
        """Create or replace a role's tier, recorded with who did it."""
        async with self._write() as db:
            await db.execute(
                f"INSERT OR REPLACE INTO role_tiers (guild_id, {_TIER_COLUMNS}, updated_at, updated_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    guild_id,
                    tier.role_id,
                    tier.daily_micros,
                    tier.monthly_micros,
                    tier.max_active_jobs,
                    tier.cooldown_s,
                    now,
                    actor_id,
                ),
            )
            detail = {
                "role_id": tier.role_id,
                "daily_micros": tier.daily_micros,
                "monthly_micros": tier.monthly_micros,
                "max_active_jobs": tier.max_active_jobs,
                "cooldown_s": tier.cooldown_s,
            }
            await self._audit(db, guild_id, actor_id, "budget.tier.set", detail, now)

    async def remove_role_tier(self, guild_id: int, role_id: int, actor_id: int, now: float) -> bool:
        """Remove a role's tier; False if it had none. Recorded with who did it."""
        async with self._write() as db:
            cursor = await db.execute(
                "DELETE FROM role_tiers WHERE guild_id = ? AND role_id = ?", (guild_id, role_id)
            )
            if cursor.rowcount != 1:
                return False
            await self._audit(db, guild_id, actor_id, "budget.tier.remove", {"role_id": role_id}, now)
            return True

    async def grant(
        self, guild_id: int, user_id: int, amount_micros: int, reason: str, actor_id: int, now: float
    ) -> None:
        """Record an admin's credit (negative: room to spend) or debit for a member, on the ledger and
        in the audit log, in one transaction. It counts today."""
        async with self._write() as db:
            await self._ledger(db, guild_id, user_id, None, LedgerKind.GRANT, amount_micros, now, now, reason)
            detail = {"user_id": user_id, "amount_micros": amount_micros, "reason": reason}
            await self._audit(db, guild_id, actor_id, "budget.grant", detail, now)

    async def reset_member_window(
        self, guild_id: int, user_id: int, period: str, windows: Windows, actor_id: int, now: float
    ) -> int:
        """Give back a member's spend in the current day or month, so that window starts afresh.

        Returns the amount credited. Only settled spend is given back: a job still running keeps its
        reservation (it settles at its real cost later). The month's credit is split so that today's part
        counts today and the rest counts at the month's start: a month reset never lets today exceed the
        daily limit."""
        reason = f"{period} reset by an admin"
        async with self._write() as db:
            usage = await self._usage(db, guild_id, user_id, Limits(None, None), windows)
            # A running job's only ledger row is its reservation, counted when it was created.
            rows = list(
                await db.execute_fetchall(
                    "SELECT COALESCE(SUM(CASE WHEN created_at >= ?3 THEN estimate_micros END), 0), "
                    "COALESCE(SUM(estimate_micros), 0) FROM jobs WHERE guild_id = ?1 AND user_id = ?2 "
                    f"AND status IN ({_ACTIVE_SQL}) AND created_at >= ?4",
                    (guild_id, user_id, windows.day_start, windows.month_start),
                )
            )
            reserved_today, reserved_month = (int(v) for v in rows[0])
            today = max(0, usage.spent_today_micros - reserved_today)
            parts = [(today, now)]
            if period == "month":
                settled_month = usage.spent_month_micros - reserved_month
                parts.append((max(0, settled_month - today), windows.month_start))
            total = 0
            for amount, counts_at in parts:
                if amount > 0:
                    await self._ledger(
                        db, guild_id, user_id, None, LedgerKind.GRANT, -amount, counts_at, now, reason
                    )
                    total += amount
            detail = {"user_id": user_id, "period": period, "credited_micros": total}
            await self._audit(db, guild_id, actor_id, "budget.reset", detail, now)
            return total

    async def recent_jobs(self, guild_id: int, user_id: int, limit: int = 5) -> list[Job]:
        """A member's latest jobs in a guild, newest first."""
        rows = await self._fetchall(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE guild_id = ? AND user_id = ? "
            "ORDER BY created_at DESC LIMIT ?",
            (guild_id, user_id, limit),
        )
        return [_job_from_row(r) for r in rows]

    async def spend_report(self, guild_id: int, start: float, end: float, top: int = 5) -> SpendReport:
        """A guild's spend in [start, end): the total, the top spenders, and its jobs by outcome."""
        # Spend is what the jobs cost (grants are credits to members, not money spent); grants on their own.
        rows = await self._fetchall(
            "SELECT COALESCE(SUM(CASE WHEN kind != 'grant' THEN amount_micros END), 0), "
            "COALESCE(SUM(CASE WHEN kind = 'grant' THEN amount_micros END), 0) "
            "FROM ledger WHERE guild_id = ? AND counts_at >= ? AND counts_at < ?",
            (guild_id, start, end),
        )
        total, grants = int(rows[0][0]), int(rows[0][1])
        spenders = await self._fetchall(
            "SELECT user_id, SUM(amount_micros) AS spent FROM ledger WHERE guild_id = ? AND counts_at >= ? "
            "AND counts_at < ? AND kind != 'grant' GROUP BY user_id HAVING spent > 0 "
            "ORDER BY spent DESC, user_id LIMIT ?",
            (guild_id, start, end, top),
        )
        outcomes = await self._fetchall(
            "SELECT status, COUNT(*) FROM jobs WHERE guild_id = ? AND created_at >= ? AND created_at < ? "
            "GROUP BY status",
            (guild_id, start, end),
        )
        return SpendReport(
            total_micros=total,
            granted_micros=-grants,
            top_spenders=[(int(u), int(a)) for u, a in spenders],
            jobs_by_status={JobStatus(s): int(n) for s, n in outcomes},
        )

    async def ledger_rows(self, guild_id: int, start: float, end: float) -> list[LedgerRow]:
        """The guild's ledger rows that count in [start, end), oldest first (for the CSV export): the same
        rows /budget usage sums, so the file and the report agree."""
        rows = await self._fetchall(
            "SELECT id, created_at, counts_at, user_id, job_id, kind, amount_micros, reason FROM ledger "
            "WHERE guild_id = ? AND counts_at >= ? AND counts_at < ? ORDER BY id",
            (guild_id, start, end),
        )
        return [
            LedgerRow(int(i), float(t), float(c), int(u), j, LedgerKind(k), int(a), r)
            for i, t, c, u, j, k, a, r in rows
        ]

    async def claim_budget_alert(
        self,
        guild_id: int,
        month_start: float,
        budget_micros: int,
        threshold: int,
        now: float,
        spent_micros: int | None = None,
    ) -> bool:
        """Record that a budget alert is being posted; True only for the first claim of that month."""
        async with self._write() as db:
            cursor = await db.execute(
                "INSERT INTO budget_alerts (guild_id, month_start, budget_micros, threshold, claimed_at, "
                "spent_micros) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (guild_id, month_start, budget_micros, threshold, now, spent_micros),
            )
            return cursor.rowcount == 1

    async def reclaim_unposted_budget_alerts(
        self, month_start: float, now: float, tried_before: float
    ) -> list[tuple[int, int, int, int | None]]:
        """Claim again the month's alerts not posted yet whose last try began before `tried_before`:
        (guild id, budget, threshold, spend announced)."""
        async with self._write() as db:
            rows = await db.execute_fetchall(
                "UPDATE budget_alerts SET claimed_at = ? WHERE posted_at IS NULL AND month_start = ? "
                "AND claimed_at < ? RETURNING guild_id, budget_micros, threshold, spent_micros",
                (now, month_start, tried_before),
            )
            return [(int(g), int(b), int(t), None if s is None else int(s)) for g, b, t, s in rows]

    async def settle_budget_alert(
        self, guild_id: int, month_start: float, budget_micros: int, threshold: int, now: float | None
    ) -> None:
        """Record a budget alert as posted (`now`), or as not posted (None: the next retry pass takes it)."""
        key = (guild_id, month_start, budget_micros, threshold)
        where = "WHERE guild_id = ? AND month_start = ? AND budget_micros = ? AND threshold = ?"
        async with self._write() as db:
            if now is None:
                await db.execute(
                    f"UPDATE budget_alerts SET claimed_at = 0 {where} AND posted_at IS NULL", key
                )
            else:
                await db.execute(f"UPDATE budget_alerts SET posted_at = ? {where}", (now, *key))

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        """A guild's moderation settings (defaults when it has chosen none)."""
        rows = await self._fetchall(
            f"SELECT {', '.join(_GUILD_SETTING_FIELDS)} FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        channels = await self._fetchall(
            "SELECT channel_id FROM allowed_channels WHERE guild_id = ? ORDER BY channel_id", (guild_id,)
        )
        safety, log_channel, consent, dms, withhold = rows[0] if rows else (None,) * 5
        return GuildSettings(
            guild_id,
            safety_mode=safety,
            mod_log_channel_id=log_channel,
            allowed_channels=tuple(int(c) for (c,) in channels),
            # NULL: the default.
            consent_required=True if consent is None else bool(consent),
            dms_allowed=bool(dms),
            withhold_flagged=bool(withhold),
        )

    async def update_guild_settings(
        self, guild_id: int, patch: GuildSettingsPatch, actor_id: int, now: float
    ) -> None:
        """Apply an admin's moderation-setting changes, recorded with who made them."""
        # Switches are stored (and audited) as 0 or 1.
        changes = {name: int(v) if isinstance(v, bool) else v for name, v in patch.changes().items()}
        async with self._write() as db:
            await db.execute(
                "INSERT INTO guild_settings (guild_id, updated_at, updated_by) VALUES (?, ?, ?) "
                "ON CONFLICT (guild_id) DO NOTHING",
                (guild_id, now, actor_id),
            )
            for name, value in changes.items():
                await db.execute(
                    f"UPDATE guild_settings SET {_GUILD_SETTING_COLUMN[name]} = ?, updated_at = ?, "
                    "updated_by = ? WHERE guild_id = ?",
                    (value, now, actor_id, guild_id),
                )
            await self._audit(db, guild_id, actor_id, "settings.set", changes, now)

    async def set_channel_allowed(
        self, guild_id: int, channel_id: int, allowed: bool, actor_id: int, now: float
    ) -> None:
        """Add a channel to (or remove it from) the guild's /animate allow-list, recorded."""
        async with self._write() as db:
            if allowed:
                await db.execute(
                    "INSERT INTO allowed_channels (guild_id, channel_id) VALUES (?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (guild_id, channel_id),
                )
            else:
                await db.execute(
                    "DELETE FROM allowed_channels WHERE guild_id = ? AND channel_id = ?",
                    (guild_id, channel_id),
                )
            detail = {"channel_id": channel_id, "allowed": allowed}
            await self._audit(db, guild_id, actor_id, "settings.channel", detail, now)

    async def ban(self, ban: Ban, audit_guild_id: int, now: float, job_id: int | None = None) -> None:
        """Ban a member (replacing an earlier ban of the same scope), recorded with who did it (and the
        job that led to it, if any)."""
        async with self._write() as db:
            await db.execute(
                "INSERT OR REPLACE INTO bans (guild_id, user_id, reason, banned_by, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (ban.guild_id, ban.user_id, ban.reason, ban.banned_by, ban.created_at),
            )
            detail = {"user_id": ban.user_id, "reason": ban.reason, "everywhere": ban.guild_id == EVERY_GUILD}
            await self._audit(db, audit_guild_id, ban.banned_by, "moderation.ban", detail, now, job_id)

    async def unban(
        self, guild_id: int, user_id: int, actor_id: int, audit_guild_id: int, now: float
    ) -> bool:
        """Lift a ban of this scope; False if there was none. Recorded."""
        async with self._write() as db:
            cursor = await db.execute(
                "DELETE FROM bans WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
            if cursor.rowcount != 1:
                return False
            detail = {"user_id": user_id, "everywhere": guild_id == EVERY_GUILD}
            await self._audit(db, audit_guild_id, actor_id, "moderation.unban", detail, now)
            return True

    async def bans_in(self, guild_id: int) -> list[Ban]:
        """The bans that apply in a guild (its own and the everywhere ones), newest first."""
        rows = await self._fetchall(
            "SELECT guild_id, user_id, reason, banned_by, created_at FROM bans WHERE guild_id IN (?, ?) "
            "ORDER BY created_at DESC",
            (guild_id, EVERY_GUILD),
        )
        return [Ban(int(g), int(u), str(r), int(b), float(t)) for g, u, r, b, t in rows]

    async def ban_of(self, guild_id: int, user_id: int) -> Ban | None:
        """The ban that keeps this member from the bot in this guild, if any."""
        rows = await self._fetchall(
            "SELECT guild_id, user_id, reason, banned_by, created_at FROM bans "
            "WHERE guild_id IN (?, ?) AND user_id = ? ORDER BY guild_id DESC LIMIT 1",
            (guild_id, EVERY_GUILD, user_id),
        )
        return Ban(*rows[0]) if rows else None

    async def lookup_jobs(
        self,
        guild_id: int,
        *,
        user_id: int | None = None,
        job_id: int | None = None,
        image_sha256: str | None = None,
        limit: int = 10,
    ) -> list[Job]:
        """A guild's jobs by member, by number or by the SHA-256 of their image, newest first."""
        clauses, params = ["guild_id = ?"], [guild_id]
        for column, value in (("user_id", user_id), ("id", job_id), ("image_sha256", image_sha256)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)  # type: ignore[arg-type]
        rows = await self._fetchall(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {' AND '.join(clauses)} ORDER BY created_at DESC LIMIT ?",
            (*params, limit),
        )
        return [_job_from_row(r) for r in rows]

    # -- consent ---------------------------------------------------------------------------------------

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
            f"SELECT {_CONSENT_REQUEST_COLUMNS} FROM consent_requests WHERE id = ?", (request_id,)
        )
        return _consent_request_from_row(rows[0]) if rows else None

    async def decide_consent_request(
        self, request_id: int, state: ConsentState, now: float
    ) -> ConsentRequest | ConsentState:
        """Close an open, unexpired request as accepted, declined or expired, in one transaction; on
        accept, record the member's consent to its version. Returns the request, or the state it already
        had (EXPIRED if it just ran out)."""
        async with self._write() as db:
            rows = list(
                await db.execute_fetchall(
                    f"SELECT {_CONSENT_REQUEST_COLUMNS} FROM consent_requests WHERE id = ?", (request_id,)
                )
            )
            if not rows:
                raise KeyError(f"no consent request {request_id}")
            request = _consent_request_from_row(rows[0])
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
                await self._audit(db, sub.guild_id, sub.user_id, "consent.accept", detail, now)
            return request

    # -- reports and actions on results -----------------------------------------------------------------

    async def create_report(self, job_id: int, reporter_id: int, now: float) -> Report | None:
        """Record a member's report of a job's result; None if they reported it before."""
        async with self._write() as db:
            job = await self._job(db, job_id)
            rows = list(
                await db.execute_fetchall(
                    "INSERT INTO reports (job_id, guild_id, reporter_id, created_at) VALUES (?, ?, ?, ?) "
                    f"ON CONFLICT (job_id, reporter_id) DO NOTHING RETURNING {_REPORT_COLUMNS}",
                    (job_id, job.guild_id, reporter_id, now),
                )
            )
            if not rows:
                return None
            await self._audit(db, job.guild_id, reporter_id, "job.report", {}, now, job_id)
            return _report_from_row(rows[0])

    async def set_report_message(self, report_id: int, channel_id: int, message_id: int) -> None:
        """Remember the moderation-log message of a report (its buttons act on it)."""
        async with self._write() as db:
            await db.execute(
                "UPDATE reports SET log_channel_id = ?, log_message_id = ? WHERE id = ?",
                (channel_id, message_id, report_id),
            )

    async def get_report(self, report_id: int) -> Report | None:
        """One report by id."""
        rows = await self._fetchall(f"SELECT {_REPORT_COLUMNS} FROM reports WHERE id = ?", (report_id,))
        return _report_from_row(rows[0]) if rows else None

    async def reports_of_job(self, job_id: int) -> list[Report]:
        """A job's reports, oldest first."""
        rows = await self._fetchall(
            f"SELECT {_REPORT_COLUMNS} FROM reports WHERE job_id = ? ORDER BY id", (job_id,)
        )
        return [_report_from_row(r) for r in rows]

    async def remove_result(self, job_id: int, actor_id: int, now: float) -> bool:
        """Record that a job's posted result was deleted, and close its open reports. True the first time."""
        async with self._write() as db:
            job = await self._job(db, job_id)
            cursor = await db.execute(
                "UPDATE jobs SET removed_at = ?, updated_at = ? WHERE id = ? AND removed_at IS NULL",
                (now, now, job_id),
            )
            if cursor.rowcount != 1:
                return False
            await db.execute(
                "UPDATE reports SET state = 'deleted', decided_by = ?, decided_at = ? "
                "WHERE job_id = ? AND state = 'open'",
                (actor_id, now, job_id),
            )
            await self._audit(db, job.guild_id, actor_id, "job.delete", {}, now, job_id)
            return True

    async def dismiss_report(self, report_id: int, actor_id: int, now: float) -> bool:
        """Close an open report without action; False if it was already closed."""
        async with self._write() as db:
            rows = list(
                await db.execute_fetchall(
                    "UPDATE reports SET state = 'dismissed', decided_by = ?, decided_at = ? "
                    "WHERE id = ? AND state = 'open' RETURNING guild_id, job_id",
                    (actor_id, now, report_id),
                )
            )
            if not rows:
                return False
            guild_id, job_id = rows[0]
            detail = {"report_id": report_id}
            await self._audit(db, int(guild_id), actor_id, "job.dismiss", detail, now, int(job_id))
            return True

    async def job_actions(self, job_id: int) -> list[JobAction]:
        """The moderation actions recorded on a job, oldest first."""
        rows = await self._fetchall(
            "SELECT job_id, actor_id, action, created_at FROM audit_log WHERE job_id = ? ORDER BY id",
            (job_id,),
        )
        return [JobAction(int(j), int(a), str(action), float(t)) for j, a, action, t in rows]

    async def prune(self, before: float, now: float) -> Pruned:
        """Forget moderation records older than `before`: audit rows, reports, closed quotes and consent
        requests, and the hashes of old jobs' files. Jobs and the ledger stay (money is kept for good).
        Also closes consent requests that ran out unanswered.

        The big tables go in batches of PRUNE_BATCH rows, one transaction each: a first pass over years of
        history (or a shorter retention) never holds the write lock long enough to delay reservations."""
        async with self._write() as db:
            await db.execute(
                "UPDATE consent_requests SET state = 'expired', decided_at = ? "
                "WHERE state = 'open' AND expires_at < ?",
                (now, now),
            )
            quotes = await db.execute(
                "DELETE FROM quotes WHERE created_at < ? AND state != 'open'", (before,)
            )
            requests = await db.execute(
                "DELETE FROM consent_requests WHERE created_at < ? AND state != 'open'", (before,)
            )
            closed = quotes.rowcount + requests.rowcount
        audit = await self._in_batches(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE created_at < ? LIMIT ?)",
            before,
        )
        reports = await self._in_batches(
            "DELETE FROM reports WHERE id IN (SELECT id FROM reports WHERE created_at < ? LIMIT ?)", before
        )
        hashes = await self._in_batches(
            "UPDATE jobs SET image_sha256 = NULL, audio_sha256 = NULL WHERE id IN "
            "(SELECT id FROM jobs WHERE image_sha256 IS NOT NULL AND created_at < ? LIMIT ?)",
            before,
        )
        return Pruned(audit, reports, hashes, closed)

    async def _in_batches(self, sql: str, before: float) -> int:
        """Run a `... < ? LIMIT ?` statement in transactions of PRUNE_BATCH rows until none are left."""
        total = 0
        while True:
            async with self._write() as db:
                done = (await db.execute(sql, (before, PRUNE_BATCH))).rowcount
            total += done
            if done < PRUNE_BATCH:
                return total

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

    # -- helpers (run inside a held lock) ------------------------------------------------------------

    @staticmethod
    async def _usage(
        db: aiosqlite.Connection, guild_id: int, user_id: int, limits: Limits, windows: Windows
    ) -> Usage:
        # One statement, one hop to the connection thread. Spend comes from the running totals that the
        # ledger's trigger keeps, so the cost does not grow with the ledger.
        rows = list(
            await db.execute_fetchall(
                "SELECT "
                "(SELECT amount_micros FROM spend_totals WHERE guild_id = ?1 AND user_id = ?2 "
                "  AND period = 'day' AND period_start = ?3), "
                "(SELECT amount_micros FROM spend_totals WHERE guild_id = ?1 AND user_id = ?2 "
                "  AND period = 'month' AND period_start = ?4), "
                "(SELECT amount_micros FROM spend_totals WHERE guild_id = ?1 AND user_id = 0 "
                "  AND period = 'month' AND period_start = ?4), "
                "(SELECT COUNT(*) FROM jobs WHERE guild_id = ?1 AND user_id = ?2 "
                f"  AND status IN ({_ACTIVE_SQL})), "
                "(SELECT MAX(created_at) FROM jobs WHERE guild_id = ?1 AND user_id = ?2), "
                "(SELECT amount_micros FROM operator_totals WHERE day_start = ?3)",
                (guild_id, user_id, windows.day_start, windows.month_start),
            )
        )
        today, month, guild_month, active, last, operator_today = rows[0]
        return Usage(
            spent_today_micros=int(today or 0),
            spent_month_micros=int(month or 0),
            guild_spent_month_micros=int(guild_month or 0),
            active_jobs=int(active),
            last_job_at=float(last) if last is not None else None,
            limits=limits,
            windows=windows,
            operator_spent_today_micros=int(operator_today or 0),
        )

    @staticmethod
    async def _audit(
        db: aiosqlite.Connection,
        guild_id: int,
        actor_id: int,
        action: str,
        detail: object,
        now: float,
        job_id: int | None = None,
    ) -> None:
        await db.execute(
            "INSERT INTO audit_log (guild_id, actor_id, action, detail, created_at, job_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (guild_id, actor_id, action, json.dumps(detail, sort_keys=True), now, job_id),
        )

    @staticmethod
    async def _ledger(
        db: aiosqlite.Connection,
        guild_id: int,
        user_id: int,
        job_id: int | None,
        kind: LedgerKind,
        amount_micros: int,
        counts_at: float,
        now: float,
        reason: str | None = None,
    ) -> None:
        await db.execute(
            "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_micros, counts_at, created_at, "
            "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (guild_id, user_id, job_id, kind.value, amount_micros, counts_at, now, reason),
        )

    @staticmethod
    async def _job(db: aiosqlite.Connection, job_id: int) -> Job:
        rows = list(await db.execute_fetchall(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)))
        if not rows:
            raise KeyError(f"no job {job_id}")
        return _job_from_row(rows[0])
