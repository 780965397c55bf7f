"""/budget: server admins see and set what members may spend and the server's monthly budget."""

from __future__ import annotations

import hashlib
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs._i18n import guild_words, member_words
from cogs._ui import is_server_manager, resolve_channel, send
from cogs._wording import budget_alert_text, budget_lines, report_lines, tier_lines
from core.budgets import LimitChange, parse_amount, parse_limit_change
from core.models import BudgetAlert, format_usd

if TYPE_CHECKING:
    from bot import VideoBot

log = logging.getLogger(__name__)

PERIOD_CHOICES = [
    app_commands.Choice(name="today", value="today"),
    app_commands.Choice(name="this month", value="this_month"),
    app_commands.Choice(name="last month", value="last_month"),
]


def alert_nonce(alert: BudgetAlert) -> str:
    """A budget alert's message nonce (Discord allows 25 characters): the same alert, the same nonce."""
    key = f"{alert.guild_id}:{alert.month_start}:{alert.budget_micros}:{alert.threshold}"
    return "vq-alert-" + hashlib.sha256(key.encode()).hexdigest()[:16]


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class BudgetCog(commands.GroupCog, group_name="budget", group_description="See and set spending limits"):
    """The /budget group."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self._posting: set[tuple[int, float, int, int]] = set()
        super().__init__()

    @commands.Cog.listener()
    async def on_budget_alert(self, alert: BudgetAlert) -> None:
        """Post a budget threshold to the server's alerts channel, and record whether it was posted (one
        that was not is posted again by the retry pass in bot.py)."""
        key = (alert.guild_id, alert.month_start, alert.budget_micros, alert.threshold)
        if key in self._posting:
            return
        self._posting.add(key)
        # Settled: posted, or given up for good (the channel is gone or hidden from the bot). Retrying
        # that every minute would be refused every minute, and Discord counts repeated 403/404s against
        # the bot (its invalid-request limit); only a transient failure (5xx, connection) is retried.
        settled = False
        try:
            channel = await resolve_channel(self.bot, alert.log_channel_id)
            if channel is None:
                settled = True
                log.warning(
                    "guild=%s budget alert %s%% given up: alerts channel %s not found or hidden from the bot",
                    alert.guild_id,
                    alert.threshold,
                    alert.log_channel_id,
                )
                return
            await channel.send(
                budget_alert_text(guild_words(self.bot.get_guild(alert.guild_id)), alert),
                # A retry within Discord's nonce window cannot post it twice.
                nonce=alert_nonce(alert),
                allowed_mentions=discord.AllowedMentions.none(),
            )
            settled = True
        except (discord.NotFound, discord.Forbidden) as error:
            settled = True
            log.warning(
                "guild=%s budget alert %s%% given up: alerts channel %s refused it: %r",
                alert.guild_id,
                alert.threshold,
                alert.log_channel_id,
                error,
            )
        except discord.HTTPException as error:
            log.warning("guild=%s budget alert not posted, will retry: %r", alert.guild_id, error)
        finally:
            self._posting.discard(key)
            await self.bot.budgets.alert_posted(alert, settled)

    @app_commands.command(name="show")
    @app_commands.check(is_server_manager)
    async def show(self, interaction: discord.Interaction[VideoBot]) -> None:
        """Show this server's limits and how much of its monthly budget is used."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        overview = await self.bot.budgets.overview(interaction.guild_id)
        await send(interaction, "\n".join(budget_lines(member_words(interaction), overview)))

    @app_commands.command(name="set")
    @app_commands.check(is_server_manager)
    @app_commands.describe(
        daily="Each member's daily limit in dollars, e.g. 2.50, or 'unlimited' or 'default'",
        monthly="Each member's monthly limit in dollars, or 'unlimited' or 'default'",
        active="Videos one member may have in progress at once, or 'unlimited' or 'default'",
        cooldown="Seconds a member waits between videos, or 'default'",
        budget="The whole server's monthly budget in dollars, or 'unlimited' or 'default'",
        confirm="Members confirm a video costing this much or more, e.g. 2.00, or 'never' or 'default'",
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
        confirm: str | None = None,
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
                ("confirm", confirm),
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
        warning = ""
        if log_channel is not None and not _can_post(log_channel):
            warning = (
                f"\n⚠️ I can't post in {log_channel.mention}: give me View Channel and Send Messages there, "
                "or the alerts will be lost."
            )
        await send(
            interaction,
            f"Saved: {done}.{warning}\n\n" + "\n".join(budget_lines(member_words(interaction), overview)),
        )

    @app_commands.command(name="tier")
    @app_commands.check(is_server_manager)
    @app_commands.describe(
        role="The role whose members get these limits",
        daily="Daily limit in dollars, 'unlimited', or 'default' (the server's)",
        monthly="Monthly limit in dollars, 'unlimited', or 'default' (the server's)",
        active="Videos in progress at once, 'unlimited', or 'default'",
        cooldown="Seconds between videos, or 'default'",
        remove="Remove this role's tier",
    )
    async def tier(
        self,
        interaction: discord.Interaction[VideoBot],
        role: discord.Role,
        daily: str | None = None,
        monthly: str | None = None,
        active: str | None = None,
        cooldown: str | None = None,
        remove: bool = False,
    ) -> None:
        """Give a role its own limits (members get the most generous of their roles)."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        budgets = self.bot.budgets
        if remove:
            removed = await budgets.remove_tier(interaction.guild_id, role.id, interaction.user.id)
            text = f"Removed the tier of {role.mention}." if removed else f"{role.mention} had no tier."
            await send(interaction, text)
            return
        options = (("daily", daily), ("monthly", monthly), ("active", active), ("cooldown", cooldown))
        changes = [parse_limit_change(name, text) for name, text in options if text is not None]
        if not changes:
            await send(interaction, "Nothing to change: give at least one limit, or `remove:True`.")
            return
        saved = await budgets.set_tier(interaction.guild_id, role.id, changes, interaction.user.id)
        await send(
            interaction,
            f"Saved the tier of {role.mention}.\n"
            + "\n".join(tier_lines(member_words(interaction), (saved,))[1:]),
        )

    @app_commands.command(name="grant")
    @app_commands.check(is_server_manager)
    @app_commands.describe(
        member="Who gets the credit",
        amount="Dollars to give, e.g. 2.50 (or -2.50 to take back)",
        reason="Why (kept on the ledger)",
    )
    async def grant(
        self,
        interaction: discord.Interaction[VideoBot],
        member: discord.Member,
        amount: str,
        reason: app_commands.Range[str, 1, 200],
    ) -> None:
        """Give a member extra room to spend (or take it back), recorded on the ledger."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        credit = parse_amount(amount)
        await self.bot.budgets.grant(interaction.guild_id, member.id, credit, reason, interaction.user.id)
        usage = await self.bot.jobs.usage(interaction.guild_id, member.id, member_role_ids_of(member))
        verb = "Gave" if credit > 0 else "Took back"
        left = usage.left_micros
        after = f" They have {format_usd(left)} left to spend now." if left is not None else ""
        await send(interaction, f"{verb} {format_usd(abs(credit))} for {member.mention} ({reason}).{after}")

    @app_commands.command(name="reset")
    @app_commands.check(is_server_manager)
    @app_commands.describe(member="Whose spending to start afresh", window="Today only, or the whole month")
    @app_commands.choices(
        window=[
            app_commands.Choice(name="today", value="day"),
            app_commands.Choice(name="this month", value="month"),
        ]
    )
    async def reset(
        self,
        interaction: discord.Interaction[VideoBot],
        member: discord.Member,
        window: app_commands.Choice[str],
    ) -> None:
        """Start a member's spending today (or this month) afresh, recorded on the ledger."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        given = await self.bot.budgets.reset(
            interaction.guild_id, member.id, window.value, interaction.user.id
        )
        period = "today" if window.value == "day" else "this month"
        if given == 0:
            await send(interaction, f"{member.mention} has spent nothing {period}; nothing to reset.")
            return
        await send(
            interaction,
            f"Reset the spending of {member.mention} for {period}: {format_usd(given)} given back.",
        )

    @app_commands.command(name="usage")
    @app_commands.check(is_server_manager)
    @app_commands.describe(period="Which period (UTC)")
    @app_commands.choices(period=PERIOD_CHOICES)
    async def usage(
        self, interaction: discord.Interaction[VideoBot], period: app_commands.Choice[str] | None = None
    ) -> None:
        """Spending for a period: the total, the top spenders and videos by outcome."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        label, report = await self.bot.budgets.report(
            interaction.guild_id, period.value if period else "this_month"
        )
        await send(interaction, "\n".join(report_lines(member_words(interaction), label, report)))

    @app_commands.command(name="export")
    @app_commands.check(is_server_manager)
    @app_commands.describe(period="Which period (UTC)")
    @app_commands.choices(period=PERIOD_CHOICES)
    async def export(
        self, interaction: discord.Interaction[VideoBot], period: app_commands.Choice[str] | None = None
    ) -> None:
        """Download the ledger for a period as a CSV file."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        name, data, count = await self.bot.budgets.export_csv(
            interaction.guild_id, period.value if period else "this_month"
        )
        await send(
            interaction,
            f"The ledger, {count} row(s): time, member, job, kind, amount in USD, reason.",
            file=discord.File(io.BytesIO(data), filename=name),
        )


def _can_post(channel: discord.TextChannel) -> bool:
    """Whether the bot may post in a channel (as far as the cached permissions tell)."""
    me = channel.guild.me
    if me is None:
        return True  # unknown: don't cry wolf
    permissions = channel.permissions_for(me)
    return permissions.view_channel and permissions.send_messages


def member_role_ids_of(member: discord.Member) -> tuple[int, ...]:
    """A member's role ids."""
    return tuple(role.id for role in member.roles)


async def setup(bot: VideoBot) -> None:
    """Extension entry point."""
    await bot.add_cog(BudgetCog(bot))
