"""The operator's ceilings in settings and limits, and the process-wide cap on downloads and decodes."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from core.errors import UserFacingError
from core.models import UNLIMITED, GuildLimits
from core.quota import limits_for_guild
from core.settings import Settings, describe_settings_error
from core.work_slots import BUSY, WorkSlots
from tests.conftest import SettingsFactory
from tests.core.test_settings import settings_from

SECRETS = {"DISCORD_TOKEN": "t" * 20, "RUNWARE_API_KEY": "k" * 20}


def test_operator_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default all servers together spend at most $50 a day, one server at most $200 a month."""
    s = settings_from(monkeypatch, **SECRETS)
    assert (s.operator_daily_usd, s.guild_budget_max_usd, s.allowed_guild_ids) == (50.0, 200.0, [])


def start_up_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    with pytest.raises(ValidationError) as info:
        settings_from(monkeypatch, **SECRETS, **env)
    return describe_settings_error(info.value)


def test_a_default_budget_above_the_cap_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """QUOTA_GUILD_MONTHLY_USD above GUILD_BUDGET_MAX_USD (or unlimited under it) is refused, naming both."""
    for default in ("300", "unlimited"):
        text = start_up_error(monkeypatch, QUOTA_GUILD_MONTHLY_USD=default)
        assert "GUILD_BUDGET_MAX_USD is invalid" in text and "QUOTA_GUILD_MONTHLY_USD" in text
    s = settings_from(monkeypatch, **SECRETS, QUOTA_GUILD_MONTHLY_USD="300", GUILD_BUDGET_MAX_USD="unlimited")
    assert (s.quota_guild_monthly_usd, s.guild_budget_max_usd) == (300.0, None)


def test_allowed_guild_ids_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    """ALLOWED_GUILD_IDS takes comma-separated server ids; a word that is not an id stops start-up."""
    assert settings_from(monkeypatch, **SECRETS, ALLOWED_GUILD_IDS="12, 34").allowed_guild_ids == [12, 34]
    assert "ALLOWED_GUILD_IDS is invalid" in start_up_error(monkeypatch, ALLOWED_GUILD_IDS="12,x")


def test_stored_budgets_above_the_cap_apply_as_the_cap(make_settings: SettingsFactory) -> None:
    """A server's stored budget (a figure or unlimited) never applies above GUILD_BUDGET_MAX_USD."""
    settings: Settings = make_settings(guild_budget_max_usd=100.0, quota_guild_monthly_usd=80.0)
    budget = [
        limits_for_guild(settings, GuildLimits(1, guild_monthly_micros=chosen)).guild_monthly_micros
        for chosen in (None, 40_000_000, 150_000_000, UNLIMITED)
    ]
    assert budget == [80_000_000, 40_000_000, 100_000_000, 100_000_000]


async def test_work_slots_bound_concurrency() -> None:
    """However many ask at once, no more than the slots run together."""
    slots, running, most = WorkSlots(2), 0, 0

    async def work() -> None:
        nonlocal running, most
        async with slots.hold():
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.02)
            running -= 1

    await asyncio.gather(*(work() for _ in range(10)))
    assert most == 2


async def test_a_long_wait_is_announced_once() -> None:
    """Waiting longer than a moment calls `on_wait` once, then the work runs when a slot frees."""
    slots, told = WorkSlots(1, notice_after_s=0.02), []

    async def notice() -> None:
        told.append(1)

    async def second() -> None:
        async with slots.hold(notice):
            pass

    async with slots.hold():
        waiter = asyncio.create_task(second())
        await asyncio.sleep(0.1)
        assert told == [1] and not waiter.done()
    await waiter
    assert told == [1]


async def test_a_wait_too_long_gives_up_and_frees_nothing_it_did_not_take() -> None:
    """After the longest wait the member is told to try again; the slots still count right afterwards."""
    slots = WorkSlots(1, notice_after_s=0.01, give_up_after_s=0.05)
    async with slots.hold():
        with pytest.raises(UserFacingError) as info:
            async with slots.hold():
                pass
    assert info.value.message == BUSY
    async with asyncio.timeout(1), slots.hold():
        pass
