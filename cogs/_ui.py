"""Shared rendering for the Discord edge: one reply helper and the texts members read."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import discord

from cogs._i18n import N_, Words, member_words
from cogs._wording import discord_time, error_text, near_limit_warning, store_unavailable_text
from core.errors import UserFacingError
from core.models import GuildSettings, Job, JobStatus, Usage, format_usd
from core.ports import StoreUnavailable

log = logging.getLogger(__name__)

GENERIC_APOLOGY = N_("Something went wrong on our side and it has been logged. Please try again in a minute.")

# Members are pinged by the result post; nothing else in a message may ping anyone.
NO_MENTIONS = discord.AllowedMentions.none()


def mention_only(user_id: int) -> discord.AllowedMentions:
    """Allow exactly one user mention (the requester) and nothing else."""
    return discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(user_id)])


NOT_A_MANAGER = N_("Only members with the **Manage Server** permission can use this command.")


def is_server_manager(interaction: discord.Interaction[Any]) -> bool:
    """An app-command check. Checked in code: Discord hides admin commands by `default_member_permissions`,
    but only in its client, and a server can change who sees them; the permission itself is what counts."""
    from discord import app_commands

    if interaction.guild_id is None or not interaction.permissions.manage_guild:
        raise app_commands.CheckFailure(NOT_A_MANAGER)
    return True


NOT_A_MODERATOR = N_("Only members with the **Manage Messages** permission can use this command.")


def is_moderator(interaction: discord.Interaction[Any]) -> bool:
    """An app-command check for moderators (Manage Messages), checked in code like is_server_manager."""
    from discord import app_commands

    if interaction.guild_id is None or not interaction.permissions.manage_messages:
        raise app_commands.CheckFailure(NOT_A_MODERATOR)
    return True


async def admit(interaction: discord.Interaction[Any]) -> GuildSettings:
    """Refuse a server the operator does not serve, a member banned from the bot, or a channel off the
    /animate allow-list, before anything is downloaded or charged (also on a later button, as things may
    have changed). A thread counts as its parent channel: allowing a channel allows its threads. Returns
    the guild's moderation settings."""
    moderation = interaction.client.moderation
    moderation.check_guild(interaction.guild_id)
    guild_id = interaction.guild_id or 0
    await moderation.check_member(guild_id, interaction.user.id)
    guild: GuildSettings = await moderation.settings_of(guild_id)
    channel = interaction.channel
    parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
    moderation.check_channel(guild, parent_id or interaction.channel_id or 0)
    return guild


async def resolve_channel(client: discord.Client, channel_id: int) -> discord.abc.Messageable | None:
    """A channel to post in: from the cache, else asked of Discord (right after a start the cache stays empty
    until the gateway's GUILD_CREATE). None when it is gone or hidden from the bot."""
    channel = client.get_channel(channel_id)
    if channel is None:
        try:
            channel = await client.fetch_channel(channel_id)
        except (discord.NotFound, discord.Forbidden):
            return None
    return channel if isinstance(channel, discord.abc.Messageable) else None


def is_age_restricted(channel: object) -> bool:
    """Whether a channel is age-restricted; a thread is when its parent channel is."""
    is_nsfw = getattr(channel, "is_nsfw", None)  # text, voice, forum channels and threads have it
    return bool(is_nsfw()) if callable(is_nsfw) else False


def member_role_ids(interaction: discord.Interaction[Any]) -> tuple[int, ...]:
    """The ids of the member's roles (their tiers decide their limits); empty outside a guild."""
    roles = getattr(interaction.user, "roles", None) or []
    return tuple(role.id for role in roles)


async def send(
    interaction: discord.Interaction[Any], content: str, *, ephemeral: bool = True, **kwargs: Any
) -> None:
    """Reply to an interaction whether or not it was already acknowledged (deferred or answered)."""
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS, **kwargs)
    else:
        await interaction.response.send_message(
            content, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS, **kwargs
        )


async def answer(
    interaction: discord.Interaction[Any], content: str, *, view: discord.ui.View | None = None
) -> None:
    """Answer in the interaction's own message: a button's answer replaces the message the button was on
    (its buttons go unless `view` brings new ones); a command's answer is its private reply, which a
    deferred command's answer fills in (replacing a waiting notice shown there meanwhile: a followup would
    then be a second message, while the job's updates edit the first)."""
    if interaction.type is discord.InteractionType.component or interaction.response.is_done():
        await interaction.edit_original_response(content=content, view=view)
    elif view is not None:
        await send(interaction, content, view=view)
    else:
        await send(interaction, content)


