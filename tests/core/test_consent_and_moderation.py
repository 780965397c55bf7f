"""ConsentService and ModerationService (consent, reports, deletion, retention) on a real store of each
backend."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

import core.consent
from core.consent import CONSENT_REQUEST_TTL_S, ConsentService, HeldFiles, Statement
from core.errors import UserFacingError
from core.models import (
    ConsentRequest,
    ConsentState,
    GuildSettings,
    Job,
    JobAction,
    Limits,
    NewJob,
    Pruned,
    ReportState,
    Submission,
)
from core.moderation import ModerationService
from core.ports import Store
from tests.conftest import SettingsFactory, reserve
from tests.databases import Database

DAY = 86_400.0
START = 200 * DAY


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def submission(user_id: int = 7, guild_id: int = 1) -> Submission:
    return Submission(guild_id, 10, user_id, (31,))


# A waiting /animate's downloaded files: 10 bytes in all.
FILES = HeldFiles(image=b"face", audio=b"voice!")
ALREADY_ACCEPTED = (
    "You already accepted. If your video didn't start, run /animate again: you won't be asked again."
)


def db_rows(database: Database, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the store's tables directly, as another process would."""
    return database.query(sql, *params)


async def posted_job(store: Store, now: float, user_id: int = 7, guild_id: int = 1) -> Job:
    """A finished job of `user_id` in `guild_id`, created at `now`."""
    new = NewJob(
        str(uuid.uuid4()), guild_id, 10, user_id, 1.0, 100_000, "MP4", 85, None, False,
        image_sha256="cd" * 32, audio_sha256="ef" * 32,
    )  # fmt: skip
    job = await reserve(store, new, Limits(None, None), now)
    assert isinstance(job, Job)
    await store.mark_job_queued(job.id, "img", "aud", now)
    done = await store.complete_job(job.id, "https://x/v.mp4", 90_000, False, now + 1)
    assert done is not None
    return done


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def consent(store: Store, clock: Clock) -> ConsentService:
    return ConsentService(store, statement=Statement(2, "Be kind."), clock=clock)


@pytest.fixture
def moderation(store: Store, make_settings: SettingsFactory, clock: Clock) -> ModerationService:
    return ModerationService(store, make_settings(bot_owner_ids=[1000]), clock=clock)


# -- consent --------------------------------------------------------------------------------------------


async def test_a_new_member_needs_to_accept(consent: ConsentService, store: Store) -> None:
    """No consent recorded: the statement is needed."""
    assert await consent.needed(await store.guild_settings(1), 7) is True


async def test_after_accepting_consent_is_no_longer_needed(consent: ConsentService, store: Store) -> None:
    """Accept hands back the very submission and its files and records the current version; then nothing
    is asked."""
    request = await consent.ask(submission(), FILES)
    assert (request.version, request.expires_at - request.created_at) == (2, CONSENT_REQUEST_TTL_S)
    assert await consent.accept(request.id, 7) == (submission(), FILES)
    assert await store.consent_version(1, 7) == 2
    guild = await store.guild_settings(1)
    assert await consent.needed(guild, 7) is False
    assert await consent.needed(guild, 8) is True  # another member still has to
    assert await consent.needed(GuildSettings(2), 7) is True  # and so does this member in another guild


async def test_accept_after_a_restart_records_consent_but_has_no_files(
    consent: ConsentService, store: Store, clock: Clock
) -> None:
    """Files live only in the memory of the service that asked: another instance (as after a restart)
    hands back the submission without files, and still records the consent so the member is not asked
    again."""
    request = await consent.ask(submission(), FILES)
    restarted = ConsentService(store, statement=Statement(2, "Be kind."), clock=clock)
    assert await restarted.accept(request.id, 7) == (submission(), None)
    assert await store.consent_version(1, 7) == 2
    assert await restarted.needed(await store.guild_settings(1), 7) is False


async def test_each_request_hands_back_its_own_files(consent: ConsentService) -> None:
    """Two members waiting at once: each Accept gets that member's files, not the other's."""
    theirs = HeldFiles(b"other face", b"other voice")
    mine = await consent.ask(submission(), FILES)
    other = await consent.ask(submission(user_id=8), theirs)
    assert await consent.accept(other.id, 8) == (submission(user_id=8), theirs)
    assert await consent.accept(mine.id, 7) == (submission(), FILES)


