"""The words for the core's facts about limits and money: Discord timestamps, a refused job, the near-limit
warning, /usage, /videos and Cancel, /budget (show, usage, tiers, alerts), and the core errors that carry
facts, not a sentence.

The core returns amounts, times and reasons; how they read on Discord (a `<t:…>` tag, a channel mention, bold)
is decided here, so another front end could word the same facts its own way.
"""

from __future__ import annotations

import math

from core.budgets import BudgetOverview
from core.errors import (
    ChannelNotAllowed,
    DatabaseDown,
    OwnVideoReported,
    QuotaExceeded,
    Unsettled,
    UserFacingError,
)
from core.jobs import Cancelled, CancelOutcome
from core.models import (
    UNLIMITED,
    BudgetAlert,
    GuildLimits,
    Job,
    JobStatus,
    QuotaRefusal,
    RefusalReason,
    RoleTier,
    SpendReport,
    Usage,
    format_usd,
)
from core.quota import WARN_AT


def discord_time(epoch: float, style: str = "R") -> str:
    """A Discord timestamp tag, shown in each reader's own time zone (`R` = relative)."""
    return f"<t:{int(epoch)}:{style}>"


def _money_refusal(what: str, limit: int, left: int, estimate: int | None, resets_at: float) -> str:
    if estimate is None:  # refused before the files were read: nothing at all is left
        return (
            f"You have {format_usd(left)} left of your {format_usd(limit)} {what} limit. "
            f"It resets {discord_time(resets_at)}."
        )
    return (
        f"This clip would cost about {format_usd(estimate)}, but you have {format_usd(left)} left of your "
        f"{format_usd(limit)} {what} limit. It resets {discord_time(resets_at)}. A shorter clip costs less."
    )


def refusal_message(refusal: QuotaRefusal, estimate: int | None) -> str:
    """The member-facing sentence for a refused reservation: which limit, the numbers, when it frees up.
    `estimate` is None for a refusal before the clip was read (the pre-check: no money left at all)."""
    usage, limits, reason = refusal.usage, refusal.usage.limits, refusal.reason
    if reason is RefusalReason.OPERATOR_DAILY:
        # The operator's figure is theirs: members only learn that the bot is done for today.
        assert refusal.frees_at is not None
        return (
            "The bot has reached its spending limit for today; "
            f"try again after {discord_time(refusal.frees_at, 'f')} ({discord_time(refusal.frees_at)})."
        )
    if reason is RefusalReason.ACTIVE:
        videos = "video" if usage.active_jobs == 1 else "videos"
        return (
            f"You already have {usage.active_jobs} {videos} in progress, the most you can have at once. "
            "Try again when one is posted."
        )
    if reason is RefusalReason.COOLDOWN:
        assert refusal.frees_at is not None
        return (
            "Please leave a little time between videos: "
            f"you can start the next one {discord_time(refusal.frees_at)}."
        )
    if reason is RefusalReason.GUILD_BUDGET:
        assert limits.guild_monthly_micros is not None
        cost = "" if estimate is None else f", and this clip would cost about {format_usd(estimate)}"
        return (
            f"This server has used {format_usd(usage.guild_spent_month_micros)} of its "
            f"{format_usd(limits.guild_monthly_micros)} monthly budget{cost}. "
            f"The budget resets {discord_time(usage.windows.month_end)}."
        )
    if reason is RefusalReason.MONTHLY:
        assert limits.monthly_micros is not None and usage.left_month_micros is not None
        return _money_refusal(
            "monthly", limits.monthly_micros, usage.left_month_micros, estimate, usage.windows.month_end
        )
    assert limits.daily_micros is not None and usage.left_today_micros is not None
    return _money_refusal(
        "daily", limits.daily_micros, usage.left_today_micros, estimate, usage.windows.day_end
    )


def near_limit_warning(usage: Usage) -> str | None:
    """A one-line warning when the member is at 80 % or more of a money limit (after this job)."""
    checks = (
        ("daily limit", usage.limits.daily_micros, usage.spent_today_micros, usage.windows.day_end),
        ("monthly limit", usage.limits.monthly_micros, usage.spent_month_micros, usage.windows.month_end),
        (
            "server's monthly budget",
            usage.limits.guild_monthly_micros,
            usage.guild_spent_month_micros,
            usage.windows.month_end,
        ),
    )
    for what, limit, spent, resets in checks:
        if limit and spent >= WARN_AT * limit:
            share = min(100, math.floor(100 * spent / limit))
            return (
                f"⚠️ That is {share}% of your {what} ({format_usd(spent)} of {format_usd(limit)}); "
                f"it resets {discord_time(resets)}."
                if what != "server's monthly budget"
                else f"⚠️ This server has used {share}% of its monthly budget; "
                f"it resets {discord_time(resets)}."
            )
    return None


