"""Stateful property tests of the ledger and the limits, on a real SQLite file and a real PostgreSQL schema.

A Hypothesis state machine reserves, moves along, completes, fails, expires and credits jobs for a few
members of two guilds, at times that only move forward (and are steered onto UTC day and month
boundaries), under limits that change now and then. It keeps a plain-Python model of every job and, after
every step, checks the store's jobs, ledger, running totals and usage against that model.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import shutil
import sqlite3
import tempfile
import uuid
from collections import Counter, defaultdict
from collections.abc import Coroutine
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from core.models import (
    ACTIVE,
    TERMINAL,
    Job,
    JobStatus,
    Limits,
    NewJob,
    QuotaRefusal,
    RefusalReason,
    Usage,
    Windows,
)
from core.ports import Store
from core.quota import check_limits, windows_at
from storage.sqlite import SqliteStore
from tests.databases import Database, fresh_database
from tests.postgres import require_postgres

T = TypeVar("T")

GUILDS = (1, 2)
MEMBERS = (101, 102, 103)
MINUTE = 60.0
DAY = 86400.0


def _epoch(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def true_windows(t: float) -> tuple[float, float]:
    """Reference (day_start, month_start) of the UTC day and month that contain `t`, independent of
    core.quota: whole seconds first (as the spend_totals trigger does), then exact calendar arithmetic."""
    second = math.floor(t)
    moment = dt.datetime.fromtimestamp(second, dt.UTC)
    month_start = dt.datetime(moment.year, moment.month, 1, tzinfo=dt.UTC)
    return float(second - second % 86400), month_start.timestamp()


def _ms(t: float) -> float:
    """Times are used as they come, to the last float before a boundary (windows_at once misread those)."""
    return t


# Anywhere in 2023..2030, or just before a day/month/year/leap-day boundary.
START_TIMES = st.one_of(
    st.floats(min_value=_epoch(2023, 1, 1), max_value=_epoch(2031, 1, 1)),
    st.sampled_from(
        [
            _epoch(2024, 1, 31, 23, 59, 30),
            _epoch(2024, 2, 28, 23, 59, 59),
            _epoch(2024, 2, 29, 23, 59, 59),
            _epoch(2025, 12, 31, 23, 59, 58),
            _epoch(2025, 6, 30, 23, 0, 0),
        ]
    ),
)
ADVANCES = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=10 * MINUTE),
    st.floats(min_value=0.0, max_value=3 * DAY),
    st.sampled_from([1.0, DAY, 28 * DAY, 31 * DAY]),
)
# How far before the next boundary `approach_boundary` lands.
BEFORE_BOUNDARY = st.one_of(
    st.sampled_from([0.0, 0.001, 0.5, 1.0, 5.0]),
    st.floats(min_value=0.0, max_value=30.0),
)
CENTS = st.integers(min_value=0, max_value=150).map(lambda c: c * 10_000)
ESTIMATES = st.one_of(CENTS, st.integers(min_value=0, max_value=1_500_000))
LIMITS = st.builds(
    Limits,
    daily_micros=st.none() | st.integers(0, 40).map(lambda n: n * 50_000),
    max_active_jobs=st.none() | st.integers(0, 4),
    monthly_micros=st.none() | st.integers(0, 60).map(lambda n: n * 100_000),
    cooldown_s=st.sampled_from([0.0, 0.0, 0.0, 30.0, 600.0]),
    guild_monthly_micros=st.none() | st.integers(0, 50).map(lambda n: n * 200_000),
    operator_daily_micros=st.none() | st.integers(0, 40).map(lambda n: n * 100_000),
)
PICK = st.integers(min_value=0, max_value=255)


@dataclass
class ModelJob:
    """What the model knows about one accepted job."""

    id: int
    guild_id: int
    user_id: int
    estimate: int
    created_at: float
    status: JobStatus = JobStatus.UPLOADING
    cost: int | None = None  # what "Runware reported", once settled
    credited: int = 0
    delivered: bool = False

    @property
    def spend(self) -> int:
        """The job's contribution to its windows: the estimate while active, then cost less credit or 0."""
        if self.status in ACTIVE:
            return self.estimate
        if self.status is JobStatus.SUCCEEDED:
            assert self.cost is not None
            return self.cost - self.credited
        return 0

    @property
    def billed(self) -> int:
        """What the job adds to its guild's spend: what Runware bills, whatever a member was credited."""
        return self.spend + self.credited


