"""Moderation settings of a guild: where /animate may run and how strict the safety check is."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from core.errors import N_, ChannelNotAllowed, OwnVideoReported, UserFacingError
from core.models import EVERY_GUILD, Ban, GuildSettings, GuildSettingsPatch, Job, JobAction, Pruned, Report
from core.ports import ModerationServiceStore
from core.settings import SafetyMode, Settings


def effective_safety_mode(chosen: SafetyMode, channel_nsfw: bool) -> SafetyMode:
    """The safety check a job runs with: the guild's choice, but never `none` outside an
    age-restricted channel (a job there always gets at least the fast check)."""
    if not channel_nsfw and chosen is SafetyMode.NONE:
        return SafetyMode.FAST
    return chosen


def chosen_safety_mode(settings: Settings, guild: GuildSettings) -> SafetyMode:
    """The guild's chosen safety mode, or SAFETY_MODE."""
    return SafetyMode(guild.safety_mode) if guild.safety_mode else settings.safety_mode


# Said to anyone in a server outside ALLOWED_GUILD_IDS.
NOT_SERVED = N_("This bot only serves the servers its operator chose.")


def channel_allowed(settings: GuildSettings, channel_id: int) -> bool:
    """Whether /animate may run in this channel (no allow-list: everywhere)."""
    return not settings.allowed_channels or channel_id in settings.allowed_channels


