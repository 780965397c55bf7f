"""PostgreSQL throughput: reservations per second and job claims per second through PostgresStore, each
beside a plain asyncpg loop that runs the very same statements in the same run.

What is measured
    Reservations: `PostgresStore.create_job_with_reservation`, the whole write transaction behind /animate,
        given `core.quota.check_limits` as JobService.accept gives it (at the time of writing: BEGIN; the
        guild's advisory lock; ONE SELECT for the member's usage from the running totals and the jobs
        table; the limit rules; `INSERT INTO jobs … RETURNING`; the ledger INSERT, whose triggers update
        the running totals; COMMIT; and the pool's reset of the connection when it is released).
    Claims: `PostgresStore.claim_due_jobs(owner, now, horizon, 50, lease_until)`, the runner's claim of a
        batch of due jobs (one `WITH … FOR UPDATE SKIP LOCKED` UPDATE … RETURNING), against a backlog of
        queued jobs all due, until the backlog is claimed. Every call claims under an owner name of its
        own (as if each batch were taken by another runner), so a job once claimed is held by someone else
        and is never returned again: the backlog runs out after backlog/50 batches.

How
    Each measurement runs in a fresh schema of the PostgreSQL at TEST_POSTGRES_URL (default
    postgresql://postgres@127.0.0.1:5432/test), migrated by the store, dropped afterwards. Each repetition
    runs, back to back:
      raw        the baseline: asyncpg alone, a plain loop on a pool of the store's size, replaying the
                 store's own statements. Before measuring, the script makes one reservation (one claim)
                 through the store in a scratch schema with a recording stand-in for the store's pool, which
                 records every statement, its parameters and the asyncpg method the store called (execute,
                 fetch, fetchrow, fetchval) inside its one acquire() and transaction(); the raw loop then
                 runs those statements with each job's (each claim's) own values in place of the sample's,
                 and check_limits where the store calls it. So the baseline follows the store whenever its
                 statements change. Before timing, the script logs (asyncpg's query logger, on the
                 connections) what one store call and one replayed call send the server, in two fresh
                 schemas with the same values, and stops unless both sent the very same statements and
                 parameters, the pool's reset included;
      store      the same work through PostgresStore.
    Reservations run sequentially (one coroutine) and from `--concurrency` coroutines sharing one pool,
    over `--guilds` guilds (the money lock is per guild) and `--members` members, with limits that never
    refuse (check_limits still runs on every reservation); and from `--processes` OS processes (spawned,
    a fresh interpreter each, as separate bot processes are), each with a pool of its own and
    `--concurrency // --processes` coroutines, timed from the moment all are connected and told to go to
    the moment the last is done; the raw baseline runs in the same arrangement. Claims run from 1 claimer
    and from `--claimers` concurrent claimers, each on a pool of its own, as several runners would.
    Checks (a failed one stops the script with exit status 1, --quick included): every reservation wrote
    its job and its reserve row, and the servers' monthly running totals equal the sum of the reservations;
    every job of the backlog was claimed exactly once, by the owner whose call returned it (no id returned
    twice, every job's lease_owner that owner's).
    The machine is shared and noisy: each figure is the median of the repetitions, shown beside the raw
    baseline of the same repetition as a ratio.

Goal
    Each store figure ≥ 0.7 of its raw asyncpg baseline (judged in a full run: exit status 1 when missed;
    a --quick run reports it without judging). When PostgreSQL does not answer, the script says so and
    exits 0, or 1 under CI=true.

    uv run python bench/pg_throughput.py            # 3,000 reservations, 10,000-job backlog, 3 repetitions
    uv run python bench/pg_throughput.py --quick    # smoke run: 200 reservations, 1,000 jobs, 1 repetition
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, cast

import asyncpg

# Run as `python bench/pg_throughput.py`: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.models import Job, Limits, NewJob, QuotaRefusal, Usage
from core.quota import check_limits, windows_at
from storage.postgres import PostgresStore

URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
GOAL_RATIO = 0.7
LIMITS = Limits(daily_micros=None, max_active_jobs=None, monthly_micros=None, cooldown_s=0.0)
ESTIMATE_MICROS = 700_000
CLAIM_LIMIT = 50
# One clock for the whole run: every reservation and claim, recorded or measured, is made at NOW.
NOW = time.time()
HORIZON = NOW + 60.0
LEASE_UNTIL = NOW + 600.0
# The recorded calls use values no other parameter can equal, so that replacing them by another call's
# values is unambiguous (the jobs' identity is moved to just below the sample's id first).
SAMPLE_GUILD, SAMPLE_USER, SAMPLE_JOB_ID = 7_000_000_001, 7_000_000_002, 7_000_000_101
SAMPLE_OWNER = f"sample-owner-{uuid.uuid4()}"


class Slot(Enum):
    """A parameter of a recorded statement that takes the replayed call's own value."""

    TASK_UUID = "task_uuid"
    GUILD = "guild_id"
    USER = "user_id"
    JOB_ID = "job_id"
    OWNER = "owner"


