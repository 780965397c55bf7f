"""Reservation throughput: how many `create_job_with_reservation` transactions per second SQLite takes.

What is measured
    One reservation is the whole write transaction behind /animate, as
    `SqliteStore.create_job_with_reservation` runs it: BEGIN IMMEDIATE; ONE SELECT for the member's usage
    (today's and this month's spend and the guild's month from the `spend_totals` running totals, the
    active-job count, the member's last job time); the limit rules (`core.quota.check_limits`);
    `INSERT INTO jobs … RETURNING` the new row; the ledger INSERT, whose AFTER INSERT trigger upserts four
    `spend_totals` rows; COMMIT.
    Every database is a real file in a fresh temporary folder, migrated by the store (so the trigger exists),
    in WAL mode with synchronous=FULL, so every COMMIT waits for an fsync of the WAL.

How
    Each repetition creates fresh, migrated database files and runs, back to back on the same machine:
      raw       the baseline: stdlib `sqlite3`, same PRAGMAs, exactly the store's statements (the usage
                SELECT, the INSERT … RETURNING, the ledger INSERT) and the same check_limits call between
                BEGIN IMMEDIATE and COMMIT, in a plain loop (no event loop, no thread hop). Before timing,
                the script traces one store reservation and one raw one (sqlite3 trace callback, same job,
                same clock) and stops unless both sent SQLite the very same statements;
      no-trig   the baseline on a database whose `ledger_feeds_spend_totals` trigger was dropped, to show
                what keeping the running totals costs per reservation (the rest of the store's cost is
                aiosqlite + asyncio.Lock: raw vs store);
      store seq SqliteStore.create_job_with_reservation awaited in a loop by one coroutine;
      store 200 the same total spread over 200 concurrent coroutines (one asyncio.Lock serialises them);
      what-if   not the bot's code: the raw transaction as one call on a single database thread, awaited
                by 200 coroutines (one thread hop per transaction instead of one per statement and fetch),
                to show what the alternative the architecture notes allow would reach on the same disk.
    Every mode spreads its reservations over many members and uses limits that never refuse (every limit
    None = unlimited, cooldown 0: check_limits still runs on every reservation); the script checks that
    every reservation was written and, where the trigger exists, that the guild's monthly running total
    equals the sum of the reservations.
    The machine is shared and noisy, so each figure is the median of the repetitions and is shown next to
    the raw baseline of the same run, as a ratio.

Goal
    ≥ 1,000 reservations per second through the store on this 2-core machine.

    uv run python bench/reserve_throughput.py            # 3,000 transactions per measurement, 3 repetitions
    uv run python bench/reserve_throughput.py --quick    # smoke run: 300 transactions, 1 repetition
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Run as `python bench/reserve_throughput.py`: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.models import Job, JobStatus, LedgerKind, Limits, NewJob, QuotaRefusal, Usage, Windows
from core.quota import check_limits, windows_at
from storage.sqlite import _ACTIVE_SQL, _JOB_COLUMNS, SqliteStore, _job_from_row

GOAL_TX_PER_S = 1000.0
# Limits that never refuse: every money limit None (unlimited), no active-job cap, no cooldown. The store
# still runs its usage SELECT and check_limits on every reservation.
LIMITS = Limits(daily_micros=None, max_active_jobs=None, monthly_micros=None, cooldown_s=0.0)
ESTIMATE_MICROS = 700_000
GUILD_ID = 1
TRIGGER = "ledger_feeds_spend_totals"

# The statements of SqliteStore.create_job_with_reservation (storage/sqlite.py: `_usage`, the job INSERT,
# `_ledger`), copied verbatim for the raw baseline; `check_same_statements` proves they still match.
SQL_USAGE = (
    "SELECT "
    "(SELECT amount_micros FROM spend_totals WHERE guild_id = ?1 AND user_id = ?2 "
    "  AND period = 'day' AND period_start = ?3), "
    "(SELECT amount_micros FROM spend_totals WHERE guild_id = ?1 AND user_id = ?2 "
    "  AND period = 'month' AND period_start = ?4), "
    "(SELECT amount_micros FROM spend_totals WHERE guild_id = ?1 AND user_id = 0 "
    "  AND period = 'month' AND period_start = ?4), "
    "(SELECT COUNT(*) FROM jobs WHERE guild_id = ?1 AND user_id = ?2 "
    f"  AND status IN ({_ACTIVE_SQL})), "
    "(SELECT MAX(created_at) FROM jobs WHERE guild_id = ?1 AND user_id = ?2)"
)
SQL_INSERT_JOB = (
    "INSERT INTO jobs (task_uuid, guild_id, channel_id, user_id, status, audio_seconds, "
    "estimate_micros, output_format, output_quality, created_at, updated_at, "
    "upload_limit_bytes, channel_nsfw, image_ref, audio_ref, next_poll_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    f"RETURNING {_JOB_COLUMNS}"
)
SQL_INSERT_LEDGER = (
    "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_micros, counts_at, created_at, "
    "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def new_jobs(count: int, members: int) -> list[NewJob]:
    """`count` reservations spread round-robin over `members` members of one guild."""
    return [
        NewJob(
            task_uuid=str(uuid.uuid4()),
            guild_id=GUILD_ID,
            channel_id=2,
            user_id=1000 + i % members,
            audio_seconds=5.0,
            estimate_micros=ESTIMATE_MICROS,
            output_format="MP4",
            output_quality=85,
            upload_limit_bytes=None,
            channel_nsfw=False,
        )
        for i in range(count)
    ]


async def fresh_database(path: Path) -> None:
    """A new database file, migrated by the store itself (so every mode starts from the same schema)."""
    store = await SqliteStore.open(str(path))
    await store.close()


def check_written(path: Path, count: int, *, totals: bool) -> None:
    """Every reservation must have produced one job and one reserve row; with the trigger in place, the
    guild's monthly running total must be the sum of the reservations."""
    with sqlite3.connect(path) as db:
        jobs = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        reserves = db.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'reserve'").fetchone()[0]
        guild_month = db.execute(
            "SELECT COALESCE(SUM(amount_micros), 0) FROM spend_totals WHERE user_id = 0 AND period = 'month'"
        ).fetchone()[0]
    if jobs != count or reserves != count:
        raise SystemExit(f"expected {count} jobs and reserve rows in {path}, found {jobs} and {reserves}")
    if totals and guild_month != count * ESTIMATE_MICROS:
        raise SystemExit(f"spend_totals says {guild_month}, the ledger {count * ESTIMATE_MICROS} in {path}")


