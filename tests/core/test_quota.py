"""Estimates, money formatting, UTC windows and refusal wording."""

from __future__ import annotations

import pytest

from core.models import QuotaRefusal, RefusalReason, Usage, format_usd, round_up_to_cent
from core.quota import estimate_micros, refusal_message, utc_day_start


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


def test_daily_refusal_says_numbers_and_reset() -> None:
    """The daily refusal names the limit, what is left and when it resets (Discord timestamp)."""
    usage = Usage(4_700_000, 5_000_000, 0, 2, 172_800)
    text = refusal_message(QuotaRefusal(RefusalReason.DAILY, usage), 600_000)
    assert "$0.60" in text and "$0.30" in text and "$5.00" in text and "<t:172800:R>" in text


def test_active_refusal_says_the_limit() -> None:
    """The active-jobs refusal says how many are running and the limit."""
    text = refusal_message(QuotaRefusal(RefusalReason.ACTIVE, Usage(0, 1, 2, 2, 0)), 1)
    assert "2 video(s) in progress" in text and "limit is 2" in text
