"""/usage: a member's spend today, limits, what is left and active jobs (private)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs._i18n import N_, member_words
from cogs._ui import job_line, member_role_ids, send
from cogs._wording import usage_lines

if TYPE_CHECKING:
    from bot import VideoBot


class UsageCog(commands.Cog):
    """The /usage command."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    @app_commands.command(
        name=N_("usage"), description=N_("See what you have spent today, your limit and what is left.")
    )
    @app_commands.guild_only()
    async def usage(self, interaction: discord.Interaction[VideoBot]) -> None:
        """/usage: the member's spend, limits and recent jobs."""
        # The database may be busy with a burst of reservations: acknowledge within Discord's 3 s first.
        await interaction.response.defer(ephemeral=True)
        _ = member_words(interaction)
        usage = await self.bot.jobs.usage(
            interaction.guild_id or 0, interaction.user.id, member_role_ids(interaction)
        )
        roles = member_role_ids(interaction)
        tiers = await self.bot.jobs.tier_roles(interaction.guild_id or 0, roles)
        jobs = await self.bot.jobs.recent_jobs(interaction.guild_id or 0, interaction.user.id)
        tier = ", ".join(f"<@&{r}>" for r in tiers) if tiers else _("the server's limits")
        lines = [_("**Your usage**"), _("Your tier: {tier}", tier=tier), *usage_lines(_, usage)]
        if jobs:
            lines += ["", _("**Your last videos**"), *(job_line(_, job) for job in jobs)]
        await send(interaction, "\n".join(lines), ephemeral=True)


async def setup(bot: VideoBot) -> None:
    """Extension entry point."""
    await bot.add_cog(UsageCog(bot))
