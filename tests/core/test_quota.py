"""Estimates, money formatting, UTC windows and which limit refuses a job (cogs/ word it)."""

from __future__ import annotations

import pytest

from core.models import (
    UNLIMITED,
    GuildLimits,
    Limits,
    RefusalReason,
    Usage,
    format_usd,
    round_up_to_cent,
)
from core.quota import (
    check_limits,
    estimate_micros,
    limits_for_guild,
    utc_day_start,
    windows_at,
)
from tests.conftest import SettingsFactory


@pytest.mark.parametrize(
    ("seconds", "price", "micros"),
    [(6.0, 0.10, 600_000), (6.01, 0.10, 610_000), (0.1, 0.14, 20_000), (30.0, 0.0, 0)],
)
def test_estimate_rounds_up_to_the_cent(seconds: float, price: float, micros: int) -> None:
    """Audio seconds × price, rounded up to a whole cent."""
    assert estimate_micros(seconds, price) == micros


@pytest.mark.parametrize(
    ("micros", "text"),
    [(600_000, "$0.60"), (0, "$0.00"), (12_345_678, "$12.35"), (-1_250_000, "-$1.25"), (5_000, "$0.01")],
)
def test_format_usd(micros: int, text: str) -> None:
    """Money is written like $0.60."""
    assert format_usd(micros) == text


def test_round_up_to_cent() -> None:
    """One micro-dollar over a cent rounds up to the next cent."""
    assert round_up_to_cent(10_001) == 20_000


def test_utc_day_start() -> None:
    """Windows are UTC days."""
    assert utc_day_start(86_400 * 3 + 5) == 86_400 * 3


WINDOWS = windows_at(86_400 * 3 + 5)


def usage(
    today: int = 0,
    month: int = 0,
    guild: int = 0,
    active: int = 0,
    last: float | None = None,
    **limits: object,
) -> Usage:
    base: dict[str, object] = {"daily_micros": 5_000_000, "max_active_jobs": 2}
    base.update(limits)
    return Usage(today, month, guild, active, last, Limits(**base), WINDOWS)  # type: ignore[arg-type]


def test_windows_are_the_utc_day_and_calendar_month() -> None:
    """2026-11-25 12:00 UTC is in the day from midnight and the month from November 1st."""
    w = windows_at(1_795_608_000.0)  # 2026-11-25T12:00:00Z
    assert (w.day_start, w.day_end) == (1_795_564_800.0, 1_795_651_200.0)
    assert (w.month_start, w.month_end) == (1_793_491_200.0, 1_796_083_200.0)


def test_december_window_ends_on_new_year() -> None:
    """The month after December is January of the next year."""
    w = windows_at(1_798_761_600.0 - 1)  # 2026-12-31T23:59:59Z
    assert w.month_end == 1_798_761_600.0  # 2027-01-01T00:00:00Z


def test_within_every_limit_is_allowed() -> None:
    """Nothing refuses a job that fits every limit."""
    assert check_limits(usage(today=100), 600_000, 0.0) is None


def test_monthly_limit_wins_over_daily() -> None:
    """With both limits hit, the monthly one is reported: the daily reset would not help."""
    refusal = check_limits(usage(today=4_900_000, month=9_900_000, monthly_micros=10_000_000), 600_000, 0.0)
    assert refusal is not None and refusal.reason is RefusalReason.MONTHLY
    assert refusal.frees_at == WINDOWS.month_end


def test_unlimited_limits_never_refuse() -> None:
    """None means no limit."""
    assert (
        check_limits(usage(today=10**12, daily_micros=None, max_active_jobs=None, active=99), 10**9, 0)
        is None
    )


def test_guild_overrides_lay_over_defaults(make_settings: SettingsFactory) -> None:
    """A guild's own values replace the defaults; UNLIMITED removes a limit; unset fields keep the default."""
    settings = make_settings(quota_user_daily_usd=5.0, quota_user_monthly_usd=50.0)
    limits = limits_for_guild(
        settings, GuildLimits(1, user_daily_micros=2_000_000, user_monthly_micros=UNLIMITED)
    )
    assert limits.daily_micros == 2_000_000 and limits.monthly_micros is None
    assert limits.max_active_jobs == settings.quota_user_max_active_jobs


def test_confirm_threshold_zero_means_always_ask(make_settings: SettingsFactory) -> None:
    """CONFIRM_ABOVE_USD=0 asks for every job; `off` never asks; a guild's own value wins."""
    from core.quota import confirm_threshold

    assert confirm_threshold(make_settings(confirm_above_usd=0.0), None) == 0
    assert confirm_threshold(make_settings(confirm_above_usd="off"), None) is None
    own = GuildLimits(1, confirm_above_micros=500_000)
    assert confirm_threshold(make_settings(confirm_above_usd=2.0), own) == 500_000
    assert confirm_threshold(make_settings(), GuildLimits(1, confirm_above_micros=UNLIMITED)) is None
