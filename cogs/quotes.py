"""Cost quotes: the Confirm and Cancel buttons under a costly /animate, which survive restarts.

The quote lives in the database and its id is in each button's custom_id, so a click is understood by any
process, including one started after the quote was shown (discord.py's dynamic items)."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from cogs._i18n import ENGLISH, Words, member_words
from cogs._ui import ack_text, admit, button_errors, check_private_to, check_stored_ids
from cogs._wording import discord_time
from cogs.delivery import acknowledgement_text, track_acknowledgement
from cogs.videos import ack_view
from core.models import Quote, Usage, format_usd

if TYPE_CHECKING:
    from bot import VideoBot

log = logging.getLogger(__name__)

_TEMPLATE = r"vq:quote:(?P<action>confirm|cancel):(?P<id>[0-9]+)"


def quote_text(_: Words, quote: Quote, usage: Usage | None) -> str:
    """The quote: clip length, estimate, what is left, and until when it can be confirmed."""
    first = _(
        "💬 **This clip is {length} s, so the video will cost about {cost}.**",
        length=f"{quote.audio_seconds:.1f}",
        cost=format_usd(quote.estimate_micros),
    )
    left = usage.left_micros if usage else None
    if left is not None:
        first += " " + _("You have **{left}** left to spend.", left=format_usd(left))
    return "\n".join(
        (
            first,
            _(
                "Nothing is charged until you confirm. This quote expires {when}.",
                when=discord_time(quote.expires_at),
            ),
        )
    )


def quote_view(_: Words, quote_id: int) -> discord.ui.View:
    """Confirm and Cancel buttons for one quote (no timeout: the quote's own expiry decides)."""
    view = discord.ui.View(timeout=None)
    view.add_item(QuoteButton("confirm", quote_id, words=_))
    view.add_item(QuoteButton("cancel", quote_id, words=_))
    return view


class QuoteButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=_TEMPLATE):
    """A Confirm or Cancel button whose custom_id carries the quote's id."""

    def __init__(self, action: str, quote_id: int, *, words: Words = ENGLISH) -> None:
        confirm = action == "confirm"
        super().__init__(
            discord.ui.Button(
                label=words("Confirm") if confirm else words("Cancel"),
                style=discord.ButtonStyle.success if confirm else discord.ButtonStyle.secondary,
                custom_id=f"vq:quote:{action}:{quote_id}",
            )
        )
        self.action = action
        self.quote_id = quote_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> QuoteButton:
        return cls(match["action"], int(match["id"]))

    async def callback(self, interaction: discord.Interaction[VideoBot]) -> None:  # type: ignore[override]
        """Confirm: reserve and queue the job; the quote becomes its acknowledgement. Cancel: close it."""
        bot = interaction.client
        await interaction.response.defer()  # an update of the quote's own message follows
        accepted = None
        _ = member_words(interaction)
        async with button_errors(interaction):
            check_stored_ids(self.quote_id)
            quote = await bot.jobs.get_quote(self.quote_id)
            if quote is not None:  # (an unknown quote is refused below)
                check_private_to(interaction, quote.guild_id, quote.channel_id)
            if self.action == "cancel":
                await bot.jobs.cancel(self.quote_id, interaction.user.id)
                await interaction.edit_original_response(
                    content=_("Cancelled. Nothing was charged."), view=None
                )
                return
            # A ban or an allow-list change while the quote was open applies to its Confirm too.
            await admit(interaction)
            accepted = await bot.jobs.confirm(self.quote_id, interaction.user.id)
        if accepted is None:
            return
        head, text, stands = await acknowledgement_text(
            bot, accepted.job, ack_text(_, accepted.job, accepted.usage), interaction
        )
        try:
            await interaction.edit_original_response(content=text, view=ack_view(_, accepted.job))
        except discord.HTTPException as error:
            log.warning("job=%s acknowledgement not sent: %r", accepted.job.id, error)
            return
        await track_acknowledgement(bot, accepted.job.id, interaction, head, text, stands)
