"""/budget: server admins see and set what members may spend and the server's monthly budget."""

from __future__ import annotations

import hashlib
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs._i18n import N_, guild_words, member_words
from cogs._ui import is_server_manager, resolve_channel, send
from cogs._wording import (
    budget_alert_text,
    budget_lines,
    grant_text,
    limit_change_text,
    report_lines,
    reset_text,
    tier_lines,
)
from core.budgets import LimitChange, parse_amount, parse_limit_change
from core.models import BudgetAlert

if TYPE_CHECKING:
    from bot import VideoBot

log = logging.getLogger(__name__)

PERIOD_CHOICES = [
    app_commands.Choice(name=N_("today"), value="today"),
    app_commands.Choice(name=N_("this month"), value="this_month"),
    app_commands.Choice(name=N_("last month"), value="last_month"),
]


def alert_nonce(alert: BudgetAlert) -> str:
    """A budget alert's message nonce (Discord allows 25 characters): the same alert, the same nonce."""
    key = f"{alert.guild_id}:{alert.month_start}:{alert.budget_micros}:{alert.threshold}"
    return "vq-alert-" + hashlib.sha256(key.encode()).hexdigest()[:16]


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class BudgetCog(
    commands.GroupCog, group_name=N_("budget"), group_description=N_("See and set spending limits")
):
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

    @app_commands.command(
        name=N_("show"),
        description=N_("Show this server's limits and how much of its monthly budget is used."),
    )
    @app_commands.check(is_server_manager)
    async def show(self, interaction: discord.Interaction[VideoBot]) -> None:
        """/budget show."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        overview = await self.bot.budgets.overview(interaction.guild_id)
        await send(interaction, "\n".join(budget_lines(member_words(interaction), overview)))

    @app_commands.command(
        name=N_("set"), description=N_("Change this server's limits; options you leave out stay as they are.")
    )
    @app_commands.check(is_server_manager)
    @app_commands.rename(
        daily=N_("daily"),
        monthly=N_("monthly"),
        active=N_("active"),
        cooldown=N_("cooldown"),
        budget=N_("budget"),
        confirm=N_("confirm"),
        log_channel=N_("log_channel"),
    )
    @app_commands.describe(
        daily=N_("Each member's daily limit in dollars, e.g. 2.50, or 'unlimited' or 'default'"),
        monthly=N_("Each member's monthly limit in dollars, or 'unlimited' or 'default'"),
        active=N_("Videos one member may have in progress at once, or 'unlimited' or 'default'"),
        cooldown=N_("Seconds a member waits between videos, or 'default'"),
        budget=N_("The whole server's monthly budget in dollars, or 'unlimited' or 'default'"),
        confirm=N_("Members confirm a video costing this much or more, e.g. 2.00, or 'never' or 'default'"),
        log_channel=N_("Where budget alerts are posted"),
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
        """/budget set."""
        await interaction.response.defer(ephemeral=True)
        _ = member_words(interaction)
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
            changes.append(LimitChange("log_channel", "log_channel_id", log_channel.id))
        if not changes:
            await send(interaction, _("Nothing to change: pick at least one option."))
            return
        overview = await self.bot.budgets.change(interaction.guild_id, changes, interaction.user.id)
        lines = [_("Saved:"), *(f"· {limit_change_text(_, change)}" for change in changes)]
        if log_channel is not None and not _can_post(log_channel):
            lines.append(
                _(
                    "⚠️ I can't post in {channel}: give me View Channel and Send Messages there, "
                    "or the alerts will be lost.",
                    channel=log_channel.mention,
                )
            )
        await send(interaction, "\n".join([*lines, "", *budget_lines(_, overview)]))

    @app_commands.command(
        name=N_("tier"),
        description=N_("Give a role its own limits (members get the most generous of their roles)."),
    )
    @app_commands.check(is_server_manager)
    @app_commands.rename(
        role=N_("role"),
        daily=N_("daily"),
        monthly=N_("monthly"),
        active=N_("active"),
        cooldown=N_("cooldown"),
        remove=N_("remove"),
    )
    @app_commands.describe(
        role=N_("The role whose members get these limits"),
        daily=N_("Daily limit in dollars, 'unlimited', or 'default' (the server's)"),
        monthly=N_("Monthly limit in dollars, 'unlimited', or 'default' (the server's)"),
        active=N_("Videos in progress at once, 'unlimited', or 'default'"),
        cooldown=N_("Seconds between videos, or 'default'"),
        remove=N_("Remove this role's tier"),
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
        """/budget tier."""
        await interaction.response.defer(ephemeral=True)
        _ = member_words(interaction)
        assert interaction.guild_id is not None
        budgets = self.bot.budgets
        if remove:
            removed = await budgets.remove_tier(interaction.guild_id, role.id, interaction.user.id)
            if removed:
                await send(interaction, _("Removed the tier of {role}.", role=role.mention))
            else:
                await send(interaction, _("{role} had no tier.", role=role.mention))
            return
        options = (("daily", daily), ("monthly", monthly), ("active", active), ("cooldown", cooldown))
        changes = [parse_limit_change(name, text) for name, text in options if text is not None]
        if not changes:
            await send(interaction, _("Nothing to change: give at least one limit, or `remove:True`."))
            return
        saved = await budgets.set_tier(interaction.guild_id, role.id, changes, interaction.user.id)
        await send(
            interaction,
            "\n".join([_("Saved the tier of {role}.", role=role.mention), *tier_lines(_, (saved,))[1:]]),
        )

    @app_commands.command(
        name=N_("grant"),
        description=N_("Give a member extra room to spend (or take it back), recorded on the ledger."),
    )
    @app_commands.check(is_server_manager)
    @app_commands.rename(member=N_("member"), amount=N_("amount"), reason=N_("reason"))
    @app_commands.describe(
        member=N_("Who gets the credit"),
        amount=N_("Dollars to give, e.g. 2.50 (or -2.50 to take back)"),
        reason=N_("Why (kept on the ledger)"),
    )
    async def grant(
        self,
        interaction: discord.Interaction[VideoBot],
        member: discord.Member,
        amount: str,
        reason: app_commands.Range[str, 1, 200],
    ) -> None:
        """/budget grant."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        credit = parse_amount(amount)
        await self.bot.budgets.grant(interaction.guild_id, member.id, credit, reason, interaction.user.id)
        usage = await self.bot.jobs.usage(interaction.guild_id, member.id, member_role_ids_of(member))
        text = grant_text(member_words(interaction), credit, member.mention, reason, usage.left_micros)
        await send(interaction, text)

    @app_commands.command(
        name=N_("reset"),
        description=N_("Start a member's spending today (or this month) afresh, recorded on the ledger."),
    )
    @app_commands.check(is_server_manager)
    @app_commands.rename(member=N_("member"), window=N_("window"))
    @app_commands.describe(
        member=N_("Whose spending to start afresh"), window=N_("Today only, or the whole month")
    )
    @app_commands.choices(
        window=[
            app_commands.Choice(name=N_("today"), value="day"),
            app_commands.Choice(name=N_("this month"), value="month"),
        ]
    )
    async def reset(
        self,
        interaction: discord.Interaction[VideoBot],
        member: discord.Member,
        window: app_commands.Choice[str],
    ) -> None:
        """/budget reset."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        given = await self.bot.budgets.reset(
            interaction.guild_id, member.id, window.value, interaction.user.id
        )
        text = reset_text(member_words(interaction), member.mention, window.value == "month", given)
        await send(interaction, text)

    @app_commands.command(
        name=N_("usage"),
        description=N_("Spending for a period: the total, the top spenders and videos by outcome."),
    )
    @app_commands.check(is_server_manager)
    @app_commands.rename(period=N_("period"))
    @app_commands.describe(period=N_("Which period (UTC)"))
    @app_commands.choices(period=PERIOD_CHOICES)
    async def usage(
        self, interaction: discord.Interaction[VideoBot], period: app_commands.Choice[str] | None = None
    ) -> None:
        """/budget usage."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        label, report = await self.bot.budgets.report(
            interaction.guild_id, period.value if period else "this_month"
        )
        await send(interaction, "\n".join(report_lines(member_words(interaction), label, report)))

    @app_commands.command(
        name=N_("export"), description=N_("Download the ledger for a period as a CSV file.")
    )
    @app_commands.check(is_server_manager)
    @app_commands.rename(period=N_("period"))
    @app_commands.describe(period=N_("Which period (UTC)"))
    @app_commands.choices(period=PERIOD_CHOICES)
    async def export(
        self, interaction: discord.Interaction[VideoBot], period: app_commands.Choice[str] | None = None
    ) -> None:
        """/budget export."""
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        name, data, count = await self.bot.budgets.export_csv(
            interaction.guild_id, period.value if period else "this_month"
        )
        await send(
            interaction,
            member_words(interaction).ngettext(
                "The ledger, {count} row: time, member, job, kind, amount in USD, reason.",
                "The ledger, {count} rows: time, member, job, kind, amount in USD, reason.",
                count,
            ),
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
