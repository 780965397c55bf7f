"""Moderation in the store (ModerationStore): reports, the trail of actions on a job, and pruning."""

from __future__ import annotations

import json

from core.models import (
    Ban,
    ConsentRequest,
    ConsentState,
    GuildSettingsPatch,
    JobAction,
    Pruned,
    QuoteState,
    Report,
    ReportState,
)
from core.ports import Store
from tests.storage.builders import (
    CUT,
    NOW,
    OLD,
    RECENT,
    ask,
    audit,
    posted_job,
    quote,
)
from tests.storage.conftest import Query


async def test_a_member_reports_a_job_only_once(store: Store, query: Query) -> None:
    """The second report by the same member is None; another member's report is its own row."""
    job = await posted_job(store)
    first = await store.create_report(job.id, 8, NOW + 10)
    assert first is not None
    assert first == Report(first.id, job.id, 1, 8, NOW + 10, ReportState.OPEN)
    assert await store.create_report(job.id, 8, NOW + 11) is None
    other = await store.create_report(job.id, 9, NOW + 12)
    assert other is not None and other.id != first.id
    assert [r.reporter_id for r in await store.reports_of_job(job.id)] == [8, 9]
    assert audit(query) == [(1, 8, "job.report", job.id, NOW + 10), (1, 9, "job.report", job.id, NOW + 12)]


async def test_the_log_message_of_a_report_is_remembered(store: Store) -> None:
    """set_report_message stores where the report's buttons were posted."""
    job = await posted_job(store)
    report = await store.create_report(job.id, 8, NOW)
    assert report is not None and report.log_message_id is None
    await store.set_report_message(report.id, 444, 555)
    stored = await store.get_report(report.id)
    assert stored is not None and (stored.log_channel_id, stored.log_message_id) == (444, 555)
    assert stored.state is ReportState.OPEN
    assert await store.get_report(report.id + 50) is None


async def test_removing_a_result_closes_its_open_reports_once(store: Store, query: Query) -> None:
    """The first removal sets removed_at, marks open reports deleted by the actor, and is audited; a
    dismissed report keeps its own decision; the second removal is False."""
    job = await posted_job(store)
    dismissed = await store.create_report(job.id, 8, NOW + 10)
    still_open = await store.create_report(job.id, 9, NOW + 11)
    assert dismissed is not None and still_open is not None
    assert await store.dismiss_report(dismissed.id, 50, NOW + 20) is True
    assert await store.remove_result(job.id, 51, NOW + 30) is True
    assert await store.remove_result(job.id, 52, NOW + 40) is False
    stored = await store.get_job(job.id)
    assert stored is not None and stored.removed_at == NOW + 30
    assert [(r.state, r.decided_by, r.decided_at) for r in await store.reports_of_job(job.id)] == [
        (ReportState.DISMISSED, 50, NOW + 20),
        (ReportState.DELETED, 51, NOW + 30),
    ]
    deletes = [row for row in audit(query) if row[2] == "job.delete"]
    assert deletes == [(1, 51, "job.delete", job.id, NOW + 30)]


async def test_a_report_is_dismissed_only_once(store: Store, query: Query) -> None:
    """Dismiss closes an open report, recorded with the report's number; again it is False."""
    job = await posted_job(store)
    report = await store.create_report(job.id, 8, NOW)
    assert report is not None
    assert await store.dismiss_report(report.id, 50, NOW + 1) is True
    assert await store.dismiss_report(report.id, 51, NOW + 2) is False
    assert await store.dismiss_report(report.id + 10, 51, NOW + 2) is False
    stored = await store.get_report(report.id)
    assert stored is not None
    assert (stored.state, stored.decided_by, stored.decided_at) == (ReportState.DISMISSED, 50, NOW + 1)
    logged = query("SELECT actor_id, detail, job_id FROM audit_log WHERE action = 'job.dismiss'")
    assert [(a, json.loads(d), j) for a, d, j in logged] == [(50, {"report_id": report.id}, job.id)]


async def test_job_actions_list_a_jobs_moderation_trail_in_order(store: Store) -> None:
    """Report, dismiss, ban (with the job) and delete, oldest first; other jobs' actions are not listed."""
    job = await posted_job(store)
    other = await posted_job(store, user_id=8)
    report = await store.create_report(job.id, 8, NOW + 1)
    assert report is not None
    await store.create_report(other.id, 7, NOW + 2)
    await store.dismiss_report(report.id, 50, NOW + 3)
    await store.ban(Ban(1, 7, "deepfake", 50, NOW + 4), 1, NOW + 4, job_id=job.id)
    await store.ban(Ban(1, 9, "spam", 50, NOW + 5), 1, NOW + 5)  # not about a job
    await store.remove_result(job.id, 50, NOW + 6)
    assert await store.job_actions(job.id) == [
        JobAction(job.id, 8, "job.report", NOW + 1),
        JobAction(job.id, 50, "job.dismiss", NOW + 3),
        JobAction(job.id, 50, "moderation.ban", NOW + 4),
        JobAction(job.id, 50, "job.delete", NOW + 6),
    ]
    assert await store.job_actions(other.id) == [JobAction(other.id, 7, "job.report", NOW + 2)]


