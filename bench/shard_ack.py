"""Acknowledgement latency with two shard processes beside one process, on one PostgreSQL database.

What is measured
    As bench/ack_latency.py: for each of N simultaneous /animate (default 200), from the moment the fake
    Discord writes the INTERACTION_CREATE frame to the moment it receives that interaction's defer, both
    stamped in this process (ack_latency's TimedDiscord). Reported: p50, p99 (nearest rank) and max in
    milliseconds, late callbacks (after 3 s, refused, or missing: must be 0), and the time until every
    member got the "accepted" followup.

How
    Two guilds, one on each shard of two ((guild_id >> 22) % 2 is 0 for one and 1 for the other); the N
    interactions alternate between them (N/2 each, N different members, each with its own attachments).
    The fake Discord (tests/fakes/discord) sends a guild's events only to the session that identified
    with that guild's shard. Per repetition, two arrangements, each against a fresh fake Discord, a fresh
    FakeRunware and a fresh schema of the PostgreSQL at TEST_POSTGRES_URL (migrated by the store; consent
    not asked in either guild), alternating which goes first:
      one process   `python bot.py` without SHARD_COUNT (one gateway connection for both guilds), as a
                    one-process installation runs;
      two processes two `python bot.py` with SHARD_COUNT=2 and SHARD_IDS=0 / SHARD_IDS=1 on the same schema,
                    each serving one guild's half of the burst.
    Each process identifies, then one untimed warm-up /animate per guild waits for its "accepted"
    followup, then SETTLE_S, then the burst (`asyncio.gather` of every send). The machine has 2 cores: two
    bot processes may use both, while the fakes and PostgreSQL run on the same cores. Where the time goes:
    each bot process's event-loop thread from the first send to the last defer, on a CPU and runnable but
    waiting for one (Linux's schedstat, as ack_latency).

Checks (exit status 1, --quick included): no late callback, every callback a defer, every member
accepted, no bot process failed. The p99 goal of ack_latency.py (50 ms) is reported, not judged here; the
figure is the ratio two/one. When PostgreSQL does not answer, the script says so and exits 0 (1 under
CI=true).

    uv run python bench/shard_ack.py              # 200 interactions, 3 repetitions
    uv run python bench/shard_ack.py --quick      # smoke run: 20 interactions, 1 repetition
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as `python bench/shard_ack.py`: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ack_latency import (
    CALLBACKS_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    LATE_S,
    BotProcess,
    CpuSample,
    Media,
    Options,
    TimedDiscord,
    make_animate,
    percentile,
)
from bench.pg_throughput import URL, fresh_schema, postgres_problem
from core.models import GuildSettingsPatch
from storage.postgres import PostgresStore
from tests import media_factory as media
from tests.fakes.discord import CALLBACK_DEFERRED_MESSAGE, DEFAULT_USER_ID, text_channel
from tests.fakes.discord.gateway import shard_of
from tests.fakes.runware import FakeRunware

ROOT = Path(__file__).resolve().parent.parent
SHARDS = 2
# Two guilds whose ids differ in bit 22: (id >> 22) % 2 puts them on shards 0 and 1.
GUILDS = (310_000_000_000_000_000, 310_000_000_000_000_000 + (1 << 22))
ACCEPTED_TIMEOUT_S = 300.0
SETTLE_S = 2.5  # as ack_latency: past discord.py's guild_ready_timeout (2 s) and on_ready
FIRST_MEMBER_ID = DEFAULT_USER_ID + 1
WARMUP_USER_ID = DEFAULT_USER_ID + 100_000


def channel_of(guild_id: int) -> int:
    return guild_id + 11


@dataclass
class Result:
    """One burst of one arrangement."""

    arrangement: str
    latencies_s: list[float]
    late: int
    all_accepted_s: float
    accepted: int
    per_shard_p99_ms: dict[int, float] = field(default_factory=dict)
    # CPU from the first send to the last defer: each bot process's (CpuSample), and the window itself.
    cpu: list[CpuSample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_s, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_s, 99) * 1000


def animate(fake: TimedDiscord, assets: Media, user_id: int, guild_id: int) -> dict[str, Any]:
    """One /animate in `guild_id` by `user_id` with its own two attachments, registered; its payload."""
    return make_animate(fake, assets, user_id, guild_id=guild_id, channel_id=channel_of(guild_id))


async def no_consent(schema: str) -> None:
    """The burst times acknowledgements: neither guild asks its new members for consent first."""
    store = await PostgresStore.open(URL, server_settings={"search_path": schema})
    try:
        for guild_id in GUILDS:
            await store.update_guild_settings(
                guild_id, GuildSettingsPatch(consent_required=False), 0, time.time()
            )
    finally:
        await store.close()


def database_url(schema: str) -> str:
    """TEST_POSTGRES_URL narrowed to `schema` (asyncpg passes the query parameter as a session setting)."""
    return f"{URL}{'&' if '?' in URL else '?'}search_path={schema}"


@contextlib.asynccontextmanager
async def bots(
    fake: TimedDiscord, runware: FakeRunware, tmp: Path, schema: str, shard_ids: list[int | None]
) -> AsyncIterator[list[BotProcess]]:
    """One `python bot.py` per entry of `shard_ids` (None: no SHARD_COUNT), started; stopped on exit."""
    procs = []
    opts = Options(count=0, backlog=fake.listen_backlog, collect_first=True)
    for shard in shard_ids:
        name = "bot" if shard is None else f"shard{shard}"
        proc = BotProcess(name, ROOT / "bot.py", tmp, fake, runware, opts)
        proc.env["DATABASE_URL"] = database_url(schema)
        if shard is not None:
            proc.env["SHARD_COUNT"] = str(SHARDS)
            proc.env["SHARD_IDS"] = str(shard)
        procs.append(proc)
    try:
        for proc in procs:
            await proc.start()
        yield procs
    finally:
        for proc in procs:
            await proc.stop()


async def wait_connected(fake: TimedDiscord, procs: list[BotProcess]) -> None:
    """Until every process identified and has its gateway socket open (READY follows at once)."""
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        while len(fake.identify_payloads) < len(procs) or fake.connected_sessions < len(procs):
            for proc in procs:
                if proc.exited():
                    raise RuntimeError(f"{proc.name} exited while starting:\n{proc.log_tail()}")
            await asyncio.sleep(0.05)
        await fake.wait_for_ready(CONNECT_TIMEOUT_S)


async def measure(arrangement: str, assets: Media, count: int) -> Result:
    """One arrangement ("one process" or "two processes") against fresh fakes and a fresh schema."""
    shard_ids: list[int | None] = [None] if arrangement == "one process" else list(range(SHARDS))
    with tempfile.TemporaryDirectory(prefix="shard-ack-") as tmp_name:
        async with contextlib.AsyncExitStack() as stack:
            fake = await stack.enter_async_context(TimedDiscord())
            for guild_id in GUILDS:
                fake.add_guild(
                    guild_id,
                    f"Shard {shard_of(guild_id, SHARDS)} guild",
                    premium_tier=0,
                    channels=[text_channel(channel_of(guild_id), "general")],
                )
            runware = await stack.enter_async_context(FakeRunware(polls_to_finish=2))
            schema = await stack.enter_async_context(fresh_schema("shard_ack"))
            await no_consent(schema)
            procs = await stack.enter_async_context(bots(fake, runware, Path(tmp_name), schema, shard_ids))
            await wait_connected(fake, procs)
            result = await burst(fake, assets, count, arrangement, [p.pid for p in procs])
            for proc in procs:
                if proc.exited() and proc.proc is not None and proc.proc.returncode != 0:
                    result.notes.append(f"{proc.name} exited with {proc.proc.returncode}:\n{proc.log_tail()}")
            return result


async def burst(
    fake: TimedDiscord, assets: Media, count: int, arrangement: str, pids: list[int | None]
) -> Result:
    """A warm-up /animate per guild (until accepted), then `count` at once over both guilds."""
    for index, guild_id in enumerate(GUILDS):
        warm = animate(fake, assets, WARMUP_USER_ID + index, guild_id)
        await fake.send_interaction(warm)
        await fake.wait_for(lambda w=warm: bool(fake.followup_texts(int(w["id"]))), ACCEPTED_TIMEOUT_S)
    await asyncio.sleep(SETTLE_S)

    payloads = [animate(fake, assets, FIRST_MEMBER_ID + i, GUILDS[i % len(GUILDS)]) for i in range(count)]
    ids = [int(p["id"]) for p in payloads]
    gc.collect()  # this process only (the fakes), as ack_latency
    cpu_before = [CpuSample.take(pid) for pid in pids]
    started = time.perf_counter()
    await asyncio.gather(*(fake.send_interaction(p) for p in payloads))
    await fake.wait_for_callbacks(ids, CALLBACKS_TIMEOUT_S)
    cpu_after = [CpuSample.take(pid) for pid in pids]
    cpu = [a - b for a, b in zip(cpu_after, cpu_before, strict=True) if a is not None and b is not None]
    notes = []
    try:
        await fake.wait_for(lambda: all(fake.followup_texts(i) for i in ids), ACCEPTED_TIMEOUT_S)
    except TimeoutError:
        notes.append("not every member got a followup")
    all_accepted_s = time.perf_counter() - started

    def latency(i: int) -> float:
        return fake.callback_at[i] - fake.sent_at[i]

    answered = [i for i in ids if i in fake.callback_at]
    late = sum(
        1 for i in ids if i not in fake.callback_at or fake.callback_status[i] != 200 or latency(i) > LATE_S
    )
    not_defers = [i for i in answered if fake.interaction(i).callback_type != CALLBACK_DEFERRED_MESSAGE]
    if not_defers:
        notes.append(f"{len(not_defers)} callbacks were not a defer (type {CALLBACK_DEFERRED_MESSAGE})")
    texts = [fake.followup_texts(i) for i in ids]
    refused = [t[0] for t in texts if t and "accepted" not in t[0]]
    if refused:
        notes.append(f"{len(refused)} refused, e.g. {refused[0][:120]!r}")
    per_shard = {
        shard_of(guild_id, SHARDS): percentile(
            [
                latency(i)
                for n, i in enumerate(ids)
                if i in fake.callback_at and GUILDS[n % len(GUILDS)] == guild_id
            ],
            99,
        )
        * 1000
        for guild_id in GUILDS
    }
    return Result(
        arrangement=arrangement,
        latencies_s=[latency(i) for i in answered],
        late=late,
        all_accepted_s=all_accepted_s,
        accepted=sum(1 for t in texts if t and "accepted" in t[0]),
        per_shard_p99_ms=per_shard,
        cpu=cpu,
        notes=notes,
    )


def cpu_text(result: Result) -> str:
    """Each bot process's event-loop thread in the window: on a CPU, and runnable but waiting for one."""
    if not result.cpu:
        return "CPU n/a"
    parts = [
        f"{c.bot_loop_run_s * 1000:.0f} ms on CPU + {c.bot_loop_wait_s * 1000:.0f} ms waiting"
        for c in result.cpu
    ]
    return f"{result.arrangement}, {result.cpu[0].wall_s * 1000:.0f} ms window: bot loop " + "; ".join(parts)


