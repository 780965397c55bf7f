"""The SQLite store's moderation records: guild switches, consent, reports, the job trail and pruning."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

import storage.sqlite.moderation
from core.models import (
    Ban,
    ConsentRequest,
    ConsentState,
    GuildSettings,
    GuildSettingsPatch,
    Job,
    JobAction,
    JobStatus,
    Limits,
    NewJob,
    Pruned,
    Quote,
    QuoteState,
    Report,
    ReportState,
    Submission,
)
from storage.sqlite import SqliteStore
from tests.conftest import reserve

NOW = 1_000_000.0
LIMITS = Limits(None, None)


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


def rows(tmp_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the store's file directly, as another process would."""
    with sqlite3.connect(db_path(tmp_path)) as db:
        return list(db.execute(sql, params).fetchall())


def audit(tmp_path: Path) -> list[tuple[Any, ...]]:
    return rows(tmp_path, "SELECT guild_id, actor_id, action, job_id, created_at FROM audit_log ORDER BY id")


async def posted_job(
    store: SqliteStore, now: float = NOW, user_id: int = 7, guild_id: int = 1, sha: str | None = "ab" * 32
) -> Job:
    """A finished job of `user_id`, created at `now`, with the SHA-256 of its inputs."""
    new = NewJob(
        task_uuid=str(uuid.uuid4()),
        guild_id=guild_id,
        channel_id=10,
        user_id=user_id,
        audio_seconds=1.0,
        estimate_micros=100_000,
        output_format="MP4",
        output_quality=85,
        upload_limit_bytes=None,
        channel_nsfw=False,
        image_sha256=sha,
        audio_sha256=sha,
    )
    job = await reserve(store, new, LIMITS, now)
    assert isinstance(job, Job)
    await store.mark_job_queued(job.id, "img", "aud", now)
    done = await store.complete_job(job.id, "https://x/v.mp4", 90_000, False, now + 5)
    assert done is not None and done.status is JobStatus.SUCCEEDED
    return done


def submission(user_id: int = 7, guild_id: int = 1) -> Submission:
    return Submission(
        guild_id=guild_id,
        channel_id=10,
        user_id=user_id,
        role_ids=(31, 32),
        output_format="WEBM",
        output_quality=70,
        upload_limit_bytes=25_000_000,
        channel_nsfw=True,
    )


async def ask(
    store: SqliteStore, created_at: float = NOW, ttl: float = 600.0, version: int = 2, user_id: int = 7
) -> ConsentRequest:
    return await store.create_consent_request(
        ConsentRequest(0, submission(user_id), version, created_at, created_at + ttl)
    )


def quote(created_at: float) -> Quote:
    return Quote(
        0, 1, 10, 7, (), "img", "aud", 5.0, 700_000, "MP4", 85, None, False, created_at, created_at + 300,
        QuoteState.OPEN, None,
    )  # fmt: skip


# -- guild settings -------------------------------------------------------------------------------------


async def test_guild_settings_default_to_consent_on_and_dms_and_withholding_off(store: SqliteStore) -> None:
    """A guild that chose nothing asks for consent, sends no DMs and only spoilers flagged videos."""
    settings = await store.guild_settings(5)
    assert settings == GuildSettings(5, None, None, (), True, False, False)


async def test_switches_persist_and_every_change_is_audited(store: SqliteStore, tmp_path: Path) -> None:
    """Each change is stored (and read back by another connection) with an audit row naming who made it."""
    await store.update_guild_settings(5, GuildSettingsPatch(consent_required=False), actor_id=90, now=NOW)
    await store.update_guild_settings(5, GuildSettingsPatch(dms_allowed=True), actor_id=91, now=NOW + 1)
    await store.update_guild_settings(
        5, GuildSettingsPatch(withhold_flagged=True, safety_mode="full"), 92, NOW + 2
    )
    other = await SqliteStore.open(str(db_path(tmp_path)))
    try:
        settings = await other.guild_settings(5)
    finally:
        await other.close()
    assert (settings.consent_required, settings.dms_allowed, settings.withhold_flagged) == (False, True, True)
    assert settings.safety_mode == "full"
    assert await store.guild_settings(6) == GuildSettings(6)
    logged = rows(
        tmp_path, "SELECT guild_id, actor_id, action, detail, created_at FROM audit_log ORDER BY id"
    )
    assert [(g, a, act, json.loads(d), t) for g, a, act, d, t in logged] == [
        (5, 90, "settings.set", {"consent_required": 0}, NOW),
        (5, 91, "settings.set", {"dms_allowed": 1}, NOW + 1),
        (5, 92, "settings.set", {"safety_mode": "full", "withhold_flagged": 1}, NOW + 2),
    ]


