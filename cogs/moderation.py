"""/moderation: moderators ban members from the bot, lift bans, and list them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs._i18n import N_, member_words
from cogs._ui import fit, is_moderator, send
from cogs._wording import discord_time
from core.models import EVERY_GUILD

if TYPE_CHECKING:
    from bot import VideoBot

# How a job's moderation actions read in /moderation lookup: who did it and when fill the sentence.
ACTION_WORDS = {
    "job.report": N_("· reported by {actor} {when}"),
    "job.delete": N_("· video deleted by {actor} {when}"),
    "job.dismiss": N_("· report dismissed by {actor} {when}"),
    "moderation.ban": N_("· member banned by {actor} {when}"),
}


@app_commands.guild_only()
@app_commands.default_permissions(manage_messages=True)
class ModerationCog(
    commands.GroupCog, group_name=N_("moderation"), group_description=N_("Bans from the bot")
):
    """The /moderation group."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(
        name=N_("ban"),
        description=N_("Stop a member from using the bot here; nothing they ask for is made or charged."),
    )
    @app_commands.check(is_moderator)
    @app_commands.rename(member=N_("member"), reason=N_("reason"), everywhere=N_("everywhere"))
    @app_commands.describe(
        member=N_("Who may no longer use the bot here"),
        reason=N_("Why (the member is told)"),
        everywhere=N_("Ban from every server the bot is in (bot owners only)"),
    )
    async def ban(
        self,
        interaction: discord.Interaction[VideoBot],
        member: discord.User,
        reason: app_commands.Range[str, 1, 200],
        everywhere: bool = False,
    ) -> None:
        """/moderation ban."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        await self.bot.moderation.ban(
            interaction.guild_id, member.id, reason, interaction.user.id, everywhere=everywhere
        )
        _ = member_words(interaction)
        if everywhere:
            text = _(
                "{member} can no longer use the bot in every server ({reason}).",
                member=member.mention,
                reason=reason,
            )
        else:
            text = _(
                "{member} can no longer use the bot in this server ({reason}).",
                member=member.mention,
                reason=reason,
            )
        await send(interaction, text)

    @app_commands.command(name=N_("unban"), description=N_("Let a banned member use the bot again."))
    @app_commands.check(is_moderator)
    @app_commands.rename(member=N_("member"), everywhere=N_("everywhere"))
    @app_commands.describe(
        member=N_("Whose ban to lift"), everywhere=N_("Lift a ban from every server (bot owners only)")
    )
    async def unban(
        self, interaction: discord.Interaction[VideoBot], member: discord.User, everywhere: bool = False
    ) -> None:
        """/moderation unban."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        lifted = await self.bot.moderation.unban(
            interaction.guild_id, member.id, interaction.user.id, everywhere=everywhere
        )
        still = await self.bot.moderation.ban_of(interaction.guild_id, member.id)
        _ = member_words(interaction)
        if still is not None:
            # An every-server ban (only bot owners lift it) outlives a ban lifted here.
            text = _(
                "{member} is still banned from the bot in every server ({reason}).",
                member=member.mention,
                reason=still.reason,
            )
        elif lifted:
            text = _("{member} can use the bot again.", member=member.mention)
        else:
            text = _("{member} wasn't banned.", member=member.mention)
        await send(interaction, text)

    @app_commands.command(name=N_("bans"), description=N_("List the members banned from the bot here."))
    @app_commands.check(is_moderator)
    async def bans(self, interaction: discord.Interaction[VideoBot]) -> None:
        """/moderation bans."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        bans = await self.bot.moderation.bans(interaction.guild_id)
        _ = member_words(interaction)
        if not bans:
            await send(interaction, _("Nobody is banned from the bot here."))
            return
        lines = [_("**Banned from the bot** ({count}, newest first)", count=len(bans))]
        for ban in bans:
            line = (
                N_("{member} (every server): {reason} · by {moderator} {when}")
                if ban.guild_id == EVERY_GUILD
                else N_("{member}: {reason} · by {moderator} {when}")
            )
            lines.append(
                _(
                    line,
                    member=f"<@{ban.user_id}>",
                    reason=ban.reason,
                    moderator=f"<@{ban.banned_by}>",
                    when=discord_time(ban.created_at),
                )
            )
        await send(interaction, fit(_, lines))

    @app_commands.command(
        name=N_("lookup"), description=N_("Find jobs by member, by number, or by the image they used.")
    )
    @app_commands.check(is_moderator)
    @app_commands.rename(member=N_("member"), job=N_("job"), image=N_("image"))
    @app_commands.describe(
        member=N_("Their jobs"), job=N_("A job number"), image=N_("An image file: was this face used here?")
    )
    async def lookup(
        self,
        interaction: discord.Interaction[VideoBot],
        member: discord.User | None = None,
        job: int | None = None,
        image: discord.Attachment | None = None,
    ) -> None:
        """/moderation lookup."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        data = await image.read() if image is not None else None
        jobs = await self.bot.moderation.lookup(
            interaction.guild_id, user_id=member.id if member else None, job_id=job, image=data
        )
        _ = member_words(interaction)
        if not jobs:
            await send(interaction, _("No jobs found here."))
            return
        lines = [_("**Jobs found** ({count}, newest first)", count=len(jobs))]
        for j in jobs:
            parts = [f"#{j.id}", f"<@{j.user_id}>", f"<#{j.channel_id}>", discord_time(j.created_at)]
            # The stored status name (queued, succeeded, …): what the logs and the database say.
            parts.append(j.status.value)
            if j.removed_at:
                parts.append(_("deleted"))
            parts.append(_("image `{hash}`", hash=(j.image_sha256 or "?")[:12]))
            parts.append(_("task `{task}`", task=j.task_uuid))
            lines.append(" · ".join(parts))
        if job is not None and len(jobs) == 1:
            # One job asked for by number: its whole moderation trail.
            actions = await self.bot.moderation.actions_on(jobs[0].id)
            lines += [
                _(ACTION_WORDS[a.action], actor=f"<@{a.actor_id}>", when=discord_time(a.created_at))
                if a.action in ACTION_WORDS
                else f"· {a.action} · <@{a.actor_id}> {discord_time(a.created_at)}"
                for a in actions
            ]
        await send(interaction, fit(_, lines))


async def setup(bot: VideoBot) -> None:
    """Extension entry point."""
    await bot.add_cog(ModerationCog(bot))