async def test_a_new_statement_version_asks_again(consent: ConsentService, store: Store) -> None:
    """A member who accepted version 2 is asked again once the statement is at version 3."""
    await consent.accept((await consent.ask(submission(), FILES)).id, 7)
    newer = ConsentService(store, statement=Statement(3, "Be kinder."))
    guild = await store.guild_settings(1)
    assert await newer.needed(guild, 7) is True
    request = await newer.ask(submission(), FILES)
    assert request.version == 3
    assert await newer.accept(request.id, 7) == (submission(), FILES)
    assert await newer.needed(guild, 7) is False


async def test_accepting_a_request_asked_under_an_older_statement_is_refused(
    consent: ConsentService, store: Store, clock: Clock, database: Database
) -> None:
    """Asked under version 2, accepted once the service is at version 3: the member is told the statement
    changed, the request closes as expired, and no consent is recorded."""
    request = await consent.ask(submission(), FILES)
    clock.now += 30
    newer = ConsentService(store, statement=Statement(3, "Be kinder."), clock=clock)
    with pytest.raises(UserFacingError, match="statement has changed") as info:
        await newer.accept(request.id, 7)
    assert "Nothing was sent or charged" in info.value.message
    stored = await store.get_consent_request(request.id)
    assert stored is not None and stored.state is ConsentState.EXPIRED
    assert db_rows(database, "SELECT decided_at FROM consent_requests WHERE id = ?", (request.id,)) == [
        (clock.now,)
    ]
    assert await store.consent_version(1, 7) is None
    assert db_rows(database, "SELECT COUNT(*) FROM audit_log WHERE action = 'consent.accept'") == [(0,)]
    assert await newer.needed(await store.guild_settings(1), 7) is True
    with pytest.raises(UserFacingError, match="expired"):  # a second click finds it closed
        await newer.accept(request.id, 7)


async def test_an_older_statement_accepted_late_never_lowers_the_consent(
    consent: ConsentService, store: Store
) -> None:
    """Two instances at once (version 2 and version 3): the member accepts 3, then 2's own request. Their
    stored consent stays at 3, and the version-3 service does not ask again."""
    newer = ConsentService(store, statement=Statement(3, "Be kinder."))
    old_request = await consent.ask(submission(), FILES)
    new_request = await newer.ask(submission(), FILES)
    await newer.accept(new_request.id, 7)
    assert await consent.accept(old_request.id, 7) == (submission(), FILES)
    assert await store.consent_version(1, 7) == 3
    assert await newer.needed(await store.guild_settings(1), 7) is False


async def test_no_consent_is_needed_where_the_guild_turned_it_off(
    consent: ConsentService, moderation: ModerationService
) -> None:
    """consent_required off: nobody is asked; on again: they are."""
    guild = await moderation.set_switch(1, "consent_required", False, actor_id=90)
    assert guild.consent_required is False
    assert await consent.needed(guild, 7) is False
    guild = await moderation.set_switch(1, "consent_required", True, actor_id=90)
    assert await consent.needed(guild, 7) is True


async def test_only_the_member_who_asked_can_accept(consent: ConsentService, store: Store) -> None:
    """Someone else's Accept (or Not now) is refused and leaves the request open with its files held for
    its member."""
    request = await consent.ask(submission(), FILES)
    with pytest.raises(UserFacingError, match="Only the member who ran this"):
        await consent.accept(request.id, 8)
    with pytest.raises(UserFacingError, match="Only the member who ran this"):
        await consent.decline(request.id, 8)
    with pytest.raises(UserFacingError, match="Only the member who ran this"):
        await consent.accept(request.id + 100, 7)  # unknown request
    assert await store.get_consent_request(request.id) == request
    assert await store.consent_version(1, 8) is None
    assert await store.consent_version(1, 7) is None
    assert await consent.accept(request.id, 7) == (submission(), FILES)


