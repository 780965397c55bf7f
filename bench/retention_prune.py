"""How long the AUDIT_RETENTION_DAYS pass makes other writes wait.

Method
    A SQLite database (the bot's schema) with `--jobs` jobs spread over 400 days, each with its file
    hashes and one audit row. A retention pass to `--days` days is run while another task writes a small
    row every millisecond through the same store (as reservations would), and the longest wait of those
    writes is recorded. Measured twice on fresh copies of the same database: the store's batched prune,
    and the same statements in one transaction (the first design), as the baseline.

    After each pass the script checks that it forgot exactly the audit rows and file hashes older than
    the retention and kept the rest; a failed check stops it (exit status 1), --quick included.

Goal
    No write waits more than 100 ms behind a retention pass, however much it removes. The exit status is
    1 when the goal is missed, except on a --quick run (a smoke run on any machine reports it).

    uv run python bench/retention_prune.py                 # 300,000 jobs, 30-day retention
    uv run python bench/retention_prune.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.sqlite import SqliteStore

DAY = 86_400.0
GOAL_MAX_WAIT_MS = 100.0


def build(path: Path, jobs: int, now: float) -> None:
    """The schema, then `jobs` jobs over 400 days, each with hashes and one audit row."""
    asyncio.run(_migrate(path))
    db = sqlite3.connect(path)
    span = 400 * DAY
    rows = [
        (
            f"t{i}",
            1,
            2,
            3,
            "succeeded",
            3.0,
            300_000,
            "MP4",
            85,
            now - span + i * span / jobs,
            "a" * 64,
            "b" * 64,
        )
        for i in range(jobs)
    ]
    db.executemany(
        "INSERT INTO jobs (task_uuid, guild_id, channel_id, user_id, status, audio_seconds, estimate_micros, "
        "output_format, output_quality, created_at, updated_at, image_sha256, audio_sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*r[:10], r[9], r[10], r[11]) for r in rows],
    )
    db.executemany(
        "INSERT INTO audit_log (guild_id, actor_id, action, detail, created_at, job_id) "
        "VALUES (1, 2, 'job.report', '{}', ?, ?)",
        [(r[9], i + 1) for i, r in enumerate(rows)],
    )
    db.commit()
    db.close()


async def _migrate(path: Path) -> None:
    await (await SqliteStore.open(str(path))).close()


async def one_transaction(store: SqliteStore, before: float, now: float) -> None:
    """The first design: every statement in one write transaction."""
    async with store._write() as db:
        await db.execute("DELETE FROM audit_log WHERE created_at < ?", (before,))
        await db.execute("DELETE FROM reports WHERE created_at < ?", (before,))
        await db.execute(
            "UPDATE jobs SET image_sha256 = NULL, audio_sha256 = NULL WHERE created_at < ? "
            "AND image_sha256 IS NOT NULL",
            (before,),
        )


def check_pruned(path: Path, source: Path, before: float, name: str) -> None:
    """Stop unless the pass forgot exactly what is older than `before`: no audit row and no file hash
    before it, every newer one kept (as in the untouched source database)."""

    def counts(db_path: Path) -> tuple[int, int, int, int]:
        with sqlite3.connect(db_path) as db:
            row = db.execute(
                "SELECT (SELECT COUNT(*) FROM audit_log WHERE created_at < ?1), "
                "(SELECT COUNT(*) FROM audit_log WHERE created_at >= ?1), "
                "(SELECT COUNT(*) FROM jobs WHERE image_sha256 IS NOT NULL AND created_at < ?1), "
                "(SELECT COUNT(*) FROM jobs WHERE image_sha256 IS NOT NULL AND created_at >= ?1)",
                (before,),
            ).fetchone()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    old_audit, new_audit, old_hashes, new_hashes = counts(path)
    _, kept_audit, had_hashes, kept_hashes = counts(source)
    if old_audit or old_hashes or new_audit != kept_audit or new_hashes != kept_hashes or not had_hashes:
        raise SystemExit(
            f"{name}: after the pass {old_audit} old audit rows and {old_hashes} old file hashes remain, "
            f"{new_audit} of {kept_audit} newer audit rows and {new_hashes} of {kept_hashes} newer hashes"
        )


async def measure(
    path: Path, prune: Callable[[SqliteStore, float, float], Awaitable[object]], days: int
) -> tuple[float, float, int, float]:
    """(prune seconds, longest wait of a concurrent write in ms, writes done, the cutoff) for one pass."""
    store = await SqliteStore.open(str(path))
    now = time.time()
    waits: list[float] = []
    done = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not done.is_set():
            started = time.perf_counter()
            await store.set_state("bench", str(n))
            waits.append(time.perf_counter() - started)
            n += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    await prune(store, now - days * DAY, now)
    elapsed = time.perf_counter() - started
    done.set()
    await task
    await store.close()
    return elapsed, max(waits) * 1000, len(waits), now - days * DAY


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="30,000 jobs; the goal is reported, not judged")
    args = parser.parse_args()
    jobs = 30_000 if args.quick else args.jobs
    with tempfile.TemporaryDirectory(prefix="prune-bench-") as tmp:
        source = Path(tmp) / "source.db"
        build(source, jobs, time.time())
        results: dict[str, tuple[float, float, int]] = {}
        for name, prune in (
            ("batched (the store)", lambda s, b, n: s.prune(b, n)),
            ("one transaction (baseline)", one_transaction),
        ):
            copy = Path(tmp) / f"{len(results)}.db"
            shutil.copy(source, copy)
            elapsed, worst, writes, before = asyncio.run(measure(copy, prune, args.days))
            results[name] = (elapsed, worst, writes)
            check_pruned(copy, source, before, name)
    print(f"{jobs:,} jobs over 400 days, retention {args.days} days (removes ~{(400 - args.days) / 400:.0%})")
    for name, (elapsed, worst, writes) in results.items():
        print(
            f"  {name:28s} pass {elapsed * 1000:7.0f} ms | "
            f"longest wait of a concurrent write {worst:7.1f} ms ({writes} writes)"
        )
    batched = results["batched (the store)"][1]
    baseline = results["one transaction (baseline)"][1]
    met = batched <= GOAL_MAX_WAIT_MS
    print(
        f"goal: longest wait ≤ {GOAL_MAX_WAIT_MS:.0f} ms: {'MET' if met else 'MISSED'} "
        f"({batched:.1f} ms vs {baseline:.1f} ms in one transaction, {batched / baseline:.2f}×)"
    )
    # A smoke run (CI, any machine) judges the checks only; the timing goal is the full run's.
    return 0 if met or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
