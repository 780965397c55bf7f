"""Server budgets: what admins may change, how their words become limits, and what a budget looks like now
(the words are the cogs': cogs/_wording.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from core.errors import N_, UserFacingError
from core.models import (
    MICROS_PER_USD,
    UNLIMITED,
    BudgetAlert,
    GuildLimits,
    GuildLimitsPatch,
    LedgerRow,
    Limits,
    RoleTier,
    SpendReport,
    Windows,
    format_usd,
    usd_to_micros,
)
from core.ports import BudgetServiceStore
from core.quota import confirm_threshold, guild_budget_cap, limits_for_guild, windows_at
from core.settings import Settings

# /budget set option -> (stored field, kind of value)
_OPTIONS: dict[str, tuple[str, str]] = {
    "daily": ("user_daily_micros", "usd"),
    "monthly": ("user_monthly_micros", "usd"),
    "active": ("max_active_jobs", "count"),
    "cooldown": ("cooldown_s", "seconds"),
    "budget": ("guild_monthly_micros", "usd"),
    "confirm": ("confirm_above_micros", "usd"),
}
# What an admin reads when an option's text is not a value it takes: one whole sentence per option (message
# ids, translated by the front end; `{text}` is what they typed).
_NOT_A_VALUE: dict[str, str] = {
    "daily": N_(
        "`{text}` is not an amount for the daily limit per member. "
        "Use dollars like `2.50`, or `unlimited`, or `default`."
    ),
    "monthly": N_(
        "`{text}` is not an amount for the monthly limit per member. "
        "Use dollars like `2.50`, or `unlimited`, or `default`."
    ),
    "budget": N_(
        "`{text}` is not an amount for the server's monthly budget. "
        "Use dollars like `2.50`, or `unlimited`, or `default`."
    ),
    "confirm": N_(
        "`{text}` is not an amount for the cost members confirm from. "
        "Use dollars like `2.50`, or `never`, or `default`."
    ),
    "active": N_(
        "`{text}` is not a whole number for the videos in progress per member. "
        "Use e.g. `2`, or `unlimited`, or `default`."
    ),
    "cooldown": N_(
        "`{text}` is not a whole number of seconds for the cooldown between videos. "
        "Use e.g. `30`, or `default`."
    ),
}
_USD = re.compile(r"^\$?\s*(\d{1,7}(?:\.\d{1,2})?)$")
# A budget alert whose post failed (or whose process died while posting) is tried again after this long,
# and while its month lasts.
ALERT_RETRY_AFTER_S = 60.0


@dataclass(frozen=True, slots=True)
class LimitChange:
    """One admin change: the option it came from (`daily`, …, `log_channel`), the stored field and its new
    value (None: back to the default; UNLIMITED; 0.0 for no cooldown). The front end words it."""

    option: str
    field: str
    value: int | float | None


def parse_limit_change(option: str, text: str) -> LimitChange:
    """An admin's text for one /budget set option as a change; raises UserFacingError with what works."""
    field, kind = _OPTIONS[option]
    word = text.strip().lower()
    if word == "default":
        return LimitChange(option, field, None)
    if word in {"unlimited", "none", "off", "never"}:
        return LimitChange(option, field, 0.0 if kind == "seconds" else UNLIMITED)
    if kind == "usd":
        match = _USD.match(word)
        if match is None:
            raise UserFacingError(_NOT_A_VALUE[option], text=text)
        return LimitChange(option, field, usd_to_micros(float(match.group(1))))
    if not word.isdigit() or int(word) > 1_000_000:
        raise UserFacingError(_NOT_A_VALUE[option], text=text)
    number = int(word)
    if kind == "count":
        if number < 1:
            raise UserFacingError(N_("At least one video must be allowed at a time, or use `unlimited`."))
        return LimitChange(option, field, number)
    return LimitChange(option, field, float(number))


@dataclass(frozen=True, slots=True)
class BudgetOverview:
    """What /budget show tells an admin: the limits in force, which are the server's own, the spend."""

    limits: Limits
    overrides: GuildLimits | None
    guild_spent_month_micros: int
    windows: Windows
    tiers: tuple[RoleTier, ...] = ()
    confirm_above_micros: int | None = None
    budget_cap_micros: int | None = None  # GUILD_BUDGET_MAX_USD (None: no cap)


