"""Report and act: Report and Delete under each result, and the moderators' buttons on each report.

All are dynamic items whose custom_id carries a job or report id, so they work in any process, including
one started after the message was posted. Permissions are checked here, not only by who can see what:
any member may report, the requester or a moderator (Manage Messages) may delete, and only moderators act
on reports."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from cogs._i18n import ENGLISH, N_, Words, guild_words, member_words
from cogs._ui import NO_MENTIONS, button_errors, check_pressed_on, check_stored_ids, message_link, send
from cogs._wording import discord_time
from core.errors import UserFacingError
from core.models import Job, Report, ReportState

if TYPE_CHECKING:
    from bot import VideoBot

log = logging.getLogger(__name__)

_RESULT_TEMPLATE = r"vq:result:(?P<action>report|delete):(?P<id>[0-9]+)"
_REPORT_TEMPLATE = r"vq:report:(?P<action>delete|ban|dismiss):(?P<id>[0-9]+)"
_REPORT_LABELS = {"delete": N_("Delete video"), "ban": N_("Ban from bot"), "dismiss": N_("Dismiss")}
NOT_A_MODERATOR = N_("Only members with the **Manage Messages** permission can act on reports.")


def result_view(_: Words, job_id: int) -> discord.ui.View:
    """Report and Delete, under a posted result (in the server's language, as the post)."""
    view = discord.ui.View(timeout=None)
    view.add_item(ResultButton("report", job_id, words=_))
    view.add_item(ResultButton("delete", job_id, words=_))
    return view


class ResultButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=_RESULT_TEMPLATE):
    """Report (any member, once) or Delete (the requester or a moderator) under a result."""

    def __init__(self, action: str, job_id: int, *, words: Words = ENGLISH) -> None:
        report = action == "report"
        super().__init__(
            discord.ui.Button(
                label=words("Report") if report else words("Delete"),
                emoji="🚩" if report else "🗑️",
                style=discord.ButtonStyle.secondary,
                custom_id=f"vq:result:{action}:{job_id}",
            )
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ResultButton:
        return cls(match["action"], int(match["id"]))

    async def callback(self, interaction: discord.Interaction[VideoBot]) -> None:  # type: ignore[override]
        """Answered privately: the channel sees only the video disappear."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with button_errors(interaction):
            check_stored_ids(self.job_id)
            # A server the operator no longer serves keeps its old results: their buttons do nothing.
            interaction.client.moderation.check_guild(interaction.guild_id)
            job = await interaction.client.moderation.posted_job(self.job_id)
            # A result sent by DM (the server allowed it) is pressed outside any server: there its own
            # channel and message are the proof.
            guild_id = job.guild_id if interaction.guild_id is not None else None
            check_pressed_on(interaction, guild_id, job.result_channel_id, job.result_message_id)
            if self.action == "report":
                await _report(interaction, self.job_id)
            else:
                await _delete(interaction, self.job_id)


class ReportButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=_REPORT_TEMPLATE):
    """Delete video, Ban from bot or Dismiss, on a report in the moderation log."""

    def __init__(self, action: str, report_id: int, *, words: Words = ENGLISH) -> None:
        super().__init__(
            discord.ui.Button(
                label=words(_REPORT_LABELS[action]),
                style=discord.ButtonStyle.secondary if action == "dismiss" else discord.ButtonStyle.danger,
                custom_id=f"vq:report:{action}:{report_id}",
            )
        )
        self.action = action
        self.report_id = report_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ReportButton:
        return cls(match["action"], int(match["id"]))

    async def callback(self, interaction: discord.Interaction[VideoBot]) -> None:  # type: ignore[override]
        """Act on the report, then show on every report of the job what was done."""
        bot = interaction.client
        await interaction.response.defer()  # the report message is updated below
        async with button_errors(interaction):
            check_stored_ids(self.report_id)
            bot.moderation.check_guild(interaction.guild_id)  # as on a result, and every command
            if not interaction.permissions.manage_messages:
                raise UserFacingError(NOT_A_MODERATOR)
            report, job = await bot.moderation.report_of(self.report_id)
            # A report that never reached the log (its post failed) has no buttons anywhere: any press is
            # forged. The reporter's next Report posts it, with buttons that work.
            check_pressed_on(interaction, report.guild_id, report.log_channel_id, report.log_message_id)
            actor = interaction.user.id
            if self.action == "delete":
                await delete_result(bot, job, actor)
            elif self.action == "ban":
                if await bot.moderation.ban_of(job.guild_id, job.user_id) is not None:
                    raise UserFacingError(
                        "{member} is already banned from the bot here.", member=f"<@{job.user_id}>"
                    )
                reason = f"a moderator acted on a report of your video (job #{job.id})"
                await bot.moderation.ban(
                    job.guild_id, job.user_id, reason, actor, everywhere=False, job_id=job.id
                )
            elif not await bot.moderation.dismiss(report.id, actor):
                raise UserFacingError("This report was already closed.")
            log.info("report=%s job=%s %s by %s", report.id, job.id, self.action, actor)
            await refresh_reports(bot, job.id)


async def _report(interaction: discord.Interaction[VideoBot], job_id: int) -> None:
    bot = interaction.client
    _ = member_words(interaction)
    job, report = await bot.moderation.report(job_id, interaction.user.id)
    log.info("report=%s job=%s by %s", report.id, job.id, interaction.user.id)
    log_channel_id = (await bot.moderation.settings_of(job.guild_id)).mod_log_channel_id
    if log_channel_id is None:
        await send(
            interaction,
            _(
                "🚩 Thanks, your report is recorded. This server has no moderation log channel, "
                "so please also tell a moderator."
            ),
        )
    elif await _post_report(bot, log_channel_id, job, report):
        await send(interaction, _("🚩 Thanks. The moderators have been told."))
    else:
        await send(
            interaction,
            _(
                "🚩 Thanks, your report is recorded, but I couldn't post it to the moderators' channel. "
                "Please also tell a moderator."
            ),
        )


async def _delete(interaction: discord.Interaction[VideoBot], job_id: int) -> None:
    bot = interaction.client
    job = await bot.moderation.posted_job(job_id)
    bot.moderation.may_delete(job, interaction.user.id, moderator=interaction.permissions.manage_messages)
    await delete_result(bot, job, interaction.user.id)
    _ = member_words(interaction)
    await send(interaction, _("🗑️ Deleted the video of job #{job}.", job=job.id))
    await refresh_reports(bot, job.id)


async def delete_result(bot: VideoBot, job: Job, actor_id: int) -> None:
    """Delete a job's posted result and record who did it (its open reports close)."""
    if job.removed_at is not None:
        raise UserFacingError("The video of job #{job} was already deleted.", job=job.id)
    if job.result_channel_id is None or job.result_message_id is None:
        raise UserFacingError("Job #{job} has no posted video to delete.", job=job.id)
    message = bot.get_partial_messageable(job.result_channel_id).get_partial_message(job.result_message_id)
    try:
        await message.delete()
    except discord.NotFound:
        pass  # already deleted by hand: record it all the same
    except discord.Forbidden as error:
        # E.g. a result that went out through the command's reply in a channel the bot can't see.
        link = message_link(job.guild_id, job.result_channel_id, job.result_message_id)
        raise UserFacingError(
            "I'm not allowed to delete that message ({link}). Please delete it by hand.", link=link
        ) from error
    await bot.moderation.record_removal(job, actor_id)


async def _post_report(bot: VideoBot, channel_id: int, job: Job, report: Report) -> bool:
    """Post a report to the moderation log; False when it can't be posted there."""
    channel = bot.get_partial_messageable(channel_id, guild_id=job.guild_id)
    text, view = await render_report(bot, report, job)
    try:
        message = await channel.send(text, view=view or discord.utils.MISSING, allowed_mentions=NO_MENTIONS)
    except discord.HTTPException as error:
        log.warning("report=%s could not be posted to the moderation log: %r", report.id, error)
        return False
    await bot.moderation.set_report_message(report, channel.id, message.id)
    return True


async def render_report(bot: VideoBot, report: Report, job: Job) -> tuple[str, discord.ui.View | None]:
    """A report as moderators read it: what, who, where, a link, what was done; buttons for what is left."""
    _ = guild_words(bot.get_guild(job.guild_id))  # the moderation log is public: the server's language
    actions = await bot.moderation.actions_on(job.id)
    banned = await bot.moderation.ban_of(job.guild_id, job.user_id) is not None
    lines = [
        _(
            "🚩 **Report** · job #{job} by {member} in {channel} · reported by {reporter} {when}",
            job=job.id,
            member=f"<@{job.user_id}>",
            channel=f"<#{job.channel_id}>",
            reporter=f"<@{report.reporter_id}>",
            when=discord_time(report.created_at),
        )
    ]
    posted = job.result_channel_id is not None and job.result_message_id is not None
    if posted and job.removed_at is None:
        assert job.result_channel_id is not None and job.result_message_id is not None
        lines.append(message_link(job.guild_id, job.result_channel_id, job.result_message_id))
    for action in actions:
        when = discord_time(action.created_at)
        if action.action == "job.delete":
            lines.append(_("🗑️ Video deleted by {actor} {when}", actor=f"<@{action.actor_id}>", when=when))
        elif action.action == "moderation.ban":
            lines.append(
                _(
                    "🔨 {member} banned from the bot by {actor} {when}",
                    member=f"<@{job.user_id}>",
                    actor=f"<@{action.actor_id}>",
                    when=when,
                )
            )
    if report.state is ReportState.DISMISSED and report.decided_at is not None:
        lines.append(
            _(
                "Dismissed by {actor} {when}",
                actor=f"<@{report.decided_by}>",
                when=discord_time(report.decided_at),
            )
        )
    buttons = []
    if posted and job.removed_at is None:
        buttons.append("delete")
    if not banned:
        buttons.append("ban")
    if report.state is ReportState.OPEN:
        buttons.append("dismiss")
    if not buttons:
        return "\n".join(lines), None
    view = discord.ui.View(timeout=None)
    for action_name in buttons:
        view.add_item(ReportButton(action_name, report.id, words=_))
    return "\n".join(lines), view


async def refresh_reports(bot: VideoBot, job_id: int) -> None:
    """Re-render every report of a job in the moderation log (after any action on the job)."""
    job = await bot.moderation.posted_job(job_id)
    for report in await bot.moderation.reports_of(job_id):
        if report.log_channel_id is None or report.log_message_id is None:
            continue
        text, view = await render_report(bot, report, job)
        message = bot.get_partial_messageable(report.log_channel_id).get_partial_message(
            report.log_message_id
        )
        try:
            await message.edit(content=text, view=view)
        except discord.HTTPException as error:
            log.warning("report=%s log message not updated: %r", report.id, error)


async def setup(bot: VideoBot) -> None:
    """Extension entry point: the buttons answer whichever process receives the click."""
    bot.add_dynamic_items(ResultButton, ReportButton)
