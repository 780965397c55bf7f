"""/budget: server admins see and set what members may spend and the server's monthly budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs._ui import send
from core.budgets import LimitChange, budget_lines, parse_limit_change

if TYPE_CHECKING:
    from bot import VideoBot

NOT_AN_ADMIN = "Only members with the **Manage Server** permission can use /budget."


def is_server_manager(interaction: discord.Interaction[VideoBot]) -> bool:
    """Checked in code: Discord hides admin commands by `default_member_permissions`, but only in its
    client, and a server can change who sees them; the permission itself is what counts."""
    if interaction.guild_id is None or not interaction.permissions.manage_guild:
        raise app_commands.CheckFailure(NOT_AN_ADMIN)
    return True


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class BudgetCog(commands.GroupCog, group_name="budget", group_description="See and set spending limits"):
    """The /budget group."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="show")
    @app_commands.check(is_server_manager)
    async def show(self, interaction: discord.Interaction[VideoBot]) -> None:
        """Show this server's limits and how much of its monthly budget is used."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        overview = await self.bot.budgets.overview(interaction.guild_id)
        await send(interaction, "\n".join(budget_lines(overview)))

    @app_commands.command(name="set")
    @app_commands.check(is_server_manager)
    @app_commands.describe(
        daily="Each member's daily limit in dollars, e.g. 2.50, or 'unlimited' or 'default'",
        monthly="Each member's monthly limit in dollars, or 'unlimited' or 'default'",
        active="Videos one member may have in progress at once, or 'unlimited' or 'default'",
        cooldown="Seconds a member waits between videos, or 'default'",
        budget="The whole server's monthly budget in dollars, or 'unlimited' or 'default'",
        log_channel="Where budget alerts are posted",
    )
    async def set_(
        self,
        interaction: discord.Interaction[VideoBot],
        daily: str | None = None,
        monthly: str | None = None,
        active: str | None = None,
        cooldown: str | None = None,
        budget: str | None = None,
        log_channel: discord.TextChannel | None = None,
    ) -> None:
        """Change this server's limits; options you leave out stay as they are."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        changes: list[LimitChange] = [
            parse_limit_change(name, text)
            for name, text in (
                ("daily", daily),
                ("monthly", monthly),
                ("active", active),
                ("cooldown", cooldown),
                ("budget", budget),
            )
            if text is not None
        ]
        if log_channel is not None:
            changes.append(
                LimitChange("log_channel_id", log_channel.id, f"log channel {log_channel.mention}")
            )
        if not changes:
            await send(interaction, "Nothing to change: pick at least one option.")
            return
        overview = await self.bot.budgets.change(interaction.guild_id, changes, interaction.user.id)
        done = ", ".join(change.summary for change in changes)
        await send(interaction, f"Saved: {done}.\n\n" + "\n".join(budget_lines(overview)))


async def setup(bot: VideoBot) -> None:
    """Extension entry point."""
    await bot.add_cog(BudgetCog(bot))
