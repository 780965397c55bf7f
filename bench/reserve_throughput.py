"""Reservation throughput: how many `create_job_with_reservation` transactions per second SQLite takes.

What is measured
    One reservation is the whole write transaction behind /animate, as
    `SqliteStore.create_job_with_reservation` runs it (at the time of writing: BEGIN IMMEDIATE; ONE SELECT
    for the member's usage from the `spend_totals` running totals and the jobs table; the limit rules,
    `core.quota.check_limits`; `INSERT INTO jobs … RETURNING` the new row; the ledger INSERT, whose AFTER
    INSERT triggers upsert the `spend_totals` rows; COMMIT).
    Every database is a real file in a fresh temporary folder, migrated by the store (so the trigger exists),
    in WAL mode with synchronous=FULL, so every COMMIT waits for an fsync of the WAL.

How
    Each repetition creates fresh, migrated database files and runs, back to back on the same machine:
      raw       the baseline: stdlib `sqlite3`, in a plain loop (no event loop, no thread hop), replaying
                the store's own transaction. Before each raw run the script makes one reservation through
                the store on a scratch database and records, from the connection the store talks to, every
                statement with its parameters (BEGIN IMMEDIATE … COMMIT) and the connection's PRAGMAs; the
                raw loop then runs those very statements with each job's own values in place of the
                recorded job's, and check_limits where the store calls it. So the baseline follows the
                store whenever its statements change. Before timing, the script traces one store
                reservation and one replayed one (sqlite3 trace callback, same job, same clock) and stops
                unless both sent SQLite the very same statements;
      no-trig   the baseline on a database whose ledger triggers that keep `spend_totals` were dropped, to
                show what keeping the running totals costs per reservation (the rest of the store's cost is
                aiosqlite + asyncio.Lock: raw vs store);
      store seq SqliteStore.create_job_with_reservation awaited in a loop by one coroutine;
      store 200 the same total spread over 200 concurrent coroutines (one asyncio.Lock serialises them);
      what-if   not the bot's code: the raw transaction as one call on a single database thread, awaited
                by 200 coroutines (one thread hop per transaction instead of one per statement and fetch),
                to show what the alternative the architecture notes allow would reach on the same disk.
    Every mode spreads its reservations over many members and uses limits that never refuse (every limit
    None = unlimited, cooldown 0: check_limits still runs on every reservation); the script checks that
    every reservation was written and, where the triggers exist, that the guild's monthly running total
    equals the sum of the reservations. A failed check stops the script (exit status 1), --quick included.
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
import itertools
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, cast

import aiosqlite

# Run as `python bench/reserve_throughput.py`: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.models import Job, Limits, NewJob, QuotaRefusal, Usage
from core.quota import check_limits, windows_at
from storage.sqlite import SqliteStore

GOAL_TX_PER_S = 1000.0
# Limits that never refuse: every money limit None (unlimited), no active-job cap, no cooldown. The store
# still runs its usage SELECT and check_limits on every reservation.
LIMITS = Limits(daily_micros=None, max_active_jobs=None, monthly_micros=None, cooldown_s=0.0)
ESTIMATE_MICROS = 700_000
GUILD_ID = 1
# Connection settings the raw baseline copies from the store's own connection (whatever values it set).
PRAGMAS = (
    "journal_mode",
    "synchronous",
    "foreign_keys",
    "busy_timeout",
    "cache_size",
    "cache_spill",
    "temp_store",
    "mmap_size",
    "locking_mode",
    "wal_autocheckpoint",
    "journal_size_limit",
    "secure_delete",
    "automatic_index",
    "recursive_triggers",
    "cell_size_check",
)
# The recorded reservation is made with values no other parameter can equal, so that replacing them by
# another job's values is unambiguous: guild, member, task and the job id (the jobs table's AUTOINCREMENT
# sequence is moved to just below it).
SAMPLE_GUILD, SAMPLE_USER, SAMPLE_JOB_ID = 7_000_000_001, 7_000_000_002, 7_000_000_101


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
    """Every reservation must have produced one job and one reserve row; with the triggers in place, the
    guild's monthly running total must be the sum of the reservations."""
    with sqlite3.connect(path) as db:
        jobs = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        reserves = db.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'reserve'").fetchone()[0]
        guild_month = db.execute(
            "SELECT COALESCE(SUM(amount_micros), 0) FROM spend_totals "
            "WHERE guild_id = ? AND user_id = 0 AND period = 'month'",
            (GUILD_ID,),
        ).fetchone()[0]
    if jobs != count or reserves != count:
        raise SystemExit(f"expected {count} jobs and reserve rows in {path}, found {jobs} and {reserves}")
    if totals and guild_month != count * ESTIMATE_MICROS:
        raise SystemExit(f"spend_totals says {guild_month}, the ledger {count * ESTIMATE_MICROS} in {path}")


