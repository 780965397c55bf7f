"""The jobs rig: a real store (each backend), a client on the fake Runware, a JobService and a JobRunner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import aiohttp
import pytest

from core.jobs import AnimateRequest, JobService
from core.models import Job
from core.ports import Store
from core.runner import JobRunner
from core.runware import RunwareClient
from core.settings import Settings
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from tests import media_factory as media
from tests.conftest import SettingsFactory
from tests.databases import Database, SqliteDatabase
from tests.fakes.runware import FakeRunware

M = TypeVar("M")


@dataclass
class Rig:
    """A store, a client on the fake, a service and a runner whose finished jobs land in a queue."""

    fake: FakeRunware
    store: Store
    client: RunwareClient
    service: JobService
    runner: JobRunner
    finished: asyncio.Queue[Job]
    database: Database
    settings: Settings

    def ledger(self) -> list[tuple[str, int]]:
        return [
            (str(kind), int(amount))
            for kind, amount in self.database.query("SELECT kind, amount_micros FROM ledger ORDER BY id")
        ]

    def spent(self) -> int:
        return sum(amount for _, amount in self.ledger())

    async def next_finished(self, timeout: float = 10.0) -> Job:
        return await asyncio.wait_for(self.finished.get(), timeout)

    def parts_on(
        self, store: Store, clock: Callable[[], float], **runner_options: Any
    ) -> tuple[JobRunner, JobService, asyncio.Queue[Job]]:
        """A runner (with `clock` and `runner_options`) and a service of their own on another `store`, with
        the rig's client and settings; the queue the runner's finished jobs land in."""
        finished: asyncio.Queue[Job] = asyncio.Queue()
        runner = JobRunner(
            store, self.client, self.settings, on_finished=finished.put_nowait, clock=clock, **runner_options
        )
        service = JobService(
            store, self.client, self.settings, wake_runner=runner.wake, hold_upload=runner.lease
        )
        return runner, service, finished


@pytest.fixture
async def rig(make_settings: SettingsFactory, database: Database) -> AsyncIterator[Rig]:
    async with FakeRunware(polls_to_finish=2) as fake, aiohttp.ClientSession() as http:
        settings = make_settings(
            runware_api_url=fake.url,
            runware_api_key=fake.api_key,
            price_per_second_usd=0.10,
            quota_user_daily_usd=1.0,
            quota_user_max_active_jobs=3,
        )
        store = await database.open()
        client = RunwareClient(
            http, api_url=fake.url, api_key=settings.runware_api_key, timeout_s=1.0, retry_base_s=0.01
        )
        finished: asyncio.Queue[Job] = asyncio.Queue()
        runner = JobRunner(store, client, settings, on_finished=finished.put_nowait)
        service = JobService(store, client, settings, wake_runner=runner.wake, hold_upload=runner.lease)
        yield Rig(fake, store, client, service, runner, finished, database, settings)
        await store.close()


@pytest.fixture
async def running(rig: Rig) -> AsyncIterator[Rig]:
    """The rig with its runner loop going."""
    task = asyncio.create_task(rig.runner.run())
    yield rig
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition every 20 ms until it holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def request(seconds: float = 3.0, user_id: int = 42) -> AnimateRequest:
    return AnimateRequest(
        guild_id=1, channel_id=2, user_id=user_id, image=media.png(400, 500), audio=media.wav(seconds)
    )


async def open_mixed(database: Database, mixin: type[M]) -> M:
    """The test's database opened through its backend's real store with `mixin` in front of it (a store
    that behaves otherwise at one call), on either backend."""
    backend: Any = SqliteStore if isinstance(database, SqliteDatabase) else PostgresStore
    store_class: Any = type(f"{mixin.__name__}{backend.__name__}", (mixin, backend), {})
    if isinstance(database, SqliteDatabase):
        return cast(M, await store_class.open(str(database.path)))
    return cast(M, await store_class.open(database.url))
