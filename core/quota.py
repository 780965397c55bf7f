"""Limits, cost estimates and the words used when a limit says no."""

from __future__ import annotations

import math

from core.models import (
    Limits,
    QuotaRefusal,
    RefusalReason,
    Usage,
    format_usd,
    round_up_to_cent,
    usd_to_micros,
)
from core.settings import Settings

DAY_S = 86400


def estimate_micros(audio_seconds: float, price_per_second_usd: float) -> int:
    """Estimated cost: audio seconds × price, rounded up to the cent (a video is as long as its audio)."""
    # Price to whole micro-dollars first, and round away float noise (6.0 × 0.1 is 0.6000000000000001)
    # before rounding up, or an exact cent amount would gain a cent.
    price_micros = usd_to_micros(price_per_second_usd)
    raw = math.ceil(round(audio_seconds * price_micros, 3))
    return round_up_to_cent(raw)


def utc_day_start(now: float) -> float:
    """Start of the UTC day that contains `now` (epoch seconds)."""
    return float(math.floor(now / DAY_S) * DAY_S)


def default_limits(settings: Settings) -> Limits:
    """The limits every member gets (per-guild and per-role overrides come with the budgets work)."""
    return Limits(
        daily_micros=usd_to_micros(settings.quota_user_daily_usd),
        max_active_jobs=settings.quota_user_max_active_jobs,
    )


def discord_time(epoch: float, style: str = "R") -> str:
    """A Discord timestamp tag, shown in each reader's own time zone (`R` = relative)."""
    return f"<t:{int(epoch)}:{style}>"


def refusal_message(refusal: QuotaRefusal, estimate: int) -> str:
    """The member-facing sentence for a refused reservation: which limit, the numbers, when it frees up."""
    usage = refusal.usage
    if refusal.reason is RefusalReason.ACTIVE:
        return (
            f"You already have {usage.active_jobs} video(s) in progress; the limit is "
            f"{usage.max_active_jobs} at a time. Try again when one finishes."
        )
    return (
        f"This clip would cost about {format_usd(estimate)}, but you have {format_usd(usage.left_micros)} "
        f"left of your {format_usd(usage.limit_micros)} daily limit. "
        f"It resets {discord_time(usage.resets_at)}. A shorter clip costs less."
    )


def usage_lines(usage: Usage) -> list[str]:
    """/usage as short lines: spend today, the limit, what is left, active jobs, when it resets."""
    return [
        f"Spent today: {format_usd(usage.spent_micros)} of {format_usd(usage.limit_micros)}",
        f"Left today: {format_usd(usage.left_micros)} (resets {discord_time(usage.resets_at)})",
        f"Videos in progress: {usage.active_jobs} of {usage.max_active_jobs}",
    ]