def drop_totals_triggers(path: Path) -> list[str]:
    """Remove the triggers by which the ledger keeps `spend_totals` (the no-trigger mode only)."""
    with sqlite3.connect(path) as db:
        names = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'ledger' "
                "AND sql LIKE '%spend_totals%'"
            )
        ]
        if not names:
            raise SystemExit(
                "no trigger on the ledger writes spend_totals any more: update the no-trigger mode"
            )
        for name in names:
            db.execute(f'DROP TRIGGER "{name}"')
    return names


# ------------------------------------------------------------------- the store's statements, recorded


class Slot(Enum):
    """A parameter of a recorded statement that takes the replayed job's value."""

    TASK_UUID = "task_uuid"
    GUILD = "guild_id"
    USER = "user_id"
    JOB_ID = "job_id"


@dataclass(frozen=True)
class Step:
    """One statement of the recorded reservation: its SQL, its parameters (a Slot where the replayed
    job's own value goes) and whether the store fetched its rows."""

    sql: str
    params: tuple[Any, ...]
    fetch: bool

    def bind(self, new: NewJob, job_id: int | None) -> tuple[Any, ...]:
        return tuple(
            (job_id if p is Slot.JOB_ID else getattr(new, p.value)) if isinstance(p, Slot) else p
            for p in self.params
        )


@dataclass(frozen=True)
class Replay:
    """One store reservation as the raw baseline replays it."""

    pragmas: dict[str, Any]  # the store connection's settings
    steps: list[Step]  # BEGIN IMMEDIATE … COMMIT, in order
    decide_at: int  # the limit check runs before this step, as the store runs it
    usage: Usage  # what the store's limit check was given
    id_at: tuple[int, int]  # (step, column) whose first row holds the new job's id