async def test_accept_after_the_ttl_is_refused_as_expired(
    consent: ConsentService, store: Store, clock: Clock
) -> None:
    """Past CONSENT_REQUEST_TTL_S, Accept says the request expired and records nothing."""
    request = await consent.ask(submission(), FILES)
    clock.now += CONSENT_REQUEST_TTL_S + 1
    with pytest.raises(UserFacingError, match="expired") as info:
        await consent.accept(request.id, 7)
    assert "Nothing was sent or charged" in info.value.message
    assert await store.consent_version(1, 7) is None
    stored = await store.get_consent_request(request.id)
    assert stored is not None and stored.state is ConsentState.EXPIRED


async def test_decline_closes_the_request_and_a_later_accept_is_refused(
    consent: ConsentService, store: Store
) -> None:
    """After Decline, Accept says the member chose not to go ahead; no consent is recorded."""
    request = await consent.ask(submission(), FILES)
    await consent.decline(request.id, 7)
    stored = await store.get_consent_request(request.id)
    assert stored is not None and stored.state is ConsentState.DECLINED
    with pytest.raises(UserFacingError, match="chose not to go ahead"):
        await consent.accept(request.id, 7)
    assert await store.consent_version(1, 7) is None


async def test_accepting_twice_says_it_already_went_ahead(consent: ConsentService) -> None:
    """A second Accept does not hand the submission back again (no second video), and says how to go on."""
    request = await consent.ask(submission(), FILES)
    await consent.accept(request.id, 7)
    with pytest.raises(UserFacingError) as info:
        await consent.accept(request.id, 7)
    assert info.value.message == ALREADY_ACCEPTED


async def test_expire_closes_an_open_request(consent: ConsentService, store: Store) -> None:
    """expire() is True for an open request and closes it; it is False for an accepted one."""
    request = await consent.ask(submission(), FILES)
    assert await consent.expire(request.id) is True
    stored = await store.get_consent_request(request.id)
    assert stored is not None and stored.state is ConsentState.EXPIRED
    accepted = await consent.ask(submission(), FILES)
    await consent.accept(accepted.id, 7)
    assert await consent.expire(accepted.id) is False
    assert await consent.expire(accepted.id + 100) is False  # unknown request


async def test_expire_is_false_for_a_request_that_already_expired(
    consent: ConsentService, clock: Clock
) -> None:
    """A request closed as expired (here by a late Accept) is no longer open: expire() is False."""
    request = await consent.ask(submission(), FILES)
    clock.now += CONSENT_REQUEST_TTL_S + 1
    with pytest.raises(UserFacingError, match="expired"):
        await consent.accept(request.id, 7)
    assert await consent.expire(request.id) is False


# -- the files held in memory ---------------------------------------------------------------------------


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    """MAX_HELD_BYTES lowered to room for two waiting /animates of FILES.size bytes each."""
    cap = 2 * FILES.size
    monkeypatch.setattr(core.consent, "MAX_HELD_BYTES", cap)
    return cap


def consent_requests(database: Database) -> int:
    return int(db_rows(database, "SELECT COUNT(*) FROM consent_requests")[0][0])


async def test_ask_refuses_when_the_held_files_would_pass_the_cap(
    consent: ConsentService, small_cap: int, database: Database
) -> None:
    """Up to MAX_HELD_BYTES exactly is held; one byte more is refused, and nothing is stored for it."""
    await consent.ask(submission(), FILES)
    await consent.ask(submission(user_id=8), FILES)  # exactly at the cap
    with pytest.raises(UserFacingError, match="try again in a few minutes"):
        await consent.ask(submission(user_id=9), HeldFiles(b"", b"x"))
    assert consent_requests(database) == 2


async def test_files_bigger_than_the_cap_alone_are_refused(
    consent: ConsentService, small_cap: int, database: Database
) -> None:
    """Nothing held yet, but one /animate's files pass the cap on their own: refused."""
    with pytest.raises(UserFacingError, match="try again"):
        await consent.ask(submission(), HeldFiles(b"x" * small_cap, b"y"))
    assert consent_requests(database) == 0


