"""What one GET /metrics costs on a database with many jobs, counted at every scrape or cached.

Method
    A database of the bot's schema with `--jobs` jobs (90 % succeeded, the rest spread over the other
    statuses): a SQLite file, and a fresh schema of the PostgreSQL at TEST_POSTGRES_URL when it answers.
    The route is served as the bot serves it (web/metrics.py on web/server.py, loopback) and scraped
    `--scrapes` times in a row over real HTTP, twice: with the jobs gauge counted at every scrape (the
    design before, the baseline) and with CachedJobCounts (JOB_COUNTS_MAX_AGE_S), as the bot runs it. The
    scrapes of one run fall within the cache's interval, so the cached run counts once (its first scrape)
    and the rest show what a scrape costs without a count; both are reported.

    Each run checks that every scrape showed the whole table (the gauge's sum is `--jobs`, each status
    its number) and that the cached run counted once; a failed check stops the script (exit status 1),
    --quick included.

Goal
    A cached scrape costs at most a fifth of a counted one at 100,000 jobs (reported, not judged, on a
    --quick run).

    uv run python bench/metrics_scrape.py              # 100,000 jobs, 50 scrapes
    uv run python bench/metrics_scrape.py --quick      # 10,000 jobs, 10 scrapes
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.ports import Store
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from web.metrics import JOB_STATUSES, CachedJobCounts, Metrics, add_metrics_route
from web.server import HttpServer

URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
GOAL_RATIO = 0.2
# Status of job i: mostly succeeded, as a database that has run for a while.
STATUS_SQL = (
    "CASE WHEN i % 10 <> 0 THEN 'succeeded' ELSE "
    "(ARRAY['uploading','queued','submitting','processing','failed','expired','succeeded'])"
    "[(i / 10) % 7 + 1] END"
)
SQLITE_STATUS_SQL = (
    "CASE WHEN i % 10 <> 0 THEN 'succeeded' ELSE "
    "CASE (i / 10) % 7 WHEN 0 THEN 'uploading' WHEN 1 THEN 'queued' WHEN 2 THEN 'submitting' "
    "WHEN 3 THEN 'processing' WHEN 4 THEN 'failed' WHEN 5 THEN 'expired' ELSE 'succeeded' END END"
)
COLUMNS = (
    "task_uuid, guild_id, channel_id, user_id, status, audio_seconds, estimate_micros, output_format, "
    "output_quality, created_at, updated_at"
)


def expected(jobs: int) -> dict[str, int]:
    order = ["uploading", "queued", "submitting", "processing", "failed", "expired", "succeeded"]
    counts = dict.fromkeys(JOB_STATUSES, 0)
    for i in range(1, jobs + 1):
        counts["succeeded" if i % 10 else order[(i // 10) % 7]] += 1
    return counts


async def build_sqlite(path: Path, jobs: int) -> None:
    await (await SqliteStore.open(str(path))).close()
    import sqlite3

    db = sqlite3.connect(path)
    db.execute(
        f"INSERT INTO jobs ({COLUMNS}) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        f"WHERE i < ?) SELECT 't' || i, 1 + i % 10, 2, 1000 + i % 1000, {SQLITE_STATUS_SQL}, 3.0, 300000, "
        "'MP4', 85, 1000.0 + i, 1000.0 + i FROM n",
        (jobs,),
    )
    db.commit()
    db.close()


async def build_postgres(schema: str, jobs: int) -> None:
    await (await PostgresStore.open(URL, server_settings={"search_path": schema})).close()
    conn = await asyncpg.connect(URL, server_settings={"search_path": schema})
    try:
        await conn.execute(
            f"INSERT INTO jobs ({COLUMNS}) SELECT 't' || i, 1 + i % 10, 2, 1000 + i % 1000, {STATUS_SQL}, "
            "3.0, 300000, 'MP4', 85, 1000.0 + i, 1000.0 + i FROM generate_series(1, $1) AS i",
            jobs,
        )
        await conn.execute("VACUUM ANALYZE jobs")
    finally:
        await conn.close()


async def scrapes(store: Store, cached: bool, count: int, jobs: int) -> tuple[list[float], int]:
    """`count` scrapes over HTTP: each one's duration (ms) and how many job counts were read."""
    reads = 0

    async def read() -> dict[str, int]:
        nonlocal reads
        reads += 1
        return await store.count_jobs_by_status()

    job_counts: Callable[[], Awaitable[dict[str, int]]] = CachedJobCounts(read) if cached else read
    server = HttpServer("127.0.0.1", 0)
    add_metrics_route(server.app, Metrics(), job_counts)
    await server.start()
    want = {status: float(n) for status, n in expected(jobs).items()}
    times: list[float] = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(count):
                start = time.perf_counter()
                async with http.get(server.url + "/metrics") as answer:
                    text = await answer.text()
                times.append((time.perf_counter() - start) * 1000)
                shown = {
                    s.labels["status"]: s.value
                    for family in text_string_to_metric_families(text)
                    for s in family.samples
                    if s.name == "ventriloquist_jobs"
                }
                if shown != want:
                    raise SystemExit(f"check failed: the gauge showed {shown}, the table holds {want}")
    finally:
        await server.stop()
    return times, reads


def report(backend: str, jobs: int, runs: dict[bool, tuple[list[float], int]]) -> bool:
    counted, counted_reads = runs[False]
    cached, cached_reads = runs[True]
    if counted_reads != len(counted) or cached_reads != 1:
        raise SystemExit(f"check failed: {counted_reads} and {cached_reads} counts read")
    base = statistics.median(counted)
    after = statistics.median(cached[1:])
    print(
        f"{backend:10s} {jobs:,} jobs | counted at every scrape: p50 {base:.2f} ms, "
        f"max {max(counted):.2f} ms | cached: first {cached[0]:.2f} ms (the count), "
        f"then p50 {after:.2f} ms, max {max(cached[1:]):.2f} ms"
        f" | {after / base:.3f}×"
    )
    return after / base <= GOAL_RATIO


async def run(jobs: int, count: int) -> bool:
    met = True
    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as tmp:
        path = Path(tmp) / "bot.db"
        await build_sqlite(path, jobs)
        store: Store = await SqliteStore.open(str(path))
        try:
            met &= report("SQLite", jobs, {c: await scrapes(store, c, count, jobs) for c in (False, True)})
        finally:
            await store.close()
    try:
        admin = await asyncpg.connect(URL)
    except (OSError, asyncpg.PostgresError) as error:
        print(f"PostgreSQL skipped ({type(error).__name__})")
        return met
    schema = f"bench_metrics_{uuid.uuid4().hex[:10]}"
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        await build_postgres(schema, jobs)
        store = await PostgresStore.open(URL, server_settings={"search_path": schema})
        try:
            met &= report(
                "PostgreSQL", jobs, {c: await scrapes(store, c, count, jobs) for c in (False, True)}
            )
        finally:
            await store.close()
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="10,000 jobs, 10 scrapes; the goal is reported")
    args = parser.parse_args()
    jobs, count = (10_000, 10) if args.quick else (args.jobs, args.scrapes)
    met = asyncio.run(run(jobs, count))
    print(f"goal: a cached scrape ≤ {GOAL_RATIO}× a counted one: {'MET' if met else 'MISSED'}")
    return 0 if met or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
