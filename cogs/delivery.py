"""Delivery of finished jobs: post each result once in its channel (or, when the bot can't, through the
command's reply or a DM), find a post an earlier try made, tell the moderators, and keep the member's private
acknowledgement up to date (its place in line, Runware's progress, then the outcome: cogs/acks.py).

The runner offers a finished job with `bot.dispatch("job_finished", job)` until it is recorded as delivered;
what the job becomes in a given place is decided in core/delivery.py, and carried out here.

The acknowledgement lives in the process whose shard received the command (and, kept in the database while
its token lives, in the process that serves that shard after a restart), but any process may advance
the job and post its result. So a process that sees progress on a job whose acknowledgement it does not
hold publishes it (JobEvents), and recording a post notifies every process (DELIVERED, in the record's
transaction): the one holding the acknowledgement then shows the progress, or reads the job and shows its
outcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import discord
from discord.ext import commands

from cogs._i18n import ENGLISH, Words, every_language, guild_words, member_words
from cogs._ui import (
    ended_notice_texts,
    failure_text,
    flagged_log_text,
    gone_text,
    is_age_restricted,
    link_text,
    mention_only,
    message_link,
    private_failure_text,
    private_gone_text,
    private_not_shown_text,
    private_ready_text,
    private_unchecked_text,
    private_withheld_text,
    resolve_channel,
    result_text,
    unchecked_log_text,
    video_filename,
    withheld_text,
)
from cogs._wording import follows_until_text, private_cancelled_text
from cogs.acks import Acks, opening_text
from cogs.reports import result_view
from core.delivery import NOT_POSTED, VIDEO_GONE, Destination, ModeratorNote, Outcome, decide, moderator_note
from core.errors import CONNECTION_ERRORS
from core.models import GuildSettings, Job, JobPlace, JobStatus, StoredAck
from core.ports import JobEvent, JobNotice, StoreUnavailable
from core.runware import ErrorKind, RunwareError

if TYPE_CHECKING:
    from bot import VideoBot

log = logging.getLogger(__name__)

# A delivery that meets these is retried, with a warning line: Discord refused or failed the post, Runware's
# video could not be fetched, or the connection dropped mid-request (CONNECTION_ERRORS: aiohttp's error,
# which discord.py passes on, on a network hiccup or a SIGTERM mid-post), all expected, none a bug.
RETRIED_DELIVERY_ERRORS: tuple[type[BaseException], ...] = (
    discord.HTTPException,
    RunwareError,
    *CONNECTION_ERRORS,
)

# Discord's per-file limit when nothing better is known (an unboosted guild).
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
# Deliveries at once (each may hold a video of up to 100 MiB in memory).
MAX_CONCURRENT_DELIVERIES = 4
# How often this process publishes a job's progress for another process's acknowledgement (that process
# shows it no more often anyway).
PROGRESS_EDIT_INTERVAL_S = 5.0
# A delivery that starts again looks for the job's earlier post in the history of each channel it was about
# to post in, from this long before that first try (the bot's clock and Discord's may differ a little) …
POST_SEARCH_MARGIN_S = 120.0
# … reading at most this many messages (two pages): the post follows its try within seconds.
POST_SEARCH_LIMIT = 200
# A delivery the database interrupted (it dropped the connection) is tried again this soon by this process,
# which still holds the job's delivery lease, up to DELIVERY_ATTEMPTS tries in all; a longer outage leaves
# it to the runner, which offers the job again when the lease runs out, as after any failed post. (The
# next try finds a post the interrupted one made, so it is not posted twice.)
DELIVERY_RETRY_S = 1.0
DELIVERY_ATTEMPTS = 5
# How often the stored acknowledgements whose tokens expired are deleted (a row lives 15 minutes at most).
ACK_PRUNE_INTERVAL_S = 60.0


@dataclass
class Rendered:
    """What a finished job becomes: the public post, its file, and the member's private reply.

    `quiet`: the channel need not see it (a withheld video); tell the member privately when possible."""

    public: str
    file: discord.File | None
    private: str
    quiet: bool = False
    view: discord.ui.View | None = None  # Report and Delete, under a posted video


def delivery_nonce(job: Job) -> str:
    """The nonce of a job's result post: Discord drops a repeat of it, so a retried post cannot double."""
    return f"vq-job-{job.id}-late" if job.late_video_waiting else f"vq-job-{job.id}"


