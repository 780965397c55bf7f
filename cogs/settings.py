"""/settings: server admins choose where /animate runs, how strict the safety check is, and the log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs._ui import is_server_manager, send
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
        moderation = self.bot.moderation
        await send(
            interaction, "\n".join(moderation.lines(await moderation.settings_of(interaction.guild_id)))
        )

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
        await send(interaction, said + "\n" + "\n".join(moderation.lines(saved)))

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
        await send(interaction, "Saved.\n" + "\n".join(self.bot.moderation.lines(saved)))

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
        await send(interaction, "Saved.\n" + "\n".join(self.bot.moderation.lines(saved)))

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
        await send(interaction, "Saved.\n" + "\n".join(self.bot.moderation.lines(saved)))


async def setup(bot: VideoBot) -> None:
    """Extension entry point."""
    await bot.add_cog(SettingsCog(bot))