async def test_a_switch_set_back_to_none_returns_to_its_default(store: SqliteStore) -> None:
    """None in a switch column means the default: consent is required again."""
    await store.update_guild_settings(
        5, GuildSettingsPatch(consent_required=False, dms_allowed=True), 90, NOW
    )
    await store.update_guild_settings(5, GuildSettingsPatch(consent_required=None, dms_allowed=None), 90, NOW)
    settings = await store.guild_settings(5)
    assert (settings.consent_required, settings.dms_allowed) == (True, False)


async def test_an_empty_patch_changes_no_setting_but_is_recorded(store: SqliteStore, tmp_path: Path) -> None:
    """A patch that sets nothing leaves the settings at their defaults (the admin's call is still audited)."""
    await store.update_guild_settings(5, GuildSettingsPatch(), 90, NOW)
    assert await store.guild_settings(5) == GuildSettings(5)
    assert audit(tmp_path) == [(5, 90, "settings.set", None, NOW)]


# -- consent --------------------------------------------------------------------------------------------


async def test_no_consent_version_before_any_accept(store: SqliteStore) -> None:
    """A member who never accepted has no version."""
    assert await store.consent_version(1, 7) is None


async def test_a_consent_request_reads_back_as_it_was_stored(store: SqliteStore) -> None:
    """Every field survives the round trip; the id is assigned by the store."""
    first = await ask(store)
    second = await ask(store, user_id=8)
    assert first.id > 0 and second.id == first.id + 1
    assert await store.get_consent_request(first.id) == first
    again = await store.get_consent_request(first.id)
    assert again is not None and again.submission == submission()
    assert again.submission.role_ids == (31, 32) and again.submission.channel_nsfw is True
    assert (again.version, again.created_at, again.expires_at) == (2, NOW, NOW + 600)
    assert again.state is ConsentState.OPEN
    assert await store.get_consent_request(first.id + 99) is None


async def test_accept_records_the_version_and_closes_the_request(store: SqliteStore, tmp_path: Path) -> None:
    """Accept stores the member's consent to the request's version and closes the request (state and
    time); the submission is kept as it was, and handed back to go ahead with."""
    request = await ask(store, version=2)
    decided = await store.decide_consent_request(request.id, ConsentState.ACCEPTED, NOW + 30)
    assert isinstance(decided, ConsentRequest)
    assert decided.submission == submission()
    assert await store.consent_version(1, 7) == 2
    assert await store.consent_version(2, 7) is None  # consent is per guild
    assert rows(tmp_path, "SELECT guild_id, user_id, version, accepted_at FROM consents") == [
        (1, 7, 2, NOW + 30)
    ]
    assert rows(tmp_path, "SELECT state, decided_at FROM consent_requests WHERE id = ?", (request.id,)) == [
        ("accepted", NOW + 30)
    ]
    stored = await store.get_consent_request(request.id)
    assert stored is not None and stored.state is ConsentState.ACCEPTED
    assert stored.submission == submission()
    assert [(a, action) for _, a, action, _, _ in audit(tmp_path)] == [(7, "consent.accept")]


async def test_a_second_decision_returns_the_state_it_already_has(store: SqliteStore) -> None:
    """Once accepted, accepting or declining again changes nothing and says 'accepted'."""
    request = await ask(store)
    decide = store.decide_consent_request
    assert isinstance(await decide(request.id, ConsentState.ACCEPTED, NOW), ConsentRequest)
    assert await decide(request.id, ConsentState.ACCEPTED, NOW + 1) is ConsentState.ACCEPTED
    assert await decide(request.id, ConsentState.DECLINED, NOW + 2) is ConsentState.ACCEPTED
    stored = await store.get_consent_request(request.id)
    assert stored is not None and stored.state is ConsentState.ACCEPTED