# --------------------------------------------------------------------------------------------- schemas


async def postgres_problem() -> str | None:
    """None when the server answers; otherwise why not."""
    try:
        conn = await asyncpg.connect(URL, timeout=3)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        return f"PostgreSQL at {URL} does not answer ({type(error).__name__}: {error})"
    return None


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_schema(label: str) -> AsyncIterator[str]:
    """A new schema, migrated by the store (so every mode starts from the same tables); dropped after."""
    name = f"bench_{label}_{uuid.uuid4().hex[:10]}"
    await admin(f"CREATE SCHEMA {name}")
    try:
        store = await open_store(name)
        await store.close()
        yield name
    finally:
        await admin(f"DROP SCHEMA {name} CASCADE")


def settings(schema: str) -> dict[str, str]:
    return {"search_path": schema}


async def open_store(schema: str) -> PostgresStore:
    """The store as the bot opens it (open_store: the default pool), on `schema`."""
    return await PostgresStore.open(URL, server_settings=settings(schema))


async def open_raw_pool(schema: str, like: PostgresStore) -> asyncpg.Pool:
    """A plain asyncpg pool sized like the store's."""
    pool = store_pool(like)
    return await asyncpg.create_pool(
        URL, min_size=pool.get_min_size(), max_size=pool.get_max_size(), server_settings=settings(schema)
    )


def store_pool(store: PostgresStore) -> asyncpg.Pool:
    return cast(asyncpg.Pool, store._pool)


# ------------------------------------------------------------------- the store's statements, recorded


@dataclass(frozen=True)
class Call:
    method: str  # the asyncpg method the store called
    sql: str
    args: tuple[Any, ...]
    result: Any


class RecordingConnection:
    """Stands in for the pool connection the store acquired: forwards each statement and records it with
    its parameters, the method and what it returned."""

    METHODS = ("execute", "fetch", "fetchrow", "fetchval")

    def __init__(self, conn: Any, calls: list[Call], transactions: list[dict[str, Any]]) -> None:
        self._conn, self._calls, self._transactions = conn, calls, transactions

    def transaction(self, **options: Any) -> Any:
        self._transactions.append(options)
        return self._conn.transaction(**options)

    def __getattr__(self, name: str) -> Any:
        if name not in self.METHODS:
            raise SystemExit(
                f"the store called connection.{name}(), which bench/pg_throughput.py's RecordingConnection "
                "does not record: add it there (and to the replay) so the raw baseline replays it too"
            )

        async def record(sql: str, *args: Any) -> Any:
            result = await getattr(self._conn, name)(sql, *args)
            self._calls.append(Call(name, sql, args, result))
            return result

        return record


class _Acquired:
    """What a stand-in pool's acquire() returns: awaited (then release()) or used with `async with`, as
    asyncpg's own; `wrap` turns the pool's connection into the stand-in's."""

    def __init__(self, pool: asyncpg.Pool, wrap: Any, held: dict[int, Any]) -> None:
        self._pool, self._wrap, self._held = pool, wrap, held
        self._conn: Any = None

    async def _get(self) -> Any:
        raw = await self._pool.acquire()
        self._conn = self._wrap(raw)
        self._held[id(self._conn)] = raw
        return self._conn

    def __await__(self) -> Any:
        return self._get().__await__()

    async def __aenter__(self) -> Any:
        return await self._get()

    async def __aexit__(self, *exc: object) -> None:
        await self._pool.release(self._held.pop(id(self._conn)))