@contextlib.asynccontextmanager
async def button_errors(
    interaction: discord.Interaction[Any], *, in_place: bool = False
) -> AsyncIterator[None]:
    """A button's errors, answered like a command's: a UserFacingError's message (in the button's own
    message when `in_place`, else privately), anything else logged and met with an apology."""
    _ = member_words(interaction)
    try:
        yield
    except UserFacingError as error:
        await (answer if in_place else send)(interaction, error_text(_, error))
    except StoreUnavailable as error:
        # The database dropped the connection: one line, no traceback, and plain words for the member.
        log.warning("button failed for user=%s, the database is unavailable (%s)", interaction.user.id, error)
        with contextlib.suppress(discord.HTTPException):
            await (answer if in_place else send)(interaction, store_unavailable_text(_, error.ambiguous))
    except Exception:
        custom_id = interaction.data.get("custom_id") if interaction.data else None
        log.exception(
            "button %s failed for user=%s guild=%s", custom_id, interaction.user.id, interaction.guild_id
        )
        with contextlib.suppress(discord.HTTPException):
            await (answer if in_place else send)(interaction, _(GENERIC_APOLOGY))


NOT_HERE = N_("This button doesn't belong here.")


def check_pressed_on(
    interaction: discord.Interaction[Any],
    guild_id: int | None,
    channel_id: int | None,
    message_id: int | None,
) -> None:
    """Refuse a button pressed anywhere but on the message its id belongs to. Anyone can send an
    interaction with any custom_id (from another server, or on another message): the id proves nothing."""
    message = interaction.message
    if (
        interaction.guild_id != guild_id
        or message_id is None
        or message is None
        or (interaction.channel_id, message.id) != (channel_id, message_id)
    ):
        raise UserFacingError(NOT_HERE)


# The largest number the database stores (a signed 64-bit integer): a job, quote or page number past it is
# in no row, and the database refuses even to compare with it.
MAX_STORED_ID = 2**63 - 1


def check_stored_ids(*numbers: int) -> None:
    """Refuse a press whose custom_id names a number no row can have: the id is the sender's to write."""
    if any(n > MAX_STORED_ID for n in numbers):
        raise UserFacingError(NOT_HERE)


def check_private_to(interaction: discord.Interaction[Any], guild_id: int, channel_id: int) -> None:
    """Refuse a button of a private reply (whose message id the bot doesn't keep) pressed in another server
    or channel, or on a message others can see: only its member sees a private reply, so a press on one is
    theirs, and no public message gets rewritten by a forged press."""
    message = interaction.message
    if (
        (interaction.guild_id, interaction.channel_id) != (guild_id, channel_id)
        or message is None
        or not message.flags.ephemeral
    ):
        raise UserFacingError(NOT_HERE)


# Discord's limit on a message's content.
MAX_MESSAGE_CHARS = 2000


def fit(_: Words, lines: list[str], limit: int = MAX_MESSAGE_CHARS) -> str:
    """Lines joined into one message, cut at a whole line with "…and N more." if they don't fit."""
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for index, line in enumerate(lines):
        rest = _("…and {count} more.", count=len(lines) - index)
        if sum(len(k) + 1 for k in kept) + len(line) + 1 + len(rest) > limit:
            return "\n".join([*kept, rest])
        kept.append(line)
    return text


def message_link(guild_id: int, channel_id: int, message_id: int) -> str:
    """A link to a message, as Discord's "Copy Message Link" gives it."""
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def seconds(value: float) -> str:
    """A clip length for people: `8.4 s`."""
    return f"{value:.1f} s"


def megabytes(size: int) -> str:
    """A file size for people: `23.4 MB`."""
    return f"{size / 1_000_000:.1f} MB"


def upload_limit(size: int) -> str:
    """Discord's upload limits are binary megabytes (10 MiB shows as `10 MB`, as Discord writes it)."""
    return f"{size / (1024 * 1024):.0f} MB"


def video_filename(job: Job) -> str:
    """The attachment name of a job's video."""
    return f"ventriloquist-{job.id}.{job.output_format.lower()}"


_STATUS_WORDS = {
    JobStatus.SUCCEEDED: N_("ready"),
    JobStatus.FAILED: N_("failed, not charged"),
    JobStatus.EXPIRED: N_("cancelled, not charged"),
}


