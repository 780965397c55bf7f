"""/videos: a member's own videos in this server, newest first, paged with Older and Newer buttons; and the
Cancel button (on a job's private acknowledgement and on /videos) for a job Runware has not heard of yet.

Both kinds of button survive restarts (discord.py's dynamic items): a page's button carries the page (the
job number its videos are below), the server, the channel and the member; a Cancel button the job and the
channel of the private message it is on. A press is checked as the other buttons are: the right server and
channel, a private message, the right member."""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs._i18n import ENGLISH, N_, Words, member_words
from cogs._ui import (
    MAX_MESSAGE_CHARS,
    NOT_HERE,
    button_errors,
    check_private_to,
    check_stored_ids,
    fit,
    message_link,
    send,
)
from cogs._wording import NO_MORE_VIDEOS, NO_VIDEOS, VIDEOS_TITLE, cancel_text, video_line
from cogs.delivery import end_acknowledgement
from core.errors import UserFacingError
from core.jobs import NOT_YOUR_JOB, CancelOutcome, JobPage
from core.models import CANCELLABLE, Job, JobStatus

if TYPE_CHECKING:
    from bot import VideoBot

log = logging.getLogger(__name__)

NOT_YOUR_VIDEOS = N_("These are another member's videos. Use /videos to see yours.")
# Where a Cancel button is: the job's acknowledgement, or a /videos page (named by its `before`).
ON_ACK = "ack"
_PAGE_TEMPLATE = (
    r"vq:videos:(?P<dir>o|n):(?P<before>[0-9]+):(?P<guild>[0-9]+):(?P<channel>[0-9]+):(?P<user>[0-9]+)"
)
_CANCEL_TEMPLATE = r"vq:cancel:(?P<job>[0-9]+):(?P<channel>[0-9]+):(?P<on>ack|[0-9]+)"


def ack_view(_: Words, job: Job) -> discord.ui.View | None:
    """The Cancel button of a job's private acknowledgement (in the job's own channel), while it can
    still be cancelled."""
    if job.status not in CANCELLABLE:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job.id, job.channel_id, ON_ACK, words=_))
    return view


def page_text(_: Words, bot: VideoBot, page: JobPage, head: str | None = None) -> str:
    """A /videos page: a line per video (after `head`, what a press just did)."""
    lines = [head, ""] if head else []
    if not page.jobs:
        return "\n".join([*lines, _(NO_VIDEOS) if page.before == 0 else _(NO_MORE_VIDEOS)])
    now = time.time()
    lines.append(_(VIDEOS_TITLE))
    posts = [
        message_link(job.guild_id, job.result_channel_id, job.result_message_id)
        if job.result_channel_id and job.result_message_id
        else None
        for job in page.jobs
    ]
    rows = [
        video_line(_, job, post, _link_expiry(bot, job), now)
        for job, post in zip(page.jobs, posts, strict=True)
    ]
    # Runware's links are as long as it makes them: a page that would not fit loses download links, oldest
    # first, never a video (the next page starts below this one's last, so a video cut would be on none).
    for index in reversed(range(len(rows))):
        if len("\n".join([*lines, *rows])) <= MAX_MESSAGE_CHARS:
            break
        rows[index] = video_line(_, page.jobs[index], posts[index], None, now)
    return fit(_, [*lines, *rows])


def _link_expiry(bot: VideoBot, job: Job) -> float | None:
    """When the job's download link stops working; None when it has none to offer the member (not made, a
    flagged video, or one a moderator removed)."""
    made = job.status is JobStatus.SUCCEEDED or job.arrived_late
    if not made or job.result_url is None or job.nsfw or job.removed_at is not None:
        return None
    return bot.jobs.link_expires_at(job)


def page_view(
    _: Words, page: JobPage, guild_id: int, channel_id: int, user_id: int
) -> discord.ui.View | None:
    """A page's buttons: Cancel for each video that can still be cancelled, then Newer and Older."""
    view = discord.ui.View(timeout=None)
    for job in page.jobs:
        if job.status in CANCELLABLE:
            view.add_item(CancelButton(job.id, channel_id, str(page.before), words=_))
    where = (guild_id, channel_id, user_id)
    if page.newer is not None:
        view.add_item(VideosButton("n", page.newer, *where, words=_))
    if page.older is not None:
        view.add_item(VideosButton("o", page.older, *where, words=_))
    return view if view.children else None


class VideosCog(commands.Cog):
    """The /videos command."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    @app_commands.command(
        name=N_("videos"),
        description=N_("See your videos in this server: status, cost, the post and the download link."),
    )
    @app_commands.guild_only()
    async def videos(self, interaction: discord.Interaction[VideoBot]) -> None:
        """/videos: the member's videos here, newest first."""
        await interaction.response.defer(ephemeral=True)
        _ = member_words(interaction)
        guild_id, channel_id, user_id = (
            interaction.guild_id or 0,
            interaction.channel_id or 0,
            interaction.user.id,
        )
        page = await self.bot.jobs.job_page(guild_id, user_id)
        view = page_view(_, page, guild_id, channel_id, user_id)
        if view is None:
            await send(interaction, page_text(_, self.bot, page))
        else:
            await send(interaction, page_text(_, self.bot, page), view=view)


