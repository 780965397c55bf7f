"""/moderation: moderators ban members from the bot, lift bans, and list them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs._i18n import member_words
from cogs._ui import fit, is_moderator, send
from cogs._wording import discord_time
from core.models import EVERY_GUILD

if TYPE_CHECKING:
    from bot import VideoBot

# How a job's moderation actions read in /moderation lookup.
ACTION_WORDS = {
    "job.report": "reported",
    "job.delete": "video deleted",
    "job.dismiss": "report dismissed",
    "moderation.ban": "member banned",
}


@app_commands.guild_only()
@app_commands.default_permissions(manage_messages=True)
class ModerationCog(commands.GroupCog, group_name="moderation", group_description="Bans from the bot"):
    """The /moderation group."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="ban")
    @app_commands.check(is_moderator)
    @app_commands.describe(
        member="Who may no longer use the bot here",
        reason="Why (the member is told)",
        everywhere="Ban from every server the bot is in (bot owners only)",
    )
    async def ban(
        self,
        interaction: discord.Interaction[VideoBot],
        member: discord.User,
        reason: app_commands.Range[str, 1, 200],
        everywhere: bool = False,
    ) -> None:
        """Stop a member from using the bot here; nothing they ask for is made or charged."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        await self.bot.moderation.ban(
            interaction.guild_id, member.id, reason, interaction.user.id, everywhere=everywhere
        )
        where = "every server" if everywhere else "this server"
        await send(interaction, f"{member.mention} can no longer use the bot in {where} ({reason}).")

    @app_commands.command(name="unban")
    @app_commands.check(is_moderator)
    @app_commands.describe(
        member="Whose ban to lift", everywhere="Lift a ban from every server (bot owners only)"
    )
    async def unban(
        self, interaction: discord.Interaction[VideoBot], member: discord.User, everywhere: bool = False
    ) -> None:
        """Let a banned member use the bot again."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        lifted = await self.bot.moderation.unban(
            interaction.guild_id, member.id, interaction.user.id, everywhere=everywhere
        )
        still = await self.bot.moderation.ban_of(interaction.guild_id, member.id)
        if still is not None:
            # An every-server ban (only bot owners lift it) outlives a ban lifted here.
            text = f"{member.mention} is still banned from the bot in every server ({still.reason})."
        elif lifted:
            text = f"{member.mention} can use the bot again."
        else:
            text = f"{member.mention} wasn't banned."
        await send(interaction, text)

    @app_commands.command(name="bans")
    @app_commands.check(is_moderator)
    async def bans(self, interaction: discord.Interaction[VideoBot]) -> None:
        """List the members banned from the bot here."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        bans = await self.bot.moderation.bans(interaction.guild_id)
        if not bans:
            await send(interaction, "Nobody is banned from the bot here.")
            return
        lines = [f"**Banned from the bot** ({len(bans)}, newest first)"]
        for ban in bans:
            scope = " (every server)" if ban.guild_id == EVERY_GUILD else ""
            when = discord_time(ban.created_at)
            lines.append(f"<@{ban.user_id}>{scope}: {ban.reason} · by <@{ban.banned_by}> {when}")
        await send(interaction, fit(member_words(interaction), lines))

    @app_commands.command(name="lookup")
    @app_commands.check(is_moderator)
    @app_commands.describe(
        member="Their jobs", job="A job number", image="An image file: was this face used here?"
    )
    async def lookup(
        self,
        interaction: discord.Interaction[VideoBot],
        member: discord.User | None = None,
        job: int | None = None,
        image: discord.Attachment | None = None,
    ) -> None:
        """Find jobs by member, by number, or by the image they used."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        data = await image.read() if image is not None else None
        jobs = await self.bot.moderation.lookup(
            interaction.guild_id, user_id=member.id if member else None, job_id=job, image=data
        )
        if not jobs:
            await send(interaction, "No jobs found here.")
            return
        lines = [f"**Jobs found** ({len(jobs)}, newest first)"]
        lines += [
            f"#{j.id} · <@{j.user_id}> · <#{j.channel_id}> · {discord_time(j.created_at)} · "
            f"{j.status.value}{' · deleted' if j.removed_at else ''} · "
            f"image `{(j.image_sha256 or '?')[:12]}` · task `{j.task_uuid}`"
            for j in jobs
        ]
        if job is not None and len(jobs) == 1:
            # One job asked for by number: its whole moderation trail.
            actions = await self.bot.moderation.actions_on(jobs[0].id)
            lines += [
                f"· {ACTION_WORDS.get(a.action, a.action)} by <@{a.actor_id}> {discord_time(a.created_at)}"
                for a in actions
            ]
        await send(interaction, fit(member_words(interaction), lines))


async def setup(bot: VideoBot) -> None:
    """Extension entry point."""
    await bot.add_cog(ModerationCog(bot))
