"""What a finished job becomes where it would be shown: post, spoiler, withhold (and give back), notice."""

from __future__ import annotations

import pytest

from core.delivery import (
    WITHHELD_FLAGGED,
    WITHHELD_UNCHECKED,
    Decision,
    Destination,
    ModeratorNote,
    Outcome,
    decide,
    moderator_note,
)
from core.models import GuildSettings, Job, JobStatus

URL = "https://im.runware.ai/video/ws/0.5/vi/a.mp4"
AGE_RESTRICTED, ANYWHERE = Destination(age_restricted=True), Destination(age_restricted=False)
SPOILER, WITHHOLD = GuildSettings(1), GuildSettings(1, withhold_flagged=True)


def job(
    status: JobStatus = JobStatus.SUCCEEDED,
    *,
    nsfw: bool = False,
    safety: str = "fast",
    error_code: str | None = None,
    late: bool = False,
) -> Job:
    """A finished job: succeeded with a video unless told otherwise; `late`: expired, its video arrived."""
    done = status is JobStatus.SUCCEEDED or late
    return Job(
        id=7,
        task_uuid="t",
        guild_id=1,
        channel_id=2,
        user_id=3,
        status=JobStatus.EXPIRED if late else status,
        audio_seconds=6.0,
        estimate_micros=600_000,
        cost_micros=600_000 if status is JobStatus.SUCCEEDED else None,
        output_format="MP4",
        output_quality=85,
        image_ref=None,
        audio_ref=None,
        created_at=0.0,
        updated_at=0.0,
        submitted_at=0.0,
        next_poll_at=None,
        poll_count=0,
        finished_at=0.0,
        delivered_at=None,
        result_url=URL if done else None,
        nsfw=nsfw,
        error_code=error_code,
        error_message=None,
        upload_limit_bytes=None,
        channel_nsfw=safety == "none",
        safety_mode=safety,
        late_until=100.0 if late else None,
    )


def failed(error_code: str) -> Job:
    """A job Runware failed with this error code."""
    return job(JobStatus.FAILED, error_code=error_code)


@pytest.mark.parametrize(
    ("finished", "destination", "guild", "decision"),
    [
        # A clean video is posted anywhere, as it is.
        (job(), ANYWHERE, SPOILER, Decision(Outcome.POST)),
        (job(), AGE_RESTRICTED, WITHHOLD, Decision(Outcome.POST)),
        # A flagged video: a spoiler where adults are, withheld (and given back) elsewhere or when the
        # server withholds flagged videos everywhere.
        (job(nsfw=True), AGE_RESTRICTED, SPOILER, Decision(Outcome.POST, spoiler=True)),
        (job(nsfw=True), ANYWHERE, SPOILER, Decision(Outcome.WITHHELD_FLAGGED, give_back=WITHHELD_FLAGGED)),
        (
            job(nsfw=True),
            AGE_RESTRICTED,
            WITHHOLD,
            Decision(Outcome.WITHHELD_FLAGGED, give_back=WITHHELD_FLAGGED),
        ),
        # Made without the safety check: only where adults are.
        (job(safety="none"), AGE_RESTRICTED, SPOILER, Decision(Outcome.POST)),
        (
            job(safety="none"),
            ANYWHERE,
            SPOILER,
            Decision(Outcome.WITHHELD_UNCHECKED, give_back=WITHHELD_UNCHECKED),
        ),
        # Failed or expired: a notice, nothing to give back (never charged); a safety refusal is quiet.
        (
            failed("timeoutProvider"),
            ANYWHERE,
            SPOILER,
            Decision(Outcome.FAILURE_NOTICE),
        ),
        (job(JobStatus.EXPIRED), AGE_RESTRICTED, SPOILER, Decision(Outcome.FAILURE_NOTICE)),
        (
            failed("nsfwContentDetected"),
            ANYWHERE,
            SPOILER,
            Decision(Outcome.REFUSED),
        ),
        # A late video is judged like any finished one.
        (job(late=True), ANYWHERE, SPOILER, Decision(Outcome.POST)),
        (job(late=True, nsfw=True), AGE_RESTRICTED, SPOILER, Decision(Outcome.POST, spoiler=True)),
        (
            job(late=True, safety="none"),
            ANYWHERE,
            SPOILER,
            Decision(Outcome.WITHHELD_UNCHECKED, give_back=WITHHELD_UNCHECKED),
        ),
    ],
)
def test_what_a_finished_job_becomes(
    finished: Job, destination: Destination, guild: GuildSettings, decision: Decision
) -> None:
    """Each kind of finished job, at each kind of destination, under each flagged-video choice."""
    assert decide(finished, destination, guild) == decision


@pytest.mark.parametrize(
    ("outcome", "quiet"),
    [
        (Outcome.POST, False),
        (Outcome.FAILURE_NOTICE, False),
        (Outcome.REFUSED, True),
        (Outcome.WITHHELD_FLAGGED, True),
        (Outcome.WITHHELD_UNCHECKED, True),
    ],
)
def test_only_what_is_not_shown_is_quiet(outcome: Outcome, quiet: bool) -> None:
    """The channel need not see a withheld video or a safety refusal; the rest is said in public."""
    assert Decision(outcome).quiet is quiet


@pytest.mark.parametrize(
    ("finished", "shown", "note"),
    [
        (job(), True, None),
        (job(nsfw=True), True, ModeratorNote.FLAGGED),
        (job(nsfw=True), False, ModeratorNote.FLAGGED),
        (failed("nsfwContentDetected"), False, ModeratorNote.FLAGGED),
        (job(safety="none"), True, None),
        (job(safety="none"), False, ModeratorNote.UNCHECKED_WITHHELD),
        (failed("timeoutProvider"), False, None),
    ],
)
def test_what_the_moderators_hear(finished: Job, shown: bool, note: ModeratorNote | None) -> None:
    """Every flagged job, and a video made without the safety check that was not shown."""
    assert moderator_note(finished, shown=shown) is note