def job_line(_: Words, job: Job) -> str:
    """One of a member's jobs in /usage: number, length, cost (or estimate while running), outcome."""
    when = discord_time(job.created_at)
    if job.status in _STATUS_WORDS:
        cost = f" · {format_usd(job.cost_micros or 0)}" if job.status is JobStatus.SUCCEEDED else ""
        status = _("cancelled by you, not charged") if job.cancelled else _(_STATUS_WORDS[job.status])
        return f"#{job.id} · {seconds(job.audio_seconds)}{cost} · {status} · {when}"
    estimate = _("about {cost}", cost=format_usd(job.estimate_micros))
    # Not inside the f-string: pybabel does not look there, so the words would stay English.
    status = _("in progress")
    return f"#{job.id} · {seconds(job.audio_seconds)} · {estimate} · {status} · {when}"


def ack_text(_: Words, job: Job, usage: Usage | None) -> str:
    """The private acknowledgement once a job is accepted: number, estimate, what is left, any warning."""
    lines = [
        _(
            "🎬 **Job #{job} accepted.** {length} of audio, estimated cost **{cost}**.",
            job=job.id,
            length=seconds(job.audio_seconds),
            cost=format_usd(job.estimate_micros),
        )
    ]
    left_micros = usage.left_micros if usage else None
    if left_micros is not None:
        lines[0] += " " + _("You have **{left}** left to spend.", left=format_usd(left_micros))
    warning = near_limit_warning(_, usage) if usage else None
    if warning:
        lines.append(warning)
    lines.append(
        _("I'll post the video in this channel and mention you when it's ready (usually 1–4 minutes).")
    )
    return "\n".join(lines)


def private_ready_text(_: Words, job: Job) -> str:
    """The private reply once the video is posted: what it cost beside the estimate (costs stay private)."""
    if job.late_video_waiting:
        return _("✅ Job #{job} arrived late and was posted. You were not charged.", job=job.id)
    return _(
        "✅ Job #{job} is ready. It cost {cost} (estimate {estimate}).",
        job=job.id,
        cost=format_usd(job.cost_micros or 0),
        estimate=format_usd(job.estimate_micros),
    )


def private_failure_text(_: Words, job: Job) -> str:
    """The private reply when a job failed or expired."""
    if job.status is JobStatus.EXPIRED:
        if job.late_until is not None:
            return _(
                "❌ Job #{job} took too long. You were not charged; if the video still arrives, it will be "
                "posted here.",
                job=job.id,
            )
        return _("❌ Job #{job} took too long and was cancelled. You were not charged.", job=job.id)
    if job.error_message is None:
        return _("❌ Job #{job} failed: no reason given. You were not charged.", job=job.id)
    # The reason is stored in English, as one of the catalogue's sentences: shown in the member's language.
    return _("❌ Job #{job} failed: {reason} You were not charged.", job=job.id, reason=_(job.error_message))


def private_not_shown_text(_: Words, job: Job) -> str:
    """The private reply when a finished video could not be shown anywhere (its cost is given back)."""
    return _("Job #{job} could not be posted anywhere. You were not charged.", job=job.id)


def private_gone_text(_: Words, job: Job) -> str:
    """The private reply when the video expired at Runware before it could be posted (cost given back)."""
    return _("Job #{job}'s video expired before it could be posted. You were not charged.", job=job.id)


def private_withheld_text(_: Words, job: Job, *, everywhere: bool = False) -> str:
    """The private reply when a flagged video is not posted: outside an age-restricted channel, or
    anywhere when the server withholds flagged videos everywhere."""
    if everywhere:
        return _(
            "🔞 Job #{job} was flagged as adult content by the safety check, so it was not posted here. "
            "This server doesn't post flagged videos. You were not charged.",
            job=job.id,
        )
    return _(
        "🔞 Job #{job} was flagged as adult content by the safety check, so it was not posted here. "
        "It can only be shown in an age-restricted channel. You were not charged.",
        job=job.id,
    )


def private_unchecked_text(_: Words, job: Job) -> str:
    """The private reply when a video made without the safety check (allowed only in an age-restricted
    channel) would have gone somewhere that is not age-restricted."""
    return _(
        "🔞 Job #{job} was made without the safety check, which is allowed only in an age-restricted "
        "channel, and it could not be posted in one, so it was not posted. You were not charged.",
        job=job.id,
    )


# Public posts carry no money: what a member spends is theirs to see (in /usage and the private replies).
# They are worded in the server's language, and every one keeps "#{job}" after the mention: a delivery
# that starts again finds its earlier post by that, in any language (cogs/delivery.py `carries_job`).


def result_text(_: Words, job: Job) -> str:
    """The public post when the video is attached."""
    if job.late_video_waiting:
        return _(
            "{member} job #{job} arrived late; you were not charged. {length} · AI-generated video",
            member=f"<@{job.user_id}>",
            job=job.id,
            length=seconds(job.audio_seconds),
        )
    return _(
        "{member} your talking portrait is ready. Job #{job} · {length} · AI-generated video",
        member=f"<@{job.user_id}>",
        job=job.id,
        length=seconds(job.audio_seconds),
    )


