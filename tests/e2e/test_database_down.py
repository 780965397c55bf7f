"""/animate while PostgreSQL ends the bot's session at a precise step (issue 11): the member reads a short,
plain message, and the money is right. The store is the real PostgreSQL store, wrapped so that a chosen
step's own session is terminated (`pg_terminate_backend`) inside its transaction or just before its
COMMIT: a real fault through the real driver. The one case that cannot be produced on demand (the COMMIT
done, its answer lost) is raised by the wrapper after a real COMMIT, to test the read-back that follows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from core.ports import Store, StoreUnavailable
from storage.postgres import PostgresStore
from storage.postgres.connection import Db
from tests.databases import Database
from tests.e2e.conftest import App
from tests.postgres import TEST_POSTGRES_URL

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)

DURING = "during"  # the session ends after BEGIN, before the step's statements: nothing is written
AT_COMMIT = "at_commit"  # the session ends just before COMMIT: ambiguous, and it did not happen
ANSWER_LOST = "answer_lost"  # the COMMIT happened but its answer is reported lost: ambiguous, it did

NOTHING_DONE = "nothing was done and you weren't charged"


class FaultyStore(PostgresStore):
    """The PostgreSQL store whose next calls of a chosen step meet a fault (`arm`)."""

    faults: dict[str, list[str]]
    _armed: str | None = None

    def arm(self, step: str, *modes: str) -> None:
        self.faults.setdefault(step, []).extend(modes)

    def _take(self, step: str) -> None:
        queue = self.faults.get(step) or []
        # Set right before the step's own _write runs (no await in between), so no other step takes it.
        self._armed = queue.pop(0) if queue else None

    async def create_job_with_reservation(self, *args: Any, **kwargs: Any) -> Any:
        self._take("create_job_with_reservation")
        return await super().create_job_with_reservation(*args, **kwargs)

    async def mark_job_queued(self, *args: Any, **kwargs: Any) -> Any:
        self._take("mark_job_queued")
        return await super().mark_job_queued(*args, **kwargs)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Db]:
        mode, self._armed = self._armed, None
        async with super()._write() as db:
            if mode == DURING:
                await end_session(db)
            yield db
            if mode == AT_COMMIT:
                await end_session(db)
        if mode == ANSWER_LOST:
            raise StoreUnavailable("the answer to COMMIT was lost (test)", ambiguous=True)


async def end_session(db: Db) -> None:
    """Terminate `db`'s server session from another connection, and let the server end it."""
    admin = await asyncpg.connect(TEST_POSTGRES_URL)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", db.get_server_pid())
        for _ in range(100):
            if not await admin.fetchval(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1", db.get_server_pid()
            ):
                break
            await asyncio.sleep(0.02)
    finally:
        await admin.close()


@pytest.fixture
def open_store(database: Database) -> Callable[[], Awaitable[Store]]:
    """The e2e app (tests/e2e/conftest.py) on a FaultyStore."""

    async def faulty() -> Store:
        store = await FaultyStore.open(database.url)
        store.faults = {}
        return store

    return faulty


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info is not None]


@pytest.mark.parametrize("mode", [DURING, AT_COMMIT])
async def test_a_reservation_that_did_not_happen_says_nothing_was_charged(
    app: App, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The session ends inside the reservation (nothing written) or just before its COMMIT (a lost
    COMMIT, read back by the job's taskUUID: not there). The member reads that nothing was charged; no
    job, no ledger row, nothing uploaded; no traceback."""
    assert isinstance(app.store, FaultyStore)
    app.store.arm("create_job_with_reservation", mode)
    payload = await app.animate()
    reply = await app.reply_to(payload, NOTHING_DONE)
    assert reply.ephemeral
    assert app.query("SELECT COUNT(*) FROM jobs") == [(0,)]
    assert app.query("SELECT COUNT(*) FROM ledger") == [(0,)]
    assert app.runware.uploads == {}
    assert no_tracebacks(caplog) == []


async def test_a_reservation_whose_answer_was_lost_goes_on(app: App) -> None:
    """The reservation committed but its answer was lost: read back by its taskUUID, the job goes on
    (uploaded, queued, posted) with one reservation, and the member reads the usual acknowledgement."""
    assert isinstance(app.store, FaultyStore)
    app.store.arm("create_job_with_reservation", ANSWER_LOST)
    payload = await app.animate()
    await app.reply_to(payload, "Job #1 accepted")
    await app.post_in_channel("ready")
    await app.delivered(1)
    assert app.query("SELECT kind FROM ledger WHERE job_id = 1 ORDER BY id") == [
        ("reserve",),
        ("release",),
        ("settle",),
    ]


async def test_a_queue_step_that_failed_once_is_done_again(app: App) -> None:
    """The session ends inside mark_job_queued: the job is read back (still uploading), queued again,
    and runs as usual."""
    assert isinstance(app.store, FaultyStore)
    app.store.arm("mark_job_queued", DURING)
    payload = await app.animate()
    await app.reply_to(payload, "Job #1 accepted")
    await app.post_in_channel("ready")


async def test_a_queue_step_that_never_happens_is_refunded(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """Every try of the queue step fails: the member reads that the job is cancelled and not charged;
    the job, left uploading with its inputs lost, is failed and refunded by the stale-upload rule (never
    left reserved), without a public post."""
    assert isinstance(app.store, FaultyStore)
    app.store.arm("mark_job_queued", DURING, DURING, DURING, DURING)
    payload = await app.animate()
    reply = await app.reply_to(payload, "couldn't start", timeout=20)
    assert "job #1" in reply.content and "won't be charged" in reply.content
    assert app.query("SELECT status FROM jobs WHERE id = 1") == [("uploading",)]
    # Ten minutes later (UPLOAD_STALE_S), the runner's stale-upload rule fails it.
    app.query("UPDATE jobs SET created_at = created_at - 601 WHERE id = 1")
    await app.discord.wait_for(lambda: app.query("SELECT status FROM jobs WHERE id = 1") == [("failed",)], 15)
    assert app.spent() == 0
    assert no_tracebacks(caplog) == []