class Recorder:
    """Stands in for the store's aiosqlite connection while it makes one reservation: forwards each
    statement and records it with its parameters and the rows it returned."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self.calls: list[tuple[str, tuple[Any, ...], bool, list[Any]]] = []

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> aiosqlite.Cursor:
        cursor = await self._conn.execute(sql, parameters)
        self.calls.append((sql, tuple(parameters or ()), False, []))
        return cursor

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] | None = None) -> list[Any]:
        rows = list(await self._conn.execute_fetchall(sql, parameters))
        self.calls.append((sql, tuple(parameters or ()), True, [tuple(r) for r in rows]))
        return rows

    def __getattr__(self, name: str) -> Any:
        raise SystemExit(
            f"the store's reservation called connection.{name}(), which bench/reserve_throughput.py's "
            "Recorder does not record: add it there (and to Step/replay_reservation) so the raw baseline "
            "replays it too"
        )


def slot_of(value: Any, sample: NewJob) -> Any:
    """The Slot a recorded parameter stands for, or the value itself (the same for every job)."""
    if isinstance(value, str) and value == sample.task_uuid:
        return Slot.TASK_UUID
    if type(value) is int:
        for slot, sentinel in (
            (Slot.GUILD, SAMPLE_GUILD),
            (Slot.USER, SAMPLE_USER),
            (Slot.JOB_ID, SAMPLE_JOB_ID),
        ):
            if value == sentinel:
                return slot
    return value


async def record_reservation(path: Path, now: float) -> Replay:
    """Make one reservation through SqliteStore.create_job_with_reservation on the fresh database at
    `path` (at `now`, as the measured runs do) and record what it sent SQLite."""
    sample = NewJob(
        task_uuid=f"sample-{uuid.uuid4()}",
        guild_id=SAMPLE_GUILD,
        channel_id=2,
        user_id=SAMPLE_USER,
        audio_seconds=5.0,
        estimate_micros=ESTIMATE_MICROS,
        output_format="MP4",
        output_quality=85,
        upload_limit_bytes=None,
        channel_nsfw=False,
    )
    store = await SqliteStore.open(str(path))
    try:
        pragmas = {}
        for name in PRAGMAS:
            rows = list(await store._conn.execute_fetchall(f"PRAGMA {name}"))
            if rows:
                pragmas[name] = rows[0][0]
        await store._conn.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', ?)", (SAMPLE_JOB_ID - 1,)
        )
        recorder = Recorder(store._conn)
        seen: list[tuple[int, Usage]] = []

        def decide(usage: Usage) -> QuotaRefusal | None:
            seen.append((len(recorder.calls), usage))
            return check_limits(usage, sample.estimate_micros, now)

        # A second store object on the same connection, talking to it through the recorder.
        created = await SqliteStore(cast(aiosqlite.Connection, recorder)).create_job_with_reservation(
            sample, LIMITS, now, windows_at(now), decide
        )
    finally:
        await store.close()
    if not isinstance(created, Job) or created.id != SAMPLE_JOB_ID or len(seen) != 1:
        raise SystemExit(
            f"the recorded reservation did not go as planned: {created}, {len(seen)} limit checks"
        )
    steps = [
        Step(sql, tuple(slot_of(p, sample) for p in params), fetch)
        for sql, params, fetch, _ in recorder.calls
    ]
    found = [
        (index, column)
        for index, (_, _, _, rows) in enumerate(recorder.calls)
        for column, value in enumerate(rows[0] if rows else ())
        if type(value) is int and value == SAMPLE_JOB_ID
    ]
    if not found or any(Slot.JOB_ID in step.params for step in steps[: found[0][0] + 1]):
        raise SystemExit("no statement of the recorded reservation returned the new job's id before using it")
    return Replay(pragmas, steps, seen[0][0], seen[0][1], found[0])


# ------------------------------------------------------------------------------------------ raw baseline


def open_raw(path: Path, replay: Replay, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A stdlib connection with the settings of the store's connection."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    for name, value in replay.pragmas.items():
        db.execute(f"PRAGMA {name}={value}")
    return db


def reserve_raw(db: sqlite3.Connection, replay: Replay, new: NewJob, now: float) -> int:
    """One reservation, synchronously: the store's recorded statements with `new`'s values, and the limit
    check where the store makes it (given the recorded usage; the limits never refuse). Returns the job id."""
    job_id: int | None = None
    try:
        for index, step in enumerate(replay.steps):
            if index == replay.decide_at:
                refusal = check_limits(replay.usage, new.estimate_micros, now)
                if refusal is not None:
                    raise SystemExit(f"unexpected refusal in the raw baseline: {refusal}")
            cursor = db.execute(step.sql, step.bind(new, job_id))
            if step.fetch:
                rows = cursor.fetchall()
                if index == replay.id_at[0]:
                    job_id = int(rows[0][replay.id_at[1]])
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    if job_id is None or db.in_transaction:
        raise SystemExit("the replayed reservation returned no job id or left its transaction open")
    return job_id


def run_raw(path: Path, jobs: list[NewJob]) -> float:
    """The same transaction with stdlib sqlite3 in a plain loop. Returns seconds taken."""
    now = time.time()
    replay = asyncio.run(record_reservation(path.with_suffix(".recorded.db"), now))
    db = open_raw(path, replay)
    try:
        started = time.perf_counter()
        for new in jobs:
            reserve_raw(db, replay, new, now)
        return time.perf_counter() - started
    finally:
        db.close()


async def run_one_hop(path: Path, jobs: list[NewJob], concurrency: int) -> float:
    """What-if: the whole transaction as one call on a single database thread, awaited by `concurrency`
    coroutines. The design the architecture notes allow instead of a lock around many awaits."""
    now = time.time()
    replay = await record_reservation(path.with_suffix(".recorded.db"), now)
    db = open_raw(path, replay, check_same_thread=False)
    loop = asyncio.get_running_loop()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite") as thread:

            async def worker(share: list[NewJob]) -> None:
                for new in share:
                    await loop.run_in_executor(thread, reserve_raw, db, replay, new, now)

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


def raw_statements(path: Path, replay: Replay, new: NewJob, now: float) -> list[str]:
    """The statements one raw-baseline reservation sends SQLite."""
    db = open_raw(path, replay)
    sent: list[str] = []
    try:
        db.set_trace_callback(sent.append)
        reserve_raw(db, replay, new, now)
        db.set_trace_callback(None)
    finally:
        db.close()
    return sent


def check_same_statements(folder: Path) -> int:
    """Stop unless the raw baseline sends exactly what the store sends (same job, same clock, fresh
    databases): proof that the recording and the replay with another job's values are faithful.
    Returns how many statements one reservation sends."""
    new, now = new_jobs(1, 1)[0], time.time()
    paths = folder / "trace-store.db", folder / "trace-raw.db"
    for path in paths:
        asyncio.run(fresh_database(path))
    replay = asyncio.run(record_reservation(folder / "trace-recorded.db", now))
    store_sent = asyncio.run(store_statements(paths[0], new, now))
    raw_sent = raw_statements(paths[1], replay, new, now)
    if store_sent != raw_sent or not store_sent:
        pairs = list(itertools.zip_longest(store_sent, raw_sent))
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), 0)
        lines = "\n".join(f"  store: {a!r}\n  raw:   {b!r}" for a, b in pairs[first : first + 1])
        raise SystemExit(
            f"the raw baseline's replay of the recorded reservation differs from the store's statement "
            f"{first + 1} of {len(store_sent)} ({len(raw_sent)} replayed). The replay takes the store's "
            f"statements as recorded and puts the job's own values where the sample's were "
            f"(record_reservation, slot_of): a parameter that depends on the job in another way needs a "
            f"Slot there.\n{lines}"
        )
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
            "as the store's (BEGIN IMMEDIATE to COMMIT, trigger steps included)"
        )
        for rep in range(reps):
            baseline = 0.0
            for index, (name, run) in enumerate(modes.items()):
                path = folder / f"rep{rep}-mode{index}.db"
                asyncio.run(fresh_database(path))
                with_trigger = index != 1
                if not with_trigger:
                    drop_totals_triggers(path)
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
