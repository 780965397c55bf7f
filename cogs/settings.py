"""/settings: server admins choose where /animate runs, how strict the safety check is, and the log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs._i18n import N_, Words, member_words
from cogs._ui import is_server_manager, send
from core.models import GuildSettings
from core.settings import SafetyMode

if TYPE_CHECKING:
    from bot import VideoBot

SAFETY_CHOICES = [
    app_commands.Choice(name=N_("none (only in age-restricted channels)"), value="none"),
    app_commands.Choice(name=N_("fast: first, middle and last frame"), value="fast"),
    app_commands.Choice(name=N_("full: every frame"), value="full"),
    app_commands.Choice(name=N_("default (the bot's setting)"), value="default"),
]


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class SettingsCog(commands.GroupCog, group_name=N_("settings"), group_description=N_("Moderation settings")):
    """The /settings group."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(
        name=N_("show"),
        description=N_("Show where /animate may be used, the safety check and the moderation log."),
    )
    @app_commands.check(is_server_manager)
    async def show(self, interaction: discord.Interaction[VideoBot]) -> None:
        """/settings show."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        saved = await self.bot.moderation.settings_of(interaction.guild_id)
        await send(interaction, "\n".join(self._lines(member_words(interaction), saved)))

    @app_commands.command(
        name=N_("channel"),
        description=N_("Allow /animate in a channel; once any channel is listed, only listed channels work."),
    )
    @app_commands.check(is_server_manager)
    @app_commands.rename(channel=N_("channel"), allow=N_("allow"))
    @app_commands.describe(
        channel=N_("The channel"), allow=N_("Allow /animate there (False removes it from the list)")
    )
    async def channel(
        self, interaction: discord.Interaction[VideoBot], channel: discord.TextChannel, allow: bool = True
    ) -> None:
        """/settings channel."""
        await interaction.response.defer(ephemeral=True)
        _ = member_words(interaction)
        assert interaction.guild_id is not None
        moderation = self.bot.moderation
        saved = await moderation.set_channel(interaction.guild_id, channel.id, allow, interaction.user.id)
        if allow:
            said = _("/animate is allowed in {channel}.", channel=channel.mention)
        elif saved.allowed_channels:
            said = _("/animate is no longer allowed in {channel}.", channel=channel.mention)
        else:
            said = _(
                "{channel} is off the list, which is now empty: /animate works in every channel.",
                channel=channel.mention,
            )
        await send(interaction, "\n".join([said, *self._lines(_, saved)]))

    @app_commands.command(
        name=N_("safety"),
        description=N_("Choose how strict the safety check is (never off outside age-restricted channels)."),
    )
    @app_commands.check(is_server_manager)
    @app_commands.rename(mode=N_("mode"))
    @app_commands.describe(mode=N_("How much of each video the safety check looks at"))
    @app_commands.choices(mode=SAFETY_CHOICES)
    async def safety(
        self, interaction: discord.Interaction[VideoBot], mode: app_commands.Choice[str]
    ) -> None:
        """/settings safety."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        chosen = None if mode.value == "default" else SafetyMode(mode.value)
        saved = await self.bot.moderation.set_safety(interaction.guild_id, chosen, interaction.user.id)
        await self._saved(interaction, saved)

    @app_commands.command(
        name=N_("log"),
        description=N_("Choose the moderation log channel, or leave it empty to stop logging."),
    )
    @app_commands.check(is_server_manager)
    @app_commands.rename(channel=N_("channel"))
    @app_commands.describe(channel=N_("Where moderation events are posted (leave empty to stop the log)"))
    async def log(
        self, interaction: discord.Interaction[VideoBot], channel: discord.TextChannel | None = None
    ) -> None:
        """/settings log."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        saved = await self.bot.moderation.set_log_channel(
            interaction.guild_id, channel.id if channel else None, interaction.user.id
        )
        await self._saved(interaction, saved)

    @app_commands.command(
        name=N_("consent"),
        description=N_(
            "Choose whether members accept the consent statement before their first video (default: yes)."
        ),
    )
    @app_commands.check(is_server_manager)
    @app_commands.rename(required=N_("required"))
    @app_commands.describe(
        required=N_("Ask each member to accept the consent statement before their first video")
    )
    async def consent(self, interaction: discord.Interaction[VideoBot], required: bool) -> None:
        """/settings consent."""
        await self._switch(interaction, "consent_required", required)

    @app_commands.command(
        name=N_("dms"),
        description=N_(
            "Choose whether videos may go to members by DM, where moderators can't see them (default: no)."
        ),
    )
    @app_commands.check(is_server_manager)
    @app_commands.rename(allowed=N_("allowed"))
    @app_commands.describe(allowed=N_("Send a video by DM when it can't be posted in its channel"))
    async def dms(self, interaction: discord.Interaction[VideoBot], allowed: bool) -> None:
        """/settings dms."""
        await self._switch(interaction, "dms_allowed", allowed)

    @app_commands.command(
        name=N_("flagged"),
        description=N_("Choose what happens to videos the safety check flags in age-restricted channels."),
    )
    @app_commands.check(is_server_manager)
    @app_commands.rename(withhold_everywhere=N_("withhold_everywhere"))
    @app_commands.describe(
        withhold_everywhere=N_(
            "Also withhold flagged videos in age-restricted channels (instead of a spoiler)"
        )
    )
    async def flagged(self, interaction: discord.Interaction[VideoBot], withhold_everywhere: bool) -> None:
        """/settings flagged."""
        await self._switch(interaction, "withhold_flagged", withhold_everywhere)

    async def _switch(self, interaction: discord.Interaction[VideoBot], name: str, value: bool) -> None:
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        saved = await self.bot.moderation.set_switch(interaction.guild_id, name, value, interaction.user.id)
        await self._saved(interaction, saved)

    async def _saved(self, interaction: discord.Interaction[VideoBot], saved: GuildSettings) -> None:
        _ = member_words(interaction)
        await send(interaction, "\n".join([_("Saved."), *self._lines(_, saved)]))

    def _lines(self, _: Words, saved: GuildSettings) -> list[str]:
        return settings_lines(_, saved, self.bot.moderation.safety_mode(saved))


def settings_lines(_: Words, settings: GuildSettings, mode: SafetyMode) -> list[str]:
    """/settings show as short lines; `mode`: the safety mode in force (the guild's, or SAFETY_MODE)."""
    channels = ", ".join(f"<#{c}>" for c in settings.allowed_channels) or _("every channel")
    log_channel = f"<#{settings.mod_log_channel_id}>" if settings.mod_log_channel_id else _("not set")
    safety = (
        N_("Safety check: {mode} (set here); at least `fast` outside age-restricted channels")
        if settings.safety_mode
        else N_("Safety check: {mode}; at least `fast` outside age-restricted channels")
    )
    flagged = (
        _("Flagged videos: withheld everywhere")
        if settings.withhold_flagged
        else _("Flagged videos: spoilered in age-restricted channels, withheld elsewhere")
    )
    consent = (
        _("Consent statement before a member's first video: yes")
        if settings.consent_required
        else _("Consent statement before a member's first video: no")
    )
    dms = (
        _("Results sent by DM when the channel can't be used: yes")
        if settings.dms_allowed
        else _("Results sent by DM when the channel can't be used: no")
    )
    return [
        _("**Moderation settings**"),
        _("/animate allowed in: {channels}", channels=channels),
        # The mode's own name (none, fast, full) is what /settings safety offers: kept as it is.
        _(safety, mode=mode.value),
        flagged,
        consent,
        dms,
        _("Moderation log: {channel}", channel=log_channel),
    ]


async def setup(bot: VideoBot) -> None:
    """Extension entry point."""
    await bot.add_cog(SettingsCog(bot))
