"""The bot's own small values in the store (StateStore)."""

from __future__ import annotations

import asyncio

import pytest

from core.ports import Store
from tests.storage.builders import NOW, reserved
from tests.storage.conftest import Backend


async def test_a_value_is_none_until_set_and_a_new_value_replaces_it(store: Store) -> None:
    """get_state answers None for an unknown key; set_state stores, then replaces."""
    assert await store.get_state("commands") is None
    await store.set_state("commands", "abc")
    await store.set_state("commands", "def")
    await store.set_state("other", "x")
    assert (await store.get_state("commands"), await store.get_state("other")) == ("def", "x")


async def test_a_duty_is_claimed_by_one_process_until_its_claim_ends(backend: Backend) -> None:
    """Of four processes claiming a duty at once, one wins; nobody (the winner included) claims it again
    before its claim ends; afterwards one may; a release lets another claim at once; duties are apart."""
    stores = [await backend.open() for _ in range(4)]
    try:
        won = await asyncio.gather(
            *(s.claim_duty("prune", f"p{i}", 1000.0, 1000.0 + 86_400) for i, s in enumerate(stores))
        )
        assert sorted(won) == [False, False, False, True]
        winner = won.index(True)
        assert backend.query("SELECT owner, until FROM duties") == [(f"p{winner}", 87_400.0)]
        assert not await stores[winner].claim_duty("prune", f"p{winner}", 87_399.0, 200_000.0)
        assert not await stores[0].claim_duty("prune", "p0", 87_399.0, 200_000.0)
        assert await stores[1].claim_duty("sync", "p1", 1000.0, 1060.0)
        assert await stores[2].claim_duty("prune", "p2", 87_400.0, 200_000.0)
        await stores[3].release_duty("sync", "p3")  # not its claim: nothing happens
        assert not await stores[0].claim_duty("sync", "p0", 1001.0, 1061.0)
        await stores[1].release_duty("sync", "p1")
        assert await stores[0].claim_duty("sync", "p0", 1001.0, 1061.0)
    finally:
        for s in stores:
            await s.close()


async def test_jobs_are_counted_by_status_in_one_query(store: Store) -> None:
    """count_jobs_by_status: every status that has jobs, with its count (the /metrics gauge)."""
    assert await store.count_jobs_by_status() == {}
    jobs = [await reserved(store, user_id, 100_000, NOW) for user_id in (1, 2, 3)]
    await store.mark_job_queued(jobs[1].id, "img", "aud", NOW)
    await store.fail_job(jobs[2].id, "x", "failed", NOW)
    assert await store.count_jobs_by_status() == {"uploading": 1, "queued": 1, "failed": 1}


async def test_ping_answers_while_the_tables_are_there(backend: Backend) -> None:
    """ping() succeeds on a migrated database and raises once the bot's tables are gone, or once the
    store is closed (the /healthz database check)."""
    store = await backend.open()
    try:
        await store.ping()
        backend.query("ALTER TABLE schema_version RENAME TO schema_version_away")
        with pytest.raises(Exception):  # noqa: B017  (the driver's own error: sqlite3's or asyncpg's)
            await store.ping()
        backend.query("ALTER TABLE schema_version_away RENAME TO schema_version")
        await store.ping()
    finally:
        await store.close()
    with pytest.raises(Exception):  # noqa: B017
        await store.ping()