@pytest.mark.parametrize("answer", ["accept", "decline", "expire", "late accept", "older statement"])
async def test_answering_a_request_frees_its_room(
    consent: ConsentService, store: Store, clock: Clock, small_cap: int, answer: str
) -> None:
    """Once a request is answered (accepted, declined, expired, accepted too late or under an older
    statement) its files are dropped, and another member can be asked again."""
    first = await consent.ask(submission(), FILES)
    await consent.ask(submission(user_id=8), FILES)
    with pytest.raises(UserFacingError, match="try again"):
        await consent.ask(submission(user_id=9), FILES)
    if answer == "accept":
        await consent.accept(first.id, 7)
    elif answer == "decline":
        await consent.decline(first.id, 7)
    elif answer == "expire":
        assert await consent.expire(first.id) is True
    elif answer == "late accept":
        clock.now += CONSENT_REQUEST_TTL_S + 1
        with pytest.raises(UserFacingError, match="expired"):
            await consent.accept(first.id, 7)
    else:
        consent.statement = Statement(3, "Be kinder.")
        with pytest.raises(UserFacingError, match="statement has changed"):
            await consent.accept(first.id, 7)
    request = await consent.ask(submission(user_id=9), FILES)
    assert await store.get_consent_request(request.id) == request


async def test_a_refused_answer_keeps_the_files(consent: ConsentService, small_cap: int) -> None:
    """Another member's click frees nothing: the room stays taken until the request's own member
    answers."""
    first = await consent.ask(submission(), FILES)
    await consent.ask(submission(user_id=8), FILES)
    with pytest.raises(UserFacingError, match="Only the member"):
        await consent.decline(first.id, 9)
    with pytest.raises(UserFacingError, match="try again"):
        await consent.ask(submission(user_id=9), FILES)


async def test_concurrent_asks_never_hold_more_than_the_cap(
    consent: ConsentService, small_cap: int, database: Database
) -> None:
    """Three members asked at the same moment, room for two: one is refused, whatever the timing."""
    results = await asyncio.gather(
        *(consent.ask(submission(user_id=u), FILES) for u in (7, 8, 9)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, UserFacingError)]
    assert len(refused) == 1
    assert consent_requests(database) == 2


async def test_expire_drops_the_files_of_a_request_prune_already_closed(
    consent: ConsentService,
    store: Store,
    clock: Clock,
    small_cap: int,
    make_settings: SettingsFactory,
) -> None:
    """The daily prune closes a request whose time ran out before its timer calls expire(): expire() is
    False (nothing to close) but the files are still dropped, making room for others."""
    first = await consent.ask(submission(), FILES)
    await consent.ask(submission(user_id=8), FILES)
    clock.now += CONSENT_REQUEST_TTL_S + 1
    await ModerationService(store, make_settings(audit_retention_days=30), clock=clock).prune()
    assert await consent.expire(first.id) is False
    await consent.ask(submission(user_id=9), FILES)


# -- reports and deletion -------------------------------------------------------------------------------


async def test_a_member_reports_someone_elses_video(
    moderation: ModerationService, store: Store, clock: Clock
) -> None:
    """The report is stored at the clock's time and recorded on the job."""
    job = await posted_job(store, START - 100)
    found, report = await moderation.report(job.id, 8)
    assert found.id == job.id
    assert (report.job_id, report.reporter_id, report.created_at, report.state) == (
        job.id, 8, clock.now, ReportState.OPEN,
    )  # fmt: skip
    assert await moderation.report_of(report.id) == (report, found)
    assert await moderation.reports_of(job.id) == [report]


async def test_reporting_your_own_video_is_refused(moderation: ModerationService, store: Store) -> None:
    """The maker is pointed at Delete instead; nothing is stored."""
    job = await posted_job(store, START - 100)
    with pytest.raises(UserFacingError, match="your own video"):
        await moderation.report(job.id, 7)
    assert await store.reports_of_job(job.id) == []


async def test_a_second_report_by_the_same_member_is_refused_once_it_reached_the_log(
    moderation: ModerationService, store: Store, database: Database
) -> None:
    """Once per member: after their report was posted to the moderation log, the second says the
    moderators already have it, and nothing more is recorded."""
    job = await posted_job(store, START - 100)
    _, report = await moderation.report(job.id, 8)
    await moderation.set_report_message(report, 444, 555)
    with pytest.raises(UserFacingError, match="already reported"):
        await moderation.report(job.id, 8)
    assert [(r.id, r.log_message_id) for r in await store.reports_of_job(job.id)] == [(report.id, 555)]
    assert db_rows(database, "SELECT COUNT(*) FROM audit_log WHERE action = 'job.report'") == [(1,)]