class BudgetService:
    """Reading and changing a guild's limits; every change is recorded with who made it."""

    def __init__(
        self, store: BudgetServiceStore, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    async def overview(self, guild_id: int) -> BudgetOverview:
        """The guild's limits in force and its spend this month."""
        overrides = await self._store.guild_limits(guild_id)
        windows = windows_at(self._clock())
        spent = await self._store.guild_month_spend(guild_id, windows)
        tiers = tuple(await self._store.role_tiers(guild_id))
        limits = limits_for_guild(self._settings, overrides)
        confirm = confirm_threshold(self._settings, overrides)
        cap = guild_budget_cap(self._settings)
        return BudgetOverview(limits, overrides, spent, windows, tiers, confirm, cap)

    async def change(self, guild_id: int, changes: list[LimitChange], actor_id: int) -> BudgetOverview:
        """Apply an admin's changes (recorded in the audit log) and return the new overview. A monthly
        budget above the operator's cap (or `unlimited` under one) is refused; nothing is changed."""
        cap = guild_budget_cap(self._settings)
        for change in changes:
            if change.field == "guild_monthly_micros" and cap is not None:
                value = change.value
                if value == UNLIMITED or (value is not None and value > cap):
                    raise UserFacingError(
                        N_(
                            "This bot's operator allows a monthly budget of at most {cap} per server "
                            "(GUILD_BUDGET_MAX_USD). Choose {cap} or less."
                        ),
                        cap=format_usd(cap),
                    )
        fields: dict[str, Any] = {c.field: c.value for c in changes}
        await self._store.update_guild_limits(guild_id, GuildLimitsPatch(**fields), actor_id, self._clock())
        return await self.overview(guild_id)

    async def set_tier(
        self, guild_id: int, role_id: int, changes: list[LimitChange], actor_id: int
    ) -> RoleTier:
        """Create or change a role's tier (fields not mentioned keep their value). Recorded."""
        existing = {t.role_id: t for t in await self._store.role_tiers(guild_id)}.get(
            role_id, RoleTier(role_id)
        )
        values: dict[str, Any] = {_TIER_FIELDS[c.field]: c.value for c in changes}
        tier = replace(existing, **values)
        await self._store.set_role_tier(guild_id, tier, actor_id, self._clock())
        return tier

    async def remove_tier(self, guild_id: int, role_id: int, actor_id: int) -> bool:
        """Remove a role's tier; False if the role had none. Recorded."""
        return await self._store.remove_role_tier(guild_id, role_id, actor_id, self._clock())

    async def grant(
        self, guild_id: int, user_id: int, credit_micros: int, reason: str, actor_id: int
    ) -> None:
        """Give a member room to spend (positive) or take it away (negative), on the ledger. Recorded."""
        await self._store.grant(guild_id, user_id, -credit_micros, reason, actor_id, self._clock())

    async def reset(self, guild_id: int, user_id: int, period: str, actor_id: int) -> int:
        """Start a member's day or month afresh; returns what was given back. Recorded."""
        now = self._clock()
        return await self._store.reset_member_window(
            guild_id, user_id, period, windows_at(now), actor_id, now
        )

    async def alerts_to_retry(self) -> list[BudgetAlert]:
        """This month's budget alerts that were claimed but not posted: claimed again, to post now.

        One whose budget has changed since is dropped (the new amount has alerts of its own), and so is one
        of a guild without an alerts channel any more. At least once: a post whose success was not recorded
        is posted again."""
        now = self._clock()
        windows = windows_at(now)
        due = await self._store.reclaim_unposted_budget_alerts(
            windows.month_start, now, now - ALERT_RETRY_AFTER_S
        )
        alerts = []
        for guild_id, budget, threshold, spent in due:
            overrides = await self._store.guild_limits(guild_id)
            limits = limits_for_guild(self._settings, overrides)
            channel_id = overrides.log_channel_id if overrides is not None else None
            if channel_id is None or limits.guild_monthly_micros != budget:
                await self._store.settle_budget_alert(guild_id, windows.month_start, budget, threshold, now)
                continue
            spent_micros = spent if spent is not None else budget * threshold // 100
            alerts.append(
                BudgetAlert(
                    guild_id,
                    channel_id,
                    threshold,
                    spent_micros,
                    budget,
                    windows.month_end,
                    windows.month_start,
                )
            )
        return alerts

    async def alert_posted(self, alert: BudgetAlert, settled: bool) -> None:
        """Record how a budget alert's post went: settled (posted, or given up for good because its channel
        is gone or hidden: recorded as posted, like an alert whose guild has no alerts channel any more), or
        not (then the next retry pass takes it)."""
        await self._store.settle_budget_alert(
            alert.guild_id,
            alert.month_start,
            alert.budget_micros,
            alert.threshold,
            self._clock() if settled else None,
        )

    async def report(self, guild_id: int, period: str) -> tuple[str, SpendReport]:
        """The guild's spend over a period (`today`, `this_month`, `last_month`) and the period's name."""
        start, end, label = period_bounds(period, self._clock())
        return label, await self._store.spend_report(guild_id, start, end)

    async def export_csv(self, guild_id: int, period: str) -> tuple[str, bytes, int]:
        """The guild's ledger over a period as CSV: (file name, bytes, number of rows)."""
        start, end, _ = period_bounds(period, self._clock())
        rows = await self._store.ledger_rows(guild_id, start, end)
        day = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%d")
        return f"ledger-{guild_id}-{period}-{day}.csv", ledger_csv(rows), len(rows)


PERIODS = {"today": "today", "this_month": "this month", "last_month": "last month"}


def period_bounds(period: str, now: float) -> tuple[float, float, str]:
    """[start, end) of a named UTC period around `now`, and how to call it."""
    w = windows_at(now)
    if period == "today":
        return w.day_start, w.day_end, PERIODS[period]
    if period == "this_month":
        return w.month_start, w.month_end, PERIODS[period]
    if period == "last_month":
        previous = windows_at(w.month_start - 1)
        return previous.month_start, previous.month_end, PERIODS[period]
    raise ValueError(f"unknown period {period!r}")


CSV_HEADER = ("time_utc", "counts_in_utc", "member_id", "job", "kind", "amount_usd", "reason")
# A cell starting with one of these is a formula to Excel, LibreOffice or Sheets (OWASP's CSV injection
# list, with line feed and the full-width forms some spreadsheets also read as formula starters).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def spreadsheet_text(text: str) -> str:
    """Free text made safe for a spreadsheet cell: a leading `'` keeps one that looks like a formula as
    text (for people's words only: our numbers, negative amounts too, must stay numbers)."""
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def ledger_csv(rows: list[LedgerRow]) -> bytes:
    """Ledger rows as CSV: ISO UTC time written, the time it counts in (a job's rows count when it was
    reserved), member id, job number, kind, signed USD amount (6 decimals: exact micro-dollars), reason
    (which an admin typed: never a formula when opened in a spreadsheet)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        writer.writerow(
            (
                dt.datetime.fromtimestamp(row.created_at, dt.UTC).isoformat(timespec="seconds"),
                dt.datetime.fromtimestamp(row.counts_at, dt.UTC).isoformat(timespec="seconds"),
                row.user_id,
                row.job_id if row.job_id is not None else "",
                row.kind.value,
                f"{row.amount_micros / MICROS_PER_USD:.6f}",
                spreadsheet_text(row.reason or ""),
            )
        )
    return out.getvalue().encode()


# A tier's stored fields, by the guild field an option parses to.
_TIER_FIELDS = {
    "user_daily_micros": "daily_micros",
    "user_monthly_micros": "monthly_micros",
    "max_active_jobs": "max_active_jobs",
    "cooldown_s": "cooldown_s",
}


def parse_amount(text: str) -> int:
    """An admin's amount like `2.50`, `$2.50` or `-1` as micro-dollars; raises UserFacingError."""
    word = text.strip().replace(" ", "")
    sign = -1 if word.startswith("-") else 1
    match = _USD.match(word.lstrip("+-"))
    if match is None or float(match.group(1)) == 0:
        raise UserFacingError(
            N_("`{text}` is not an amount. Use dollars like `2.50` (or `-2.50` to take back)."), text=text
        )
    return sign * usd_to_micros(float(match.group(1)))
