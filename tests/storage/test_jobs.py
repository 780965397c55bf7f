"""A job's life in the store (JobStore): reservations under the limits, the runner's steps, settle
and refund, and the spend totals they keep."""

from __future__ import annotations

import asyncio

from core.models import (
    Job,
    JobStatus,
    Limits,
    QuotaRefusal,
    RefusalReason,
)
from core.ports import Store
from core.quota import windows_at
from tests.conftest import reserve
from tests.storage.builders import (
    ledger_rows,
    new_job,
    operator_totals,
    reserved,
    stored_totals,
    totals_from_ledger,
)
from tests.storage.conftest import Query

NOW = 1_000.0
DAY_S = 86_400.0


async def test_reservation_writes_job_and_ledger_together(store: Store) -> None:
    """A reservation creates the job (uploading) and one reserve row of the estimate."""
    job = await reserve(store, new_job(), Limits(1_000_000, 2), NOW)
    assert not isinstance(job, QuotaRefusal)
    assert job.status is JobStatus.UPLOADING
    usage = await store.usage(1, 7, Limits(1_000_000, 2), windows_at(NOW))
    assert (usage.spent_today_micros, usage.active_jobs) == (100_000, 1)


async def test_refuses_over_the_daily_limit(store: Store) -> None:
    """A job whose estimate would pass the daily limit is refused and nothing is written."""
    limits = Limits(150_000, 5)
    assert not isinstance(await reserve(store, new_job(), limits, NOW), QuotaRefusal)
    refused = await reserve(store, new_job(), limits, NOW)
    assert isinstance(refused, QuotaRefusal) and refused.reason is RefusalReason.DAILY
    assert refused.usage.spent_today_micros == 100_000
    assert (await store.usage(1, 7, limits, windows_at(NOW))).active_jobs == 1


async def test_refuses_past_max_active_jobs(store: Store) -> None:
    """The active-jobs limit counts unfinished jobs."""
    limits = Limits(10_000_000, 1)
    await reserve(store, new_job(), limits, NOW)
    refused = await reserve(store, new_job(), limits, NOW)
    assert isinstance(refused, QuotaRefusal) and refused.reason is RefusalReason.ACTIVE


async def test_limits_are_per_member_and_guild(store: Store) -> None:
    """Another member, or the same member in another guild, has their own limit."""
    limits = Limits(100_000, 1)
    for user, guild in ((7, 1), (8, 1), (7, 2)):
        created = await reserve(store, new_job(user, guild_id=guild), limits, NOW)
        assert not isinstance(created, QuotaRefusal)


async def test_yesterdays_spend_does_not_count_today(store: Store) -> None:
    """Spend counts in the UTC day of its reservation."""
    limits = Limits(100_000, 5)
    await reserve(store, new_job(), limits, NOW)
    today = 86_400.0
    created = await reserve(store, new_job(), limits, today + 5)
    assert not isinstance(created, QuotaRefusal)


async def test_200_concurrent_reservations_never_overspend(store: Store, query: Query) -> None:
    """200 simultaneous reservations by one member against a $1 limit accept exactly 10 of $0.10."""
    limits = Limits(1_000_000, 1_000)
    results = await asyncio.gather(*(reserve(store, new_job(), limits, NOW) for _ in range(200)))
    accepted = [r for r in results if not isinstance(r, QuotaRefusal)]
    assert len(accepted) == 10
    assert query("SELECT SUM(amount_micros), (SELECT COUNT(*) FROM jobs) FROM ledger") == [(1_000_000, 10)]


async def test_complete_settles_with_the_real_cost(store: Store, query: Query) -> None:
    """Success releases the estimate and charges Runware's cost: spend becomes the cost."""
    limits = Limits(1_000_000, 2)
    job = await reserve(store, new_job(estimate=100_000), limits, NOW)
    assert not isinstance(job, QuotaRefusal)
    await store.mark_job_queued(job.id, "img", "aud", NOW)
    done = await store.complete_job(job.id, "https://x/v.mp4", 83_000, False, NOW + 5)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.cost_micros == 83_000
    usage = await store.usage(1, 7, limits, windows_at(NOW))
    assert (usage.spent_today_micros, usage.active_jobs) == (83_000, 0)
    assert ledger_rows(query) == [
        ("reserve", 100_000, job.id),
        ("release", -100_000, job.id),
        ("settle", 83_000, job.id),
    ]


