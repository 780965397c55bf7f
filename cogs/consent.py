"""The consent statement's Accept and Not now buttons, which survive restarts (dynamic items).

The waiting /animate lives in the database and its id is in each button's custom_id; its files wait in
memory, so on Accept the member's own files go ahead and they never upload them twice. A click after a
restart still records the consent, and asks the member to run /animate again."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from cogs._i18n import ENGLISH, N_, Words, member_words
from cogs._ui import NOT_HERE, answer, button_errors, check_private_to, check_stored_ids
from cogs._wording import discord_time
from core.consent import Statement
from core.errors import UserFacingError

if TYPE_CHECKING:
    from bot import VideoBot

log = logging.getLogger(__name__)

FILES_GONE = N_(
    "Thanks, accepted. I was restarted since you ran /animate, so I no longer have your files: please run "
    "it again (you won't be asked again). Nothing was sent or charged."
)
_TEMPLATE = r"vq:consent:(?P<action>accept|decline):(?P<id>[0-9]+)"


def consent_text(_: Words, statement: Statement, expires_at: float) -> str:
    """The statement (in the member's language when it is the bot's own; an operator's own text as it is),
    and what Accept does."""
    return "\n".join(
        (
            f"📜 {_(statement.text)}",
            _(
                "Press **I accept** and your video goes ahead with the files you gave. Nothing has been "
                "sent or charged yet. This expires {when}.",
                when=discord_time(expires_at),
            ),
        )
    )


def consent_view(_: Words, request_id: int) -> discord.ui.View:
    """I accept and Not now, for one waiting /animate (no timeout: the request's expiry decides)."""
    view = discord.ui.View(timeout=None)
    view.add_item(ConsentButton("accept", request_id, words=_))
    view.add_item(ConsentButton("decline", request_id, words=_))
    return view


class ConsentButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=_TEMPLATE):
    """I accept or Not now; the custom_id carries the waiting request's id."""

    def __init__(self, action: str, request_id: int, *, words: Words = ENGLISH) -> None:
        accept = action == "accept"
        super().__init__(
            discord.ui.Button(
                label=words("I accept") if accept else words("Not now"),
                style=discord.ButtonStyle.success if accept else discord.ButtonStyle.secondary,
                custom_id=f"vq:consent:{action}:{request_id}",
            )
        )
        self.action = action
        self.request_id = request_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ConsentButton:
        return cls(match["action"], int(match["id"]))

    async def callback(self, interaction: discord.Interaction[VideoBot]) -> None:  # type: ignore[override]
        """Accept: record consent and go ahead with the video. Not now: close the request.

        The statement is a private message, so only its member can press these; every answer replaces it."""
        bot = interaction.client
        await interaction.response.defer()
        if not await self._pressed_on_statement(interaction):
            return
        _ = member_words(interaction)
        async with button_errors(interaction, in_place=True):
            if self.action == "decline":
                await bot.consent.decline(self.request_id, interaction.user.id)
                await answer(interaction, _("No problem: nothing was sent or charged."))
                return
            submission, files = await bot.consent.accept(self.request_id, interaction.user.id)
            video = bot.get_cog("VideoCog")
            if files is None or video is None:
                # The bot restarted since the /animate: its files were only in memory.
                await answer(interaction, _(FILES_GONE))
                return
            with contextlib.suppress(discord.HTTPException):  # a courtesy: the answer below is what counts
                await answer(interaction, _("Thanks, accepted. ⏳ Checking your files…"))
            await video.go_ahead(interaction, submission, files)  # type: ignore[attr-defined]

    async def _pressed_on_statement(self, interaction: discord.Interaction[VideoBot]) -> bool:
        """Whether the press is on this request's own statement; if not, say so privately (never in place:
        a forged press's message is not the statement, and may be one that others see)."""
        async with button_errors(interaction):
            check_stored_ids(self.request_id)
            request = await interaction.client.consent.get_request(self.request_id)
            if request is None:  # forged, or long gone
                raise UserFacingError(NOT_HERE)
            check_private_to(interaction, request.submission.guild_id, request.submission.channel_id)
            return True
        return False
