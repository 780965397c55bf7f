"""The words for the core's facts about limits and money: Discord timestamps, a refused job, the near-limit
warning, /usage, /videos and Cancel, /budget (show, usage, tiers, alerts), and the core errors that carry
facts, not a sentence.

The core returns amounts, times and reasons; how they read on Discord (a `<t:…>` tag, a channel mention, bold)
is decided here, so another front end could word the same facts its own way. Every function takes the words
of the reader's language (`_`, cogs/_i18n.py): whole sentences with named placeholders, never assembled
from translated fragments.
"""

from __future__ import annotations

import math

from cogs._i18n import N_, Words
from core.budgets import BudgetOverview, LimitChange
from core.errors import (
    ChannelNotAllowed,
    DatabaseDown,
    OwnVideoReported,
    QuotaExceeded,
    Unsettled,
    UploadFailed,
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


def percent(_: Words, number: int) -> str:
    """A percentage as the language writes it (`80%`, `80 %`)."""
    return _("{number}%", number=number)


def discord_time(epoch: float, style: str = "R") -> str:
    """A Discord timestamp tag, shown in each reader's own time zone (`R` = relative)."""
    return f"<t:{int(epoch)}:{style}>"


def _money_refusal(
    _: Words, monthly: bool, limit: int, left: int, estimate: int | None, resets_at: float
) -> str:
    values = {
        "left": format_usd(left),
        "limit": format_usd(limit),
        "resets": discord_time(resets_at),
    }
    if estimate is None:  # refused before the files were read: nothing at all is left
        if monthly:
            return _("You have {left} left of your {limit} monthly limit. It resets {resets}.", **values)
        return _("You have {left} left of your {limit} daily limit. It resets {resets}.", **values)
    if monthly:
        return _(
            "This clip would cost about {estimate}, but you have {left} left of your {limit} monthly limit. "
            "It resets {resets}. A shorter clip costs less.",
            estimate=format_usd(estimate),
            **values,
        )
    return _(
        "This clip would cost about {estimate}, but you have {left} left of your {limit} daily limit. "
        "It resets {resets}. A shorter clip costs less.",
        estimate=format_usd(estimate),
        **values,
    )


def refusal_message(_: Words, refusal: QuotaRefusal, estimate: int | None) -> str:
    """The member-facing sentence for a refused reservation: which limit, the numbers, when it frees up.
    `estimate` is None for a refusal before the clip was read (the pre-check: no money left at all)."""
    usage, limits, reason = refusal.usage, refusal.usage.limits, refusal.reason
    if reason is RefusalReason.OPERATOR_DAILY:
        # The operator's figure is theirs: members only learn that the bot is done for today.
        assert refusal.frees_at is not None
        return _(
            "The bot has reached its spending limit for today; try again after {when} ({relative}).",
            when=discord_time(refusal.frees_at, "f"),
            relative=discord_time(refusal.frees_at),
        )
    if reason is RefusalReason.ACTIVE:
        return _.ngettext(
            "You already have {count} video in progress, the most you can have at once. "
            "Try again when one is posted.",
            "You already have {count} videos in progress, the most you can have at once. "
            "Try again when one is posted.",
            usage.active_jobs,
        )
    if reason is RefusalReason.COOLDOWN:
        assert refusal.frees_at is not None
        return _(
            "Please leave a little time between videos: you can start the next one {when}.",
            when=discord_time(refusal.frees_at),
        )
    if reason is RefusalReason.GUILD_BUDGET:
        assert limits.guild_monthly_micros is not None
        values = {
            "spent": format_usd(usage.guild_spent_month_micros),
            "budget": format_usd(limits.guild_monthly_micros),
            "resets": discord_time(usage.windows.month_end),
        }
        if estimate is None:
            return _(
                "This server has used {spent} of its {budget} monthly budget. The budget resets {resets}.",
                **values,
            )
        return _(
            "This server has used {spent} of its {budget} monthly budget, and this clip would cost about "
            "{estimate}. The budget resets {resets}.",
            estimate=format_usd(estimate),
            **values,
        )
    if reason is RefusalReason.MONTHLY:
        assert limits.monthly_micros is not None and usage.left_month_micros is not None
        return _money_refusal(
            _, True, limits.monthly_micros, usage.left_month_micros, estimate, usage.windows.month_end
        )
    assert limits.daily_micros is not None and usage.left_today_micros is not None
    return _money_refusal(
        _, False, limits.daily_micros, usage.left_today_micros, estimate, usage.windows.day_end
    )


def near_limit_warning(_: Words, usage: Usage) -> str | None:
    """A one-line warning when the member is at 80 % or more of a money limit (after this job)."""
    checks = (
        (
            N_("⚠️ That is {percent} of your daily limit ({spent} of {limit}); it resets {resets}."),
            usage.limits.daily_micros,
            usage.spent_today_micros,
            usage.windows.day_end,
        ),
        (
            N_("⚠️ That is {percent} of your monthly limit ({spent} of {limit}); it resets {resets}."),
            usage.limits.monthly_micros,
            usage.spent_month_micros,
            usage.windows.month_end,
        ),
        (
            N_("⚠️ This server has used {percent} of its monthly budget; it resets {resets}."),
            usage.limits.guild_monthly_micros,
            usage.guild_spent_month_micros,
            usage.windows.month_end,
        ),
    )
    for sentence, limit, spent, resets in checks:
        if limit and spent >= WARN_AT * limit:
            return _(
                sentence,
                percent=percent(_, min(100, math.floor(100 * spent / limit))),
                spent=format_usd(spent),
                limit=format_usd(limit),
                resets=discord_time(resets),
            )
    return None


def usage_lines(_: Words, usage: Usage) -> list[str]:
    """/usage as short lines: today, this month, the server's budget, jobs in progress."""
    limits, w = usage.limits, usage.windows
    if limits.daily_micros is None or usage.left_today_micros is None:
        today = _("Today: {spent} spent (no limit)", spent=format_usd(usage.spent_today_micros))
    else:
        today = _(
            "Today: {spent} of {limit}, {left} left (resets {resets})",
            spent=format_usd(usage.spent_today_micros),
            limit=format_usd(limits.daily_micros),
            left=format_usd(usage.left_today_micros),
            resets=discord_time(w.day_end),
        )
    if limits.monthly_micros is None or usage.left_month_micros is None:
        month = _("This month: {spent} spent (no limit)", spent=format_usd(usage.spent_month_micros))
    else:
        month = _(
            "This month: {spent} of {limit}, {left} left (resets {resets})",
            spent=format_usd(usage.spent_month_micros),
            limit=format_usd(limits.monthly_micros),
            left=format_usd(usage.left_month_micros),
            resets=discord_time(w.month_end),
        )
    lines = [today, month]
    if limits.guild_monthly_micros is not None and usage.guild_left_micros is not None:
        lines.append(
            _(
                "Server budget this month: {spent} of {budget} used",
                spent=format_usd(usage.guild_spent_month_micros),
                budget=format_usd(limits.guild_monthly_micros),
            )
        )
    if limits.max_active_jobs is None:
        lines.append(
            _.ngettext(
                "{count} video in progress (no limit)",
                "{count} videos in progress (no limit)",
                usage.active_jobs,
            )
        )
    else:
        lines.append(
            _.ngettext(
                "{count} video in progress, at most {most} at once",
                "{count} videos in progress, at most {most} at once",
                usage.active_jobs,
                most=limits.max_active_jobs,
            )
        )
    return lines


def report_lines(_: Words, period: str, report: SpendReport) -> list[str]:
    """/budget usage as short lines; `period` is "today", "this month" or "last month"."""
    heading = {
        "today": N_("**Spending today**: {total}"),
        "this month": N_("**Spending this month**: {total}"),
        "last month": N_("**Spending last month**: {total}"),
    }[period]
    lines = [_(heading, total=format_usd(report.total_micros))]
    if report.granted_micros:
        lines.append(
            _("Credits given to members by admins: {amount}", amount=format_usd(report.granted_micros))
        )
    if report.top_spenders:
        spenders = ", ".join(f"<@{u}> {format_usd(a)}" for u, a in report.top_spenders)
        lines.append(_("Top spenders: {spenders}", spenders=spenders))
    outcomes = report.jobs_by_status
    if outcomes:
        parts = [_outcome_count(_, s, outcomes[s]) for s in _OUTCOME_ORDER if outcomes.get(s)]
        lines.append(
            _("Videos: {count} ({outcomes})", count=sum(outcomes.values()), outcomes=", ".join(parts))
        )
    else:
        lines.append(_("Videos: none"))
    return lines


_OUTCOME_ORDER = (
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.EXPIRED,
    JobStatus.PROCESSING,
    JobStatus.QUEUED,
    JobStatus.SUBMITTING,
    JobStatus.UPLOADING,
)


def _outcome_count(_: Words, status: JobStatus, count: int) -> str:
    """ "3 succeeded": how many videos of the period ended (or stand) so, in the language's plural form."""
    match status:
        case JobStatus.SUCCEEDED:
            return _.ngettext("{count} succeeded", "{count} succeeded", count)
        case JobStatus.FAILED:
            return _.ngettext("{count} failed", "{count} failed", count)
        case JobStatus.EXPIRED:
            return _.ngettext("{count} expired", "{count} expired", count)
        case JobStatus.PROCESSING:
            return _.ngettext("{count} processing", "{count} processing", count)
        case JobStatus.QUEUED:
            return _.ngettext("{count} queued", "{count} queued", count)
        case JobStatus.SUBMITTING:
            return _.ngettext("{count} submitting", "{count} submitting", count)
    return _.ngettext("{count} uploading", "{count} uploading", count)


def _usd_limit(_: Words, value: int | None) -> str:
    return _("unlimited") if value is None else format_usd(value)


def budget_lines(_: Words, view: BudgetOverview) -> list[str]:
    """/budget show as short lines; a value this server chose is marked, the rest are the defaults."""
    own = view.overrides or GuildLimits(0)
    limits, w = view.limits, view.windows

    def line(sentence: str, field: str | None, **values: object) -> str:
        text = _(sentence, **values)
        return _("{line} (set here)", line=text) if field and getattr(own, field) is not None else text

    budget = limits.guild_monthly_micros
    spent = format_usd(view.guild_spent_month_micros)
    if budget is None:
        used = line(N_("Monthly budget: {spent} spent this month, no budget"), None, spent=spent)
    else:
        share = 0 if budget == 0 else min(999, round(100 * view.guild_spent_month_micros / budget))
        used = _(
            "Monthly budget: {spent} of {budget} used ({percent}), resets {resets}",
            spent=spent,
            budget=format_usd(budget),
            percent=percent(_, share),
            resets=discord_time(w.month_end),
        )
    cap, chosen = view.budget_cap_micros, own.guild_monthly_micros
    if cap is not None and chosen is not None and (chosen == UNLIMITED or chosen > cap):
        # Stored before the operator's cap: say why the budget is not what the server chose.
        used = _("{line}, the most this bot's operator allows", line=used)
    if own.guild_monthly_micros is not None:
        used = _("{line} (set here)", line=used)
    active = _("unlimited") if limits.max_active_jobs is None else str(limits.max_active_jobs)
    cooldown = f"{limits.cooldown_s:g} s" if limits.cooldown_s else _("none")
    confirm = _("never") if view.confirm_above_micros is None else format_usd(view.confirm_above_micros)
    log_channel = f"<#{own.log_channel_id}>" if own.log_channel_id else _("not set")
    return [
        _("**Server budget**"),
        used,
        line(
            N_("Per member, per day: {value}"), "user_daily_micros", value=_usd_limit(_, limits.daily_micros)
        ),
        line(
            N_("Per member, per month: {value}"),
            "user_monthly_micros",
            value=_usd_limit(_, limits.monthly_micros),
        ),
        line(N_("Videos in progress per member: {value}"), "max_active_jobs", value=active),
        line(N_("Cooldown between videos: {value}"), "cooldown_s", value=cooldown),
        line(N_("Members confirm a cost from: {value}"), "confirm_above_micros", value=confirm),
        _("Alerts channel: {channel}", channel=log_channel),
        *tier_lines(_, view.tiers),
    ]


_TIER_PARTS = {
    "daily": N_("per day {value}"),
    "monthly": N_("per month {value}"),
    "active": N_("in progress {value}"),
    "cooldown": N_("cooldown {value}"),
}


def _tier_value_text(_: Words, value: int | float | None, kind: str) -> str | None:
    if value is None:
        return None
    if value == UNLIMITED:
        return _("unlimited")
    if kind == "usd":
        return format_usd(int(value))
    return f"{value:g} s" if kind == "seconds" else str(int(value))


def tier_lines(_: Words, tiers: tuple[RoleTier, ...]) -> list[str]:
    """One line per role tier: the limits it changes (the rest are the server's)."""
    if not tiers:
        return [_("Role tiers: none (add one with /budget tier)")]
    lines = [_("**Role tiers** (a member gets the most generous of their roles)")]
    for tier in tiers:
        parts = [
            _(_TIER_PARTS[name], value=text)
            for name, value, kind in (
                ("daily", tier.daily_micros, "usd"),
                ("monthly", tier.monthly_micros, "usd"),
                ("active", tier.max_active_jobs, "count"),
                ("cooldown", tier.cooldown_s, "seconds"),
            )
            if (text := _tier_value_text(_, value, kind)) is not None
        ]
        limits = ", ".join(parts) or _("same as the server")
        lines.append(f"<@&{tier.role_id}>: {limits}")
    return lines


# /budget set and tier: how each option's new value reads (the same words as /budget show's lines).
_LIMIT_CHANGES = {
    "daily": N_("Per member, per day: {value}"),
    "monthly": N_("Per member, per month: {value}"),
    "active": N_("Videos in progress per member: {value}"),
    "cooldown": N_("Cooldown between videos: {value}"),
    "budget": N_("Monthly budget: {value}"),
    "confirm": N_("Members confirm a cost from: {value}"),
}


def limit_change_text(_: Words, change: LimitChange) -> str:
    """One saved /budget change as a line: the limit and its new value."""
    if change.option == "log_channel":
        return _("Alerts channel: {channel}", channel=f"<#{change.value}>")
    value = change.value
    if value is None:
        text = _("back to the default")
    elif value == UNLIMITED:
        text = _("never") if change.option == "confirm" else _("unlimited")
    elif change.option == "cooldown":
        text = f"{value:g} s" if value else _("none")
    elif change.option == "active":
        text = str(int(value))
    else:
        text = format_usd(int(value))
    return _(_LIMIT_CHANGES[change.option], value=text)


def grant_text(_: Words, credit: int, member: str, reason: str, left: int | None) -> str:
    """What /budget grant did: the credit given (or taken back) and what the member may spend now."""
    values = {"amount": format_usd(abs(credit)), "member": member, "reason": reason}
    if left is None:
        if credit > 0:
            return _("Gave {amount} to {member} ({reason}).", **values)
        return _("Took back {amount} from {member} ({reason}).", **values)
    if credit > 0:
        return _(
            "Gave {amount} to {member} ({reason}). They have {left} left to spend now.",
            left=format_usd(left),
            **values,
        )
    return _(
        "Took back {amount} from {member} ({reason}). They have {left} left to spend now.",
        left=format_usd(left),
        **values,
    )


def reset_text(_: Words, member: str, month: bool, given: int) -> str:
    """What /budget reset did: what was given back, or that there was nothing to reset."""
    if given == 0:
        if month:
            return _("{member} has spent nothing this month; nothing to reset.", member=member)
        return _("{member} has spent nothing today; nothing to reset.", member=member)
    if month:
        return _(
            "Reset the spending of {member} for this month: {amount} given back.",
            member=member,
            amount=format_usd(given),
        )
    return _(
        "Reset the spending of {member} for today: {amount} given back.",
        member=member,
        amount=format_usd(given),
    )


def budget_alert_text(_: Words, alert: BudgetAlert) -> str:
    """The alerts-channel post when the server's monthly spend reaches a threshold (the server's language)."""
    values = {
        "budget": format_usd(alert.budget_micros),
        "spent": format_usd(alert.spent_micros),
        "resets": discord_time(alert.resets_at),
    }
    if alert.threshold >= 100:
        return _(
            "🛑 This server has reached its {budget} monthly budget ({spent} spent; the next video would go "
            "over). New videos are refused until it resets {resets}. `/budget set budget:` raises it.",
            **values,
        )
    return _(
        "⚠️ This server has used {percent} of its {budget} monthly budget ({spent}). It resets {resets}.",
        percent=percent(_, alert.threshold),
        **values,
    )


def error_text(_: Words, error: UserFacingError) -> str:
    """What the member reads for a core error, in their language: its message, or the words for the facts
    it carries."""
    if isinstance(error, QuotaExceeded):
        return refusal_message(_, error.refusal, error.estimate)
    if isinstance(error, ChannelNotAllowed):
        where = ", ".join(f"<#{c}>" for c in error.allowed[:10]) + (", …" if len(error.allowed) > 10 else "")
        return _("/animate can't be used in this channel. Try {channels}.", channels=where)
    if isinstance(error, OwnVideoReported):
        return _("This is your own video: use **Delete** to remove it.")
    if isinstance(error, DatabaseDown):
        return database_down_text(_, error)
    if isinstance(error, UploadFailed):
        return _("{reason} You were not charged.", reason=_(error.reason))
    return _(error.template, **error.values)


# /videos: one line per video. Whole phrases, each in one place, so that they can be translated as they are.
_VIDEO_STATUS = {
    JobStatus.UPLOADING: N_("waiting to start"),
    JobStatus.QUEUED: N_("waiting to start"),
    JobStatus.SUBMITTING: N_("being made"),
    JobStatus.PROCESSING: N_("being made"),
    JobStatus.SUCCEEDED: N_("ready"),
    JobStatus.FAILED: N_("failed, not charged"),
    JobStatus.EXPIRED: N_("took too long, not charged"),
}
VIDEOS_TITLE = N_("**Your videos here**")
NO_VIDEOS = N_("You have no videos in this server yet. Make one with /animate.")
NO_MORE_VIDEOS = N_("No videos on this page.")


def _video_status(_: Words, job: Job) -> str:
    if job.cancelled:
        return _("cancelled, not charged")
    if job.arrived_late:
        return _("arrived late, not charged")
    return _(_VIDEO_STATUS[job.status])


def _video_cost(_: Words, job: Job) -> str | None:
    if job.status is JobStatus.SUCCEEDED:
        return format_usd(job.cost_micros or 0)
    if job.status in (JobStatus.UPLOADING, JobStatus.QUEUED, JobStatus.SUBMITTING, JobStatus.PROCESSING):
        return _("about {cost}", cost=format_usd(job.estimate_micros))
    return None  # refunded: the status says so


def video_line(_: Words, job: Job, post_url: str | None, link_expires_at: float | None, now: float) -> str:
    """/videos' line for one job: number, status, length, cost, when, the post, the download link.
    `post_url`: a jump link to its post (None when nothing was posted, or it was removed);
    `link_expires_at`: when its video's download link stops working (None: it has none to offer)."""
    parts = [f"**#{job.id}**", _video_status(_, job), f"{job.audio_seconds:.1f} s"]
    cost = _video_cost(_, job)
    if cost is not None:
        parts.append(cost)
    parts.append(discord_time(job.created_at))
    if job.removed_at is not None:
        parts.append(_("post removed"))
    elif post_url is not None:
        parts.append(_("[post]({url})", url=post_url))
    if link_expires_at is not None and job.result_url is not None:
        if link_expires_at > now:
            parts.append(
                _(
                    "[download]({url}) works until {when}",
                    url=job.result_url,
                    when=discord_time(link_expires_at),
                )
            )
        else:
            parts.append(_("download link expired"))
    return " · ".join(parts)


def cancel_text(_: Words, cancelled: Cancelled) -> str:
    """What a Cancel press did, in plain words: refunded, or why not."""
    job = cancelled.job
    match cancelled.outcome:
        case CancelOutcome.CANCELLED:
            return private_cancelled_text(_, job)
        case CancelOutcome.ALREADY_CANCELLED:
            return _("Job #{job} was already cancelled. You were not charged.", job=job.id)
        case CancelOutcome.RUNNING:
            return _(
                "Job #{job} is already being made and the video service can't stop it: it will finish, "
                "be posted, and be charged (about {cost}).",
                job=job.id,
                cost=format_usd(job.estimate_micros),
            )
    return _("Job #{job} has already finished, so there is nothing to cancel.", job=job.id)


# The "Animate" message command.
NOT_YOUR_MESSAGE = N_(
    "You can only animate your own messages: using someone else's face and voice is what the consent "
    "statement forbids."
)


def missing_files_text(_: Words, no_image: bool, no_audio: bool) -> str:
    """What a message given to "Animate" lacks, by name."""
    if no_image and no_audio:
        return _(
            "This message has no portrait and no voice clip. Animate needs a message of yours with an image "
            "(PNG, JPEG or WEBP) and a voice clip or voice message."
        )
    if no_image:
        return _(
            "This message has no portrait. Animate needs an image (PNG, JPEG or WEBP) with the voice clip."
        )
    return _(
        "This message has no voice clip. Animate needs an audio file or a voice message with the portrait."
    )


def database_down_text(_: Words, error: DatabaseDown) -> str:
    """What a member reads when the bot's database stopped answering during their /animate or Confirm:
    whether they were charged, and what happens to the job."""
    if error.state is Unsettled.CANCELLED:
        if error.job_id is None:
            return _(
                "The bot's database stopped answering, so your video couldn't start. It is cancelled and "
                "you won't be charged. Please try again in a few minutes."
            )
        return _(
            "The bot's database stopped answering, so job #{job} couldn't start. It is cancelled and you "
            "won't be charged. Please try again in a few minutes.",
            job=error.job_id,
        )
    if error.state is Unsettled.UNKNOWN:
        if error.job_id is None:
            return _(
                "The bot's database stopped answering while your video was starting, so I can't tell "
                "whether it started. If it did, the video will be posted here as usual; if not, you won't "
                "be charged."
            )
        return _(
            "The bot's database stopped answering while job #{job} was starting, so I can't tell whether "
            "it started. If it did, the video will be posted here as usual; if not, you won't be charged.",
            job=error.job_id,
        )
    return _(
        "The bot's database didn't answer, so nothing was done and you weren't charged. "
        "Please try again in a minute."
    )


def store_unavailable_text(_: Words, ambiguous: bool) -> str:
    """What a member reads when the database stopped answering during any other command or button."""
    if ambiguous:
        return _(
            "The bot's database stopped answering, so I can't tell whether that went through. "
            "Please check again in a minute."
        )
    return _("The bot's database didn't answer, so nothing was done. Please try again in a minute.")


# The private acknowledgement while its job is made (cogs/acks.py). Whole sentences, one per state, so that
# each can be translated as it is.
NEXT_IN_LINE = N_("⏳ Next in line: it goes to the video service in a moment.")
BEING_MADE = N_("🎬 Being made by the video service.")


def follows_until_text(_: Words, expires_at: float) -> str:
    """The acknowledgement's promise: how long it is kept up to date (Discord lets a bot edit it for 15
    minutes), and where the member learns the outcome after that."""
    return _(
        "This message follows the job until {time}; after that, the post that mentions you in this channel "
        "tells you how it went.",
        time=discord_time(expires_at, "t"),
    )


def line_text(_: Words, place: int) -> str:
    """The job's place in the line of jobs waiting to go to the video service (1: next)."""
    if place <= 1:
        return _(NEXT_IN_LINE)
    return _.ngettext(
        "⏳ In line: {count} video is ahead of yours.",
        "⏳ In line: {count} videos are ahead of yours.",
        place - 1,
    )


def making_text(_: Words, progress: int | None) -> str:
    """The video service has the job: how far along it is (a percentage), when it says."""
    if progress is None:
        return _(BEING_MADE)
    return _("🎬 Being made by the video service: {percent} done.", percent=percent(_, progress))


def private_cancelled_text(_: Words, job: Job) -> str:
    """The acknowledgement of a job its member cancelled before it started."""
    return _("🚫 Job #{job} cancelled before it started. You were not charged.", job=job.id)