async def test_a_report_that_never_reached_the_log_is_handed_back_to_post(
    moderation: ModerationService, store: Store, clock: Clock, database: Database
) -> None:
    """No log message was recorded for the first report (no channel then, or the post failed): reporting
    again returns that same report, so the caller can post it; no second report or audit row."""
    job = await posted_job(store, START - 100)
    _, first = await moderation.report(job.id, 8)
    clock.now += 60
    found, again = await moderation.report(job.id, 8)
    assert found.id == job.id
    assert again == first and again.created_at == START
    assert await store.reports_of_job(job.id) == [first]
    assert db_rows(database, "SELECT COUNT(*) FROM audit_log WHERE action = 'job.report'") == [(1,)]
    await moderation.set_report_message(again, 444, 555)  # posted this time
    with pytest.raises(UserFacingError, match="already reported"):
        await moderation.report(job.id, 8)


async def test_reporting_a_removed_or_unknown_video_is_refused(
    moderation: ModerationService, store: Store
) -> None:
    """A deleted result cannot be reported; nor can a job number the bot never had."""
    job = await posted_job(store, START - 100)
    assert await moderation.record_removal(job, 50) is True
    removed = await store.get_job(job.id)
    assert removed is not None
    with pytest.raises(UserFacingError, match="already deleted"):
        await moderation.report(job.id, 8)
    with pytest.raises(UserFacingError, match="not known"):
        await moderation.report(job.id + 99, 8)
    assert await store.reports_of_job(job.id) == []


async def test_who_may_delete_a_result(moderation: ModerationService, store: Store) -> None:
    """Its member and moderators may; another member may not."""
    job = await posted_job(store, START - 100)
    moderation.may_delete(job, 7, moderator=False)
    moderation.may_delete(job, 8, moderator=True)
    with pytest.raises(UserFacingError, match="Manage Messages"):
        moderation.may_delete(job, 8, moderator=False)


async def test_removal_is_recorded_once_and_closes_the_reports(
    moderation: ModerationService, store: Store, clock: Clock
) -> None:
    """The first removal wins; the open report is closed as deleted by the moderator."""
    job = await posted_job(store, START - 100)
    _, report = await moderation.report(job.id, 8)
    clock.now += 60
    assert await moderation.record_removal(job, 50) is True
    assert await moderation.record_removal(job, 51) is False
    closed, _ = await moderation.report_of(report.id)
    assert (closed.state, closed.decided_by, closed.decided_at) == (ReportState.DELETED, 50, clock.now)
    assert await moderation.dismiss(report.id, 50) is False


async def test_dismiss_once_and_the_trail_of_actions(moderation: ModerationService, store: Store) -> None:
    """Dismiss is True once; report, dismiss and a ban for the job show up in the job's actions."""
    job = await posted_job(store, START - 100)
    _, report = await moderation.report(job.id, 8)
    assert await moderation.dismiss(report.id, 50) is True
    assert await moderation.dismiss(report.id, 50) is False
    ban = await moderation.ban(1, 7, "impersonation", 50, everywhere=False, job_id=job.id)
    assert await moderation.ban_of(1, 7) == ban
    assert await moderation.actions_on(job.id) == [
        JobAction(job.id, 8, "job.report", START),
        JobAction(job.id, 50, "job.dismiss", START),
        JobAction(job.id, 50, "moderation.ban", START),
    ]


async def test_an_unknown_report_says_it_is_no_longer_kept(moderation: ModerationService) -> None:
    """A report id that is gone (pruned) is explained to the moderator."""
    with pytest.raises(UserFacingError, match="no longer kept"):
        await moderation.report_of(12345)


async def test_switches_reject_names_that_are_not_switches(moderation: ModerationService) -> None:
    """Only the three yes/no settings can be switched."""
    with pytest.raises(ValueError, match="safety_mode"):
        await moderation.set_switch(1, "safety_mode", True, actor_id=90)
    settings = await moderation.set_switch(1, "dms_allowed", True, actor_id=90)
    assert (settings.dms_allowed, settings.withhold_flagged, settings.consent_required) == (True, False, True)


