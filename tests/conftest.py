"""Shared fixtures: settings without the environment, and a fresh database (and a store on it) of each
backend: every test that takes `database` or `store` runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.models import Job, Limits, NewJob, QuotaRefusal
from core.ports import JobStore, Store
from core.quota import check_limits, windows_at
from core.settings import Settings
from tests.databases import BACKENDS, Database, fresh_database
from tests.fakes.discord_fixtures import fixture_fake_discord  # noqa: F401  (the `fake_discord` fixture)

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """Build Settings from keyword overrides only (no .env, no process environment surprises)."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "discord_token": "test-discord-token-0123456789",
            "runware_api_key": "test-runware-key-0123456789",
            "database_url": f"sqlite:///{tmp_path / 'bot.db'}",
            "poll_initial_delay_s": 0.05,
            "poll_max_interval_s": 0.2,
            "runware_request_timeout_s": 2.0,
            # Tests start jobs back to back; the cooldown has tests of its own.
            "quota_cooldown_s": 0.0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return build


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh database of each backend: a new SQLite file, or a new PostgreSQL schema dropped after the
    test (skipped when PostgreSQL does not answer, failed instead under CI=true)."""
    with fresh_database(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
async def store(database: Database) -> AsyncIterator[Store]:
    """A migrated store on the test's fresh database."""
    opened = await database.open()
    try:
        yield opened
    finally:
        await opened.close()


async def reserve(store: JobStore, new: NewJob, limits: Limits, now: float) -> Job | QuotaRefusal:
    """create_job_with_reservation with the real limit rules, in the windows around `now`."""
    return await store.create_job_with_reservation(
        new, limits, now, windows_at(now), lambda usage: check_limits(usage, new.estimate_micros, now)
    )