class DeliveryCog(commands.Cog):
    """Posts finished jobs and updates their private acknowledgements."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        # Acknowledgements of jobs accepted by this process (their live interactions), and those a process
        # before a restart kept in the database (adopted: edited through their interactions' webhooks).
        self.acks = Acks(bot.ack_interval_s, forget=bot.store.forget_acknowledgement)
        self._adopted = False
        self._pruned_at = -math.inf
        self._refresher: asyncio.Task[None] | None = None
        self._delivering: set[int] = set()
        # When this process last published each job's progress for another process's acknowledgement.
        self._published: dict[int, float] = {}
        self._delivery_slots = asyncio.Semaphore(MAX_CONCURRENT_DELIVERIES)
        self._retries: set[asyncio.Task[None]] = set()

    async def cog_load(self) -> None:
        # Adopt before the runner starts (setup_hook loads the cogs first): a job posted at once after a
        # restart then finds its acknowledgement held, and its private text in its member's language.
        try:
            await self._adopt(time.time())
            self._adopted = True
        except Exception as error:  # the database may be down: the refresher's chores try again
            log.warning("acknowledgements from before the restart not adopted yet: %s", type(error).__name__)
        self._refresher = asyncio.create_task(
            self.acks.keep_fresh(self.bot.jobs.job_places, self._show_outcome, self._ack_chores),
            name="acknowledgements",
        )

    async def _ack_chores(self) -> None:
        """Before a refresh: adopt the stored acknowledgements of this process's guilds once (after a
        restart), and delete the expired ones now and then."""
        now = time.time()
        if not self._adopted:
            await self._adopt(now)
            self._adopted = True
        if time.monotonic() - self._pruned_at >= ACK_PRUNE_INTERVAL_S:
            pruned = await self.bot.store.prune_acknowledgements(now)
            self._pruned_at = time.monotonic()
            if pruned:
                log.debug("%s expired acknowledgements deleted", pruned)

    async def _adopt(self, now: float) -> None:
        """Hold the still valid stored acknowledgements of the guilds this process serves, edited through
        their interactions' webhooks (the next refresh shows where each job stands, or its outcome)."""
        adopted = 0
        for stored in await self.bot.store.stored_acknowledgements(now):
            if not self._serves(stored.guild_id):
                continue
            webhook = discord.Webhook.partial(stored.application_id, stored.token, client=self.bot)
            if self.acks.adopt(
                stored.job_id, webhook, stored.head, stored.shown, stored.locale, stored.expires_at
            ):
                adopted += 1
        if adopted:
            log.info("%s acknowledgements adopted from before the restart", adopted)

    def _serves(self, guild_id: int) -> bool:
        """Whether this process serves the guild: its shard is one of this process's (all, unsharded)."""
        count, ids = self.bot.shard_count, getattr(self.bot, "shard_ids", None)
        if not count or count <= 1 or ids is None:
            return True
        return (guild_id >> 22) % count in ids

    async def cog_unload(self) -> None:
        for task in self._retries:
            task.cancel()
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        await self.acks.close()

    async def track_acknowledgement(
        self,
        job_id: int,
        interaction: discord.Interaction[VideoBot],
        head: str,
        shown: str,
        stands: JobPlace | None,
    ) -> None:
        """Remember a job's private acknowledgement, to show its place, progress and outcome in it, and
        keep it in the database while its token lives, for the process serving its guild after a
        restart."""
        self.acks.track(job_id, interaction, head, shown, stands)
        if interaction.guild_id is None:
            return
        stored = StoredAck(
            job_id,
            interaction.guild_id,
            interaction.application_id,
            interaction.token,
            str(interaction.locale),
            head,
            shown,
            interaction.expires_at.timestamp(),
        )
        try:
            await self.bot.store.save_acknowledgement(stored)
        except StoreUnavailable as error:
            log.warning("job=%s acknowledgement not kept for a restart: %s", job_id, error)
            return
        except Exception as error:  # a courtesy: the job is accepted and charged, never an apology for it
            # The error's name only: a driver's message may quote the statement's parameters (the token).
            log.warning("job=%s acknowledgement not kept for a restart: %s", job_id, type(error).__name__)
            return
        if self.acks.live(job_id) is None:
            await self.acks.forget(job_id)  # its outcome was shown while it was being saved

    @commands.Cog.listener()
    async def on_job_progress(self, job_id: int, percent: int | None) -> None:
        """Add Runware's progress (seen by this process's runner; None: it has just accepted the job) to
        the member's private acknowledgement; when another process holds it, publish the progress for that
        process (which also sees the job leave the line at its next refresh)."""
        if self.acks.progress(job_id, percent):
            await self.acks.show(job_id)
            return
        if percent is None:
            return
        now = time.monotonic()
        if now - self._published.get(job_id, -math.inf) < PROGRESS_EDIT_INTERVAL_S:
            return  # the holder would not show it sooner anyway
        self._published = {j: t for j, t in self._published.items() if now - t < PROGRESS_EDIT_INTERVAL_S}
        self._published[job_id] = now
        try:
            await self.bot.store.publish(JobNotice(JobEvent.PROGRESS, job_id, percent))
        except StoreUnavailable as error:
            log.debug("job=%s progress not published: %s", job_id, error)

    @commands.Cog.listener()
    async def on_job_notice(self, notice: JobNotice) -> None:
        """A notification from any process (this one's included): show progress or the outcome in an
        acknowledgement this process holds."""
        if notice.event is JobEvent.PROGRESS and notice.percent is not None:
            if self.acks.progress(notice.job_id, notice.percent):
                await self.acks.show(notice.job_id)
        elif notice.event is JobEvent.DELIVERED:
            await self._show_outcome(notice.job_id)
        elif notice.event is JobEvent.RESYNC:
            # Notifications may have been missed: look at every job whose acknowledgement is held here.
            for job_id in self.acks.held():
                await self._show_outcome(job_id)

    @commands.Cog.listener()
    async def on_job_finished(self, job: Job, attempt: int = 1) -> None:
        """Post a finished job's result once (the runner offers it again if posting fails), and a video
        that arrived after the job expired once more. `attempt`: how many tries the database interrupted
        before this one, plus one."""
        if job.id in self._delivering or (job.delivered_at is not None and not job.late_video_waiting):
            return
        self._delivering.add(job.id)
        retry = False
        try:
            # Each delivery may hold a whole video in memory: a backlog after an outage goes a few at a time.
            async with self._delivery_slots:
                # The job offered may have been read before its late video arrived (or before it was
                # posted): work from its row as it is now, never post a stale expiry notice after the video.
                fresh = await self.bot.jobs.get_job(job.id)
                if fresh is None or (fresh.delivered_at is not None and not fresh.late_video_waiting):
                    # Posted by another process meanwhile: its DELIVERED notice came while this one had
                    # the job in hand (and was passed over), so the acknowledgement is shown from here.
                    await self._show_outcome(job.id, delivering=True)
                    return
                job = fresh
                await self._deliver(job)
        except RETRIED_DELIVERY_ERRORS as error:
            self.bot.observer.delivery_failed()
            log.warning("job=%s task=%s delivery failed, will retry: %r", job.id, job.task_uuid, error)
        except StoreUnavailable as error:
            retry = attempt < DELIVERY_ATTEMPTS
            log.warning(
                "job=%s task=%s delivery interrupted, the database is unavailable (%s); will retry%s",
                job.id,
                job.task_uuid,
                error,
                f" in {DELIVERY_RETRY_S:g} s" if retry else "",
            )
        except Exception:
            self.bot.observer.delivery_failed()
            log.exception("job=%s task=%s delivery failed, will retry", job.id, job.task_uuid)
        finally:
            self._delivering.discard(job.id)
        if retry:
            task = asyncio.create_task(self._retry(job, attempt + 1), name=f"deliver-again-{job.id}")
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)

    async def _retry(self, job: Job, attempt: int) -> None:
        await asyncio.sleep(DELIVERY_RETRY_S)
        self.bot.dispatch("job_finished", job, attempt)

    async def _show_outcome(self, job_id: int, *, delivering: bool = False) -> None:
        """The job was posted by another process, or cancelled (or a notice or a refresh says look): if
        this process holds its acknowledgement and the job's outcome is recorded, show it, as the process
        that posted it would have. `delivering`: called by this process's own delivery of the job, which
        found it recorded by another."""
        if self.acks.live(job_id) is None or (job_id in self._delivering and not delivering):
            return  # nothing to edit, or this process is delivering it and edits it itself
        try:
            job = await self.bot.jobs.get_job(job_id)
            if job is None or job.delivered_at is None or job.late_delivered_at is not None:
                return  # not posted yet (a stale hint); a late video comes long after the ack expired
            text = await self._outcome_text(job)
        except (StoreUnavailable, discord.HTTPException) as error:
            log.warning("job=%s outcome not shown in the acknowledgement: %s", job_id, error)
            return
        await self.acks.finish(job_id, text)  # (nothing, when shown meanwhile by another path)

    async def _outcome_text(self, job: Job) -> str:
        """The private reply for a job another process posted, from its row and its post: what the
        member would have read had this process posted it (core/delivery.py decides again, for the
        place it was posted in)."""
        _ = self._member_words(job.id)
        if job.cancelled:
            return private_cancelled_text(_, job)  # nothing was posted
        message = await self._posted_message(job)
        guild = await self.bot.moderation.settings_of(job.guild_id)
        if message is None and job.result_message_id is not None:
            # Posted, but the post can't be read back: its link, and the usual words for a video.
            assert job.result_channel_id is not None
            link = message_link(job.guild_id, job.result_channel_id, job.result_message_id)
            return f"{private_ready_text(_, job)}\n{link}"
        channel = message.channel if message is not None else await resolve_channel(self.bot, job.channel_id)
        decision = decide(job, Destination(age_restricted=is_age_restricted(channel)), guild)
        where = f"\n{message.jump_url}" if message is not None else ""
        match decision.outcome:
            case Outcome.FAILURE_NOTICE | Outcome.REFUSED:
                return private_failure_text(_, job) + where
            case Outcome.WITHHELD_FLAGGED:
                return private_withheld_text(_, job, everywhere=guild.withhold_flagged) + where
            case Outcome.WITHHELD_UNCHECKED:
                return private_unchecked_text(_, job) + where
        if shows_video(job, message):
            return private_ready_text(_, job) + where
        if message is not None:  # its notice that the video expired before it could be posted
            return private_gone_text(_, job) + where
        return private_not_shown_text(_, job)  # posted nowhere: its cost was given back

    async def _posted_message(self, job: Job) -> discord.Message | None:
        """The job's recorded post, read from Discord (None: none recorded, or it can't be read)."""
        if job.result_channel_id is None or job.result_message_id is None:
            return None
        channel = await resolve_channel(self.bot, job.result_channel_id)
        if channel is None:
            return None
        try:
            return await channel.fetch_message(job.result_message_id)
        except discord.HTTPException as error:
            log.debug("job=%s post %s could not be read: %r", job.id, job.result_message_id, error)
            return None

    def _member_words(self, job_id: int) -> Words:
        """The member's language for their private replies: their interaction's, while this process holds
        it (private replies are only ever shown in it)."""
        ack = self.acks.live(job_id)
        return ack.words() if ack is not None else ENGLISH

    def _server_words(self, job: Job) -> Words:
        """The server's language for public posts, read at post time from the gateway's cache (English
        right after a start, until the server's GUILD_CREATE arrives)."""
        return guild_words(self.bot.get_guild(job.guild_id))

    async def _deliver(self, job: Job) -> None:
        """Post in the job's channel; if the bot can't, through the command's interaction or a DM."""
        guild = await self.bot.moderation.settings_of(job.guild_id)
        if await self._finish_earlier_post(job):
            return
        channel = await self._job_channel(job)
        if channel is not None:
            rendered = await self._render(job, channel, guild)
            if rendered.quiet and self.acks.live(job.id) is not None:
                # Nothing for the channel to see: tell the member privately.
                await self._finish(job, None, rendered.private)
                return
            try:
                await self._finish(job, await self._send(job, channel, rendered), rendered.private)
                return
            except discord.Forbidden:
                log.warning("job=%s task=%s may not post in %s", job.id, job.task_uuid, job.channel_id)
        message, private = await self._post_elsewhere(job, guild, channel)
        if message is None:
            log.warning("job=%s task=%s could not be posted anywhere", job.id, job.task_uuid)
            if await self.bot.jobs.give_cost_back(job, NOT_POSTED):
                private = private_not_shown_text(self._member_words(job.id), job)
        await self._finish(job, message, private)

    async def _job_channel(self, job: Job) -> discord.abc.Messageable | None:
        channel = await resolve_channel(self.bot, job.channel_id)
        if channel is None:
            log.warning("job=%s task=%s channel %s is gone", job.id, job.task_uuid, job.channel_id)
        return channel

    async def _finish_earlier_post(self, job: Job) -> bool:
        """A delivery that starts again (the process died, or an answer was lost, before the post was
        recorded): if an earlier try did post, record that post and post nothing. Discord drops a repeated
        nonce for a few minutes only, and the command's reply has no nonce at all."""
        attempts = await self.bot.jobs.post_attempts(job)
        if not attempts:
            return False  # a first delivery: one read, nothing to look for
        message = await self._find_post(job, attempts)
        if message is None:
            return False
        log.info(
            "job=%s task=%s was posted before (message %s); not again", job.id, job.task_uuid, message.id
        )
        await self._finish(job, message, _private_after(self._member_words(job.id), job, message))
        return True

    async def _find_post(self, job: Job, attempts: list[tuple[int, float]]) -> discord.Message | None:
        """The job's post in the channels it was about to be posted in, if it is there."""
        me = self.bot.user
        assert me is not None  # set at login, before the runner starts
        for channel_id, started_at in attempts:
            channel = await resolve_channel(self.bot, channel_id)
            if channel is None:
                continue
            if job.late_video_waiting:
                # The channel's attempt may be the expiry notice's, hours before the video arrived (a row per
                # channel keeps its first try), and the search reads two pages only: look from the arrival,
                # which set updated_at (nothing else changes an expired job before its late post).
                started_at = max(started_at, job.updated_at)
            since = dt.datetime.fromtimestamp(started_at - POST_SEARCH_MARGIN_S, dt.UTC)
            after = discord.Object(discord.utils.time_snowflake(since))
            try:
                async for message in channel.history(after=after, limit=POST_SEARCH_LIMIT):
                    if carries_job(message, job, me.id):
                        return message
            except discord.Forbidden:
                # Without Read Message History the bot cannot look: a lost video is worse than a repeat.
                log.warning("job=%s may not read the history of %s to look for its post", job.id, channel_id)
        return None

    async def _made_or_raise(self, job: Job, error: Exception) -> discord.Message:
        """After a post whose answer was lost (it may have been made): the post if it is there; else the
        error again, so the runner offers the job later (and that delivery looks first) rather than the
        video also being sent elsewhere now."""
        found = await self._find_post(job, await self.bot.jobs.post_attempts(job))
        if found is None:
            raise error
        return found

    async def _record_attempt(self, job: Job, channel: object) -> None:
        """Written before a post, so that a delivery that starts again knows where to look for it."""
        channel_id = getattr(channel, "id", None)
        if isinstance(channel_id, int):
            await self.bot.jobs.record_post_attempt(job, channel_id)

    async def _send(self, job: Job, channel: discord.abc.Messageable, rendered: Rendered) -> discord.Message:
        """Post a rendered result, falling back to a link if the file is refused as too big."""
        await self._record_attempt(job, channel)
        try:
            return await channel.send(
                rendered.public,
                file=rendered.file or discord.utils.MISSING,
                view=rendered.view or discord.utils.MISSING,
                nonce=delivery_nonce(job),
                allowed_mentions=mention_only(job.user_id),
            )
        except discord.HTTPException as error:
            if error.status != 413 or rendered.file is None:
                raise
            # The limit dropped (boost lost) since we checked: post the link instead.
            limit = _channel_upload_limit(channel, job)
            return await channel.send(
                link_text(self._server_words(job), job, limit, self.bot.jobs.link_expires_at(job)),
                view=rendered.view or discord.utils.MISSING,
                nonce=delivery_nonce(job),
                allowed_mentions=mention_only(job.user_id),
            )

    async def _render(self, job: Job, channel: discord.abc.Messageable, guild: GuildSettings) -> Rendered:
        """What to post for this job in this channel, and what the member's private reply becomes: the
        core decides (core/delivery.py), this carries it out."""
        decision = decide(job, Destination(age_restricted=is_age_restricted(channel)), guild)
        public, private = self._server_words(job), self._member_words(job.id)
        if decision.give_back is not None:
            await self.bot.jobs.give_cost_back(job, decision.give_back)
        # Whether the channel need see it is the core's answer too (decision.quiet), never decided here.
        quiet = decision.quiet
        match decision.outcome:
            case Outcome.FAILURE_NOTICE:
                return Rendered(
                    failure_text(public, job), None, private_failure_text(private, job), quiet=quiet
                )
            case Outcome.REFUSED:
                # The member reads why privately; the channel only that it failed.
                return Rendered(
                    withheld_text(public, job), None, private_failure_text(private, job), quiet=quiet
                )
            case Outcome.WITHHELD_FLAGGED:
                told = private_withheld_text(private, job, everywhere=guild.withhold_flagged)
                return Rendered(withheld_text(public, job), None, told, quiet=quiet)
            case Outcome.WITHHELD_UNCHECKED:
                return Rendered(
                    withheld_text(public, job), None, private_unchecked_text(private, job), quiet=quiet
                )
        limit = _channel_upload_limit(channel, job)
        try:
            data = await self.bot.jobs.fetch_video(job, limit)
        except RunwareError as error:
            if error.kind is not ErrorKind.NOT_FOUND:
                raise  # transient: the runner offers the job again
            await self.bot.jobs.give_cost_back(job, VIDEO_GONE)
            return Rendered(gone_text(public, job), None, private_gone_text(private, job))
        view = result_view(public, job.id)
        if data is None:
            link = link_text(public, job, limit, self.bot.jobs.link_expires_at(job))
            return Rendered(link, None, private_ready_text(private, job), view=view)
        file = discord.File(io.BytesIO(data), filename=video_filename(job), spoiler=decision.spoiler)
        return Rendered(result_text(public, job), file, private_ready_text(private, job), view=view)

    async def _post_elsewhere(
        self, job: Job, guild: GuildSettings, channel: discord.abc.Messageable | None
    ) -> tuple[discord.Message | None, str]:
        """The channel is gone or closed to the bot: answer through the command's interaction while it
        lives (in this process), else in a DM if the guild allows DMs. (None, …) if neither works.
        `channel`: the job's channel as it is now, when the bot can see it (its age restriction counts)."""
        ack = self.acks.live(job.id)
        if (
            ack is not None
            and ack.interaction is not None
            and isinstance(ack.interaction.channel, discord.abc.Messageable)
        ):
            # A discord.File is closed by a failed send: render a fresh one.
            rendered = await self._render(job, channel or ack.interaction.channel, guild)
            if not rendered.quiet:
                # The reply appears in the command's channel, where a later try looks for it.
                await self._record_attempt(job, ack.interaction.channel)
            try:
                message = await ack.interaction.followup.send(
                    rendered.public,
                    file=rendered.file or discord.utils.MISSING,
                    view=rendered.view or discord.utils.MISSING,
                    ephemeral=rendered.quiet,
                    wait=True,
                    allowed_mentions=mention_only(job.user_id),
                )
                return message, rendered.private
            except discord.HTTPException as error:
                log.warning("job=%s followup fallback failed: %r", job.id, error)
                if error.status >= 500:
                    return await self._made_or_raise(job, error), rendered.private
            except Exception as error:  # no answer at all (connection lost, timeout)
                log.warning("job=%s followup fallback unanswered: %r", job.id, error)
                return await self._made_or_raise(job, error), rendered.private
        if not guild.dms_allowed:
            # Moderators can't see DMs: a server must opt in before its videos are sent there.
            return None, ""
        try:
            user = self.bot.get_user(job.user_id) or await self.bot.fetch_user(job.user_id)
            dm = await user.create_dm()
            rendered = await self._render(job, dm, guild)
            return await self._send(job, dm, rendered), rendered.private
        except discord.HTTPException as error:
            log.warning("job=%s DM fallback failed: %r", job.id, error)
            if error.status >= 500:
                raise  # it may have been sent: the next try looks for it before sending again
            return None, ""

    async def _finish(self, job: Job, message: discord.Message | None, private: str) -> None:
        posted_at = (message.channel.id, message.id) if message is not None else None
        if job.late_video_waiting:
            if not await self.bot.jobs.mark_late_delivered(job.id, posted_at):
                return
        elif not await self.bot.jobs.mark_delivered(job.id, posted_at):
            # Another process recorded its post first (the same post: one nonce); its DELIVERED notice
            # was passed over while this delivery ran.
            await self._show_outcome(job.id, delivering=True)
            return
        self.bot.observer.delivered()
        note = moderator_note(job, shown=shows_video(job, message))
        if note is ModeratorNote.FLAGGED:
            await self._log_flagged(job, flagged_log_text(self._server_words(job), job, message))
        elif note is ModeratorNote.UNCHECKED_WITHHELD:
            await self._log_flagged(job, unchecked_log_text(self._server_words(job), job))
        log.info(
            "job=%s task=%s delivered message=%s", job.id, job.task_uuid, message.id if message else None
        )
        if not private:
            await self.acks.end(job.id)  # nothing more to say in it (a late video's repeat)
            return
        where = f"\n{message.jump_url}" if message is not None else ""
        await self.acks.finish(job.id, private + where)  # without its Cancel button: nothing to cancel

    async def _log_flagged(self, job: Job, text: str) -> None:
        """Tell the moderators about a flagged or withheld job: who, where, why, what happened to it. No
        media."""
        settings = await self.bot.moderation.settings_of(job.guild_id)
        if settings.mod_log_channel_id is None:
            return
        try:
            channel = await resolve_channel(self.bot, settings.mod_log_channel_id)
            if channel is None:
                log.warning("job=%s moderation log channel %s not found", job.id, settings.mod_log_channel_id)
                return
            await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as error:
            log.warning("job=%s moderation log post failed: %r", job.id, error)