async def test_prune_forgets_old_records_but_keeps_jobs_and_the_ledger(store: Store, query: Query) -> None:
    """Audit rows, reports, file hashes and closed quotes/requests older than `before` go; newer ones,
    open ones, every job and every ledger row stay."""
    old_job = await posted_job(store, OLD)
    new_job = await posted_job(store, RECENT)
    old_report = await store.create_report(old_job.id, 8, OLD + 10)  # audit row 1 (old)
    new_report = await store.create_report(new_job.id, 8, RECENT + 10)  # audit row 2 (new)
    assert old_report is not None and new_report is not None
    # audit row 3 (old)
    await store.update_guild_settings(1, GuildSettingsPatch(dms_allowed=True), 90, OLD + 20)
    old_closed_quote = await store.create_quote(quote(OLD))
    await store.close_quote(old_closed_quote.id, QuoteState.CANCELLED, OLD + 1)
    old_open_quote = await store.create_quote(quote(OLD))
    new_closed_quote = await store.create_quote(quote(RECENT))
    await store.close_quote(new_closed_quote.id, QuoteState.CANCELLED, RECENT + 1)
    old_declined = await ask(store, OLD)
    await store.decide_consent_request(old_declined.id, ConsentState.DECLINED, OLD + 1)
    old_but_open = await ask(store, OLD, ttl=500 * 86_400)  # still open and in time at NOW
    new_declined = await ask(store, RECENT)
    await store.decide_consent_request(new_declined.id, ConsentState.DECLINED, RECENT + 1)

    ledger_before = query("SELECT * FROM ledger ORDER BY id")
    assert len(ledger_before) == 6

    pruned = await store.prune(CUT, NOW)

    assert pruned == Pruned(audit_rows=2, reports=1, job_hashes=1, requests=2)
    assert query("SELECT * FROM ledger ORDER BY id") == ledger_before
    assert query("SELECT id FROM jobs ORDER BY id") == [(old_job.id,), (new_job.id,)]
    kept_old, kept_new = await store.get_job(old_job.id), await store.get_job(new_job.id)
    assert kept_old is not None and (kept_old.image_sha256, kept_old.audio_sha256) == (None, None)
    assert kept_old.result_url == "https://x/v.mp4" and kept_old.cost_micros == 90_000
    assert kept_new is not None and kept_new.image_sha256 == "ab" * 32
    assert audit(query) == [(1, 8, "job.report", new_job.id, RECENT + 10)]
    assert await store.get_report(old_report.id) is None
    assert await store.get_report(new_report.id) == new_report
    assert await store.get_quote(old_closed_quote.id) is None
    assert await store.get_quote(old_open_quote.id) is not None
    assert await store.get_quote(new_closed_quote.id) is not None
    assert await store.get_consent_request(old_declined.id) is None
    assert await store.get_consent_request(old_but_open.id) == old_but_open
    assert await store.get_consent_request(new_declined.id) is not None
    assert await store.prune(CUT, NOW) == Pruned(0, 0, 0, 0)


async def test_prune_expires_unanswered_consent_requests(store: Store, query: Query) -> None:
    """A request whose time ran out is closed as expired at `now` (kept until it is old); one still in
    time stays open and undecided, and can still be accepted."""
    ran_out = await ask(store, NOW - 700, ttl=600)
    in_time = await ask(store, NOW - 100, ttl=600)
    pruned = await store.prune(CUT, NOW)
    assert pruned == Pruned(0, 0, 0, 0)
    assert query("SELECT id, state, decided_at FROM consent_requests ORDER BY id") == [
        (ran_out.id, "expired", NOW),
        (in_time.id, "open", None),
    ]
    assert await store.get_consent_request(in_time.id) == in_time
    assert await store.decide_consent_request(ran_out.id, ConsentState.ACCEPTED, NOW) is ConsentState.EXPIRED
    assert await store.consent_version(1, 7) is None
    assert isinstance(
        await store.decide_consent_request(in_time.id, ConsentState.ACCEPTED, NOW), ConsentRequest
    )
    assert await store.consent_version(1, 7) == 2


async def test_prune_deletes_a_request_that_expires_in_the_same_pass_once_it_is_old(
    store: Store,
) -> None:
    """An old request left open is expired and, being older than `before`, forgotten at once."""
    forgotten = await ask(store, OLD, ttl=600)
    assert await store.prune(CUT, NOW) == Pruned(0, 0, 0, 1)
    assert await store.get_consent_request(forgotten.id) is None