class RecordingPool:
    """Stands in for the store's pool while it makes one call: hands out recording connections."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.acquired = 0
        self._held: dict[int, Any] = {}
        self.calls: list[Call] = []
        self.transactions: list[dict[str, Any]] = []

    def acquire(self) -> _Acquired:
        self.acquired += 1
        return _Acquired(
            self._pool, lambda conn: RecordingConnection(conn, self.calls, self.transactions), self._held
        )

    async def release(self, conn: Any) -> None:
        await self._pool.release(self._held.pop(id(conn)))

    def __getattr__(self, name: str) -> Any:
        raise SystemExit(
            f"the store called pool.{name}() in a measured call, which bench/pg_throughput.py's "
            "RecordingPool does not record: add it there (and to the replay)"
        )


@dataclass(frozen=True)
class Step:
    method: str
    sql: str
    params: tuple[Any, ...]  # a Slot where the replayed call's own value goes

    def bind(self, values: dict[Slot, Any]) -> tuple[Any, ...]:
        return tuple(values[p] if isinstance(p, Slot) else p for p in self.params)


@dataclass(frozen=True)
class Replay:
    """One store call as the raw baseline replays it: one acquire, one transaction, these steps."""

    transaction: dict[str, Any]
    steps: list[Step]
    decide_at: int | None = None  # the limit check runs before this step, as the store runs it
    usage: Usage | None = None  # what the store's limit check was given
    id_at: int | None = None  # the step whose returned row holds the new job's id (column "id")


def slot_of(value: Any, sample: dict[Slot, Any]) -> Any:
    """The Slot a recorded parameter stands for, or the value itself (the same for every call)."""
    for slot, sentinel in sample.items():
        if type(value) is type(sentinel) and value == sentinel:
            return slot
    return value


async def record(
    schema: str, sample: dict[Slot, Any], call: Callable[[PostgresStore], Awaitable[Any]]
) -> tuple[Replay, Any, RecordingPool]:
    """Run `call` on a store of `schema` whose pool records, and turn what it sent into a Replay."""
    store = await open_store(schema)
    try:
        real = store_pool(store)
        recorder = RecordingPool(real)
        store._pool = cast(Any, recorder)
        try:
            result = await call(store)
        finally:
            store._pool = real
    finally:
        await store.close()
    if recorder.acquired != 1 or len(recorder.transactions) != 1 or not recorder.calls:
        raise SystemExit(
            f"the recorded store call acquired {recorder.acquired} connections and opened "
            f"{len(recorder.transactions)} transactions (the replay knows one of each): update "
            "bench/pg_throughput.py's Replay"
        )
    steps = [Step(c.method, c.sql, tuple(slot_of(a, sample) for a in c.args)) for c in recorder.calls]
    return Replay(recorder.transactions[0], steps), result, recorder


def sample_job(**values: Any) -> NewJob:
    fields: dict[str, Any] = {
        "task_uuid": f"sample-{uuid.uuid4()}",
        "guild_id": SAMPLE_GUILD,
        "channel_id": 2,
        "user_id": SAMPLE_USER,
        "audio_seconds": 5.0,
        "estimate_micros": ESTIMATE_MICROS,
        "output_format": "MP4",
        "output_quality": 85,
        "upload_limit_bytes": None,
        "channel_nsfw": False,
    }
    fields.update(values)
    return NewJob(**fields)


async def reserve_through_store(store: PostgresStore, new: NewJob) -> Job:
    # As JobService.accept calls it (see `reserve()` in tests/conftest.py).
    created = await store.create_job_with_reservation(
        new, LIMITS, NOW, windows_at(NOW), lambda usage: check_limits(usage, new.estimate_micros, NOW)
    )
    if not isinstance(created, Job):
        raise SystemExit(f"unexpected refusal: {created}")
    return created


async def record_reservation(schema: str) -> Replay:
    """One reservation through the store in the scratch `schema`, recorded."""
    new = sample_job()
    admin_conn = await asyncpg.connect(URL, server_settings=settings(schema))
    try:
        await admin_conn.execute(
            "SELECT setval(pg_get_serial_sequence('jobs', 'id'), $1::BIGINT)", SAMPLE_JOB_ID - 1
        )
    finally:
        await admin_conn.close()
    seen: list[Usage] = []
    calls_before: list[int] = []
    holder: list[RecordingPool] = []

    async def call(store: PostgresStore) -> Job | QuotaRefusal:
        holder.append(cast(RecordingPool, store._pool))

        def decide(usage: Usage) -> QuotaRefusal | None:
            seen.append(usage)
            calls_before.append(len(holder[0].calls))
            return check_limits(usage, new.estimate_micros, NOW)

        return await store.create_job_with_reservation(new, LIMITS, NOW, windows_at(NOW), decide)

    sample = {
        Slot.TASK_UUID: new.task_uuid,
        Slot.GUILD: SAMPLE_GUILD,
        Slot.USER: SAMPLE_USER,
        Slot.JOB_ID: SAMPLE_JOB_ID,
    }
    replay, created, recorder = await record(schema, sample, call)
    if not isinstance(created, Job) or created.id != SAMPLE_JOB_ID or len(seen) != 1:
        raise SystemExit(f"the recorded reservation did not go as planned: {created}, {len(seen)} checks")
    found = [
        i
        for i, c in enumerate(recorder.calls)
        if c.method == "fetchrow" and c.result is not None and c.result.get("id") == SAMPLE_JOB_ID
    ]
    if not found or any(Slot.JOB_ID in s.params for s in replay.steps[: found[0] + 1]):
        raise SystemExit("no statement of the recorded reservation returned the new job's id before using it")
    return Replay(replay.transaction, replay.steps, calls_before[0], seen[0], found[0])


async def record_claim(schema: str) -> Replay:
    """One claim through the store in the scratch `schema` (which has a backlog), recorded."""

    async def call(store: PostgresStore) -> list[Job]:
        return await store.claim_due_jobs(SAMPLE_OWNER, NOW, HORIZON, CLAIM_LIMIT, LEASE_UNTIL)

    replay, claimed, _ = await record(schema, {Slot.OWNER: SAMPLE_OWNER}, call)
    if not claimed:
        raise SystemExit("the recorded claim claimed nothing from the backlog")
    return replay


# ------------------------------------------------------------------------------------------ raw baseline


async def reserve_raw(pool: asyncpg.Pool, replay: Replay, new: NewJob) -> int:
    """One reservation with asyncpg alone: the store's recorded statements with `new`'s values, and the
    limit check where the store makes it. Returns the job id."""
    values: dict[Slot, Any] = {
        Slot.TASK_UUID: new.task_uuid,
        Slot.GUILD: new.guild_id,
        Slot.USER: new.user_id,
    }
    async with pool.acquire() as conn, conn.transaction(**replay.transaction):
        for index, step in enumerate(replay.steps):
            if index == replay.decide_at:
                assert replay.usage is not None
                refusal = check_limits(replay.usage, new.estimate_micros, NOW)
                if refusal is not None:
                    raise SystemExit(f"unexpected refusal in the raw baseline: {refusal}")
            result = await getattr(conn, step.method)(step.sql, *step.bind(values))
            if index == replay.id_at:
                values[Slot.JOB_ID] = result["id"]
    return int(values[Slot.JOB_ID])


async def claim_raw(pool: asyncpg.Pool, replay: Replay, owner: str) -> list[int]:
    """One claim with asyncpg alone: the store's recorded statement(s) with `owner`. Returns the ids."""
    values = {Slot.OWNER: owner}
    ids: list[int] = []
    async with pool.acquire() as conn, conn.transaction(**replay.transaction):
        for step in replay.steps:
            result = await getattr(conn, step.method)(step.sql, *step.bind(values))
            if step.method == "fetch":
                ids.extend(row["id"] for row in result)
    return ids


