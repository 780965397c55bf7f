"""Several bot processes as deployed (issue 11): real `python bot.py` processes, one per shard
(SHARD_COUNT=3, SHARD_IDS=0, 1 and 2), on one PostgreSQL schema, against the fake Discord (which routes a
guild's events to its shard's session) and the fake Runware of the test process. Jobs spread over guilds of
every shard; one process is killed with SIGKILL mid-run, or the database drops every connection of the
bots twice: every job is still submitted, charged and posted exactly once, and the dead process's jobs
are finished by the others.

PostgreSQL only: it is the database several processes (on several machines) share."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.models import GuildSettingsPatch
from tests import media_factory as media
from tests.core.conftest import wait_until
from tests.core.test_reconnect import app_name, drop_connections
from tests.databases import Database, PostgresDatabase
from tests.e2e.conftest import ADMIN_ID, ATTACHMENT
from tests.e2e.processes import BotProcess, bot_processes, connected
from tests.fakes.discord import FakeDiscord, FakeMessage, text_channel
from tests.fakes.discord.gateway import shard_of
from tests.fakes.runware import FakeRunware, Outcome, make_mp4

pytestmark = [
    pytest.mark.parametrize("database", ["postgres"], indirect=True),
    pytest.mark.timeout(150),
]

SHARDS = 3
GUILDS_PER_SHARD = 2
MEMBERS_PER_GUILD = 5
# The first guild's id; the next ones follow it in steps of 1 << 22, so they cycle through the shards.
FIRST_GUILD_ID = 400_000_000_000_000_000 >> 22 << 22
FIRST_MEMBER_ID = 500_000_000_000_000_000
VIDEO = make_mp4(20_000)
COST_MICROS = 420_000
ESTIMATE_MICROS = 100_000  # 1 s of audio at $0.10 a second
# A job lease (3 × POLL_MAX_INTERVAL_S): a dead process's jobs are taken over this soon.
LEASE_S = 3.0
# Generous limits (each member has a few videos in flight at once; no cooldown between them), no consent
# statement (turned off per guild) and no quotes: every command is accepted.
ENV = {
    "SHARD_COUNT": str(SHARDS),
    "PRICE_PER_SECOND_USD": "0.10",
    "QUOTA_USER_DAILY_USD": "100",
    "QUOTA_USER_MONTHLY_USD": "1000",
    "QUOTA_GUILD_MONTHLY_USD": "10000",
    "GUILD_BUDGET_MAX_USD": "10000",
    "OPERATOR_DAILY_USD": "10000",
    "QUOTA_USER_MAX_ACTIVE_JOBS": "10",
    "QUOTA_COOLDOWN_S": "0",
    "CONFIRM_ABOVE_USD": "off",
    # Polls every second at most, so a lease lasts LEASE_S.
    "POLL_INITIAL_DELAY_S": "0.1",
    "POLL_MAX_INTERVAL_S": str(LEASE_S / 3),
    "RUNWARE_REQUEST_TIMEOUT_S": "5",
}


@dataclass(frozen=True)
class Guild:
    id: int
    channel_id: int
    shard: int


@dataclass
class Rig:
    """The bot processes (one per shard, started), the fakes they talk to, and the shared database."""

    discord: FakeDiscord
    runware: FakeRunware
    database: Database
    processes: tuple[BotProcess, ...]
    guilds: list[Guild]

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.database.query(sql, *params)

    def count(self, where: str) -> int:
        return int(self.query(f"SELECT COUNT(*) FROM jobs WHERE {where}")[0][0])

    async def animate(self, jobs: int) -> None:
        """`jobs` /animate commands, round robin over the guilds and their members, all accepted."""
        image = media.png(320, 320)
        audio = media.wav(1.0)
        sent = []
        for i in range(jobs):
            which = i % len(self.guilds)
            guild = self.guilds[which]
            member = FIRST_MEMBER_ID + 100 * which + (i // len(self.guilds)) % MEMBERS_PER_GUILD
            image_file = self.discord.add_attachment("face.png", image)
            audio_file = self.discord.add_attachment("voice.wav", audio)
            payload = self.discord.make_slash_interaction(
                "animate",
                [("image", ATTACHMENT, image_file), ("audio", ATTACHMENT, audio_file)],
                guild_id=guild.id,
                channel_id=guild.channel_id,
                user_id=member,
            )
            await self.discord.send_interaction(payload)
            sent.append(payload)
        try:
            await wait_until(lambda: self.count("status <> 'uploading'") == jobs, timeout=60)
        except TimeoutError:
            replies = [self.replies(p) for p in sent]
            refused = [r for r in replies if not any("accepted" in text for text in r)]
            raise AssertionError(f"not every command was accepted: {refused[:5]}\n{self.logs()}") from None

    def replies(self, payload: dict[str, Any]) -> list[str]:
        interaction_id = int(payload["id"])
        return [m.content for m in self.discord.messages if m.interaction_id == interaction_id]

    def posts(self) -> list[FakeMessage]:
        """Every channel post (the bot's token, not an interaction's) in every guild: here, the results."""
        return [
            m
            for guild in self.guilds
            for m in self.discord.messages_in(guild.channel_id)
            if m.via == "channel"
        ]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in self.processes)


def spread_guilds() -> list[Guild]:
    """GUILDS_PER_SHARD guilds on each shard ((id >> 22) % SHARDS), each with one channel."""
    guilds = []
    for i in range(SHARDS * GUILDS_PER_SHARD):
        guild_id = FIRST_GUILD_ID + (i << 22)
        guilds.append(Guild(guild_id, guild_id + 11, shard_of(guild_id, SHARDS)))
    assert Counter(g.shard for g in guilds) == Counter({s: GUILDS_PER_SHARD for s in range(SHARDS)})
    return guilds


@asynccontextmanager
async def rig(tmp_path: Path, database: Database, **runware_options: Any) -> AsyncIterator[Rig]:
    """The fakes, the guilds (consent off), and one started `python bot.py` per shard on `database`, its
    sessions named so that the test can end them (and only them)."""
    assert isinstance(database, PostgresDatabase)
    guilds = spread_guilds()
    store = await database.open()
    try:
        for guild in guilds:
            patch = GuildSettingsPatch(consent_required=False)
            await store.update_guild_settings(guild.id, patch, ADMIN_ID, time.time())
    finally:
        await store.close()
    url = f"{database.url}&application_name={app_name(database.schema)}"
    outcome = Outcome.success(cost_usd=COST_MICROS / 1e6, video=VIDEO)
    async with FakeDiscord() as discord, FakeRunware(default_outcome=outcome, **runware_options) as runware:
        for guild in guilds:
            discord.add_guild(guild.id, f"Guild {guild.id}", channels=[text_channel(guild.channel_id, "g")])
        processes = [
            BotProcess(tmp_path, url, discord, runware, name=f"shard{s}", env={**ENV, "SHARD_IDS": str(s)})
            for s in range(SHARDS)
        ]
        with bot_processes(*processes):
            for process in processes:
                process.start()
            for shard, process in enumerate(processes):
                await connected(discord, process, 0, shard=shard)
            await discord.wait_for(lambda: discord.connected_sessions == SHARDS, 30)
            yield Rig(discord, runware, database, tuple(processes), guilds)


def assert_each_job_once(rig: Rig, jobs: int) -> None:
    """Every job succeeded, was submitted to Runware once, reserved, released and settled once (the
    charge is Runware's cost), posted once in its own channel, and holds no lease any more."""
    rows = rig.query("SELECT id, task_uuid, channel_id, user_id, status, delivered_at, lease_owner FROM jobs")
    assert len(rows) == jobs
    assert Counter(status for *_, status, _, _ in rows) == Counter({"succeeded": jobs})
    assert [r for r in rows if r[5] is None or r[6] is not None] == []

    submitted = {task_uuid: rig.runware.submission_counts[task_uuid] for _, task_uuid, *_ in rows}
    assert submitted == {task_uuid: 1 for _, task_uuid, *_ in rows}
    assert rig.runware.submission_counts.total() == jobs

    ledger = rig.query("SELECT job_id, kind, amount_micros FROM ledger")
    amounts = {"reserve": ESTIMATE_MICROS, "release": -ESTIMATE_MICROS, "settle": COST_MICROS}
    assert Counter((job_id, kind) for job_id, kind, _ in ledger) == Counter(
        {(job_id, kind): 1 for job_id, *_ in rows for kind in amounts}
    )
    assert {(kind, amount) for _, kind, amount in ledger} == set(amounts.items())
    assert rig.query("SELECT SUM(amount_micros) FROM ledger") == [(jobs * COST_MICROS,)]

    posts = rig.posts()
    assert Counter(m.nonce for m in posts) == Counter({f"vq-job-{job_id}": 1 for job_id, *_ in rows})
    where = {f"vq-job-{job_id}": (channel_id, user_id) for job_id, _, channel_id, user_id, *_ in rows}
    for post in posts:
        assert post.nonce is not None
        channel_id, user_id = where[post.nonce]
        assert post.channel_id == channel_id and f"<@{user_id}>" in post.content
        assert [a.data for a in post.attachments] == [VIDEO]


def tracebacks(process: BotProcess) -> list[str]:
    """The line before each traceback in the process's log (which says what failed)."""
    lines = process.log().splitlines()
    return [lines[i - 1] for i, line in enumerate(lines) if line.startswith("Traceback")]


def complaints(process: BotProcess) -> list[str]:
    """The log's WARNING and worse lines, but discord.py's notes at start (no voice support)."""
    return [
        line
        for line in process.log().splitlines()
        if any(f" {level} " in line for level in ("WARNING", "ERROR", "CRITICAL"))
        and "voice will NOT be supported" not in line
    ]


def assert_calm(rig: Rig, process: BotProcess) -> None:
    """No traceback and no error in the process's log, a few warnings at most (a pass, a poll or a post
    interrupted by the database; a slow moment of a loaded machine), and no secret."""
    assert tracebacks(process) == [], process.log()
    assert len(complaints(process)) <= 10, complaints(process)
    assert [line for line in complaints(process) if " WARNING " not in line] == []
    assert rig.discord.token not in process.log() and rig.runware.api_key not in process.log()


def logged(processes: list[BotProcess], logger: str, what: str) -> set[int]:
    """The jobs whose `what` line ("job=N task=… what") `logger` wrote in any of the processes' logs."""
    pattern = re.compile(rf" {re.escape(logger)}: job=(\d+) task=\S+ {what}\b")
    return {int(m.group(1)) for p in processes for m in pattern.finditer(p.log())}


def finish_all(runware: FakeRunware) -> None:
    """Every task submitted so far finishes at its next poll, and any later one at its first."""
    runware.polls_to_finish = 1
    for task_uuid in list(runware.submitted):
        runware.finish(task_uuid)


def delivered(rig: Rig) -> Callable[[], int]:
    return lambda: rig.count("delivered_at IS NOT NULL")


async def test_a_killed_process_s_jobs_are_finished_by_the_others_each_once(
    tmp_path: Path, database: Database
) -> None:
    """120 jobs over 6 guilds on 3 shard processes; the first 30 finish and are posted; then one process is
    killed with SIGKILL (not restarted) while it holds the leases of about 30 rendering jobs. The two
    others take them over once the leases run out (each claim comes after its lease's end, as the lease
    times in the database show) and finish them: all 120 are posted once, submitted once, charged once."""
    jobs = 120
    async with rig(tmp_path, database, polls_to_finish=10**9) as r:
        await r.animate(jobs)
        await wait_until(lambda: len(r.runware.submitted) == jobs, timeout=30)
        # Some results first, posted by each process (as the jobs of its own guilds finish).
        early = [task_uuid for (task_uuid,) in r.query("SELECT task_uuid FROM jobs ORDER BY id LIMIT 30")]
        for task_uuid in early:
            r.runware.finish(task_uuid)
        await wait_until(lambda: delivered(r)() == len(early), timeout=30)

        victim = r.processes[1]
        victim.kill()
        owner = f"%:{victim.pid}:%"
        # The dead process's unfinished jobs, and when each of its leases runs out.
        expiry = dict(
            r.query(
                "SELECT id, lease_expires_at FROM jobs WHERE lease_owner LIKE ? AND delivered_at IS NULL",
                owner,
            )
        )
        orphans = set(expiry)
        assert len(orphans) >= 10, r.query("SELECT id, status, lease_owner FROM jobs ORDER BY id")
        # The others' jobs finish now; the orphans keep rendering until the survivors have claimed them.
        for (task_uuid,) in r.query("SELECT task_uuid FROM jobs WHERE NOT id = ANY(?)", list(orphans)):
            r.runware.finish(task_uuid)
        claims = "SELECT id, lease_expires_at FROM jobs WHERE id = ANY(?) AND lease_owner NOT LIKE ?"
        await wait_until(lambda: len(r.query(claims, list(orphans), owner)) == len(orphans), timeout=30)
        # Each was claimed once its lease had run out: a claim made at `now` (the claimer's pass) takes
        # the lease to now + LEASE_S, and a renewal only moves it later.
        claimed_at = {job_id: until - LEASE_S for job_id, until in r.query(claims, list(orphans), owner)}
        early = {job_id for job_id in orphans if claimed_at[job_id] < expiry[job_id] - 1e-6}
        assert not early, {job_id: (claimed_at[job_id], expiry[job_id]) for job_id in early}
        finish_all(r.runware)
        await wait_until(lambda: delivered(r)() == jobs, timeout=60)
        await asyncio.sleep(1.5)  # room for a second post, submit or charge, if there were to be one
        survivors = [r.processes[0], r.processes[2]]
        for process in survivors:
            assert process.stop() == 0, process.log()

    assert_each_job_once(r, jobs)
    # The orphans were finished by the survivors: settled and posted by them (their logs say so), and
    # nobody holds a lease any more.
    assert orphans <= logged(survivors, "core.runner", "succeeded")
    assert orphans <= logged(survivors, "cogs.delivery", "delivered")
    assert r.query("SELECT COUNT(*) FROM jobs WHERE lease_owner LIKE ?", owner) == [(0,)]
    for process in survivors:
        assert_calm(r, process)


async def test_every_connection_dropped_twice_loses_and_doubles_nothing(
    tmp_path: Path, database: Database
) -> None:
    """90 jobs on 3 shard processes; while they are submitted, polled and posted, PostgreSQL ends every
    session of the three bots twice (pg_terminate_backend, as a restart or failover would). The processes
    reconnect: every job is still posted once, submitted once and charged once, none is left reserved
    without a result, and no traceback is logged."""
    jobs = 90
    assert isinstance(database, PostgresDatabase)
    async with rig(tmp_path, database, polls_to_finish=10**9) as r:
        await r.animate(jobs)
        dropped = []
        # Once while jobs are being submitted and polled,
        await wait_until(lambda: len(r.runware.submitted) >= jobs // 3, timeout=30)
        dropped.append(await drop_connections(database.schema))
        # and once while results are being posted.
        await wait_until(lambda: len(r.runware.submitted) == jobs, timeout=30)
        finish_all(r.runware)
        await wait_until(lambda: delivered(r)() >= 5, timeout=30)
        dropped.append(await drop_connections(database.schema))
        await wait_until(lambda: delivered(r)() == jobs, timeout=90)
        await asyncio.sleep(1.5)  # room for a second post, submit or charge, if there were to be one
        for process in r.processes:
            assert process.stop() == 0, process.log()

    assert all(n >= SHARDS for n in dropped), dropped  # each process had at least one session to lose
    assert_each_job_once(r, jobs)
    for process in r.processes:
        assert_calm(r, process)