async def test_fail_refunds_once(store: Store) -> None:
    """A failed job costs nothing, and failing or completing it again changes nothing."""
    limits = Limits(1_000_000, 2)
    job = await reserve(store, new_job(), limits, NOW)
    assert not isinstance(job, QuotaRefusal)
    assert await store.fail_job(job.id, "x", "y", NOW) is not None
    assert await store.fail_job(job.id, "x", "y", NOW) is None
    assert await store.complete_job(job.id, "u", 5, False, NOW) is None
    assert (await store.usage(1, 7, limits, windows_at(NOW))).spent_today_micros == 0


async def test_claim_batches_processing_jobs_within_the_horizon(store: Store) -> None:
    """Processing jobs due soon are polled with the due ones; queued jobs only when due."""
    limits = Limits(10_000_000, 10)
    ids = []
    for _ in range(3):
        job = await reserve(store, new_job(), limits, NOW)
        assert not isinstance(job, QuotaRefusal)
        await store.mark_job_queued(job.id, "i", "a", NOW)
        ids.append(job.id)
    await store.mark_submitted(ids[0], NOW, NOW)
    await store.mark_submitted(ids[1], NOW, NOW + 3)
    await store.schedule_polls([(ids[2], NOW + 3)], NOW)  # still queued, due later
    due = await store.claim_due_jobs("me", NOW, NOW + 5, 100, NOW + 60)
    assert [j.id for j in due] == [ids[0], ids[1]]
    assert await store.next_due_at("me", NOW) == NOW


async def test_state_changes_report_whether_they_changed_the_job(store: Store) -> None:
    """Queue, submitting, submitted and poll scheduling each say whether they changed the job."""
    job = await reserve(store, new_job(), Limits(1_000_000, 2), NOW)
    assert not isinstance(job, QuotaRefusal)
    await store.fail_job(job.id, "x", "y", NOW)
    assert await store.mark_job_queued(job.id, "i", "a", NOW) is None
    assert await store.mark_submitting(job.id, NOW, NOW) is False
    assert await store.mark_submitted(job.id, NOW, NOW) is False
    assert await store.schedule_polls([(job.id, NOW)], NOW) == 0
    other = await reserve(store, new_job(), Limits(1_000_000, 2), NOW)
    assert not isinstance(other, QuotaRefusal)
    queued = await store.mark_job_queued(other.id, "i", "a", NOW)
    assert queued is not None and queued.status is JobStatus.QUEUED
    assert await store.mark_submitting(other.id, NOW, NOW) is True
    assert await store.mark_submitted(other.id, NOW, NOW) is True
    assert await store.schedule_polls([(other.id, NOW), (job.id, NOW)], NOW) == 1


async def test_spend_totals_follow_the_ledger(store: Store, query: Query) -> None:
    """Reservations, settlements, refunds and credits across days and months keep the totals exact."""
    limits = Limits(None, None)
    moments = [NOW, 86_400 * 40 + 5.5, 86_400 * 40 + 86_399.9, 86_400 * 75]
    for i, when in enumerate(moments * 3):
        job = await reserve(store, new_job(user_id=7 + i % 2, estimate=100_000 + i), limits, when)
        assert not isinstance(job, QuotaRefusal)
        if i % 3 == 0:
            await store.complete_job(job.id, "u", 50_000 + i, False, when + 10)
            await store.credit_job_cost(job.id, "test", when + 20)
        elif i % 3 == 1:
            await store.fail_job(job.id, "x", "y", when + 10)
    assert stored_totals(query) == totals_from_ledger(query)
    assert len(stored_totals(query)) > 8