def shows_video(job: Job, message: discord.Message | None) -> bool:
    """Whether a result post shows the video: attached, or linked."""
    return message is not None and bool(message.attachments or (job.result_url or "\0") in message.content)


def carries_job(message: discord.Message, job: Job, bot_id: int) -> bool:
    """Whether a message is this job's result post: the bot's, with the job's Report/Delete buttons, or
    starting with the member's mention and naming the job (as every public post about a result does; the
    moderation log's entries start otherwise)."""
    if message.author.id != bot_id:
        return False
    buttons = {f"vq:result:report:{job.id}", f"vq:result:delete:{job.id}"}
    for row in message.components:
        for item in getattr(row, "children", ()):
            if getattr(item, "custom_id", None) in buttons:
                return True
    # Every public post about a result starts with the mention and names "#<job>", in every language.
    names_job = re.search(rf"#{job.id}(?!\d)", message.content) is not None
    if not (message.content.startswith(f"<@{job.user_id}>") and names_job):
        return False
    if job.late_video_waiting:
        # The job's expiry (or failure) notice also names it: any other post about the job is the late one
        # (the video, or the notice that it was withheld or expired before it could be posted). The notice
        # was worded in the server's language of the time: compare with every language's.
        return all(message.content not in ended_notice_texts(words, job) for words in every_language())
    return True


