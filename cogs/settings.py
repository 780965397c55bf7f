"""/settings: server admins choose where /animate runs, how strict the safety check is, and the log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs._ui import is_server_manager, send
from core.models import GuildSettings
from core.settings import SafetyMode

if TYPE_CHECKING:
    from bot import VideoBot

SAFETY_CHOICES = [
    app_commands.Choice(name="none (only in age-restricted channels)", value="none"),
    app_commands.Choice(name="fast: first, middle and last frame", value="fast"),
    app_commands.Choice(name="full: every frame", value="full"),
    app_commands.Choice(name="default (the bot's setting)", value="default"),
]


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class SettingsCog(commands.GroupCog, group_name="settings", group_description="Moderation settings"):
    """The /settings group."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="show")
    @app_commands.check(is_server_manager)
    async def show(self, interaction: discord.Interaction[VideoBot]) -> None:
        """Show where /animate may be used, the safety check and the moderation log."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        saved = await self.bot.moderation.settings_of(interaction.guild_id)
        await send(interaction, "\n".join(self._lines(saved)))

    @app_commands.command(name="channel")
    @app_commands.check(is_server_manager)
    @app_commands.describe(
        channel="The channel", allow="Allow /animate there (False removes it from the list)"
    )
    async def channel(
        self, interaction: discord.Interaction[VideoBot], channel: discord.TextChannel, allow: bool = True
    ) -> None:
        """Allow /animate in a channel; once any channel is listed, only listed channels work."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        moderation = self.bot.moderation
        saved = await moderation.set_channel(interaction.guild_id, channel.id, allow, interaction.user.id)
        if allow:
            said = f"/animate is allowed in {channel.mention}."
        elif saved.allowed_channels:
            said = f"/animate is no longer allowed in {channel.mention}."
        else:
            said = f"{channel.mention} is off the list, which is now empty: /animate works in every channel."
        await send(interaction, said + "\n" + "\n".join(self._lines(saved)))

    @app_commands.command(name="safety")
    @app_commands.check(is_server_manager)
    @app_commands.describe(mode="How much of each video the safety check looks at")
    @app_commands.choices(mode=SAFETY_CHOICES)
    async def safety(
        self, interaction: discord.Interaction[VideoBot], mode: app_commands.Choice[str]
    ) -> None:
        """Choose how strict the safety check is (never off outside age-restricted channels)."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        chosen = None if mode.value == "default" else SafetyMode(mode.value)
        saved = await self.bot.moderation.set_safety(interaction.guild_id, chosen, interaction.user.id)
        await send(interaction, "Saved.\n" + "\n".join(self._lines(saved)))

    @app_commands.command(name="log")
    @app_commands.check(is_server_manager)
    @app_commands.describe(channel="Where moderation events are posted (leave empty to stop the log)")
    async def log(
        self, interaction: discord.Interaction[VideoBot], channel: discord.TextChannel | None = None
    ) -> None:
        """Choose the moderation log channel, or leave it empty to stop logging."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        saved = await self.bot.moderation.set_log_channel(
            interaction.guild_id, channel.id if channel else None, interaction.user.id
        )
        await send(interaction, "Saved.\n" + "\n".join(self._lines(saved)))

    @app_commands.command(name="consent")
    @app_commands.check(is_server_manager)
    @app_commands.describe(
        required="Ask each member to accept the consent statement before their first video"
    )
    async def consent(self, interaction: discord.Interaction[VideoBot], required: bool) -> None:
        """Choose whether members accept the consent statement before their first video (default: yes)."""
        await self._switch(interaction, "consent_required", required)

    @app_commands.command(name="dms")
    @app_commands.check(is_server_manager)
    @app_commands.describe(allowed="Send a video by DM when it can't be posted in its channel")
    async def dms(self, interaction: discord.Interaction[VideoBot], allowed: bool) -> None:
        """Choose whether videos may go to members by DM, where moderators can't see them (default: no)."""
        await self._switch(interaction, "dms_allowed", allowed)

    @app_commands.command(name="flagged")
    @app_commands.check(is_server_manager)
    @app_commands.describe(
        withhold_everywhere="Also withhold flagged videos in age-restricted channels (instead of a spoiler)"
    )
    async def flagged(self, interaction: discord.Interaction[VideoBot], withhold_everywhere: bool) -> None:
        """Choose what happens to videos the safety check flags in age-restricted channels."""
        await self._switch(interaction, "withhold_flagged", withhold_everywhere)

    async def _switch(self, interaction: discord.Interaction[VideoBot], name: str, value: bool) -> None:
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        saved = await self.bot.moderation.set_switch(interaction.guild_id, name, value, interaction.user.id)
        await send(interaction, "Saved.\n" + "\n".join(self._lines(saved)))

    def _lines(self, saved: GuildSettings) -> list[str]:
        return settings_lines(saved, self.bot.moderation.safety_mode(saved))


def settings_lines(settings: GuildSettings, mode: SafetyMode) -> list[str]:
    """/settings show as short lines; `mode`: the safety mode in force (the guild's, or SAFETY_MODE)."""
    own = " (set here)" if settings.safety_mode else ""
    channels = ", ".join(f"<#{c}>" for c in settings.allowed_channels) or "every channel"
    log_channel = f"<#{settings.mod_log_channel_id}>" if settings.mod_log_channel_id else "not set"
    flagged = (
        "withheld everywhere"
        if settings.withhold_flagged
        else "spoilered in age-restricted channels, withheld elsewhere"
    )
    return [
        "**Moderation settings**",
        f"/animate allowed in: {channels}",
        f"Safety check: {mode.value}{own}; at least `fast` outside age-restricted channels",
        f"Flagged videos: {flagged}",
        f"Consent statement before a member's first video: {_yes(settings.consent_required)}",
        f"Results sent by DM when the channel can't be used: {_yes(settings.dms_allowed)}",
        f"Moderation log: {log_channel}",
    ]


def _yes(value: bool) -> str:
    return "yes" if value else "no"


async def setup(bot: VideoBot) -> None:
    """Extension entry point."""
    await bot.add_cog(SettingsCog(bot))