def _limit_line(label: str, spent: int, limit: int | None, left: int | None, resets: float) -> str:
    if limit is None or left is None:
        return f"{label}: {format_usd(spent)} spent (no limit)"
    return (
        f"{label}: {format_usd(spent)} of {format_usd(limit)}, {format_usd(left)} left "
        f"(resets {discord_time(resets)})"
    )


def usage_lines(usage: Usage) -> list[str]:
    """/usage as short lines: today, this month, the server's budget, jobs in progress."""
    limits, w = usage.limits, usage.windows
    lines = [
        _limit_line(
            "Today", usage.spent_today_micros, limits.daily_micros, usage.left_today_micros, w.day_end
        ),
        _limit_line(
            "This month",
            usage.spent_month_micros,
            limits.monthly_micros,
            usage.left_month_micros,
            w.month_end,
        ),
    ]
    if limits.guild_monthly_micros is not None and usage.guild_left_micros is not None:
        lines.append(
            f"Server budget this month: {format_usd(usage.guild_spent_month_micros)} of "
            f"{format_usd(limits.guild_monthly_micros)} used"
        )
    most = "no limit" if limits.max_active_jobs is None else f"of {limits.max_active_jobs}"
    lines.append(f"Videos in progress: {usage.active_jobs} {most}")
    return lines


def report_lines(label: str, report: SpendReport) -> list[str]:
    """/budget usage as short lines."""
    lines = [f"**Spending {label}**: {format_usd(report.total_micros)}"]
    if report.granted_micros:
        lines.append(f"Credits given to members by admins: {format_usd(report.granted_micros)}")
    if report.top_spenders:
        lines.append("Top spenders: " + ", ".join(f"<@{u}> {format_usd(a)}" for u, a in report.top_spenders))
    outcomes = report.jobs_by_status
    if outcomes:
        order = ("succeeded", "failed", "expired", "processing", "queued", "submitting", "uploading")
        parts = [f"{outcomes[JobStatus(s)]} {s}" for s in order if outcomes.get(JobStatus(s))]
        lines.append(f"Videos: {sum(outcomes.values())} ({', '.join(parts)})")
    else:
        lines.append("Videos: none")
    return lines


def _usd_limit(value: int | None) -> str:
    return "unlimited" if value is None else format_usd(value)


def budget_lines(view: BudgetOverview) -> list[str]:
    """/budget show as short lines; a value this server chose is marked, the rest are the defaults."""
    own = view.overrides or GuildLimits(0)
    limits, w = view.limits, view.windows

    def mark(field: str) -> str:
        return " (set here)" if getattr(own, field) is not None else ""

    budget = limits.guild_monthly_micros
    if budget is None:
        used = f"{format_usd(view.guild_spent_month_micros)} spent this month, no budget"
    else:
        share = 0 if budget == 0 else min(999, round(100 * view.guild_spent_month_micros / budget))
        used = (
            f"{format_usd(view.guild_spent_month_micros)} of {format_usd(budget)} used ({share}%), "
            f"resets {discord_time(w.month_end)}"
        )
    cap, chosen = view.budget_cap_micros, own.guild_monthly_micros
    if cap is not None and chosen is not None and (chosen == UNLIMITED or chosen > cap):
        # Stored before the operator's cap: say why the budget is not what the server chose.
        used += ", the most this bot's operator allows"
    active = "unlimited" if limits.max_active_jobs is None else str(limits.max_active_jobs)
    cooldown = f"{limits.cooldown_s:g} s" if limits.cooldown_s else "none"
    log_channel = f"<#{own.log_channel_id}>" if own.log_channel_id else "not set"
    return [
        "**Server budget**",
        f"Monthly budget: {used}{mark('guild_monthly_micros')}",
        f"Per member, per day: {_usd_limit(limits.daily_micros)}{mark('user_daily_micros')}",
        f"Per member, per month: {_usd_limit(limits.monthly_micros)}{mark('user_monthly_micros')}",
        f"Videos in progress per member: {active}{mark('max_active_jobs')}",
        f"Cooldown between videos: {cooldown}{mark('cooldown_s')}",
        f"Members confirm a cost from: {_usd_limit(view.confirm_above_micros).replace('unlimited', 'never')}"
        f"{mark('confirm_above_micros')}",
        f"Alerts channel: {log_channel}",
        *tier_lines(view.tiers),
    ]