class ModerationService:
    """Reading and changing a guild's moderation settings; every change is recorded with who made it."""

    def __init__(
        self, store: ModerationServiceStore, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    def serves(self, guild_id: int | None) -> bool:
        """Whether the bot serves this guild (ALLOWED_GUILD_IDS; unset: every guild). Outside a guild
        the commands' own guild-only checks answer."""
        allowed = self._settings.allowed_guild_ids
        return not allowed or guild_id is None or guild_id in allowed

    def check_guild(self, guild_id: int | None) -> None:
        """Raise a member-facing error in a guild the operator did not choose."""
        if not self.serves(guild_id):
            raise UserFacingError(NOT_SERVED)

    async def settings_of(self, guild_id: int) -> GuildSettings:
        """The guild's moderation settings."""
        return await self._store.guild_settings(guild_id)

    @staticmethod
    def check_channel(guild: GuildSettings, channel_id: int) -> None:
        """Raise a member-facing error when /animate is not allowed in this channel."""
        if not channel_allowed(guild, channel_id):
            raise ChannelNotAllowed(guild.allowed_channels)

    async def set_channel(
        self, guild_id: int, channel_id: int, allowed: bool, actor_id: int
    ) -> GuildSettings:
        """Allow /animate in a channel (or stop allowing it). Recorded."""
        await self._store.set_channel_allowed(guild_id, channel_id, allowed, actor_id, self._clock())
        return await self._store.guild_settings(guild_id)

    async def set_safety(self, guild_id: int, mode: SafetyMode | None, actor_id: int) -> GuildSettings:
        """Choose the guild's safety mode (None: back to SAFETY_MODE). Recorded."""
        value = mode.value if mode is not None else None
        patch = GuildSettingsPatch(safety_mode=value)
        await self._store.update_guild_settings(guild_id, patch, actor_id, self._clock())
        return await self._store.guild_settings(guild_id)

    async def set_switch(self, guild_id: int, name: str, value: bool, actor_id: int) -> GuildSettings:
        """Turn a yes/no guild setting on or off (consent_required, dms_allowed, withhold_flagged)."""
        patches = {
            "consent_required": GuildSettingsPatch(consent_required=value),
            "dms_allowed": GuildSettingsPatch(dms_allowed=value),
            "withhold_flagged": GuildSettingsPatch(withhold_flagged=value),
        }
        if name not in patches:
            raise ValueError(f"not a yes/no guild setting: {name}")
        await self._store.update_guild_settings(guild_id, patches[name], actor_id, self._clock())
        return await self._store.guild_settings(guild_id)

    async def set_log_channel(self, guild_id: int, channel_id: int | None, actor_id: int) -> GuildSettings:
        """Choose the moderation log channel. Recorded."""
        patch = GuildSettingsPatch(mod_log_channel_id=channel_id)
        await self._store.update_guild_settings(guild_id, patch, actor_id, self._clock())
        return await self._store.guild_settings(guild_id)

    async def check_member(self, guild_id: int, user_id: int) -> None:
        """Raise a member-facing error when the member is banned from the bot here."""
        ban = await self._store.ban_of(guild_id, user_id)
        if ban is not None:
            raise UserFacingError(
                "You can't use this bot here: {reason}. Ask a moderator if you think this is a mistake.",
                reason=ban.reason,
            )

    async def ban(
        self,
        guild_id: int,
        user_id: int,
        reason: str,
        actor_id: int,
        *,
        everywhere: bool,
        job_id: int | None = None,
    ) -> Ban:
        """Ban a member from the bot in this guild, or in every guild (bot owners only). Recorded, with the
        job that led to it when there is one."""
        if everywhere and actor_id not in self._settings.bot_owner_ids:
            raise UserFacingError("Only the bot's owners can ban someone from every server.")
        now = self._clock()
        ban = Ban(EVERY_GUILD if everywhere else guild_id, user_id, reason, actor_id, now)
        await self._store.ban(ban, guild_id, now, job_id)
        return ban

    async def ban_of(self, guild_id: int, user_id: int) -> Ban | None:
        """The ban that keeps this member from the bot here, if any."""
        return await self._store.ban_of(guild_id, user_id)

    async def unban(self, guild_id: int, user_id: int, actor_id: int, *, everywhere: bool) -> bool:
        """Lift a ban in this guild, or an everywhere ban (bot owners only). Recorded."""
        if everywhere and actor_id not in self._settings.bot_owner_ids:
            raise UserFacingError("Only the bot's owners can lift a ban from every server.")
        scope = EVERY_GUILD if everywhere else guild_id
        return await self._store.unban(scope, user_id, actor_id, guild_id, self._clock())

    async def bans(self, guild_id: int) -> list[Ban]:
        """The bans that apply in this guild."""
        return await self._store.bans_in(guild_id)

    async def lookup(
        self, guild_id: int, *, user_id: int | None, job_id: int | None, image: bytes | None
    ) -> list[Job]:
        """Jobs in this guild by member, by number, or by an image file (its SHA-256), newest first."""
        if user_id is None and job_id is None and image is None:
            raise UserFacingError("Give a member, a job number or an image to look up.")
        digest = hashlib.sha256(image).hexdigest() if image is not None else None
        return await self._store.lookup_jobs(guild_id, user_id=user_id, job_id=job_id, image_sha256=digest)

    async def posted_job(self, job_id: int) -> Job:
        """A job whose result can be acted on (reported, deleted)."""
        job = await self._store.get_job(job_id)
        if job is None:
            raise UserFacingError("Job #{job} is not known to this bot.", job=job_id)
        return job

    async def report(self, job_id: int, reporter_id: int) -> tuple[Job, Report]:
        """A member reports a posted result (once per member). Recorded on the job. A report that never
        reached the moderation log (no channel then, or the post failed) is handed back to post again."""
        job = await self.posted_job(job_id)
        if job.removed_at is not None:
            raise UserFacingError("This video was already deleted.")
        if reporter_id == job.user_id:
            raise OwnVideoReported()
        report = await self._store.create_report(job_id, reporter_id, self._clock())
        if report is None:
            earlier = [r for r in await self._store.reports_of_job(job_id) if r.reporter_id == reporter_id]
            if earlier and earlier[0].log_message_id is None:
                return job, earlier[0]  # recorded, but never reached the log: post it now
            raise UserFacingError("You already reported this video. The moderators have it.")
        return job, report

    def may_delete(self, job: Job, actor_id: int, *, moderator: bool) -> None:
        """Raise unless the actor may delete this job's result: its member, or a moderator."""
        if not moderator and actor_id != job.user_id:
            raise UserFacingError(
                "Only the member who made this video or a moderator (Manage Messages) can delete it."
            )

    async def record_removal(self, job: Job, actor_id: int) -> bool:
        """Record that the job's result was deleted (closes its open reports). True the first time."""
        return await self._store.remove_result(job.id, actor_id, self._clock())

    async def report_of(self, report_id: int) -> tuple[Report, Job]:
        """A report and its job."""
        report = await self._store.get_report(report_id)
        if report is None:
            raise UserFacingError("This report is no longer kept (older than the retention period).")
        return report, await self.posted_job(report.job_id)

    async def set_report_message(self, report: Report, channel_id: int, message_id: int) -> None:
        """Remember where a report was posted in the moderation log."""
        await self._store.set_report_message(report.id, channel_id, message_id)

    async def reports_of(self, job_id: int) -> list[Report]:
        """A job's reports, oldest first."""
        return await self._store.reports_of_job(job_id)

    async def dismiss(self, report_id: int, actor_id: int) -> bool:
        """Close a report without action. False if it was already closed."""
        return await self._store.dismiss_report(report_id, actor_id, self._clock())

    async def actions_on(self, job_id: int) -> list[JobAction]:
        """Every moderation action on a job, oldest first."""
        return await self._store.job_actions(job_id)

    async def prune(self) -> Pruned | None:
        """Forget moderation records older than AUDIT_RETENTION_DAYS (None: kept for good)."""
        days = self._settings.audit_retention_days
        if days is None:
            return None
        now = self._clock()
        return await self._store.prune(now - days * 86_400, now)

    def safety_mode(self, settings: GuildSettings) -> SafetyMode:
        """The guild's chosen safety mode, or SAFETY_MODE when it chose none."""
        return chosen_safety_mode(self._settings, settings)