async def test_a_decision_after_expiry_is_expired_and_records_no_consent(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Accept after expires_at closes the request as expired; the member has not consented."""
    request = await ask(store, ttl=600)
    result = await store.decide_consent_request(request.id, ConsentState.ACCEPTED, NOW + 601)
    assert result is ConsentState.EXPIRED
    assert await store.consent_version(1, 7) is None
    assert rows(tmp_path, "SELECT state, decided_at FROM consent_requests WHERE id = ?", (request.id,)) == [
        ("expired", NOW + 601)
    ]
    assert rows(tmp_path, "SELECT COUNT(*) FROM consents") == [(0,)]
    assert audit(tmp_path) == []


async def test_declining_records_no_consent(store: SqliteStore, tmp_path: Path) -> None:
    """Decline closes the request (state and time recorded) without consent."""
    request = await ask(store)
    decided = await store.decide_consent_request(request.id, ConsentState.DECLINED, NOW + 5)
    assert isinstance(decided, ConsentRequest) and decided.id == request.id
    assert await store.consent_version(1, 7) is None
    assert rows(tmp_path, "SELECT state, decided_at FROM consent_requests WHERE id = ?", (request.id,)) == [
        ("declined", NOW + 5)
    ]
    assert audit(tmp_path) == []


async def test_a_newer_version_replaces_the_older_consent(store: SqliteStore, tmp_path: Path) -> None:
    """Accepting version 3 after version 2 leaves one row: version 3, accepted then."""
    await store.decide_consent_request((await ask(store, version=2)).id, ConsentState.ACCEPTED, NOW)
    later = NOW + 86_400
    await store.decide_consent_request((await ask(store, later, version=3)).id, ConsentState.ACCEPTED, later)
    assert await store.consent_version(1, 7) == 3
    assert rows(tmp_path, "SELECT version, accepted_at FROM consents") == [(3, later)]


async def test_an_older_statement_accepted_late_never_lowers_the_consent(
    store: SqliteStore, tmp_path: Path
) -> None:
    """A request asked under version 2, accepted after version 3 was: the member's consent stays at 3."""
    old = await ask(store, version=2)
    await store.decide_consent_request((await ask(store, version=3)).id, ConsentState.ACCEPTED, NOW + 1)
    await store.decide_consent_request(old.id, ConsentState.ACCEPTED, NOW + 2)
    assert await store.consent_version(1, 7) == 3
    assert rows(tmp_path, "SELECT version, accepted_at FROM consents") == [(3, NOW + 1)]


async def test_consent_requests_have_no_column_for_discord_links(store: SqliteStore, tmp_path: Path) -> None:
    """Discord's signed file links are never stored: the table has no column whose name contains "url"."""
    columns = [str(name) for _, name, *_ in rows(tmp_path, "PRAGMA table_info(consent_requests)")]
    assert "state" in columns and "decided_at" in columns  # the pragma did read the table
    assert [name for name in columns if "url" in name.lower()] == []


async def test_deciding_an_unknown_request_raises(store: SqliteStore) -> None:
    """There is nothing to decide on a request that does not exist."""
    with pytest.raises(KeyError):
        await store.decide_consent_request(404, ConsentState.ACCEPTED, NOW)


# -- reports and the job's trail ------------------------------------------------------------------------


async def test_a_member_reports_a_job_only_once(store: SqliteStore, tmp_path: Path) -> None:
    """The second report by the same member is None; another member's report is its own row."""
    job = await posted_job(store)
    first = await store.create_report(job.id, 8, NOW + 10)
    assert first is not None
    assert first == Report(first.id, job.id, 1, 8, NOW + 10, ReportState.OPEN)
    assert await store.create_report(job.id, 8, NOW + 11) is None
    other = await store.create_report(job.id, 9, NOW + 12)
    assert other is not None and other.id != first.id
    assert [r.reporter_id for r in await store.reports_of_job(job.id)] == [8, 9]
    assert audit(tmp_path) == [(1, 8, "job.report", job.id, NOW + 10), (1, 9, "job.report", job.id, NOW + 12)]


async def test_the_log_message_of_a_report_is_remembered(store: SqliteStore) -> None:
    """set_report_message stores where the report's buttons were posted."""
    job = await posted_job(store)
    report = await store.create_report(job.id, 8, NOW)
    assert report is not None and report.log_message_id is None
    await store.set_report_message(report.id, 444, 555)
    stored = await store.get_report(report.id)
    assert stored is not None and (stored.log_channel_id, stored.log_message_id) == (444, 555)
    assert stored.state is ReportState.OPEN
    assert await store.get_report(report.id + 50) is None


async def test_removing_a_result_closes_its_open_reports_once(store: SqliteStore, tmp_path: Path) -> None:
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
    deletes = [row for row in audit(tmp_path) if row[2] == "job.delete"]
    assert deletes == [(1, 51, "job.delete", job.id, NOW + 30)]


async def test_a_report_is_dismissed_only_once(store: SqliteStore, tmp_path: Path) -> None:
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
    logged = rows(tmp_path, "SELECT actor_id, detail, job_id FROM audit_log WHERE action = 'job.dismiss'")
    assert [(a, json.loads(d), j) for a, d, j in logged] == [(50, {"report_id": report.id}, job.id)]


async def test_job_actions_list_a_jobs_moderation_trail_in_order(store: SqliteStore) -> None:
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


async def test_mark_delivered_records_where_the_result_was_posted(store: SqliteStore) -> None:
    """With posted_at, the job keeps the channel and message of its result; without, both stay empty."""
    job = await posted_job(store)
    quiet = await posted_job(store)
    assert await store.mark_delivered(job.id, NOW + 9, posted_at=(777, 888)) is True
    assert await store.mark_delivered(quiet.id, NOW + 9) is True
    stored, stored_quiet = await store.get_job(job.id), await store.get_job(quiet.id)
    assert stored is not None and stored_quiet is not None
    assert (stored.delivered_at, stored.result_channel_id, stored.result_message_id) == (NOW + 9, 777, 888)
    assert (stored_quiet.result_channel_id, stored_quiet.result_message_id) == (None, None)


# -- retention ------------------------------------------------------------------------------------------

OLD = NOW - 400 * 86_400
CUT = NOW - 365 * 86_400
RECENT = NOW - 10 * 86_400


async def test_prune_forgets_old_records_but_keeps_jobs_and_the_ledger(
    store: SqliteStore, tmp_path: Path
) -> None:
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

    ledger_before = rows(tmp_path, "SELECT * FROM ledger ORDER BY id")
    assert len(ledger_before) == 6

    pruned = await store.prune(CUT, NOW)

    assert pruned == Pruned(audit_rows=2, reports=1, job_hashes=1, requests=2)
    assert rows(tmp_path, "SELECT * FROM ledger ORDER BY id") == ledger_before
    assert rows(tmp_path, "SELECT id FROM jobs ORDER BY id") == [(old_job.id,), (new_job.id,)]
    kept_old, kept_new = await store.get_job(old_job.id), await store.get_job(new_job.id)
    assert kept_old is not None and (kept_old.image_sha256, kept_old.audio_sha256) == (None, None)
    assert kept_old.result_url == "https://x/v.mp4" and kept_old.cost_micros == 90_000
    assert kept_new is not None and kept_new.image_sha256 == "ab" * 32
    assert audit(tmp_path) == [(1, 8, "job.report", new_job.id, RECENT + 10)]
    assert await store.get_report(old_report.id) is None
    assert await store.get_report(new_report.id) == new_report
    assert await store.get_quote(old_closed_quote.id) is None
    assert await store.get_quote(old_open_quote.id) is not None
    assert await store.get_quote(new_closed_quote.id) is not None
    assert await store.get_consent_request(old_declined.id) is None
    assert await store.get_consent_request(old_but_open.id) == old_but_open
    assert await store.get_consent_request(new_declined.id) is not None
    assert await store.prune(CUT, NOW) == Pruned(0, 0, 0, 0)


async def test_prune_expires_unanswered_consent_requests(store: SqliteStore, tmp_path: Path) -> None:
    """A request whose time ran out is closed as expired at `now` (kept until it is old); one still in
    time stays open and undecided, and can still be accepted."""
    ran_out = await ask(store, NOW - 700, ttl=600)
    in_time = await ask(store, NOW - 100, ttl=600)
    pruned = await store.prune(CUT, NOW)
    assert pruned == Pruned(0, 0, 0, 0)
    assert rows(tmp_path, "SELECT id, state, decided_at FROM consent_requests ORDER BY id") == [
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
    store: SqliteStore,
) -> None:
    """An old request left open is expired and, being older than `before`, forgotten at once."""
    forgotten = await ask(store, OLD, ttl=600)
    assert await store.prune(CUT, NOW) == Pruned(0, 0, 0, 1)
    assert await store.get_consent_request(forgotten.id) is None


async def test_prune_works_through_more_rows_than_one_batch(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pruning goes in batches (short write transactions): with a batch of 2, five old jobs' hashes and
    five old audit rows are all forgotten, and the recent ones are all kept."""
    monkeypatch.setattr(storage.sqlite.moderation, "PRUNE_BATCH", 2)
    old_jobs = [await posted_job(store, OLD + i) for i in range(5)]
    recent = await posted_job(store, RECENT)
    for i in range(5):
        await store.update_guild_settings(1, GuildSettingsPatch(dms_allowed=bool(i % 2)), 90, OLD + i)
    await store.update_guild_settings(1, GuildSettingsPatch(dms_allowed=True), 90, RECENT)
    pruned = await store.prune(CUT, NOW)
    assert (pruned.audit_rows, pruned.job_hashes) == (5, 5)
    assert rows(tmp_path, "SELECT created_at FROM audit_log") == [(RECENT,)]
    assert rows(tmp_path, "SELECT id FROM jobs WHERE image_sha256 IS NOT NULL") == [(recent.id,)]
    assert len(old_jobs) == 5 and rows(tmp_path, "SELECT COUNT(*) FROM jobs") == [(6,)]