# -- retention ------------------------------------------------------------------------------------------


def audit_times(database: Database) -> list[float]:
    return [t for (t,) in database.query("SELECT created_at FROM audit_log ORDER BY id")]


async def test_prune_does_nothing_when_records_are_kept_forever(
    store: Store, make_settings: SettingsFactory, database: Database
) -> None:
    """AUDIT_RETENTION_DAYS=forever: prune() returns None and every row stays."""
    job = await posted_job(store, 1.0)
    await store.create_report(job.id, 8, 2.0)
    service = ModerationService(store, make_settings(audit_retention_days="forever"), clock=Clock())
    assert await service.prune() is None
    assert audit_times(database) == [2.0]
    assert len(await store.reports_of_job(job.id)) == 1


async def test_prune_forgets_what_is_older_than_the_retention(
    store: Store, make_settings: SettingsFactory, database: Database
) -> None:
    """With 30 days, rows 31 days old go and rows 29 days old stay."""
    clock = Clock(START)
    old = await posted_job(store, START - 31 * DAY)
    new = await posted_job(store, START - 29 * DAY)
    await store.create_report(old.id, 8, START - 31 * DAY)
    await store.create_report(new.id, 8, START - 29 * DAY)
    service = ModerationService(store, make_settings(audit_retention_days=30), clock=clock)
    assert await service.prune() == Pruned(audit_rows=1, reports=1, job_hashes=1, requests=0)
    assert audit_times(database) == [START - 29 * DAY]
    assert [r.job_id for r in await store.reports_of_job(new.id)] == [new.id]
    kept_old, kept_new = await store.get_job(old.id), await store.get_job(new.id)
    assert kept_old is not None and kept_old.image_sha256 is None
    assert kept_new is not None and kept_new.image_sha256 == "cd" * 32


async def test_prune_expires_consent_requests_left_unanswered(
    store: Store, make_settings: SettingsFactory, clock: Clock, database: Database
) -> None:
    """The retention pass closes requests whose time ran out, at its own time (and keeps them until they
    are old); a late Accept then says it expired and records no consent."""
    consent = ConsentService(store, statement=Statement(2, "x"), clock=clock)
    request = await consent.ask(submission(), FILES)
    clock.now += CONSENT_REQUEST_TTL_S + 1
    service = ModerationService(store, make_settings(audit_retention_days=30), clock=clock)
    assert await service.prune() == Pruned(0, 0, 0, 0)
    stored = await store.get_consent_request(request.id)
    assert isinstance(stored, ConsentRequest) and stored.state is ConsentState.EXPIRED
    assert stored.submission == submission()
    assert db_rows(database, "SELECT decided_at FROM consent_requests WHERE id = ?", (request.id,)) == [
        (clock.now,)
    ]
    with pytest.raises(UserFacingError, match="expired"):
        await consent.accept(request.id, 7)
    assert await store.consent_version(1, 7) is None


# -- settings -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "days"), [("forever", None), ("", None), ("FOREVER ", None), ("30", 30)])
def test_audit_retention_days_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, make_settings: SettingsFactory, raw: str, days: int | None
) -> None:
    """AUDIT_RETENTION_DAYS: a number of days, or forever/empty to keep everything."""
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", raw)
    assert make_settings().audit_retention_days == days


def test_audit_retention_defaults_to_a_year(
    monkeypatch: pytest.MonkeyPatch, make_settings: SettingsFactory
) -> None:
    """Unset: 365 days."""
    monkeypatch.delenv("AUDIT_RETENTION_DAYS", raising=False)
    assert make_settings().audit_retention_days == 365


@pytest.mark.parametrize("raw", ["0", "-5", "soon"])
def test_audit_retention_rejects_non_positive_days(
    monkeypatch: pytest.MonkeyPatch, make_settings: SettingsFactory, raw: str
) -> None:
    """Zero, negative or non-numeric days are a validation error naming the setting."""
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", raw)
    with pytest.raises(ValidationError, match="audit_retention_days"):
        make_settings()