def link_text(_: Words, job: Job, limit: int, expires_at: float) -> str:
    """The public post when the video is too big to attach here (a flagged one's link as a spoiler, which
    also hides its preview)."""
    url = f"||{job.result_url}||" if job.nsfw else job.result_url
    return "\n".join(
        (
            result_text(_, job),
            _("Too big to attach here ({limit} limit): {url}", limit=upload_limit(limit), url=url),
            _(
                "The link works until {when} ({relative}).",
                when=discord_time(expires_at, "f"),
                relative=discord_time(expires_at),
            ),
        )
    )


def withheld_text(_: Words, job: Job) -> str:
    """The public post about a withheld video or a refused job, when the member cannot be told privately.
    Neutral on purpose: the channel need not learn that a member's video was flagged."""
    member = f"<@{job.user_id}>"
    if job.status is JobStatus.SUCCEEDED or job.late_video_waiting:
        return _(
            "{member} job #{job} couldn't be posted in this channel. You were not charged.",
            member=member,
            job=job.id,
        )
    return _("{member} job #{job} couldn't be made. You were not charged.", member=member, job=job.id)


def gone_text(_: Words, job: Job) -> str:
    """The public post when the finished video expired at Runware before the bot could post it."""
    return _(
        "{member} job #{job} finished, but the video expired before it could be posted. "
        "You were not charged.",
        member=f"<@{job.user_id}>",
        job=job.id,
    )


def failure_text(_: Words, job: Job) -> str:
    """The public post when a job failed or expired; the member was refunded."""
    member = f"<@{job.user_id}>"
    if job.status is JobStatus.EXPIRED:
        return _expiry_notice(_, job, late_promised=job.late_until is not None)
    reason = _(job.error_message or "The video service could not make this video.")
    return _(
        "{member} job #{job} failed: {reason} You were not charged.", member=member, job=job.id, reason=reason
    )


def _expiry_notice(_: Words, job: Job, *, late_promised: bool) -> str:
    member = f"<@{job.user_id}>"
    if late_promised:
        return _(
            "{member} job #{job} took too long. You were not charged; if the video still arrives, it "
            "will be posted here.",
            member=member,
            job=job.id,
        )
    return _(
        "{member} job #{job} took too long and was cancelled. You were not charged.",
        member=member,
        job=job.id,
    )


def ended_notice_texts(_: Words, job: Job) -> set[str]:
    """Every wording of the public notice posted when a job ended without its video. An expired job's: its
    expiry notice with the promise that a late video will be posted (the job was watched when it expired)
    and without; by the time a late video arrives its watch has ended, so which one was posted cannot be
    told from the job. A failed job's (one Runware was judged to have lost): its failure notice."""
    if job.status is not JobStatus.EXPIRED:
        return {failure_text(_, job)}
    return {_expiry_notice(_, job, late_promised=promised) for promised in (True, False)}


def unchecked_log_text(_: Words, job: Job) -> str:
    """The moderation-log entry for a video made without the safety check that was withheld because it
    could not be posted in an age-restricted channel (no media, no pings)."""
    return _(
        "🚩 Job #{job} by {member} in {channel} was made without the safety check (its channel was "
        "age-restricted) and could only have been posted somewhere that is not: withheld, not posted. "
        "Started {when}.",
        job=job.id,
        member=f"<@{job.user_id}>",
        channel=f"<#{job.channel_id}>",
        when=discord_time(job.created_at),
    )


def flagged_log_text(_: Words, job: Job, message: discord.Message | None) -> str:
    """The moderation-log entry for a flagged job (no media, no pings)."""
    values = {
        "job": job.id,
        "member": f"<@{job.user_id}>",
        "channel": f"<#{job.channel_id}>",
        "when": discord_time(job.created_at),
    }
    if job.status is not JobStatus.SUCCEEDED:
        return _(
            "🚩 Job #{job} by {member} in {channel} was flagged ({reason}): refused by the safety check; "
            "nothing was made. Started {when}.",
            reason=job.error_code or "safety",
            **values,
        )
    if message is not None and (message.attachments or (job.result_url or "\0") in message.content):
        return _(
            "🚩 Job #{job} by {member} in {channel} was flagged (adult content): posted as a spoiler: "
            "{link}. Started {when}.",
            link=message.jump_url,
            **values,
        )
    return _(
        "🚩 Job #{job} by {member} in {channel} was flagged (adult content): withheld, not posted. "
        "Started {when}.",
        **values,
    )