class LedgerMachine(RuleBasedStateMachine):
    """Jobs and money against a fresh store (a SQLite file; PostgresLedgerMachine: a PostgreSQL schema),
    checked after every step against a Python model."""

    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="ledger-stateful-"))
        self.exit = ExitStack()
        self.loop = asyncio.new_event_loop()
        try:
            self.database: Database = self.exit.enter_context(fresh_database(self.backend, self.folder))
            self.store: Store = self.loop.run_until_complete(self.database.open())
        except BaseException:
            self.exit.close()
            self.loop.close()
            raise
        self.now = 0.0
        self.limits: dict[int, Limits] = {g: Limits(daily_micros=None, max_active_jobs=None) for g in GUILDS}
        self.jobs: dict[int, ModelJob] = {}
        self.reported_costs = 0  # the sum of every cost Runware reported for a settled job

    def teardown(self) -> None:
        try:
            self.loop.run_until_complete(self.store.close())
        finally:
            self.loop.close()
            self.exit.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def _ids(self, statuses: frozenset[JobStatus]) -> list[int]:
        return sorted(j.id for j in self.jobs.values() if j.status in statuses)

    def _active(self) -> list[int]:
        return self._ids(ACTIVE)

    def _finished(self) -> list[int]:
        return self._ids(TERMINAL)

    def _pick(self, ids: list[int], index: int) -> ModelJob:
        return self.jobs[ids[index % len(ids)]]

    def model_usage(self, guild_id: int, user_id: int, limits: Limits, windows: Windows) -> Usage:
        """The Usage the store should report, computed from the model's jobs alone."""
        today = month = guild_month = active = operator_today = 0
        last: float | None = None
        for job in self.jobs.values():
            day_start, month_start = true_windows(job.created_at)
            if day_start == windows.day_start:
                operator_today += job.billed  # every guild's, for the operator's day ceiling
            if job.guild_id != guild_id:
                continue
            if month_start == windows.month_start:
                guild_month += job.billed
            if job.user_id != user_id:
                continue
            if day_start == windows.day_start:
                today += job.spend
            if month_start == windows.month_start:
                month += job.spend
            active += job.status in ACTIVE
            last = job.created_at if last is None else max(last, job.created_at)
        return Usage(today, month, guild_month, active, last, limits, windows, operator_today)

    def ledger(self) -> list[tuple[int, int, int, str, int, float]]:
        return self.database.query(
            "SELECT job_id, guild_id, user_id, kind, amount_micros, counts_at FROM ledger ORDER BY id"
        )

    def job_row(self, job_id: int) -> Job:
        job = self.run(self.store.get_job(job_id))
        assert job is not None
        return job

    # -- time and limits ---------------------------------------------------------------------------

    @initialize(start=START_TIMES, first=LIMITS, second=LIMITS)
    def begin(self, start: float, first: Limits, second: Limits) -> None:
        """Start the clock somewhere and give each guild its limits."""
        self.now = _ms(start)
        self.limits = dict(zip(GUILDS, (first, second), strict=True))

    @rule(delta=ADVANCES)
    def advance_time(self, delta: float) -> None:
        """Let time pass (possibly none at all)."""
        self.now = _ms(self.now + delta)

    @rule(boundary=st.sampled_from(["day", "month"]), before=BEFORE_BOUNDARY)
    def approach_boundary(self, boundary: str, before: float) -> None:
        """Jump to just before the next UTC midnight or month start (never backwards)."""
        w = windows_at(self.now)
        end = w.day_end if boundary == "day" else w.month_end
        self.now = max(self.now, _ms(end - before))

    @rule(guild_id=st.sampled_from(GUILDS), limits=LIMITS)
    def change_limits(self, guild_id: int, limits: Limits) -> None:
        """An admin changes the guild's limits; they apply from the next reservation on."""
        self.limits[guild_id] = limits

    # -- the job life cycle ------------------------------------------------------------------------

    @rule(guild_id=st.sampled_from(GUILDS), user_id=st.sampled_from(MEMBERS), estimate=ESTIMATES)
    def reserve(self, guild_id: int, user_id: int, estimate: int) -> None:
        """A member asks for a job: accepted exactly when check_limits allows it against the model."""
        self._reserve(guild_id, user_id, estimate)

    @rule(
        guild_id=st.sampled_from(GUILDS),
        user_id=st.sampled_from(MEMBERS),
        estimates=st.lists(ESTIMATES, min_size=2, max_size=4),
        gap=st.sampled_from([0.0, 0.001, 1.0, 30.0, 600.0]),
    )
    def reserve_burst(self, guild_id: int, user_id: int, estimates: list[int], gap: float) -> None:
        """One member asks for several jobs in quick succession (runs into active, cooldown, money limits)."""
        for estimate in estimates:
            self._reserve(guild_id, user_id, estimate)
            self.now = _ms(self.now + gap)

    def _reserve(self, guild_id: int, user_id: int, estimate: int) -> None:
        now, limits = self.now, self.limits[guild_id]
        windows = windows_at(now)
        # The windows the service uses are the day and month `now` is really in.
        assert (windows.day_start, windows.month_start) == true_windows(now)
        expected_usage = self.model_usage(guild_id, user_id, limits, windows)
        expected = check_limits(expected_usage, estimate, now)
        seen: list[Usage] = []

        def decide(usage: Usage) -> QuotaRefusal | None:
            seen.append(usage)
            return check_limits(usage, estimate, now)

        new = NewJob(
            task_uuid=str(uuid.uuid4()),
            guild_id=guild_id,
            channel_id=10,
            user_id=user_id,
            audio_seconds=1.0,
            estimate_micros=estimate,
            output_format="MP4",
            output_quality=85,
            upload_limit_bytes=None,
            channel_nsfw=False,
        )
        result = self.run(self.store.create_job_with_reservation(new, limits, now, windows, decide))
        # The store decided on exactly the usage the model computes.
        assert seen == [expected_usage]
        if expected is not None:
            assert isinstance(result, QuotaRefusal)
            assert result.reason is expected.reason
            return
        assert isinstance(result, Job), result
        assert result.status is JobStatus.UPLOADING
        assert result.id not in self.jobs
        # Invariant (1) in so many words: the reservation fits every limit that applies right now.
        if limits.max_active_jobs is not None:
            assert expected_usage.active_jobs < limits.max_active_jobs
        if limits.daily_micros is not None:
            assert expected_usage.spent_today_micros + estimate <= limits.daily_micros
        if limits.monthly_micros is not None:
            assert expected_usage.spent_month_micros + estimate <= limits.monthly_micros
        if limits.guild_monthly_micros is not None:
            assert expected_usage.guild_spent_month_micros + estimate <= limits.guild_monthly_micros
        if limits.operator_daily_micros is not None:
            assert expected_usage.operator_spent_today_micros + estimate <= limits.operator_daily_micros
        if limits.cooldown_s > 0 and expected_usage.last_job_at is not None:
            assert now >= expected_usage.last_job_at + limits.cooldown_s
        self.jobs[result.id] = ModelJob(result.id, guild_id, user_id, estimate, now)

    @precondition(lambda self: bool(self._active()))
    @rule(index=PICK)
    def progress(self, index: int) -> None:
        """Move an active job one step along uploading → queued → submitting → processing → polled."""
        job = self._pick(self._active(), index)
        if job.status is JobStatus.UPLOADING:
            row = self.run(self.store.mark_job_queued(job.id, "img-ref", "audio-ref", self.now))
            assert row.status is JobStatus.QUEUED
            job.status = JobStatus.QUEUED
        elif job.status is JobStatus.QUEUED:
            self.run(self.store.mark_submitting(job.id, self.now, self.now + 30))
            job.status = JobStatus.SUBMITTING
        elif job.status is JobStatus.SUBMITTING:
            self.run(self.store.mark_submitted(job.id, self.now, self.now + 5))
            job.status = JobStatus.PROCESSING
        else:
            self.run(self.store.schedule_polls([(job.id, self.now + 5)], self.now))

    @precondition(lambda self: bool(self._active()))
    @rule(index=PICK, data=st.data(), nsfw=st.booleans())
    def complete(self, index: int, data: st.DataObject, nsfw: bool) -> None:
        """Runware reports success at a real cost between 0 and twice the estimate; the job settles."""
        job = self._pick(self._active(), index)
        cost = data.draw(st.integers(min_value=0, max_value=2 * job.estimate), label="cost")
        done = self.run(
            self.store.complete_job(job.id, "https://example.invalid/v.mp4", cost, nsfw, self.now)
        )
        assert done is not None
        assert done.status is JobStatus.SUCCEEDED
        assert done.cost_micros == cost
        assert done.finished_at == self.now
        job.status, job.cost = JobStatus.SUCCEEDED, cost
        self.reported_costs += cost

    @precondition(lambda self: bool(self._active()))
    @rule(index=PICK, expired=st.booleans(), member_told=st.booleans())
    def fail(self, index: int, expired: bool, member_told: bool) -> None:
        """A job fails (or expires) and its reservation is refunded."""
        job = self._pick(self._active(), index)
        done = self.run(
            self.store.fail_job(
                job.id, "boom", "it broke", self.now, expired=expired, member_told=member_told
            )
        )
        assert done is not None
        assert done.status is (JobStatus.EXPIRED if expired else JobStatus.FAILED)
        assert done.cost_micros == 0
        assert (done.delivered_at is not None) is member_told
        job.status = done.status
        job.delivered = member_told

    @precondition(lambda self: bool(self._finished()))
    @rule(index=PICK)
    def credit(self, index: int) -> None:
        """Give a finished job's cost back: the whole cost once for a paid success, else nothing."""
        job = self._pick(self._finished(), index)
        paid = job.status is JobStatus.SUCCEEDED and (job.cost or 0) > 0
        expected = (job.cost or 0) if paid and job.credited == 0 else 0
        got = self.run(self.store.credit_job_cost(job.id, "could not be shown", self.now))
        assert got == expected
        job.credited += got

    @precondition(lambda self: bool(self._finished()))
    @rule(
        index=PICK,
        action=st.sampled_from(["complete", "fail", "expire"] * 2 + ["update", "delete"]),
        cost=st.integers(min_value=0, max_value=3_000_000),
    )
    def finish_again(self, index: int, action: str, cost: int) -> None:
        """Finishing a finished job again is a no-op, and the triggers refuse ledger updates and deletes."""
        job = self._pick(self._finished(), index)
        ledger_before, row_before = self.ledger(), self.job_row(job.id)
        if action in ("update", "delete"):
            sql = (
                "DELETE FROM ledger WHERE job_id = ?"
                if action == "delete"
                else "UPDATE ledger SET amount_micros = 0 WHERE job_id = ?"
            )
            try:
                self.database.query(sql, job.id)
            except (sqlite3.IntegrityError, asyncpg.RaiseError) as exc:
                assert "append-only" in str(exc)
            else:
                raise AssertionError("the ledger accepted a change")
            result = None
        elif action == "complete":
            result = self.run(
                self.store.complete_job(job.id, "https://example.invalid/2.mp4", cost, True, self.now)
            )
        else:
            result = self.run(
                self.store.fail_job(
                    job.id, "late", "again", self.now, expired=action == "expire", member_told=True
                )
            )
        assert result is None
        assert self.ledger() == ledger_before
        assert self.job_row(job.id) == row_before

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def jobs_match_model(self) -> None:
        """The jobs table holds exactly the accepted jobs, in the statuses and costs of the model."""
        rows = self.database.query(
            "SELECT id, guild_id, user_id, status, estimate_micros, cost_micros, "
            "created_at, delivered_at FROM jobs"
        )
        assert {r[0] for r in rows} == set(self.jobs)
        for job_id, guild_id, user_id, status, estimate, cost, created_at, delivered_at in rows:
            job = self.jobs[job_id]
            assert (guild_id, user_id, estimate, created_at) == (
                job.guild_id,
                job.user_id,
                job.estimate,
                job.created_at,
            )
            assert JobStatus(status) is job.status
            if job.status is JobStatus.SUCCEEDED:
                assert cost == job.cost
            elif job.status in TERMINAL:
                assert cost == 0
                assert (delivered_at is not None) is job.delivered
            else:
                assert cost is None

    @invariant()
    def ledger_rows_per_job(self) -> None:
        """Active: one reserve only. Finished: exactly one settle or refund. Sums equal the job's spend."""
        by_job: dict[int, list[tuple[str, int]]] = defaultdict(list)
        settled = 0
        for job_id, guild_id, user_id, kind, amount, counts_at in self.ledger():
            job = self.jobs[job_id]
            # Every row of a job is the job's member's and counts at the reservation time.
            assert (guild_id, user_id, counts_at) == (job.guild_id, job.user_id, job.created_at)
            by_job[job_id].append((kind, amount))
            if kind == "settle":
                settled += amount
        assert set(by_job) == set(self.jobs)
        for job_id, rows in by_job.items():
            job = self.jobs[job_id]
            kinds = Counter(kind for kind, _ in rows)
            finals = kinds["settle"] + kinds["refund"]
            if job.status in ACTIVE:
                assert kinds == Counter(reserve=1)
                assert finals == 0
            elif job.status is JobStatus.SUCCEEDED:
                expected = Counter(reserve=1, release=1, settle=1)
                if job.credited:
                    expected["grant"] = 1
                assert kinds == expected
            else:
                assert kinds == Counter(reserve=1, refund=1)
            if job.status in TERMINAL:
                assert finals == 1
            amounts = dict(rows)
            assert amounts["reserve"] == job.estimate
            if "release" in amounts:
                assert amounts["release"] == -job.estimate
            if "settle" in amounts:
                assert amounts["settle"] == job.cost
            if "refund" in amounts:
                assert amounts["refund"] == -job.estimate
            if "grant" in amounts:
                assert amounts["grant"] == -job.credited
            total = sum(amount for _, amount in rows)
            if job.status is JobStatus.SUCCEEDED:
                assert total == (job.cost or 0) - job.credited
            elif job.status in TERMINAL:
                assert total == 0
            else:
                assert total == job.estimate
        # Everything Runware charged for, and nothing else, was settled.
        assert settled == self.reported_costs

    @invariant()
    def spend_totals_match_ledger(self) -> None:
        """The running totals equal a recomputation from the ledger, per member and per guild (user 0);
        a guild's totals leave out grants (credits to members do not shrink what the guild is billed)."""
        expected: dict[tuple[int, int, str, float], int] = defaultdict(int)
        for _, guild_id, user_id, kind, amount, counts_at in self.ledger():
            day_start, month_start = true_windows(counts_at)
            for who in (user_id, 0) if kind != "grant" else (user_id,):
                expected[(guild_id, who, "day", day_start)] += amount
                expected[(guild_id, who, "month", month_start)] += amount
        actual = {
            (g, u, p, s): a
            for g, u, p, s, a in self.database.query(
                "SELECT guild_id, user_id, period, period_start, amount_micros FROM spend_totals"
            )
        }
        assert actual == dict(expected)

    @invariant()
    def operator_totals_match_ledger(self) -> None:
        """The operator's running day totals equal the ledger's non-grant rows of every guild, per day."""
        expected: dict[float, int] = defaultdict(int)
        for _, _, _, kind, amount, counts_at in self.ledger():
            if kind != "grant":
                expected[true_windows(counts_at)[0]] += amount
        actual = dict(self.database.query("SELECT day_start, amount_micros FROM operator_totals"))
        assert actual == dict(expected)

    @invariant()
    def usage_matches_model(self) -> None:
        """store.usage() and guild_month_spend() agree with the model for every member, right now."""
        windows = windows_at(self.now)
        for guild_id in GUILDS:
            limits = self.limits[guild_id]
            for user_id in MEMBERS:
                got = self.run(self.store.usage(guild_id, user_id, limits, windows))
                assert got == self.model_usage(guild_id, user_id, limits, windows)
            guild_month = self.run(self.store.guild_month_spend(guild_id, windows))
            assert guild_month == self.model_usage(guild_id, 0, limits, windows).guild_spent_month_micros