def _tier_value_text(value: int | float | None, kind: str) -> str | None:
    if value is None:
        return None
    if value == UNLIMITED:
        return "unlimited"
    if kind == "usd":
        return format_usd(int(value))
    return f"{value:g} s" if kind == "seconds" else str(int(value))


def tier_lines(tiers: tuple[RoleTier, ...]) -> list[str]:
    """One line per role tier: the limits it changes (the rest are the server's)."""
    if not tiers:
        return ["Role tiers: none (add one with /budget tier)"]
    lines = ["**Role tiers** (a member gets the most generous of their roles)"]
    for tier in tiers:
        parts = [
            f"{label} {text}"
            for label, value, kind in (
                ("per day", tier.daily_micros, "usd"),
                ("per month", tier.monthly_micros, "usd"),
                ("in progress", tier.max_active_jobs, "count"),
                ("cooldown", tier.cooldown_s, "seconds"),
            )
            if (text := _tier_value_text(value, kind)) is not None
        ]
        lines.append(f"<@&{tier.role_id}>: {', '.join(parts) or 'same as the server'}")
    return lines


def budget_alert_text(alert: BudgetAlert) -> str:
    """The alerts-channel post when the server's monthly spend reaches a threshold."""
    resets = discord_time(alert.resets_at)
    if alert.threshold >= 100:
        return (
            f"🛑 This server has reached its {format_usd(alert.budget_micros)} monthly budget "
            f"({format_usd(alert.spent_micros)} spent; the next video would go over). New videos are refused "
            f"until it resets {resets}. `/budget set budget:` raises it."
        )
    return (
        f"⚠️ This server has used {alert.threshold}% of its {format_usd(alert.budget_micros)} monthly budget "
        f"({format_usd(alert.spent_micros)}). It resets {resets}."
    )


def error_text(error: UserFacingError) -> str:
    """What the member reads for a core error: its message, or the words for the facts it carries."""
    if isinstance(error, QuotaExceeded):
        return refusal_message(error.refusal, error.estimate)
    if isinstance(error, ChannelNotAllowed):
        where = ", ".join(f"<#{c}>" for c in error.allowed[:10]) + (", …" if len(error.allowed) > 10 else "")
        return f"/animate can't be used in this channel. Try {where}."
    if isinstance(error, OwnVideoReported):
        return "This is your own video: use **Delete** to remove it."
    if isinstance(error, DatabaseDown):
        return database_down_text(error)
    return error.message


# /videos: one line per video. Whole phrases, each in one place, so that they can be translated as they are.
_VIDEO_STATUS = {
    JobStatus.UPLOADING: "waiting to start",
    JobStatus.QUEUED: "waiting to start",
    JobStatus.SUBMITTING: "being made",
    JobStatus.PROCESSING: "being made",
    JobStatus.SUCCEEDED: "ready",
    JobStatus.FAILED: "failed, not charged",
    JobStatus.EXPIRED: "took too long, not charged",
}
VIDEOS_TITLE = "**Your videos here**"
NO_VIDEOS = "You have no videos in this server yet. Make one with /animate."
NO_MORE_VIDEOS = "No videos on this page."


def _video_status(job: Job) -> str:
    if job.cancelled:
        return "cancelled, not charged"
    if job.status is JobStatus.EXPIRED and job.result_url is not None:
        return "arrived late, not charged"
    return _VIDEO_STATUS[job.status]


def _video_cost(job: Job) -> str | None:
    if job.status is JobStatus.SUCCEEDED:
        return format_usd(job.cost_micros or 0)
    if job.status in (JobStatus.UPLOADING, JobStatus.QUEUED, JobStatus.SUBMITTING, JobStatus.PROCESSING):
        return f"about {format_usd(job.estimate_micros)}"
    return None  # refunded: the status says so