def check_member(interaction: discord.Interaction[Any], guild_id: int, channel_id: int, user_id: int) -> None:
    """Refuse a page's button pressed anywhere but on its member's private page (see check_private_to), or
    by another member (a forged press)."""
    check_private_to(interaction, guild_id, channel_id)
    if interaction.user.id != user_id:
        raise UserFacingError(NOT_YOUR_VIDEOS)


class VideosButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=_PAGE_TEMPLATE):
    """Newer or Older on a /videos page."""

    def __init__(
        self,
        direction: str,
        before: int,
        guild_id: int,
        channel_id: int,
        user_id: int,
        *,
        words: Words = ENGLISH,
    ) -> None:
        super().__init__(
            discord.ui.Button(
                label=words("Newer") if direction == "n" else words("Older"),
                style=discord.ButtonStyle.secondary,
                custom_id=f"vq:videos:{direction}:{before}:{guild_id}:{channel_id}:{user_id}",
            )
        )
        self.before, self.guild_id, self.channel_id, self.user_id = before, guild_id, channel_id, user_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> VideosButton:
        return cls(
            match["dir"], int(match["before"]), int(match["guild"]), int(match["channel"]), int(match["user"])
        )

    async def callback(self, interaction: discord.Interaction[VideoBot]) -> None:  # type: ignore[override]
        """Show the page this button names, in place of the one it is on."""
        await interaction.response.defer()
        async with button_errors(interaction):
            check_member(interaction, self.guild_id, self.channel_id, self.user_id)
            check_stored_ids(self.before)
            page = await interaction.client.jobs.job_page(self.guild_id, self.user_id, self.before)
            _ = member_words(interaction)
            view = page_view(_, page, self.guild_id, self.channel_id, self.user_id)
            await interaction.edit_original_response(
                content=page_text(_, interaction.client, page), view=view
            )


class CancelButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=_CANCEL_TEMPLATE):
    """Cancel a job that Runware has not heard of yet; `on`: ON_ACK, or the /videos page it is on."""

    def __init__(self, job_id: int, channel_id: int, on: str, *, words: Words = ENGLISH) -> None:
        super().__init__(
            discord.ui.Button(
                label=words("Cancel") if on == ON_ACK else words("Cancel #{job}", job=job_id),
                style=discord.ButtonStyle.danger,
                custom_id=f"vq:cancel:{job_id}:{channel_id}:{on}",
            )
        )
        self.job_id, self.channel_id, self.on = job_id, channel_id, on

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CancelButton:
        return cls(int(match["job"]), int(match["channel"]), match["on"])

    async def callback(self, interaction: discord.Interaction[VideoBot]) -> None:  # type: ignore[override]
        """Cancel and refund the job if Runware does not have it yet, else say plainly that it will finish
        and be charged. The answer replaces the acknowledgement, or the /videos page (shown afresh)."""
        bot = interaction.client
        await interaction.response.defer()
        async with button_errors(interaction):
            check_stored_ids(self.job_id, 0 if self.on == ON_ACK else int(self.on))
            job = await bot.jobs.get_job(self.job_id)
            if job is None:
                raise UserFacingError(NOT_HERE)
            check_private_to(interaction, job.guild_id, self.channel_id)
            if interaction.user.id != job.user_id:
                raise UserFacingError(NOT_YOUR_JOB)
            cancelled = await bot.jobs.cancel_job(self.job_id, interaction.user.id)
            _ = member_words(interaction)
            text = cancel_text(_, cancelled)
            if self.on == ON_ACK:
                if cancelled.outcome is CancelOutcome.CANCELLED:
                    # Nothing more is shown in it, and an edit on its way lands before this answer.
                    await end_acknowledgement(bot, job.id)
                    await interaction.edit_original_response(content=text, view=None)
                else:
                    # The acknowledgement keeps its progress and outcome; the answer comes privately.
                    await send(interaction, text)
                return
            page = await bot.jobs.job_page(job.guild_id, job.user_id, int(self.on))
            view = page_view(_, page, job.guild_id, self.channel_id, job.user_id)
            await interaction.edit_original_response(content=page_text(_, bot, page, text), view=view)


async def setup(bot: VideoBot) -> None:
    """Extension entry point."""
    await bot.add_cog(VideosCog(bot))
    # Page and Cancel buttons answer whichever process receives the press, also after a restart.
    bot.add_dynamic_items(VideosButton, CancelButton)
