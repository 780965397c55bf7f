"""Ledger scale (issue 4): does the limit check stay fast when the ledger holds a million rows?

What is measured
    (a) The limit check plus the reservation: `SqliteStore.create_job_with_reservation` called as
        JobService.accept calls it (`windows_at(now)`, `check_limits`), sequentially by one coroutine, with
        limits that do apply (daily, monthly and guild budgets and an active-job cap, all set high enough
        never to refuse; cooldown 0, or consecutive reservations of one member would be refused). Each
        reservation reads the member's running totals, active-job count and last job time in one SELECT,
        inserts the job (RETURNING) and the ledger row (whose trigger updates `spend_totals`), and commits
        with an fsync (WAL, synchronous=FULL). Reported in transactions per second.
    (b) /usage's data: `JobService.usage` (the guild's limit overrides, then `store.usage`: the same one
        SELECT), latency per call over many calls, p50 and p99.
    Both are run against a database holding N ledger rows (1,000,000 by default) and, as the baseline, the
    SAME measurement on an empty database (migrated, same guild limits row) in the same run, back to back,
    alternating which goes first in each repetition. The machine is shared and noisy: every figure is shown
    beside its empty-database baseline with the ratio. For reference the script also times, in the same
    run, the pre-0002 way of finding a member's monthly spend (SUM over the member's ledger rows) against the
    new usage SELECT, both with raw sqlite3 on the big database.

How the big database is built
    A file migrated by SqliteStore itself; then raw sqlite3 (rollback journal, synchronous=OFF, large page
    cache, foreign keys off while loading, one transaction): executemany of the jobs, then executemany of
    the ledger rows in the order they would have been written, so the AFTER INSERT trigger fills
    `spend_totals` exactly as in production; then back to WAL. The data (seeded, reproducible) spreads
    about 340,000 jobs over the last 90 days: one large guild (4,000 members, 60 % of the jobs) and nine
    smaller ones, members' activity Zipf-distributed (s = 1.1) so the busiest members have tens of
    thousands of rows; 92.5 % of jobs succeeded (reserve/release/settle triplets), 6.5 % failed or expired
    (reserve/refund), 1 % succeeded and were credited (plus a grant row), and a few jobs of the last ten
    minutes are still processing (reserve only). Discord-sized ids, realistic URLs and refs. After loading,
    the script checks the row count, the foreign keys and that every `spend_totals` row of the data set's
    guilds equals its recomputation in Python from the ledger (members' totals include grants, the guild's
    leave them out, as migration 0002 says), and reports build time and database size. It stops (exit
    status 1) when a check fails, --quick included.
    (a) and (b) use the busiest members of the large guild (their row counts are printed; the busiest has
    ~96,000 rows, far more than the default limits allow: a deliberate worst case).

Goal
    (a) reservations on the 1M-row database at >= 80 % of the empty-database rate;
    (b) /usage data p99 (and p50) <= 50 ms on the 1M-row database.

    uv run python bench/ledger_scale.py            # 1,000,000 rows; 2,000 tx and 1,000 /usage calls x 3 reps
    uv run python bench/ledger_scale.py --quick    # smoke run: 50,000 rows, 300 tx, 200 calls, 1 rep
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

# Run as `python bench/ledger_scale.py`: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.jobs import JobService
from core.models import Job, Limits, NewJob, QuotaRefusal
from core.quota import check_limits, estimate_micros, windows_at
from core.runware import RunwareClient
from core.settings import Settings
from storage.sqlite import SqliteStore
from storage.sqlite.rows import ACTIVE_SQL

GOAL_RATIO = 0.80
GOAL_USAGE_MS = 50.0
DAY_S = 86400.0
HISTORY_DAYS = 90
PRICE_PER_SECOND_USD = 0.14
# Limits that apply on every reservation, high enough never to refuse (micro-dollars): $1M a day, $10M a
# month per member, $100M a month for the guild, a million jobs at once. Cooldown 0: the benchmark
# reserves for the same few members back to back.
LIMITS = Limits(
    daily_micros=10**12,
    max_active_jobs=10**6,
    monthly_micros=10**13,
    cooldown_s=0.0,
    guild_monthly_micros=10**14,
)
# Guilds: (members, share of all jobs). The first is the large guild the measurements use.
GUILDS: list[tuple[int, float]] = [
    (4000, 0.60),
    (600, 0.12),
    (400, 0.08),
    (300, 0.06),
    (200, 0.045),
    (150, 0.035),
    (100, 0.025),
    (80, 0.015),
    (50, 0.012),
    (30, 0.008),
]
ZIPF_S = 1.1
# Completed job kinds: (name, ledger rows, probability).
KINDS: list[tuple[str, int, float]] = [("settle", 3, 0.925), ("refund", 2, 0.065), ("grant", 4, 0.01)]

JOB_INSERT = (
    "INSERT INTO jobs (id, task_uuid, guild_id, channel_id, user_id, status, audio_seconds, estimate_micros, "
    "cost_micros, output_format, output_quality, image_ref, audio_ref, created_at, updated_at, "
    "submitted_at, next_poll_at, poll_count, finished_at, delivered_at, result_url, nsfw, error_code, "
    "error_message, upload_limit_bytes, channel_nsfw) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
LEDGER_INSERT = (
    "INSERT INTO ledger (guild_id, user_id, job_id, kind, amount_micros, counts_at, created_at, reason) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
GUILD_LIMITS_INSERT = (
    "INSERT INTO guild_limits (guild_id, user_daily_micros, user_monthly_micros, max_active_jobs, "
    "cooldown_s, guild_monthly_micros, log_channel_id, updated_at, updated_by) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The pre-0002 spend check (a SUM over the member's ledger rows in the window), for the reference line.
OLD_SUM_SQL = (
    "SELECT COALESCE(SUM(amount_micros), 0) FROM ledger WHERE guild_id = ? AND user_id = ? AND counts_at >= ?"
)
# The store's usage SELECT (storage/sqlite/statements.py `usage_in`), for the reference line.
USAGE_SQL = (
    "SELECT "
    "(SELECT amount_micros FROM spend_totals WHERE guild_id = ?1 AND user_id = ?2 "
    "  AND period = 'day' AND period_start = ?3), "
    "(SELECT amount_micros FROM spend_totals WHERE guild_id = ?1 AND user_id = ?2 "
    "  AND period = 'month' AND period_start = ?4), "
    "(SELECT amount_micros FROM spend_totals WHERE guild_id = ?1 AND user_id = 0 "
    "  AND period = 'month' AND period_start = ?4), "
    "(SELECT COUNT(*) FROM jobs WHERE guild_id = ?1 AND user_id = ?2 "
    f"  AND status IN ({ACTIVE_SQL})), "
    "(SELECT MAX(created_at) FROM jobs WHERE guild_id = ?1 AND user_id = ?2)"
)


# ---------------------------------------------------------------------------------------- the data set


@dataclass
class Dataset:
    jobs: list[tuple[Any, ...]]
    ledger: list[tuple[Any, ...]]
    guild_ids: list[int]
    # Members of the large guild, busiest first, with their ledger row counts.
    busiest: list[tuple[int, int]]


def snowflake(rng: random.Random) -> int:
    """A Discord-sized id (snowflakes are 17-19 digits)."""
    return rng.randrange(10**17, 2 * 10**18)


def uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def zipf_cum_weights(count: int) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**ZIPF_S) for rank in range(1, count + 1)))


def job_row(
    *,
    common: tuple[int, str, int, int, int],
    refs: tuple[str, str],
    seconds: float,
    estimate: int,
    fmt: str,
    created: float,
    submitted: float,
    status: str,
    cost: int | None = None,
    finished: float | None = None,
    next_poll_at: float | None = None,
    polls: int = 9,
    url: str | None = None,
    error: tuple[str, str] | None = None,
) -> tuple[Any, ...]:
    """One jobs row in JOB_INSERT's column order. Finished jobs were delivered a second after finishing."""
    code, message = error or (None, None)
    delivered = None if finished is None else finished + 1.0
    updated = created if finished is None else finished
    return (
        *common,
        status,
        seconds,
        estimate,
        cost,
        fmt,
        85,
        *refs,
        created,
        updated,
        submitted,
        next_poll_at,
        polls,
        finished,
        delivered,
        url,
        0,
        code,
        message,
        8 * 2**20,
        0,
    )