def line(label: str, one: Result, two: Result) -> str:
    ratio = two.p99_ms / one.p99_ms if one.p99_ms else math.nan
    shards = ", ".join(f"shard {s} {v:.1f}" for s, v in sorted(two.per_shard_p99_ms.items()))
    return (
        f"{label:<12} one process p50 {one.p50_ms:6.1f} p99 {one.p99_ms:6.1f} ms (all accepted in "
        f"{one.all_accepted_s:5.1f} s) | two processes p50 {two.p50_ms:6.1f} p99 {two.p99_ms:6.1f} ms "
        f"({shards}; all accepted in {two.all_accepted_s:5.1f} s) | p99 ratio two/one {ratio:.2f}x | "
        f"late {one.late}/{two.late}"
    )


async def main_async(count: int, repetitions: int) -> int:
    problem = await postgres_problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            print(f"shard_ack: {problem}; CI=true requires it", file=sys.stderr)
            return 1
        print(f"shard_ack: skipped: {problem}")
        return 0
    assets = Media(image=media.png(400, 500), audio=media.wav(3.0))
    print(
        f"shard_ack: {count} simultaneous /animate over 2 guilds (one per shard of {SHARDS}), {repetitions} "
        f"repetition(s); bots as `python bot.py` on PostgreSQL (a fresh schema each); {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    pairs: list[tuple[Result, Result]] = []
    for rep in range(repetitions):
        order = ("one process", "two processes") if rep % 2 == 0 else ("two processes", "one process")
        got = {name: await measure(name, assets, count) for name in order}
        pairs.append((got["one process"], got["two processes"]))
        print(line(f"rep {rep + 1}", *pairs[-1]))
        print(f"{'':13}{cpu_text(pairs[-1][0])} | {cpu_text(pairs[-1][1])}")
    notes = [(r.arrangement, n) for pair in pairs for r in pair for n in r.notes]
    for arrangement, note in notes:
        print(f"  note ({arrangement}): {note}")
    late = sum(r.late for pair in pairs for r in pair)
    accepted_short = sum(count - r.accepted for pair in pairs for r in pair)
    med = statistics.median
    one_p99, two_p99 = med(p[0].p99_ms for p in pairs), med(p[1].p99_ms for p in pairs)
    one_p50, two_p50 = med(p[0].p50_ms for p in pairs), med(p[1].p50_ms for p in pairs)
    ratio = med(p[1].p99_ms / p[0].p99_ms for p in pairs)
    print(
        f"SUMMARY shard_ack: {count} simultaneous, median of {repetitions}: one process p50 {one_p50:.1f} "
        f"p99 {one_p99:.1f} ms; two shard processes p50 {two_p50:.1f} p99 {two_p99:.1f} ms; p99 ratio "
        f"two/one {ratio:.2f}x; {late} late; {accepted_short} not accepted"
    )
    if late or notes or accepted_short:
        print("checks FAILED: late callbacks, members not accepted, or notes above")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 interactions, 1 repetition")
    parser.add_argument("--count", type=int, default=None, help="simultaneous interactions (default 200)")
    parser.add_argument("--repetitions", type=int, default=None, help="repetitions (default 3)")
    args = parser.parse_args()
    count = args.count or (20 if args.quick else 200)
    repetitions = args.repetitions or (1 if args.quick else 3)
    return asyncio.run(main_async(count, repetitions))


if __name__ == "__main__":
    raise SystemExit(main())