POSTGRES_EXAMPLES = 60
SETTINGS = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_ledger_and_limits_stay_consistent() -> None:
    """Random reservations, settlements, refunds and credits keep the ledger, totals and limits exact."""
    run_state_machine_as_test(LedgerMachine, settings=SETTINGS)


class PostgresLedgerMachine(LedgerMachine):
    backend = "postgres"


# Fewer histories than on SQLite: each one is a new schema and every step's checks are round trips.
POSTGRES_SETTINGS = settings(SETTINGS, max_examples=POSTGRES_EXAMPLES)


def test_ledger_and_limits_stay_consistent_on_postgresql() -> None:
    """The same random histories against the PostgreSQL store (its triggers, functions and totals)."""
    require_postgres()
    run_state_machine_as_test(PostgresLedgerMachine, settings=POSTGRES_SETTINGS)


def _new_job(estimate: int) -> NewJob:
    return NewJob(str(uuid.uuid4()), 1, 10, 101, 1.0, estimate, "MP4", 85, None, False)


async def test_windows_at_last_microsecond_of_a_month(tmp_path: Path) -> None:
    """A reservation in the last microsecond of a month is checked against that month's spend."""
    store = await SqliteStore.open(str(tmp_path / "store.db"))
    try:
        limits = Limits(daily_micros=None, max_active_jobs=None, monthly_micros=1_000_000)
        mid_january = _epoch(2023, 1, 15)
        first = await store.create_job_with_reservation(
            _new_job(1_000_000),
            limits,
            mid_january,
            windows_at(mid_january),
            lambda usage: check_limits(usage, 1_000_000, mid_january),
        )
        assert isinstance(first, Job)
        # The last float before 2023-02-01T00:00:00Z: still January 31st, 23:59:59.9999998.
        now = math.nextafter(_epoch(2023, 2, 1), 0.0)
        second = await store.create_job_with_reservation(
            _new_job(1_000_000),
            limits,
            now,
            windows_at(now),
            lambda usage: check_limits(usage, 1_000_000, now),
        )
        assert isinstance(second, QuotaRefusal)
        assert second.reason is RefusalReason.MONTHLY
    finally:
        await store.close()