def build_dataset(rows: int, now: float, seed: int) -> Dataset:
    """`rows` ledger rows (exactly) and their jobs, in the order the bot would have written them."""
    rng = random.Random(seed)
    active_jobs = max(5, rows // 50_000)
    budget = rows - active_jobs
    kinds: list[str] = []
    used = 0
    names, sizes = [k[0] for k in KINDS], {k[0]: k[1] for k in KINDS}
    cum = list(itertools.accumulate(k[2] for k in KINDS))
    while budget - used >= 4:
        kind = names[bisect.bisect_left(cum, rng.random() * cum[-1])]
        kinds.append(kind)
        used += sizes[kind]
    left = budget - used  # 0 to 3 rows still to place
    if left == 1:
        active_jobs += 1
    elif left:
        kinds.append("settle" if left == 3 else "refund")
    completed = len(kinds)
    kinds.extend(["active"] * active_jobs)  # the still-processing jobs are the newest

    guild_ids = [snowflake(rng) for _ in GUILDS]
    members = [[snowflake(rng) for _ in range(size)] for size, _ in GUILDS]
    channels = [[snowflake(rng) for _ in range(5)] for _ in GUILDS]
    member_weights = [zipf_cum_weights(size) for size, _ in GUILDS]
    guild_of = rng.choices(range(len(GUILDS)), weights=[share for _, share in GUILDS], k=len(kinds))

    start = now - HISTORY_DAYS * DAY_S
    completed_times = sorted(rng.uniform(start, now - 900.0) for _ in range(completed))
    active_times = sorted(rng.uniform(now - 600.0, now - 5.0) for _ in range(active_jobs))
    times = completed_times + active_times

    jobs: list[tuple[Any, ...]] = []
    ledger: list[tuple[Any, ...]] = []
    for job_id, (kind, g, created) in enumerate(zip(kinds, guild_of, times, strict=True), start=1):
        guild_id = guild_ids[g]
        user_id = rng.choices(members[g], cum_weights=member_weights[g])[0]
        channel_id = rng.choice(channels[g])
        seconds = round(rng.uniform(3.0, 30.0), 2)
        estimate = estimate_micros(seconds, PRICE_PER_SECOND_USD)
        cost = round(seconds * PRICE_PER_SECOND_USD * 1_000_000)
        fmt = rng.choice(("MP4", "MP4", "MP4", "WEBM"))
        submitted = created + rng.uniform(2.0, 8.0)
        finished = submitted + rng.uniform(40.0, 240.0)
        ledger.append((guild_id, user_id, job_id, "reserve", estimate, created, created, None))
        job = {
            "common": (job_id, uuid4(rng), guild_id, channel_id, user_id),
            "refs": (uuid4(rng), uuid4(rng)),
            "seconds": seconds,
            "estimate": estimate,
            "fmt": fmt,
            "created": created,
            "submitted": submitted,
        }
        if kind == "active":
            jobs.append(job_row(**job, status="processing", next_poll_at=created + 30.0, polls=3))
            continue
        if kind == "refund":
            status = "expired" if rng.random() < 0.3 else "failed"
            message = "The video took too long." if status == "expired" else "Runware could not make it."
            jobs.append(
                job_row(**job, status=status, cost=0, finished=finished, error=("runware_error", message))
            )
            ledger.append((guild_id, user_id, job_id, "refund", -estimate, created, finished, None))
            continue
        url = f"https://vm.runware.ai/video/ws/0.5/vi/{uuid4(rng)}.{fmt.lower()}"
        jobs.append(job_row(**job, status="succeeded", cost=cost, finished=finished, url=url))
        ledger.append((guild_id, user_id, job_id, "release", -estimate, created, finished, None))
        ledger.append((guild_id, user_id, job_id, "settle", cost, created, finished, None))
        if kind == "grant":
            credited = finished + rng.uniform(60.0, 2 * DAY_S)
            ledger.append(
                (guild_id, user_id, job_id, "grant", -cost, created, credited, "video could not be shown")
            )
    ledger.sort(key=lambda row: row[6])  # written in time order, as the bot writes them
    if len(ledger) != rows:
        raise SystemExit(f"generated {len(ledger)} ledger rows, wanted {rows}")
    big = guild_ids[0]
    counts = Counter(row[1] for row in ledger if row[0] == big)
    return Dataset(jobs, ledger, guild_ids, counts.most_common())


# ------------------------------------------------------------------------------------------- databases


async def migrate(path: Path) -> None:
    """A new database file, migrated (WAL) by the store itself."""
    store = await SqliteStore.open(str(path))
    await store.close()


def guild_limits_row(guild_id: int, now: float) -> tuple[Any, ...]:
    """The large guild's admin overrides (the same in the empty and the big database)."""
    return (guild_id, 20_000_000, 200_000_000, 3, 5.0, 5_000_000_000, None, now - 30 * DAY_S, 1)


def load(path: Path, data: Dataset, now: float) -> float:
    """Load the data set into the migrated file at `path`; returns seconds spent in SQLite."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        started = time.perf_counter()
        # The file is new: a rollback journal holds almost nothing, and no fsync until the end.
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("BEGIN IMMEDIATE")
        db.executemany(JOB_INSERT, data.jobs)
        db.executemany(LEDGER_INSERT, data.ledger)
        db.execute(GUILD_LIMITS_INSERT, guild_limits_row(data.guild_ids[0], now))
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode=WAL")
        return time.perf_counter() - started
    finally:
        db.close()


def expected_totals(ledger: Sequence[tuple[Any, ...]]) -> dict[tuple[int, int, str, float], int]:
    """What `spend_totals` must hold for these ledger rows, computed in Python, not by the triggers: per
    member (grants included: a credit gives the member room) and per guild as user 0 (grants left out: a
    credit to a member never lowers what the guild is billed; migration 0002), by the UTC day and month of
    each row's whole `counts_at` second."""
    month_of: dict[int, float] = {}
    expected: Counter[tuple[int, int, str, float]] = Counter()
    for guild_id, user_id, _job, kind, amount, counts_at, _created, _reason in ledger:
        second = math.floor(counts_at)
        day = second - second % 86_400
        month = month_of.get(day)
        if month is None:
            month = month_of[day] = windows_at(float(day)).month_start
        for who in (user_id,) if kind == "grant" else (user_id, 0):
            expected[(guild_id, who, "day", float(day))] += amount
            expected[(guild_id, who, "month", month)] += amount
    return dict(expected)


def verify(path: Path, data: Dataset, rows: int) -> None:
    """The load is what the bot would have written: row count, foreign keys, and every running total of
    the data set's guilds equal to its recomputation from the ledger (the guild's month totals, summed,
    equal the ledger's non-grant rows)."""
    expected = expected_totals(data.ledger)
    with sqlite3.connect(path) as db:
        count = db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
        if count != rows:
            raise SystemExit(f"{count} ledger rows in {path}, wanted {rows}")
        if db.execute("PRAGMA foreign_key_check(ledger)").fetchone() is not None:
            raise SystemExit("a ledger row points at a missing job")
        # Only the data set's guilds: totals kept for anything wider (none today) are not this check's.
        marks = ", ".join("?" * len(data.guild_ids))
        stored = {
            (g, u, p, s): a
            for g, u, p, s, a in db.execute(
                "SELECT guild_id, user_id, period, period_start, amount_micros FROM spend_totals "
                f"WHERE guild_id IN ({marks})",
                data.guild_ids,
            )
        }
        billed = db.execute("SELECT SUM(amount_micros) FROM ledger WHERE kind != 'grant'").fetchone()[0]
    guild_months = sum(a for (_, u, p, _), a in stored.items() if u == 0 and p == "month")
    if guild_months != billed:
        raise SystemExit(
            f"the guilds' month totals in spend_totals add up to {guild_months}, "
            f"the ledger's rows other than grants to {billed}"
        )
    if stored != expected:
        wrong = sorted(k for k in expected.keys() | stored.keys() if stored.get(k) != expected.get(k))
        shown = "; ".join(f"{k}: stored {stored.get(k)}, ledger {expected.get(k)}" for k in wrong[:5])
        raise SystemExit(f"{len(wrong)} spend_totals rows differ from the ledger, e.g. {shown}")


def sizes(path: Path) -> tuple[int, dict[str, int]]:
    """File bytes (database + WAL) and bytes per table with its indexes (dbstat)."""
    total = sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())
    with sqlite3.connect(path) as db:
        tables = dict(db.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"))
        per: Counter[str] = Counter()
        for name, size in db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            per[tables.get(name, name)] += int(size)
    return total, dict(per)


# ------------------------------------------------------------------------------------------ measurements


def new_jobs(count: int, guild_id: int, members: Sequence[int]) -> list[NewJob]:
    return [
        NewJob(
            task_uuid=str(uuid.uuid4()),
            guild_id=guild_id,
            channel_id=2,
            user_id=members[i % len(members)],
            audio_seconds=5.0,
            estimate_micros=700_000,
            output_format="MP4",
            output_quality=85,
            upload_limit_bytes=None,
            channel_nsfw=False,
        )
        for i in range(count)
    ]


async def reserve_rate(path: Path, jobs: list[NewJob]) -> float:
    """(a) Sequential reservations through the store, as JobService.accept makes them. Returns tx/s."""
    store = await SqliteStore.open(str(path))
    try:
        started = time.perf_counter()
        for new in jobs:
            now = time.time()
            created = await store.create_job_with_reservation(
                new,
                LIMITS,
                now,
                windows_at(now),
                lambda usage, new=new, now=now: check_limits(usage, new.estimate_micros, now),
            )
            if isinstance(created, QuotaRefusal) or not isinstance(created, Job):
                raise SystemExit(f"unexpected refusal: {created}")
        return len(jobs) / (time.perf_counter() - started)
    finally:
        await store.close()


def settings() -> Settings:
    return Settings(_env_file=None, discord_token="bench", runware_api_key="bench")  # type: ignore[call-arg]


async def usage_latencies(path: Path, guild_id: int, members: Sequence[int], calls: int) -> list[float]:
    """(b) JobService.usage, one call at a time, for the given members in turn. Returns milliseconds."""
    store = await SqliteStore.open(str(path))
    try:
        # /usage never talks to Runware.
        service = JobService(store, cast(RunwareClient, None), settings())
        spent: list[float] = []
        for i in range(calls):
            started = time.perf_counter()
            usage = await service.usage(guild_id, members[i % len(members)])
            spent.append((time.perf_counter() - started) * 1000.0)
            if usage.limits.daily_micros != 20_000_000:
                raise SystemExit(f"the guild's overrides were not applied: {usage.limits}")
        return spent
    finally:
        await store.close()


def reference_queries(path: Path, guild_id: int, user_id: int, calls: int) -> tuple[float, float]:
    """Median ms, for one member, of the pre-0002 monthly SUM over the ledger and of the store's usage
    SELECT (raw sqlite3, alternating)."""
    windows = windows_at(time.time())
    db = sqlite3.connect(path)
    try:
        old, new = [], []
        for _ in range(calls):
            started = time.perf_counter()
            db.execute(OLD_SUM_SQL, (guild_id, user_id, windows.month_start)).fetchone()
            old.append(time.perf_counter() - started)
            started = time.perf_counter()
            db.execute(USAGE_SQL, (guild_id, user_id, windows.day_start, windows.month_start)).fetchone()
            new.append(time.perf_counter() - started)
        return statistics.median(old) * 1000.0, statistics.median(new) * 1000.0
    finally:
        db.close()


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# ------------------------------------------------------------------------------------------------ driver


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 50,000 rows, 300 tx, 200 calls")
    parser.add_argument("--rows", type=int, default=None, help="ledger rows (default 1,000,000)")
    parser.add_argument("--tx", type=int, default=None, help="reservations per measurement (default 2000)")
    parser.add_argument("--calls", type=int, default=None, help="/usage calls per measurement (default 1000)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3)")
    parser.add_argument("--members", type=int, default=20, help="busiest members the measurements use")
    parser.add_argument("--seed", type=int, default=4, help="seed of the generated data")
    parser.add_argument("--dir", default=None, help="folder for the database files (default: system temp)")
    args = parser.parse_args()
    rows = args.rows or (50_000 if args.quick else 1_000_000)
    tx = args.tx or (300 if args.quick else 2000)
    calls = args.calls or (200 if args.quick else 1000)
    reps = args.reps or (1 if args.quick else 3)

    wall = time.perf_counter()
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-", dir=args.dir) as tmp:
        folder = Path(tmp)
        print(
            f"ledger_scale: {rows:,} ledger rows; {tx:,} reservations and {calls:,} /usage calls x {reps} "
            f"repetitions per database; SQLite {sqlite3.sqlite_version}, WAL + synchronous=FULL, "
            f"{folder}, {os.cpu_count()} CPUs"
        )
        big_path, empty_path = folder / "big.db", folder / "empty.db"

        started = time.perf_counter()
        data = build_dataset(rows, now, args.seed)
        generate_s = time.perf_counter() - started
        asyncio.run(migrate(big_path))
        sqlite_s = load(big_path, data, now)
        build_s = time.perf_counter() - started
        verify(big_path, data, rows)
        size, per_table = sizes(big_path)
        guild_id = data.guild_ids[0]
        chosen = data.busiest[: args.members]
        members = [user_id for user_id, _ in chosen]
        busiest_rows = chosen[0][1]
        jobs_count = len(data.jobs)
        print(
            f"  built {rows:,} ledger rows ({jobs_count:,} jobs, {len(data.guild_ids)} guilds) in "
            f"{build_s:.1f} s: {generate_s:.1f} s generating in Python, {sqlite_s:.1f} s in SQLite "
            f"({rows / sqlite_s:,.0f} ledger rows/s incl. jobs and trigger); checked: counts, foreign keys, "
            "every spend_totals row = the ledger's"
        )
        biggest = sorted(((b, name) for name, b in per_table.items() if b >= 2**16), reverse=True)
        print(
            f"  database {size / 2**20:,.1f} MiB on disk ({size / rows:,.0f} B per ledger row); tables with "
            "their indexes: " + ", ".join(f"{name} {b / 2**20:,.1f} MiB" for b, name in biggest)
        )
        print(
            f"  measured members: the {len(members)} busiest of the large guild, {chosen[-1][1]:,}"
            f"-{chosen[0][1]:,} ledger rows each ({sum(n for _, n in data.busiest):,} rows in that guild)"
        )
        del data

        rates: dict[str, list[float]] = {"empty": [], "big": []}
        ratios: list[float] = []
        latencies: dict[str, list[float]] = {"empty": [], "big": []}
        for rep in range(reps):
            if empty_path.exists():
                for p in (empty_path, Path(f"{empty_path}-wal"), Path(f"{empty_path}-shm")):
                    p.unlink(missing_ok=True)
            asyncio.run(migrate(empty_path))
            with sqlite3.connect(empty_path) as db:
                db.execute(GUILD_LIMITS_INSERT, guild_limits_row(guild_id, now))
            order = [("empty", empty_path), ("big", big_path)]
            if rep % 2:
                order.reverse()
            rep_rate: dict[str, float] = {}
            for name, path in order:
                rep_rate[name] = asyncio.run(reserve_rate(path, new_jobs(tx, guild_id, members)))
                rates[name].append(rep_rate[name])
                latencies[name].extend(asyncio.run(usage_latencies(path, guild_id, members, calls)))
            ratios.append(rep_rate["big"] / rep_rate["empty"])
            print(
                f"  repetition {rep + 1} ({order[0][0]} first): reservations empty "
                f"{rep_rate['empty']:,.0f}/s, {rows:,} rows {rep_rate['big']:,.0f}/s ({ratios[-1]:.2f}x)"
            )
        old_ms, new_ms = reference_queries(big_path, guild_id, members[0], min(calls, 500))

    empty_rate, big_rate = statistics.median(rates["empty"]), statistics.median(rates["big"])
    ratio = statistics.median(ratios)
    p = {name: (percentile(v, 50), percentile(v, 99), max(v)) for name, v in latencies.items()}
    print()
    print(f"{'measurement':<44} {'empty db':>12} {f'{rows:,} rows':>14} {'ratio':>8}")
    print(
        f"{'(a) reservations/s, sequential (median)':<44} {empty_rate:>12,.0f} {big_rate:>14,.0f} "
        f"{ratio:>7.2f}x"
    )
    for index, label in enumerate(("p50", "p99", "max")):
        e, b = p["empty"][index], p["big"][index]
        print(f"{f'(b) /usage data ms, {label}':<44} {e:>12.3f} {b:>14.3f} {b / e:>7.2f}x")
    print()
    print(
        f"reference, busiest member ({busiest_rows:,} ledger rows), {rows:,}-row db, raw sqlite3, median: "
        f"the store's usage SELECT {new_ms:.3f} ms; the pre-0002 monthly SUM over the ledger {old_ms:.3f} ms "
        f"({old_ms / new_ms:.1f}x the SELECT)"
    )
    ok_a = ratio >= GOAL_RATIO
    ok_b = p["big"][1] <= GOAL_USAGE_MS and p["big"][0] <= GOAL_USAGE_MS
    print()
    print(
        f"SUMMARY ledger_scale: {rows:,} ledger rows built in {build_s:.1f} s, {size / 2**20:,.1f} MiB; "
        f"(a) reservations {big_rate:,.0f} tx/s vs {empty_rate:,.0f} tx/s on an empty db ({ratio:.2f}x; "
        f"goal >= {GOAL_RATIO:.2f}x {'MET' if ok_a else 'MISSED'}); (b) /usage p50 {p['big'][0]:.3f} ms, "
        f"p99 {p['big'][1]:.3f} ms vs empty p50 {p['empty'][0]:.3f} ms, p99 {p['empty'][1]:.3f} ms "
        f"({p['big'][1] / p['empty'][1]:.2f}x at p99; goal <= {GOAL_USAGE_MS:.0f} ms "
        f"{'MET' if ok_b else 'MISSED'}); {tx:,} tx and {calls:,} calls x {reps} reps, "
        f"{time.perf_counter() - wall:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
