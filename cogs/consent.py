"""The consent statement's Accept and Not now buttons, which survive restarts (dynamic items).

The waiting /animate lives in the database and its id is in each button's custom_id; on Accept the
member's own files go ahead from Discord's links, so they never upload them twice."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord

from cogs._ui import answer, button_errors
from core.consent import Statement
from core.quota import discord_time

if TYPE_CHECKING:
    from bot import VideoBot

log = logging.getLogger(__name__)

_TEMPLATE = r"vq:consent:(?P<action>accept|decline):(?P<id>[0-9]+)"


def consent_text(statement: Statement, expires_at: float) -> str:
    """The statement, and what Accept does."""
    return (
        f"📜 {statement.text}\n"
        f"Press **I accept** and your video goes ahead with the files you gave. Nothing has been sent or "
        f"charged yet. This expires {discord_time(expires_at)}."
    )


def consent_view(request_id: int) -> discord.ui.View:
    """I accept and Not now, for one waiting /animate (no timeout: the request's expiry decides)."""
    view = discord.ui.View(timeout=None)
    view.add_item(ConsentButton("accept", request_id))
    view.add_item(ConsentButton("decline", request_id))
    return view


class ConsentButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=_TEMPLATE):
    """I accept or Not now; the custom_id carries the waiting request's id."""

    def __init__(self, action: str, request_id: int) -> None:
        accept = action == "accept"
        super().__init__(
            discord.ui.Button(
                label="I accept" if accept else "Not now",
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
        async with button_errors(interaction, in_place=True):
            if self.action == "decline":
                await bot.consent.decline(self.request_id, interaction.user.id)
                await answer(interaction, "No problem: nothing was sent or charged.")
                return
            submission = await bot.consent.accept(self.request_id, interaction.user.id)
            video = bot.get_cog("VideoCog")
            if video is None:  # unloaded: the consent is recorded, the member can run /animate again
                await answer(interaction, "Thanks, accepted. Please run /animate again.")
                return
            await answer(interaction, "Thanks, accepted. ⏳ Checking your files…")
            await video.go_ahead(interaction, submission)  # type: ignore[attr-defined]
