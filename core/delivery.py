"""What a finished job becomes where it is about to be shown: its video posted (hidden behind a spoiler when
flagged), withheld with its cost given back, or a notice that it failed.

Pure decisions on a job, the place it would be shown and the guild's choices; the video cog asks, then
carries the answer out (fetches the video, posts, gives the cost back, tells the moderators). A late video
(one that arrived after its job expired) is decided like any other finished video.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.models import GuildSettings, Job, JobStatus
from core.runware import ErrorKind, classify_error
from core.settings import SafetyMode

# Why a finished job's cost is given back (the ledger's reason; admins read it in /budget export).
WITHHELD_FLAGGED = "withheld: flagged by the safety check"
WITHHELD_UNCHECKED = "withheld: made without the safety check"
VIDEO_GONE = "the video expired before it could be posted"
NOT_POSTED = "the result could not be posted"


class Outcome(StrEnum):
    """What is shown for a finished job in one place."""

    POST = "post"  # the video: attached (a spoiler when flagged), or linked when too big to attach here
    FAILURE_NOTICE = "failure_notice"  # it failed or expired; the member was refunded
    REFUSED = "refused"  # refused by the safety check: the channel only learns that it couldn't be made
    WITHHELD_FLAGGED = "withheld_flagged"  # flagged, and this place may not show it
    WITHHELD_UNCHECKED = "withheld_unchecked"  # made without the safety check, and this place needs one


# Outcomes the channel need not see: the member is told privately when possible.
QUIET = frozenset({Outcome.REFUSED, Outcome.WITHHELD_FLAGGED, Outcome.WITHHELD_UNCHECKED})


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a result is about to be shown, as it is now (a DM has no age restriction, and a channel may
    have lost its own since the job started)."""

    age_restricted: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome, whether a posted video hides behind a spoiler, and the reason to give the job's cost
    back (None: nothing to give back, it was never charged or is shown)."""

    outcome: Outcome
    spoiler: bool = False
    give_back: str | None = None

    @property
    def quiet(self) -> bool:
        """Nothing for the channel to see: tell the member privately when possible."""
        return self.outcome in QUIET


def decide(job: Job, destination: Destination, guild: GuildSettings) -> Decision:
    """What a finished job becomes at `destination`.

    A failed or expired job is a notice (a quiet one when the safety check refused it). A flagged video is
    shown only in an age-restricted place, behind a spoiler, unless the guild withholds flagged videos
    everywhere; a video made without the safety check only in an age-restricted place. A withheld video's
    cost is given back."""
    if job.status is not JobStatus.SUCCEEDED and not job.late_video_waiting:
        return Decision(Outcome.REFUSED if is_flagged(job) else Outcome.FAILURE_NOTICE)
    if job.nsfw and (guild.withhold_flagged or not destination.age_restricted):
        return Decision(Outcome.WITHHELD_FLAGGED, give_back=WITHHELD_FLAGGED)
    if is_unchecked(job) and not destination.age_restricted:
        # Only an age-restricted channel may run a job without the safety check: this channel has lost its
        # age restriction, or this is a fallback (a DM) that has none. Never shown here.
        return Decision(Outcome.WITHHELD_UNCHECKED, give_back=WITHHELD_UNCHECKED)
    return Decision(Outcome.POST, spoiler=job.nsfw)


class ModeratorNote(StrEnum):
    """What the moderation log is told about a delivered job."""

    FLAGGED = "flagged"  # flagged by the safety check: refused, spoilered or withheld
    UNCHECKED_WITHHELD = "unchecked_withheld"  # made without the safety check, and not shown


def moderator_note(job: Job, *, shown: bool) -> ModeratorNote | None:
    """Whether the moderators hear of a delivered job (None: nothing to tell). `shown`: its post shows the
    video (attached or linked)."""
    if is_flagged(job):
        return ModeratorNote.FLAGGED
    if is_unchecked(job) and not shown:
        return ModeratorNote.UNCHECKED_WITHHELD
    return None


def is_flagged(job: Job) -> bool:
    """A job the safety check flagged: an NSFW result, or a task refused for its content."""
    if job.nsfw:
        return True
    return job.error_code is not None and classify_error(job.error_code, None) is ErrorKind.SAFETY


def is_unchecked(job: Job) -> bool:
    """A video made without the safety check (possible only for a job started in an age-restricted
    channel)."""
    return job.result_url is not None and job.safety_mode == SafetyMode.NONE.value