async def test_operator_day_total_counts_every_guild_but_not_grants(store: Store, query: Query) -> None:
    """The operator's day total sums every guild's reservations and settlements, and leaves out credits."""
    a = await reserved(store, 7, 300_000, NOW, guild_id=1)
    await reserved(store, 8, 200_000, NOW + 1, guild_id=2)
    await store.complete_job(a.id, "u", 100_000, False, NOW + 5)
    await store.credit_job_cost(a.id, "withheld", NOW + 6)
    await store.grant(2, 8, -5_000_000, "thanks", actor_id=9, now=NOW + 7)
    tomorrow = await reserved(store, 7, 50_000, NOW + DAY_S, guild_id=1)
    await store.fail_job(tomorrow.id, "x", "y", NOW + DAY_S + 1)
    assert operator_totals(query) == {0.0: 300_000, DAY_S: 0}
    usage = await store.usage(1, 7, Limits(None, None), windows_at(NOW))
    assert usage.operator_spent_today_micros == 300_000


async def test_operator_ceiling_refuses_in_the_reservation(store: Store) -> None:
    """A reservation that would take all guilds together past the operator's day ceiling is refused."""
    limits = Limits(None, None, operator_daily_micros=1_000_000)
    first = await reserve(store, new_job(7, 700_000, guild_id=1), limits, NOW)
    assert isinstance(first, Job)
    refused = await reserve(store, new_job(8, 400_000, guild_id=2), limits, NOW + 1)
    assert isinstance(refused, QuotaRefusal) and refused.reason is RefusalReason.OPERATOR_DAILY
    assert refused.frees_at == DAY_S


async def test_a_job_watched_for_a_late_result_keeps_its_hold_on_the_server_and_operator(
    store: Store,
) -> None:
    """Refunded at its deadline but still rendering at Runware: its estimate still counts against the
    server's budget and the operator's day (not the member's), until its late result is booked."""
    guild_cap = Limits(None, None, guild_monthly_micros=1_000_000)
    late = await reserved(store, 7, 600_000, NOW)
    await store.fail_job(late.id, "deadline", "late", NOW + 1, expired=True, watch=(NOW + 9_000, NOW + 15))
    usage = await store.usage(1, 8, guild_cap, windows_at(NOW + 2))
    assert (usage.spent_today_micros, usage.guild_spent_month_micros) == (0, 600_000)
    assert (await store.usage(1, 7, guild_cap, windows_at(NOW + 2))).spent_today_micros == 0
    refused = await reserve(store, new_job(user_id=8, estimate=600_000), guild_cap, NOW + 2)
    assert isinstance(refused, QuotaRefusal) and refused.reason is RefusalReason.GUILD_BUDGET
    operator_cap = Limits(None, None, operator_daily_micros=1_000_000)
    refused = await reserve(store, new_job(user_id=8, estimate=600_000, guild_id=2), operator_cap, NOW + 2)
    assert isinstance(refused, QuotaRefusal) and refused.reason is RefusalReason.OPERATOR_DAILY
    # The late video arrives at its real cost: the hold gives way to the booked cost, never both.
    assert await store.complete_late_job(late.id, "https://v/late.mp4", 500_000, False, NOW + 30) is not None
    usage = await store.usage(1, 8, guild_cap, windows_at(NOW + 31))
    assert (usage.guild_spent_month_micros, usage.operator_spent_today_micros) == (500_000, 500_000)
    assert not isinstance(
        await reserve(store, new_job(user_id=8, estimate=400_000), guild_cap, NOW + 31), QuotaRefusal
    )


async def test_a_watch_that_ends_without_a_video_frees_its_hold(store: Store) -> None:
    """A late error (or the output's time to live passing) ends the watch and the hold with it."""
    late = await reserved(store, 7, 600_000, NOW)
    await store.fail_job(late.id, "deadline", "late", NOW + 1, expired=True, watch=(NOW + 9_000, NOW + 15))
    await store.end_late_watch(late.id, NOW + 30)
    usage = await store.usage(1, 8, Limits(None, None), windows_at(NOW + 31))
    assert (usage.guild_spent_month_micros, usage.operator_spent_today_micros) == (0, 0)
