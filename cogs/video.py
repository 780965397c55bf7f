"""/animate: take a portrait and a voice clip, queue the job, and post the finished video."""

from __future__ import annotations

import io
import logging
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs._ui import (
    ack_text,
    failure_text,
    link_text,
    mention_only,
    progress_text,
    result_text,
    send,
    video_filename,
    withheld_text,
)
from core.errors import UserFacingError
from core.jobs import AnimateRequest
from core.media import ACCEPTED_AUDIO, ACCEPTED_IMAGES
from core.models import Job, JobStatus
from core.runware import RunwareError

if TYPE_CHECKING:
    from bot import VideoBot

log = logging.getLogger(__name__)

# Discord's per-file limit when nothing better is known (an unboosted guild).
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
DEFAULT_QUALITY = 85
# Edits of the acknowledgement while rendering: often enough to show life, rarely enough for rate limits.
PROGRESS_EDIT_INTERVAL_S = 5.0
FORMATS = [app_commands.Choice(name=f, value=f) for f in ("MP4", "WEBM", "MOV")]


def delivery_nonce(job: Job) -> str:
    """The nonce of a job's result post: Discord drops a repeat of it, so a retried post cannot double."""
    return f"vq-job-{job.id}"


class VideoCog(commands.Cog):
    """The /animate command and the delivery of finished jobs."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        # Interactions of jobs accepted by this process, to update the private acknowledgement.
        # Lost on restart by design: the interaction token only lives 15 minutes anyway.
        self._acks: dict[int, discord.Interaction[VideoBot]] = {}
        self._delivering: set[int] = set()
        self._last_progress_edit: dict[int, float] = {}

    @app_commands.command(name="animate")
    @app_commands.guild_only()
    @app_commands.describe(
        image=f"The portrait: {ACCEPTED_IMAGES}, 300–6000 px per side",
        audio=f"The voice: {ACCEPTED_AUDIO}, up to 30 seconds",
        format="Video format (default MP4)",
        quality="Video quality from 20 to 99 (default 85)",
    )
    @app_commands.choices(format=FORMATS)
    async def animate(
        self,
        interaction: discord.Interaction[VideoBot],
        image: discord.Attachment,
        audio: discord.Attachment,
        format: app_commands.Choice[str] | None = None,
        quality: app_commands.Range[int, 20, 99] | None = None,
    ) -> None:
        """Animate a portrait so it speaks your audio clip."""
        # Acknowledge first: Discord gives 3 s, downloads and uploads take longer. Private, so that
        # rejections and costs are only seen by the member; the video itself is posted publicly.
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs = self.bot.jobs
        jobs.check_declared_sizes(image.size, audio.size)
        image_bytes = await _download(image, "image")
        audio_bytes = await _download(audio, "audio")
        channel = interaction.channel
        request = AnimateRequest(
            guild_id=interaction.guild_id or 0,
            channel_id=interaction.channel_id or 0,
            user_id=interaction.user.id,
            image=image_bytes,
            audio=audio_bytes,
            output_format=format.value if format else "MP4",
            output_quality=quality or DEFAULT_QUALITY,
            upload_limit_bytes=interaction.filesize_limit,
            channel_nsfw=bool(getattr(channel, "nsfw", False)),
        )
        accepted = await jobs.accept(request)
        await send(interaction, ack_text(accepted.job, accepted.usage.left_micros))
        # Registered only after the acknowledgement exists, so a progress edit cannot race it.
        self._acks[accepted.job.id] = interaction

    @commands.Cog.listener()
    async def on_job_progress(self, job_id: int, percent: int | None) -> None:
        """Keep the member's private acknowledgement current while Runware renders."""
        interaction = self._acks.get(job_id)
        if interaction is None or interaction.is_expired():
            return
        now = time.monotonic()
        if now - self._last_progress_edit.get(job_id, 0.0) < PROGRESS_EDIT_INTERVAL_S:
            return
        self._last_progress_edit[job_id] = now
        job = await self.bot.jobs.get_job(job_id)
        if job is None or not job.is_active:
            return
        try:
            await interaction.edit_original_response(content=progress_text(job, percent))
        except (discord.HTTPException, RuntimeError) as error:
            log.debug("job=%s could not update the acknowledgement: %r", job_id, error)

    @commands.Cog.listener()
    async def on_job_finished(self, job: Job) -> None:
        """Post a finished job's result once (the runner offers it again if posting fails)."""
        if job.id in self._delivering or job.delivered_at is not None:
            return
        self._delivering.add(job.id)
        try:
            await self._deliver(job)
        except (discord.HTTPException, RunwareError, OSError) as error:
            log.warning("job=%s task=%s delivery failed, will retry: %r", job.id, job.task_uuid, error)
        except Exception:
            log.exception("job=%s task=%s delivery failed, will retry", job.id, job.task_uuid)
        finally:
            self._delivering.discard(job.id)

    async def _deliver(self, job: Job) -> None:
        channel = self.bot.get_channel(job.channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(job.channel_id)
            except (discord.NotFound, discord.Forbidden):
                log.warning(
                    "job=%s task=%s channel %s is gone; not posted", job.id, job.task_uuid, job.channel_id
                )
                await self._finish(job, None)
                return
        if not isinstance(channel, discord.abc.Messageable):
            await self._finish(job, None)
            return
        content, file = await self._render(job, channel)
        message: discord.Message | None
        try:
            message = await channel.send(
                content,
                file=file or discord.utils.MISSING,
                nonce=delivery_nonce(job),
                allowed_mentions=mention_only(job.user_id),
            )
        except discord.HTTPException as error:
            if error.status == 413 and file is not None:
                # The guild's limit dropped (boost lost) since we checked: fall back to the link.
                limit = _channel_upload_limit(channel, job)
                message = await channel.send(
                    link_text(job, limit, self.bot.jobs.link_expires_at(job)),
                    nonce=delivery_nonce(job),
                    allowed_mentions=mention_only(job.user_id),
                )
            elif isinstance(error, discord.Forbidden):
                log.warning(
                    "job=%s task=%s no permission to post in %s", job.id, job.task_uuid, job.channel_id
                )
                message = await self._post_via_interaction(job, channel)
            else:
                raise
        await self._finish(job, message)

    async def _render(self, job: Job, channel: discord.abc.Messageable) -> tuple[str, discord.File | None]:
        if job.status is not JobStatus.SUCCEEDED:
            return failure_text(job), None
        channel_nsfw = channel.is_nsfw() if hasattr(channel, "is_nsfw") else job.channel_nsfw
        if job.nsfw and not channel_nsfw:
            return withheld_text(job), None
        limit = _channel_upload_limit(channel, job)
        data = await self.bot.jobs.fetch_video(job, limit)
        if data is None:
            return link_text(job, limit, self.bot.jobs.link_expires_at(job)), None
        return result_text(job), discord.File(io.BytesIO(data), filename=video_filename(job))

    async def _post_via_interaction(
        self, job: Job, channel: discord.abc.Messageable
    ) -> discord.Message | None:
        """When the bot may not post in the channel, answer through the command's own interaction
        (possible only within its 15 minutes, and only in this process)."""
        interaction = self._acks.get(job.id)
        if interaction is None or interaction.is_expired():
            return None
        # A discord.File is closed by the failed send: render a fresh one.
        content, file = await self._render(job, channel)
        return await interaction.followup.send(
            content,
            file=file or discord.utils.MISSING,
            ephemeral=False,
            wait=True,
            allowed_mentions=mention_only(job.user_id),
        )

    async def _finish(self, job: Job, message: discord.Message | None) -> None:
        if not await self.bot.jobs.mark_delivered(job.id):
            return
        log.info(
            "job=%s task=%s delivered message=%s", job.id, job.task_uuid, message.id if message else None
        )
        interaction = self._acks.pop(job.id, None)
        self._last_progress_edit.pop(job.id, None)
        if interaction is None or interaction.is_expired() or message is None:
            return
        status = "is ready" if job.status is JobStatus.SUCCEEDED else "did not work out"
        try:
            await interaction.edit_original_response(content=f"Job #{job.id} {status}: {message.jump_url}")
        except (discord.HTTPException, RuntimeError) as error:  # RuntimeError: closing down
            # The private acknowledgement is a courtesy; the public post is what counts.
            log.debug("job=%s could not update the acknowledgement: %r", job.id, error)


def _channel_upload_limit(channel: discord.abc.Messageable, job: Job) -> int:
    """The largest file this channel accepts: the guild's boost limit, else what the interaction said."""
    guild = getattr(channel, "guild", None)
    if isinstance(guild, discord.Guild):
        return guild.filesize_limit
    return job.upload_limit_bytes or DEFAULT_UPLOAD_LIMIT


async def _download(attachment: discord.Attachment, what: str) -> bytes:
    """Read an attachment now: its signed URL expires, and Runware must never be given it."""
    try:
        return await attachment.read()
    except discord.NotFound as error:
        raise UserFacingError(
            f"Discord no longer has the {what} file (its link expired). Please run the command again."
        ) from error
    except discord.HTTPException as error:
        raise UserFacingError(f"I couldn't download the {what} from Discord. Please try again.") from error


async def setup(bot: VideoBot) -> None:
    """Extension entry point."""
    await bot.add_cog(VideoCog(bot))