# ------------------------------------------------------------------------------------- same statements


class TracingPool:
    """Wraps a pool so that every connection handed out logs what it sends the server (asyncpg's query
    logger, removed at close: the pool's reset on release is logged too)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.sent: list[tuple[str, tuple[Any, ...]]] = []
        self._traced: list[Any] = []
        self._held: dict[int, Any] = {}

    def _log(self, query: Any) -> None:
        self.sent.append((query.query, tuple(query.args or ())))

    def _trace(self, conn: Any) -> Any:
        raw = conn._con
        if raw not in self._traced:
            raw.add_query_logger(self._log)
            self._traced.append(raw)
        return conn

    def acquire(self) -> _Acquired:
        return _Acquired(self._pool, self._trace, self._held)

    async def release(self, conn: Any) -> None:
        await self._pool.release(self._held.pop(id(conn)))

    async def settle(self) -> list[tuple[str, tuple[Any, ...]]]:
        for _ in range(5):  # the logger is called soon after each statement, not during it
            await asyncio.sleep(0)
        for raw in self._traced:
            raw.remove_query_logger(self._log)
        return self.sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


async def traced_store(schema: str, call: Callable[[PostgresStore], Awaitable[Any]]) -> Any:
    store = await open_store(schema)
    try:
        real = store_pool(store)
        tracer = TracingPool(real)
        store._pool = cast(Any, tracer)
        try:
            await call(store)
            return await tracer.settle()
        finally:
            store._pool = real
    finally:
        await store.close()


async def traced_raw(schema: str, call: Callable[[Any], Awaitable[Any]]) -> Any:
    store = await open_store(schema)
    try:
        pool = await open_raw_pool(schema, store)
    finally:
        await store.close()
    try:
        tracer = TracingPool(pool)
        await call(tracer)
        return await tracer.settle()
    finally:
        await pool.close()


def compare(what: str, store_sent: list[Any], raw_sent: list[Any]) -> int:
    if store_sent != raw_sent or not store_sent:
        pairs = list(itertools.zip_longest(store_sent, raw_sent))
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), 0)
        a, b = pairs[first] if pairs else (None, None)
        raise SystemExit(
            f"the raw baseline's replay of the recorded {what} differs from the store's statement "
            f"{first + 1} of {len(store_sent)} ({len(raw_sent)} replayed). The replay takes the store's "
            "statements as recorded and puts the call's own values where the sample's were "
            "(record_*, slot_of): a parameter that depends on the call in another way needs a Slot there.\n"
            f"  store: {a!r}\n  raw:   {b!r}"
        )
    return len(store_sent)


async def check_same_statements(reservation: Replay, claim: Replay) -> tuple[int, int]:
    """Stop unless the raw baseline sends the server exactly what the store sends, for one reservation
    and one claim (same values, two fresh schemas with the same backlog). Returns how many statements
    each sends."""
    new = new_jobs(1, 1, 1)[0]
    owner = "trace-owner"
    async with fresh_schema("trace_store") as s_schema, fresh_schema("trace_raw") as r_schema:
        for schema in (s_schema, r_schema):
            await add_backlog(schema, 2 * CLAIM_LIMIT)
        store_res = await traced_store(s_schema, lambda store: reserve_through_store(store, new))
        raw_res = await traced_raw(r_schema, lambda pool: reserve_raw(pool, reservation, new))
        reservations = compare("reservation", store_res, raw_res)
        store_claim = await traced_store(
            s_schema, lambda store: store.claim_due_jobs(owner, NOW, HORIZON, CLAIM_LIMIT, LEASE_UNTIL)
        )
        raw_claim = await traced_raw(r_schema, lambda pool: claim_raw(pool, claim, owner))
        claims = compare("claim", store_claim, raw_claim)
    return reservations, claims


# ---------------------------------------------------------------------------------------- reservations


def new_jobs(count: int, guilds: int, members: int) -> list[NewJob]:
    """`count` reservations spread round-robin over `guilds` guilds and `members` members."""
    return [
        sample_job(task_uuid=str(uuid.uuid4()), guild_id=1 + i % guilds, user_id=1000 + i % members)
        for i in range(count)
    ]


async def check_reservations(schema: str, count: int) -> None:
    """Every reservation produced one job and one reserve row; the guilds' monthly running totals add up
    to the reservations."""
    conn = await asyncpg.connect(URL, server_settings=settings(schema))
    try:
        jobs = await conn.fetchval("SELECT COUNT(*) FROM jobs")
        reserves = await conn.fetchval("SELECT COUNT(*) FROM ledger WHERE kind = 'reserve'")
        totals = await conn.fetchval(
            "SELECT COALESCE(SUM(amount_micros), 0) FROM spend_totals WHERE user_id = 0 AND period = 'month'"
        )
    finally:
        await conn.close()
    if jobs != count or reserves != count:
        raise SystemExit(f"expected {count} jobs and reserve rows in {schema}, found {jobs} and {reserves}")
    if totals != count * ESTIMATE_MICROS:
        raise SystemExit(f"spend_totals says {totals}, the ledger {count * ESTIMATE_MICROS} in {schema}")


async def run_shares(jobs: list[NewJob], concurrency: int, one: Callable[[NewJob], Awaitable[Any]]) -> float:
    async def worker(share: list[NewJob]) -> None:
        for new in share:
            await one(new)

    shares = [jobs[i::concurrency] for i in range(concurrency)]
    started = time.perf_counter()
    await asyncio.gather(*(worker(share) for share in shares))
    return time.perf_counter() - started


async def reservations_store(schema: str, jobs: list[NewJob], concurrency: int, _: Replay) -> float:
    store = await open_store(schema)
    try:
        return await run_shares(jobs, concurrency, lambda new: reserve_through_store(store, new))
    finally:
        await store.close()


async def reservations_raw(schema: str, jobs: list[NewJob], concurrency: int, replay: Replay) -> float:
    store = await open_store(schema)
    try:
        pool = await open_raw_pool(schema, store)
    finally:
        await store.close()
    try:
        return await run_shares(jobs, concurrency, lambda new: reserve_raw(pool, replay, new))
    finally:
        await pool.close()


# ------------------------------------------------------------------------- reservations, several processes

PROCESS_START_TIMEOUT_S = 120.0  # a spawned process imports the project and opens its pool meanwhile
PROCESS_RUN_TIMEOUT_S = 600.0


def reservation_process(
    pipe: Any, who: str, schema: str, jobs: list[NewJob], width: int, replay: Replay, now: float
) -> None:
    """A spawned OS process: its own pool (the store's, or the raw baseline's sized like it), says "ready",
    waits for "go", reserves its share from `width` coroutines, and sends back how long that took."""
    global NOW
    NOW = now  # the parent's clock, so every process reserves at the same moment as the others

    async def run() -> None:
        store = await open_store(schema)
        if who == "store":
            one: Callable[[NewJob], Awaitable[Any]] = lambda new: reserve_through_store(store, new)  # noqa: E731
            close = store.close
        else:
            try:
                pool = await open_raw_pool(schema, store)
            finally:
                await store.close()
            one = lambda new: reserve_raw(pool, replay, new)  # noqa: E731
            close = pool.close
        try:
            pipe.send("ready")
            if pipe.recv() != "go":
                return
            pipe.send(await run_shares(jobs, width, one))
        finally:
            await close()

    asyncio.run(run())


async def reservations_processes(
    schema: str, jobs: list[NewJob], processes: int, width: int, who: str, replay: Replay
) -> float:
    """`processes` OS processes (spawned: a fresh interpreter each, as separate bot processes are), each
    reserving its share of `jobs` from `width` coroutines on a pool of its own. Timed from the moment all
    are connected and told to go to the moment the last one is done."""
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    pipes, children = [], []
    try:
        for index in range(processes):
            ours, theirs = context.Pipe()
            child = context.Process(
                target=reservation_process,
                args=(theirs, who, schema, jobs[index::processes], width, replay, NOW),
                daemon=True,
            )
            child.start()
            theirs.close()  # a child that dies makes our recv() raise EOFError instead of waiting forever
            pipes.append(ours)
            children.append(child)

        async def receive(pipe: Any, timeout: float) -> Any:
            return await asyncio.wait_for(loop.run_in_executor(None, pipe.recv), timeout)

        for pipe in pipes:
            if await receive(pipe, PROCESS_START_TIMEOUT_S) != "ready":
                raise SystemExit("a reservation process did not start")
        started = time.perf_counter()
        for pipe in pipes:
            pipe.send("go")
        await asyncio.gather(*(receive(pipe, PROCESS_RUN_TIMEOUT_S) for pipe in pipes))
        seconds = time.perf_counter() - started
    except EOFError:
        raise SystemExit("a reservation process exited before it was done") from None
    finally:
        for child in children:
            await loop.run_in_executor(None, child.join, 30.0)
            if child.is_alive():
                child.kill()
    failed = [child.exitcode for child in children if child.exitcode != 0]
    if failed:
        raise SystemExit(f"reservation processes exited with {failed}")
    return seconds


# ---------------------------------------------------------------------------------------------- claims


async def add_backlog(schema: str, count: int) -> None:
    """`count` queued jobs, all due before NOW, nobody holding them."""
    conn = await asyncpg.connect(URL, server_settings=settings(schema))
    try:
        await conn.execute(
            "INSERT INTO jobs (task_uuid, guild_id, channel_id, user_id, status, audio_seconds, "
            "estimate_micros, output_format, output_quality, created_at, updated_at, image_ref, audio_ref, "
            "next_poll_at) SELECT 'backlog-' || g, 1 + g % 10, 2, 1000 + g % 1000, 'queued', 5.0, "
            "$2::BIGINT, "
            "'MP4', 85, $3::DOUBLE PRECISION, $3, 'image', 'audio', $3 + g * 0.001::DOUBLE PRECISION "
            "FROM generate_series(1, $1) AS g",
            count,
            ESTIMATE_MICROS,
            NOW - 3600.0,
        )
        await conn.execute("ANALYZE jobs")
    finally:
        await conn.close()


async def check_claims(schema: str, count: int, claimed: dict[int, list[str]]) -> None:
    """Every job of the backlog claimed exactly once, and held by the owner whose call returned it."""
    twice = {job_id: owners for job_id, owners in claimed.items() if len(owners) != 1}
    if twice:
        some = dict(itertools.islice(twice.items(), 3))
        raise SystemExit(f"{len(twice)} jobs were claimed more than once in {schema}, e.g. {some}")
    conn = await asyncpg.connect(URL, server_settings=settings(schema))
    try:
        rows = await conn.fetch("SELECT id, lease_owner FROM jobs")
    finally:
        await conn.close()
    held = {row["id"]: row["lease_owner"] for row in rows}
    if len(held) != count or len(claimed) != count:
        raise SystemExit(f"{len(claimed)} of the {len(held)} jobs (backlog {count}) were claimed in {schema}")
    wrong = [job_id for job_id, owners in claimed.items() if held.get(job_id) != owners[0]]
    if wrong:
        raise SystemExit(f"{len(wrong)} claimed jobs are held by another owner than their claimer, {schema}")


async def run_claimers(
    claimers: int, claim: Callable[[int, str], Awaitable[list[int]]]
) -> tuple[float, dict[int, list[str]], int]:
    """`claimers` loops claiming until the backlog is empty. Returns seconds, {job id: owners}, calls."""
    claimed: dict[int, list[str]] = {}
    calls = 0

    async def claimer(index: int) -> None:
        nonlocal calls
        for batch in itertools.count():
            owner = f"claimer-{index}-batch-{batch}"
            ids = await claim(index, owner)
            calls += 1
            for job_id in ids:
                claimed.setdefault(job_id, []).append(owner)
            if not ids:
                return

    started = time.perf_counter()
    await asyncio.gather(*(claimer(i) for i in range(claimers)))
    return time.perf_counter() - started, claimed, calls


async def claims_store(schema: str, claimers: int, _: Replay) -> tuple[float, dict[int, list[str]], int]:
    stores = [await open_store(schema) for _ in range(claimers)]
    try:

        async def claim(index: int, owner: str) -> list[int]:
            jobs = await stores[index].claim_due_jobs(owner, NOW, HORIZON, CLAIM_LIMIT, LEASE_UNTIL)
            return [job.id for job in jobs]

        return await run_claimers(claimers, claim)
    finally:
        for store in stores:
            await store.close()


async def claims_raw(schema: str, claimers: int, replay: Replay) -> tuple[float, dict[int, list[str]], int]:
    store = await open_store(schema)
    try:
        pools = [await open_raw_pool(schema, store) for _ in range(claimers)]
    finally:
        await store.close()
    try:
        return await run_claimers(claimers, lambda index, owner: claim_raw(pools[index], replay, owner))
    finally:
        for pool in pools:
            await pool.close()


# ------------------------------------------------------------------------------------------------ driver


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Figures:
    rates: list[float]
    ratios: list[float]


async def main_async(args: argparse.Namespace, tx: int, backlog: int, reps: int) -> int:
    problem = await postgres_problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            print(f"pg_throughput: {problem}; CI=true requires it", file=sys.stderr)
            return 1
        print(f"pg_throughput: skipped: {problem}")
        return 0
    wall = time.perf_counter()
    conn = await asyncpg.connect(URL)
    try:
        version = await conn.fetchval("SHOW server_version")
        sync = await conn.fetchval("SHOW synchronous_commit")
        fsync = await conn.fetchval("SHOW fsync")
    finally:
        await conn.close()
    print(
        f"pg_throughput: {tx} reservations ({args.guilds} guilds, {args.members} members) and a backlog of "
        f"{backlog} due jobs claimed {CLAIM_LIMIT} at a time, x {reps} repetitions; PostgreSQL {version} "
        f"(synchronous_commit={sync}, fsync={fsync}), asyncpg {asyncpg.__version__}, {os.cpu_count()} CPUs"
    )
    async with fresh_schema("recorded") as scratch:
        reservation = await record_reservation(scratch)
        await add_backlog(scratch, 2 * CLAIM_LIMIT)
        claim = await record_claim(scratch)
    n_res, n_claim = await check_same_statements(reservation, claim)
    print(
        f"  checked: one raw-baseline reservation sends the server the same {n_res} statements with the same "
        f"parameters as the store's (BEGIN to COMMIT and the pool's reset); one claim the same {n_claim}"
    )

    conc, claimers, procs = args.concurrency, args.claimers, args.processes
    per_process = max(1, conc // procs)
    pairs = [
        ("reservations, sequential", "res", 1),
        (f"reservations, {conc} concurrent", "res", conc),
        (f"reservations, {procs} processes x {per_process}", "procs", per_process),
        ("claims, 1 claimer", "claim", 1),
        (f"claims, {claimers} claimers", "claim", claimers),
    ]
    figures: dict[str, Figures] = {}
    for name, _, _ in pairs:
        figures[f"raw {name}"] = Figures([], [])
        figures[f"store {name}"] = Figures([], [])
    for rep in range(reps):
        line = []
        for name, kind, width in pairs:
            rates: dict[str, float] = {}
            # Alternate which goes first, so neither always meets a warmer (or busier) server.
            for who in ("raw", "store") if rep % 2 == 0 else ("store", "raw"):
                async with fresh_schema(f"{kind}_{who}") as schema:
                    if kind == "res":
                        jobs = new_jobs(tx, args.guilds, args.members)
                        runner = reservations_raw if who == "raw" else reservations_store
                        seconds = await runner(schema, jobs, width, reservation)
                        await check_reservations(schema, tx)
                        rates[who] = tx / seconds
                    elif kind == "procs":
                        jobs = new_jobs(tx, args.guilds, args.members)
                        seconds = await reservations_processes(schema, jobs, procs, width, who, reservation)
                        await check_reservations(schema, tx)
                        rates[who] = tx / seconds
                    else:
                        await add_backlog(schema, backlog)
                        claimer = claims_raw if who == "raw" else claims_store
                        seconds, claimed, _calls = await claimer(schema, width, claim)
                        await check_claims(schema, backlog, claimed)
                        rates[who] = backlog / seconds
            for who in ("raw", "store"):
                figures[f"{who} {name}"].rates.append(rates[who])
                figures[f"{who} {name}"].ratios.append(rates[who] / rates["raw"])
            line.append(f"{name}: raw {rates['raw']:,.0f}/s store {rates['store']:,.0f}/s")
        print(f"  repetition {rep + 1}: " + "; ".join(line))

    print()
    print(f"{'mode':<40} {'per s (median)':>14} {'min':>9} {'max':>9} {'vs raw (median)':>16}")
    for name, fig in figures.items():
        print(
            f"{name:<40} {median(fig.rates):>14,.0f} {min(fig.rates):>9,.0f} {max(fig.rates):>9,.0f} "
            f"{median(fig.ratios):>15.2f}x"
        )
    summary = []
    missed = []
    for name, _, _ in pairs:
        store, raw = figures[f"store {name}"], figures[f"raw {name}"]
        ratio = median(store.ratios)
        if ratio < GOAL_RATIO:
            missed.append(name)
        summary.append(
            f"{name} {median(store.rates):,.0f}/s vs raw {median(raw.rates):,.0f}/s ({ratio:.2f}x)"
        )
    verdict = "MET" if not missed else "MISSED for " + ", ".join(missed)
    judged = " (not judged in --quick)" if args.quick else ""
    print()
    print(
        f"SUMMARY pg_throughput: {'; '.join(summary)}; goal >= {GOAL_RATIO}x raw {verdict}{judged}; "
        f"claims per second = jobs claimed per second, {CLAIM_LIMIT} per call; "
        f"{tx} reservations, backlog {backlog}, x {reps} reps, {time.perf_counter() - wall:.1f} s"
    )
    return 0 if not missed or args.quick else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 reservations, 1,000 jobs, 1 rep")
    parser.add_argument("--tx", type=int, default=None, help="reservations per measurement (default 3000)")
    parser.add_argument("--backlog", type=int, default=None, help="due jobs to claim (default 10000)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3)")
    parser.add_argument("--concurrency", type=int, default=50, help="coroutines reserving at once")
    parser.add_argument("--claimers", type=int, default=4, help="concurrent claimers (a pool each)")
    parser.add_argument(
        "--processes",
        type=int,
        default=4,
        help="OS processes reserving at once (a pool each), sharing --concurrency's coroutines",
    )
    parser.add_argument("--guilds", type=int, default=10, help="guilds the reservations are spread over")
    parser.add_argument("--members", type=int, default=1000, help="members the reservations are spread over")
    args = parser.parse_args()
    tx = args.tx or (200 if args.quick else 3000)
    backlog = args.backlog or (1000 if args.quick else 10_000)
    reps = args.reps or (1 if args.quick else 3)
    return asyncio.run(main_async(args, tx, backlog, reps))


if __name__ == "__main__":
    raise SystemExit(main())