def _private_after(_: Words, job: Job, message: discord.Message) -> str:
    """The member's private reply for a post found from an earlier try (none when it showed no video)."""
    if job.status is not JobStatus.SUCCEEDED and not job.late_video_waiting:
        return private_failure_text(_, job)
    # A late video's post is found only when it showed the video or a withheld notice (never the expiry
    # notice): the former "arrived late", the latter says nothing more.
    return private_ready_text(_, job) if shows_video(job, message) else ""


def _channel_upload_limit(channel: discord.abc.Messageable, job: Job) -> int:
    """The largest file this channel accepts: the guild's boost limit, else what the interaction said."""
    guild = getattr(channel, "guild", None)
    if isinstance(guild, discord.Guild) and not guild.unavailable:
        return guild.filesize_limit
    # Not in the cache (right after a start, before GUILD_CREATE a fetched channel's guild is a stub that
    # says 10 MiB): what the command's interaction reported, boosts included.
    return job.upload_limit_bytes or DEFAULT_UPLOAD_LIMIT


async def acknowledgement_text(
    bot: VideoBot, job: Job, head: str, interaction: discord.Interaction[VideoBot]
) -> tuple[str, str, JobPlace | None]:
    """A job's acknowledgement as first shown: its head (`head`, then how long this message follows the
    job), the whole text (with the job's place in line, or that it is being made), and where it stands."""
    _ = member_words(interaction)
    head = f"{head}\n{follows_until_text(_, interaction.expires_at.timestamp())}"
    try:
        stands = (await bot.jobs.job_places([job.id])).get(job.id)
    except StoreUnavailable:
        stands = None  # the first refresh shows it
    return head, opening_text(_, head, stands), stands


async def track_acknowledgement(
    bot: VideoBot,
    job_id: int,
    interaction: discord.Interaction[VideoBot],
    head: str,
    shown: str,
    stands: JobPlace | None,
) -> None:
    """Hand a job's private acknowledgement (the command's reply, or the quote it replaced), as first
    shown, to delivery, which shows the job's place, progress and outcome in it."""
    # Found by name, not isinstance: load_extension executes this module afresh, so the loaded cog's class
    # is not the one the cogs that import this function see.
    delivery = cast("DeliveryCog | None", bot.get_cog("DeliveryCog"))
    if delivery is not None:
        await delivery.track_acknowledgement(job_id, interaction, head, shown, stands)


async def end_acknowledgement(bot: VideoBot, job_id: int) -> None:
    """Stop showing anything in a job's acknowledgement (its member cancelled the job from it); returns
    once an edit on its way was answered, so that the caller's edit is the last."""
    delivery = cast("DeliveryCog | None", bot.get_cog("DeliveryCog"))
    if delivery is not None:
        await delivery.acks.end(job_id)


async def setup(bot: VideoBot) -> None:
    """Extension entry point."""
    await bot.add_cog(DeliveryCog(bot))