def video_line(job: Job, post_url: str | None, link_expires_at: float | None, now: float) -> str:
    """/videos' line for one job: number, status, length, cost, when, the post, the download link.
    `post_url`: a jump link to its post (None when nothing was posted, or it was removed);
    `link_expires_at`: when its video's download link stops working (None: it has none to offer)."""
    parts = [f"**#{job.id}**", _video_status(job), f"{job.audio_seconds:.1f} s"]
    cost = _video_cost(job)
    if cost is not None:
        parts.append(cost)
    parts.append(discord_time(job.created_at))
    if job.removed_at is not None:
        parts.append("post removed")
    elif post_url is not None:
        parts.append(f"[post]({post_url})")
    if link_expires_at is not None and job.result_url is not None:
        if link_expires_at > now:
            parts.append(f"[download]({job.result_url}) works until {discord_time(link_expires_at)}")
        else:
            parts.append("download link expired")
    return " · ".join(parts)


def cancel_text(cancelled: Cancelled) -> str:
    """What a Cancel press did, in plain words: refunded, or why not."""
    job = cancelled.job
    match cancelled.outcome:
        case CancelOutcome.CANCELLED:
            return private_cancelled_text(job)
        case CancelOutcome.ALREADY_CANCELLED:
            return f"Job #{job.id} was already cancelled. You were not charged."
        case CancelOutcome.RUNNING:
            return (
                f"Job #{job.id} is already being made and the video service can't stop it: it will finish, "
                f"be posted, and be charged (about {format_usd(job.estimate_micros)})."
            )
    return f"Job #{job.id} has already finished, so there is nothing to cancel."


# The "Animate" message command.
NOT_YOUR_MESSAGE = (
    "You can only animate your own messages: using someone else's face and voice is what the consent "
    "statement forbids."
)


def missing_files_text(no_image: bool, no_audio: bool) -> str:
    """What a message given to "Animate" lacks, by name."""
    if no_image and no_audio:
        return (
            "This message has no portrait and no voice clip. Animate needs a message of yours with an image "
            "(PNG, JPEG or WEBP) and a voice clip or voice message."
        )
    if no_image:
        return "This message has no portrait. Animate needs an image (PNG, JPEG or WEBP) with the voice clip."
    return "This message has no voice clip. Animate needs an audio file or a voice message with the portrait."


def database_down_text(error: DatabaseDown) -> str:
    """What a member reads when the bot's database stopped answering during their /animate or Confirm:
    whether they were charged, and what happens to the job."""
    job = f"job #{error.job_id}" if error.job_id is not None else "your video"
    if error.state is Unsettled.CANCELLED:
        return (
            f"The bot's database stopped answering, so {job} couldn't start. It is cancelled and you "
            "won't be charged. Please try again in a few minutes."
        )
    if error.state is Unsettled.UNKNOWN:
        return (
            f"The bot's database stopped answering while {job} was starting, so I can't tell whether it "
            "started. If it did, the video will be posted here as usual; if not, you won't be charged."
        )
    return (
        "The bot's database didn't answer, so nothing was done and you weren't charged. "
        "Please try again in a minute."
    )


def store_unavailable_text(ambiguous: bool) -> str:
    """What a member reads when the database stopped answering during any other command or button."""
    if ambiguous:
        return (
            "The bot's database stopped answering, so I can't tell whether that went through. "
            "Please check again in a minute."
        )
    return "The bot's database didn't answer, so nothing was done. Please try again in a minute."


# The private acknowledgement while its job is made (cogs/acks.py). Whole sentences, one per state, so that
# each can be translated as it is.
NEXT_IN_LINE = "⏳ Next in line: it goes to the video service in a moment."
ONE_AHEAD = "⏳ In line: 1 video is ahead of yours."
BEING_MADE = "🎬 Being made by the video service."


def follows_until_text(expires_at: float) -> str:
    """The acknowledgement's promise: how long it is kept up to date (Discord lets a bot edit it for 15
    minutes), and where the member learns the outcome after that."""
    return (
        f"This message follows the job until {discord_time(expires_at, 't')}; after that, the post that "
        "mentions you in this channel tells you how it went."
    )


def line_text(place: int) -> str:
    """The job's place in the line of jobs waiting to go to the video service (1: next)."""
    if place <= 1:
        return NEXT_IN_LINE
    if place == 2:
        return ONE_AHEAD
    return f"⏳ In line: {place - 1} videos are ahead of yours."


def making_text(percent: int | None) -> str:
    """The video service has the job: how far along it is, when it says."""
    if percent is None:
        return BEING_MADE
    return f"🎬 Being made by the video service: {percent}% done."


def private_cancelled_text(job: Job) -> str:
    """The acknowledgement of a job its member cancelled before it started."""
    return f"🚫 Job #{job.id} cancelled before it started. You were not charged."