def drop_trigger(path: Path) -> None:
    """Remove the running-totals trigger (the no-trigger mode only)."""
    with sqlite3.connect(path) as db:
        db.execute(f"DROP TRIGGER {TRIGGER}")


# ------------------------------------------------------------------------------------------ raw baseline


def open_raw(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A stdlib connection with the PRAGMAs SqliteStore.open sets."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def reserve_raw(db: sqlite3.Connection, new: NewJob, now: float, windows: Windows) -> Job:
    """One reservation with the store's statements and limit check, synchronously."""
    db.execute("BEGIN IMMEDIATE")
    try:
        today, month, guild_month, active, last = db.execute(
            SQL_USAGE, (new.guild_id, new.user_id, windows.day_start, windows.month_start)
        ).fetchone()
        usage = Usage(
            spent_today_micros=int(today or 0),
            spent_month_micros=int(month or 0),
            guild_spent_month_micros=int(guild_month or 0),
            active_jobs=int(active),
            last_job_at=float(last) if last is not None else None,
            limits=LIMITS,
            windows=windows,
        )
        refusal = check_limits(usage, new.estimate_micros, now)
        if refusal is not None:
            raise SystemExit(f"unexpected refusal in the raw baseline: {refusal}")
        rows = db.execute(
            SQL_INSERT_JOB,
            (
                new.task_uuid,
                new.guild_id,
                new.channel_id,
                new.user_id,
                JobStatus.UPLOADING.value,
                new.audio_seconds,
                new.estimate_micros,
                new.output_format,
                new.output_quality,
                now,
                now,
                new.upload_limit_bytes,
                int(new.channel_nsfw),
                None,
                None,
                None,
            ),
        ).fetchall()
        job = _job_from_row(rows[0])
        db.execute(
            SQL_INSERT_LEDGER,
            (
                new.guild_id,
                new.user_id,
                job.id,
                LedgerKind.RESERVE.value,
                new.estimate_micros,
                now,
                now,
                None,
            ),
        )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return job


def run_raw(path: Path, jobs: list[NewJob]) -> float:
    """The same transaction with stdlib sqlite3 in a plain loop. Returns seconds taken."""
    db = open_raw(path)
    try:
        now = time.time()
        windows = windows_at(now)
        started = time.perf_counter()
        for new in jobs:
            reserve_raw(db, new, now, windows)
        return time.perf_counter() - started
    finally:
        db.close()


async def run_one_hop(path: Path, jobs: list[NewJob], concurrency: int) -> float:
    """What-if: the whole transaction as one call on a single database thread, awaited by `concurrency`
    coroutines. The design the architecture notes allow instead of a lock around many awaits."""
    db = open_raw(path, check_same_thread=False)
    loop = asyncio.get_running_loop()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite") as thread:
            now = time.time()
            windows = windows_at(now)

            async def worker(share: list[NewJob]) -> None:
                for new in share:
                    await loop.run_in_executor(thread, reserve_raw, db, new, now, windows)

            shares = [jobs[i::concurrency] for i in range(concurrency)]
            started = time.perf_counter()
            await asyncio.gather(*(worker(share) for share in shares))
            return time.perf_counter() - started
    finally:
        db.close()


# -------------------------------------------------------------------------------------------- the store


async def run_store(path: Path, jobs: list[NewJob], concurrency: int) -> float:
    """create_job_with_reservation from `concurrency` coroutines sharing the work. Returns seconds taken."""
    store = await SqliteStore.open(str(path))
    try:
        now = time.time()
        windows = windows_at(now)

        async def worker(share: list[NewJob]) -> None:
            for new in share:
                # As JobService.accept calls it (see `reserve()` in tests/conftest.py).
                created = await store.create_job_with_reservation(
                    new,
                    LIMITS,
                    now,
                    windows,
                    lambda usage, new=new: check_limits(usage, new.estimate_micros, now),
                )
                if isinstance(created, QuotaRefusal) or not isinstance(created, Job):
                    raise SystemExit(f"unexpected refusal: {created}")

        shares = [jobs[i::concurrency] for i in range(concurrency)]
        started = time.perf_counter()
        await asyncio.gather(*(worker(share) for share in shares))
        return time.perf_counter() - started
    finally:
        await store.close()


# ------------------------------------------------------------------------------------- same statements


async def store_statements(path: Path, new: NewJob, now: float) -> list[str]:
    """The statements (parameters expanded) one store reservation sends SQLite, trigger steps included."""
    store = await SqliteStore.open(str(path))
    sent: list[str] = []
    try:
        await store._conn.set_trace_callback(sent.append)
        await store.create_job_with_reservation(
            new, LIMITS, now, windows_at(now), lambda usage: check_limits(usage, new.estimate_micros, now)
        )
        await store._conn.set_trace_callback(None)
    finally:
        await store.close()
    return sent


def raw_statements(path: Path, new: NewJob, now: float) -> list[str]:
    """The statements one raw-baseline reservation sends SQLite."""
    db = open_raw(path)
    sent: list[str] = []
    try:
        db.set_trace_callback(sent.append)
        reserve_raw(db, new, now, windows_at(now))
        db.set_trace_callback(None)
    finally:
        db.close()
    return sent


def check_same_statements(folder: Path) -> int:
    """Stop unless the raw baseline sends exactly what the store sends (same job, same clock, fresh
    databases). Returns how many statements one reservation sends."""
    new, now = new_jobs(1, 1)[0], time.time()
    paths = folder / "trace-store.db", folder / "trace-raw.db"
    for path in paths:
        asyncio.run(fresh_database(path))
    store_sent = asyncio.run(store_statements(paths[0], new, now))
    raw_sent = raw_statements(paths[1], new, now)
    if store_sent != raw_sent or not store_sent:
        pairs = zip(store_sent, raw_sent, strict=False)
        lines = "\n".join(f"  store: {a!r}\n  raw:   {b!r}" for a, b in pairs)
        raise SystemExit(f"the raw baseline no longer runs the store's statements:\n{lines}")
    return len(store_sent)


# ------------------------------------------------------------------------------------------------ driver


def filesystem_of(path: Path) -> str:
    """The filesystem type holding `path` (from /proc/mounts), to say what the fsyncs hit."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 transactions, 1 repetition")
    parser.add_argument("--tx", type=int, default=None, help="transactions per measurement (default 3000)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3)")
    parser.add_argument("--concurrency", type=int, default=200, help="coroutines in the concurrent mode")
    parser.add_argument("--members", type=int, default=1000, help="members the reservations are spread over")
    parser.add_argument("--dir", default=None, help="folder for the database files (default: system temp)")
    args = parser.parse_args()
    tx = args.tx or (300 if args.quick else 3000)
    reps = args.reps or (1 if args.quick else 3)

    modes: dict[str, Callable[[Path, list[NewJob]], float]] = {
        "raw sqlite3 (baseline)": run_raw,
        "raw sqlite3, no trigger": run_raw,
        "store, sequential": lambda p, j: asyncio.run(run_store(p, j, 1)),
        f"store, {args.concurrency} concurrent": lambda p, j: asyncio.run(run_store(p, j, args.concurrency)),
        f"what-if: 1 hop/tx, {args.concurrency} conc.": lambda p, j: asyncio.run(
            run_one_hop(p, j, args.concurrency)
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in modes}
    ratios: dict[str, list[float]] = {name: [] for name in modes}

    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-reserve-", dir=args.dir) as tmp:
        folder = Path(tmp)
        print(
            f"reserve_throughput: {tx} transactions x {reps} repetitions per mode, {args.members} members, "
            f"SQLite {sqlite3.sqlite_version}, WAL + synchronous=FULL, files on {filesystem_of(folder)} "
            f"({folder}), {os.cpu_count()} CPUs"
        )
        statements = check_same_statements(folder)
        print(
            f"  checked: one raw-baseline reservation sends SQLite the same {statements} traced statements "
            "as the store's (BEGIN, usage SELECT, INSERT … RETURNING, ledger INSERT + its trigger, COMMIT)"
        )
        for rep in range(reps):
            baseline = 0.0
            for index, (name, run) in enumerate(modes.items()):
                path = folder / f"rep{rep}-mode{index}.db"
                asyncio.run(fresh_database(path))
                with_trigger = index != 1
                if not with_trigger:
                    drop_trigger(path)
                jobs = new_jobs(tx, args.members)
                seconds = run(path, jobs)
                check_written(path, tx, totals=with_trigger)
                rate = tx / seconds
                if index == 0:
                    baseline = rate
                rates[name].append(rate)
                ratios[name].append(rate / baseline)
            line = ", ".join(f"{name.split(' (')[0]} {rates[name][-1]:,.0f}/s" for name in modes)
            print(f"  repetition {rep + 1}: {line}")

    raw_name = next(iter(modes))
    raw_median = median(rates[raw_name])
    print()
    print(f"{'mode':<32} {'tx/s (median)':>14} {'min':>9} {'max':>9} {'vs raw (median)':>16}")
    for name in modes:
        values = rates[name]
        print(
            f"{name:<32} {median(values):>14,.0f} {min(values):>9,.0f} {max(values):>9,.0f} "
            f"{median(ratios[name]):>15.2f}x"
        )
    trig_name, seq_name, conc_name, hop_name = list(modes)[1:5]
    seq, conc = median(rates[seq_name]), median(rates[conc_name])
    worst = min(seq, conc)
    verdict = "MET" if worst >= GOAL_TX_PER_S else f"MISSED by {GOAL_TX_PER_S - worst:,.0f}/s"
    print()
    print(
        f"SUMMARY reserve_throughput: raw {raw_median:,.0f} tx/s; store sequential {seq:,.0f} tx/s "
        f"({median(ratios[seq_name]):.2f}x raw); store {args.concurrency} concurrent {conc:,.0f} tx/s "
        f"({median(ratios[conc_name]):.2f}x raw); goal >= {GOAL_TX_PER_S:,.0f}/s {verdict}; "
        f"what-if 1 hop/tx {median(rates[hop_name]):,.0f} tx/s ({median(ratios[hop_name]):.2f}x raw); "
        f"raw without the totals trigger {median(rates[trig_name]):,.0f} tx/s "
        f"({median(ratios[trig_name]):.2f}x raw); "
        f"{tx} tx x {reps} reps, {time.perf_counter() - wall:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
