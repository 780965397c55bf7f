"""Limits, cost estimates and the UTC windows spend is counted in (the words are the cogs': cogs/_wording.py).

Everything here is pure: storage gathers the numbers inside its write transaction and asks `check_limits`.
"""

from __future__ import annotations

import datetime as dt
import math

from core.models import (
    UNLIMITED,
    GuildLimits,
    Limits,
    QuotaRefusal,
    RefusalReason,
    RoleTier,
    Usage,
    Windows,
    round_up_to_cent,
    usd_to_micros,
)
from core.settings import Settings

DAY_S = 86400
# A member is warned in the acknowledgement once a job takes them to this share of a limit.
WARN_AT = 0.8


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


def windows_at(now: float) -> Windows:
    """The UTC day and calendar month containing `now`."""
    day_start = utc_day_start(now)
    # The month from the day's start, not from `now`: fromtimestamp rounds to the microsecond, and the last
    # instant of a month would round into the next one (found by the ledger's stateful test).
    moment = dt.datetime.fromtimestamp(day_start, dt.UTC)
    month_start = dt.datetime(moment.year, moment.month, 1, tzinfo=dt.UTC)
    next_month = dt.datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=dt.UTC)
    return Windows(day_start, day_start + DAY_S, month_start.timestamp(), next_month.timestamp())


def _usd_or_none(usd: float | None) -> int | None:
    return None if usd is None else usd_to_micros(usd)


def default_limits(settings: Settings) -> Limits:
    """The limits every member gets when their guild has not chosen its own."""
    return Limits(
        daily_micros=_usd_or_none(settings.quota_user_daily_usd),
        max_active_jobs=settings.quota_user_max_active_jobs,
        monthly_micros=_usd_or_none(settings.quota_user_monthly_usd),
        cooldown_s=settings.quota_cooldown_s,
        guild_monthly_micros=capped_budget(settings, _usd_or_none(settings.quota_guild_monthly_usd)),
        operator_daily_micros=_usd_or_none(settings.operator_daily_usd),
    )


def guild_budget_cap(settings: Settings) -> int | None:
    """The highest monthly budget a guild may have (GUILD_BUDGET_MAX_USD; None: no cap)."""
    return _usd_or_none(settings.guild_budget_max_usd)


def capped_budget(settings: Settings, budget: int | None) -> int | None:
    """A guild's monthly budget as it applies: what it chose (None: unlimited), never above the cap."""
    cap = guild_budget_cap(settings)
    if cap is None:
        return budget
    return cap if budget is None else min(budget, cap)


def limits_for_guild(settings: Settings, overrides: GuildLimits | None) -> Limits:
    """The settings' defaults with a guild's own choices laid over them (its budget within the cap)."""
    base = default_limits(settings)
    if overrides is None:
        return base
    return Limits(
        daily_micros=overrides.resolve("user_daily_micros", base.daily_micros),
        max_active_jobs=overrides.resolve("max_active_jobs", base.max_active_jobs),
        monthly_micros=overrides.resolve("user_monthly_micros", base.monthly_micros),
        cooldown_s=float(overrides.cooldown_s) if overrides.cooldown_s is not None else base.cooldown_s,
        # A budget stored before the cap was lowered (or `unlimited`) applies as the cap.
        guild_monthly_micros=capped_budget(
            settings, overrides.resolve("guild_monthly_micros", base.guild_monthly_micros)
        ),
        operator_daily_micros=base.operator_daily_micros,
    )


def confirm_threshold(settings: Settings, overrides: GuildLimits | None) -> int | None:
    """Estimates at or above this ask the member to confirm first (None: never ask)."""
    default = _usd_or_none(settings.confirm_above_usd)
    return overrides.resolve("confirm_above_micros", default) if overrides else default


def _most_generous(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


def apply_tiers(limits: Limits, tiers: list[RoleTier]) -> Limits:
    """A member's limits given the tiers of their roles: for each limit, the most generous value among
    the tiers (a tier that leaves a limit unset keeps the guild's value for it). The server's own monthly
    budget is shared by everyone and no tier changes it."""
    if not tiers:
        return limits

    def pick(field: str, base: int | None) -> int | None:
        return _most_generous([_tier_value(t, field, base) for t in tiers])

    cooldowns = [t.cooldown_s if t.cooldown_s is not None else limits.cooldown_s for t in tiers]
    return Limits(
        daily_micros=pick("daily_micros", limits.daily_micros),
        max_active_jobs=pick("max_active_jobs", limits.max_active_jobs),
        monthly_micros=pick("monthly_micros", limits.monthly_micros),
        cooldown_s=min(cooldowns),
        guild_monthly_micros=limits.guild_monthly_micros,
        operator_daily_micros=limits.operator_daily_micros,
    )


def _tier_value(tier: RoleTier, field: str, base: int | None) -> int | None:
    value = getattr(tier, field)
    if value is None:
        return base
    return None if value == UNLIMITED else int(value)


def check_limits(usage: Usage, estimate: int, now: float) -> QuotaRefusal | None:
    """Whether a job of `estimate` may start now. The first limit in the way wins, in the order a member
    can least do something about: jobs running, the cooldown, the operator's day ceiling, the guild's
    budget, month, day."""
    limits, w = usage.limits, usage.windows
    if limits.max_active_jobs is not None and usage.active_jobs >= limits.max_active_jobs:
        return QuotaRefusal(RefusalReason.ACTIVE, usage)
    if limits.cooldown_s > 0 and usage.last_job_at is not None:
        free_at = usage.last_job_at + limits.cooldown_s
        if now < free_at:
            return QuotaRefusal(RefusalReason.COOLDOWN, usage, free_at)
    ceiling = limits.operator_daily_micros
    if ceiling is not None and usage.operator_spent_today_micros + estimate > ceiling:
        return QuotaRefusal(RefusalReason.OPERATOR_DAILY, usage, w.day_end)
    budget = limits.guild_monthly_micros
    if budget is not None and usage.guild_spent_month_micros + estimate > budget:
        return QuotaRefusal(RefusalReason.GUILD_BUDGET, usage, w.month_end)
    monthly = limits.monthly_micros
    if monthly is not None and usage.spent_month_micros + estimate > monthly:
        return QuotaRefusal(RefusalReason.MONTHLY, usage, w.month_end)
    daily = limits.daily_micros
    if daily is not None and usage.spent_today_micros + estimate > daily:
        return QuotaRefusal(RefusalReason.DAILY, usage, w.day_end)
    return None


ALERT_THRESHOLDS = (50, 80, 100)


def crossed_thresholds(usage: Usage) -> list[int]:
    """The alert thresholds (percent of the guild's monthly budget) its spend has reached."""
    budget = usage.limits.guild_monthly_micros
    if not budget:
        return []
    return [t for t in ALERT_THRESHOLDS if usage.guild_spent_month_micros * 100 >= t * budget]
