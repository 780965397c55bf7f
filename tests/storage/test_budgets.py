"""A guild's money in the store (BudgetStore): grants, resets, month spend and budget alerts."""

from __future__ import annotations

import datetime as dt

from core.models import (
    Limits,
    QuotaRefusal,
)
from core.ports import Store
from core.quota import windows_at
from tests.conftest import reserve
from tests.storage.builders import (
    new_job,
    reserved,
    stored_totals,
    totals_from_ledger,
)
from tests.storage.conftest import Query

NOW = 1_000.0
DAY_S = 86_400.0


async def test_grants_do_not_shrink_the_guild_spend(store: Store) -> None:
    """A credit gives a member room but leaves the guild's spend (what Runware bills) as it was."""
    job = await reserve(store, new_job(estimate=300_000), Limits(None, None), NOW)
    assert not isinstance(job, QuotaRefusal)
    await store.complete_job(job.id, "u", 300_000, False, NOW)
    await store.reset_member_window(1, 7, "month", windows_at(NOW), actor_id=9, now=NOW)
    usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW))
    assert (usage.spent_month_micros, usage.guild_spent_month_micros) == (0, 300_000)
    await store.grant(1, 7, -1_000_000, "gift", actor_id=9, now=NOW)
    usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW))
    assert (usage.spent_month_micros, usage.guild_spent_month_micros) == (-1_000_000, 300_000)
    assert await store.guild_month_spend(1, windows_at(NOW)) == 300_000


async def test_admin_grants_and_resets_keep_the_totals_exact(store: Store, query: Query) -> None:
    """Admin grants and day and month resets, mid-month and on a month's first day, keep the totals exact."""
    limits = Limits(None, None)
    # Mid-month (day 40 is 10 February 1970) and the first second of March; jobs the day before each.
    for when in (86_400 * 40 + 3_600.5, 86_400 * 59 + 0.25):
        for user_id in (7, 8):
            job = await reserve(store, new_job(user_id=user_id, estimate=400_000), limits, when - 86_400)
            assert not isinstance(job, QuotaRefusal)
            await store.complete_job(job.id, "u", 250_000, False, when - 86_000)
            job = await reserve(store, new_job(user_id=user_id, estimate=300_000), limits, when)
            assert not isinstance(job, QuotaRefusal)
        await store.grant(1, 7, -120_000, "gift", actor_id=9, now=when)
        await store.grant(1, 8, 50_000, "debit", actor_id=9, now=when)
        await store.reset_member_window(1, 7, "day", windows_at(when), actor_id=9, now=when + 1)
        await store.reset_member_window(1, 8, "month", windows_at(when), actor_id=9, now=when + 2)
    assert stored_totals(query) == totals_from_ledger(query)


async def test_reset_gives_back_only_settled_spend(store: Store) -> None:
    """A reset with one job finished and one running credits only the finished job's cost."""
    finished = await reserved(store, 7, 300_000, NOW)
    await store.complete_job(finished.id, "u", 250_000, False, NOW + 5)
    await reserved(store, 7, 400_000, NOW + 10)  # still running: its reservation stays
    credited = await store.reset_member_window(1, 7, "day", windows_at(NOW), actor_id=9, now=NOW + 20)
    assert credited == 250_000
    usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW))
    assert usage.spent_today_micros == 400_000


async def test_totals_are_right_after_the_running_job_settles(store: Store) -> None:
    """After a month reset, the running job settling leaves exactly its real cost as the member's spend."""
    finished = await reserved(store, 7, 300_000, NOW)
    await store.complete_job(finished.id, "u", 250_000, False, NOW + 5)
    running = await reserved(store, 7, 400_000, NOW + 10)
    credited = await store.reset_member_window(1, 7, "month", windows_at(NOW), actor_id=9, now=NOW + 20)
    assert credited == 250_000
    await store.complete_job(running.id, "u", 350_000, False, NOW + 30)
    usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW))
    assert (usage.spent_today_micros, usage.spent_month_micros) == (350_000, 350_000)


async def test_an_unposted_budget_alert_is_claimed_again_once_due(store: Store) -> None:
    """A claimed alert is taken again only after its try is old or was given up, never while posted."""
    month = 0.0
    assert await store.claim_budget_alert(1, month, 1_000_000, 50, NOW, 600_000)
    assert await store.reclaim_unposted_budget_alerts(month, NOW + 10, NOW) == []  # its first try is live
    assert await store.reclaim_unposted_budget_alerts(month, NOW + 61, NOW + 1) == [
        (1, 1_000_000, 50, 600_000)
    ]
    assert (
        await store.reclaim_unposted_budget_alerts(month, NOW + 62, NOW + 2) == []
    )  # claimed again just now
    await store.settle_budget_alert(1, month, 1_000_000, 50, None)  # that try failed
    assert await store.reclaim_unposted_budget_alerts(month, NOW + 63, NOW + 3) == [
        (1, 1_000_000, 50, 600_000)
    ]
    await store.settle_budget_alert(1, month, 1_000_000, 50, NOW + 64)  # posted
    await store.settle_budget_alert(1, month, 1_000_000, 50, None)  # a late failure changes nothing
    assert await store.reclaim_unposted_budget_alerts(month, NOW + 999, NOW + 999) == []


async def test_running_totals_fall_in_the_utc_day_and_month_of_each_row(store: Store, query: Query) -> None:
    """Rows just before and at midnight, a month's end (a leap February's too) and a year's end count in
    the UTC day and month that core.quota computes (each backend has its own trigger: they must agree)."""

    def at(*args: int) -> float:
        return dt.datetime(*args, tzinfo=dt.UTC).timestamp()

    moments = [
        at(2024, 2, 29, 23, 59, 59) + 0.999_999,
        at(2024, 3, 1),
        at(2023, 12, 31, 23, 59, 59) + 0.5,
        at(2024, 1, 1),
        at(2024, 1, 1) + 0.25,
        at(2024, 6, 15, 12),
    ]
    for t in moments:
        await reserved(store, 7, 100_000, t)
        await store.grant(1, 7, -1_000, "gift", actor_id=9, now=t)
    assert stored_totals(query) == totals_from_ledger(query)
    months = {s for (_, user, period, s) in stored_totals(query) if period == "month" and user == 0}
    assert months == {at(2024, 2, 1), at(2024, 3, 1), at(2023, 12, 1), at(2024, 1, 1), at(2024, 6, 1)}
