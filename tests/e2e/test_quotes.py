"""Cost quotes: a costly /animate asks first; Confirm, Cancel, expiry, and Confirm after a restart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot import VideoBot
from tests import media_factory as media
from tests.e2e.conftest import App, button, labels
from tests.fakes.discord import FakeMessage
from tests.fakes.discord_fixtures import (
    BOOSTED_CHANNEL_ID,
    BOOSTED_GUILD_ID,
    GUILD_READY_TIMEOUT,
    running_bot,
)

OTHER_MEMBER = 200_000_000_000_000_099


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    """Clips of $1.00 or more ask to confirm; the daily limit leaves room for them."""
    return {**app_settings, "confirm_above_usd": 1.0, "quota_user_daily_usd": 5.0}


async def quote_for(app: App, seconds: float = 12.0) -> tuple[dict[str, Any], FakeMessage]:
    """Run a costly /animate and return its payload and the quote message."""
    payload = await app.animate(audio=media.wav(seconds))
    return payload, await app.reply_to(payload, "Nothing is charged until you confirm")


async def click(
    app: App, message: FakeMessage, label: str, user_id: int | None = None, custom_id: str | None = None
) -> dict[str, Any]:
    """Press a button of the quote (by label, or by a custom_id kept from before an edit)."""
    context = {} if user_id is None else {"user_id": user_id}
    payload = app.discord.make_component_interaction(
        custom_id or button(message, label), message.id, **context
    )
    await app.discord.send_interaction(payload)
    return payload


async def test_costly_clip_shows_a_quote_and_reserves_nothing(app: App) -> None:
    """A $1.20 clip shows its length, cost and expiry with two buttons; nothing is reserved or submitted."""
    _, quote = await quote_for(app)
    assert (
        quote.ephemeral and "12.0 s" in quote.content and "$1.20" in quote.content and "<t:" in quote.content
    )
    assert button(quote, "Confirm").startswith("vq:quote:confirm:")
    assert app.query("SELECT COUNT(*) FROM ledger") == [(0,)]
    assert app.runware.tasks_of_type("videoInference") == []


async def test_confirm_reserves_and_the_video_arrives(app: App) -> None:
    """Confirm turns the quote into the acknowledgement; the job is reserved, made and posted."""
    _, quote = await quote_for(app)
    await click(app, quote, "Confirm")
    await app.discord.wait_for(lambda: "accepted" in app.discord.message(quote.id).content)
    # The quote's buttons gave way to the acknowledgement's own.
    assert labels(app.discord.message(quote.id)) == ["Cancel"]
    post = await app.post_in_channel("ready")
    assert len(post.attachments) == 1
    await app.delivered(1)
    assert app.query("SELECT state, job_id FROM quotes") == [("confirmed", 1)]


async def test_cancel_closes_the_quote_without_charge(app: App) -> None:
    """Cancel says nothing was charged and removes the buttons; nothing is reserved."""
    _, quote = await quote_for(app)
    await click(app, quote, "Cancel")
    await app.discord.wait_for(lambda: "Cancelled" in app.discord.message(quote.id).content)
    assert app.discord.message(quote.id).components == []
    assert app.query("SELECT COUNT(*) FROM ledger") == [(0,)]
    assert app.query("SELECT state FROM quotes") == [("cancelled",)]


async def test_only_the_requester_can_answer(app: App) -> None:
    """Another member's click is refused and changes nothing."""
    _, quote = await quote_for(app)
    answer = await click(app, quote, "Confirm", user_id=OTHER_MEMBER)
    reply = await app.discord.wait_for_message(
        lambda m: m.interaction_id == int(answer["id"]) and "Only the member" in m.content
    )
    assert reply.ephemeral
    assert app.query("SELECT state FROM quotes") == [("open",)]
    assert app.query("SELECT COUNT(*) FROM ledger") == [(0,)]


async def test_a_quote_expires(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quote not confirmed in time is closed and its message says so; nothing is reserved."""
    from core import jobs

    monkeypatch.setattr(jobs, "QUOTE_TTL_S", 0.3)
    _, quote = await quote_for(app)
    await app.discord.wait_for(lambda: "expired" in app.discord.message(quote.id).content, timeout=5)
    assert app.discord.message(quote.id).components == []
    assert app.query("SELECT state FROM quotes") == [("expired",)]
    assert app.query("SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_confirm_after_the_expiry_is_refused(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A late Confirm (the process that would have closed the quote was gone) is refused: nothing charged."""
    from core import jobs

    monkeypatch.setattr(jobs, "QUOTE_TTL_S", 0.3)
    _, quote = await quote_for(app)
    for task in app.bot.get_cog("VideoCog")._expiries:  # type: ignore[union-attr]
        task.cancel()  # as if the bot had restarted: nobody closes the quote on time
    await asyncio.sleep(0.5)
    await click(app, quote, "Confirm")
    await app.discord.wait_for_message(lambda m: "This quote expired" in m.content)
    assert app.query("SELECT state FROM quotes") == [("expired",)]
    assert app.query("SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_confirm_works_after_a_restart(app: App) -> None:
    """A quote shown by one bot process is confirmed through the next one (state in the database)."""
    _, quote = await quote_for(app)
    await app.bot.close()
    bot = VideoBot(
        settings=app.settings, store=app.store, runware=app.client, guild_ready_timeout=GUILD_READY_TIMEOUT
    )
    async with running_bot(bot, app.discord):
        await click(app, quote, "Confirm")
        await app.discord.wait_for(lambda: "accepted" in app.discord.message(quote.id).content)
        post = await app.post_in_channel("ready")
        assert len(post.attachments) == 1
        await app.delivered(1)
    await asyncio.sleep(0)
    assert app.query("SELECT state FROM quotes") == [("confirmed",)]


async def test_a_ban_during_the_quote_stops_its_confirm(app: App) -> None:
    """A member banned while their quote is open can't confirm it: told why, nothing reserved."""
    from core.models import Ban
    from tests.fakes.discord_fixtures import GUILD_ID

    payload, quote = await quote_for(app)
    user_id = int(payload["member"]["user"]["id"])
    await app.store.ban(Ban(GUILD_ID, user_id, "impersonation", 7, 0.0), GUILD_ID, 0.0)
    await click(app, quote, "Confirm")
    await app.discord.wait_for_message(lambda m: "can't use this bot here" in m.content)
    assert app.query("SELECT COUNT(*) FROM jobs") == [(0,)] and app.query("SELECT COUNT(*) FROM ledger") == [
        (0,)
    ]


async def test_a_quote_pressed_in_another_server_does_nothing(app: App) -> None:
    """A quote's Confirm pressed by its member on their private reply in another server (where a ban here
    would not be seen) reserves nothing and rewrites nothing; pressed on the quote it works."""
    _, quote = await quote_for(app)
    elsewhere = await app.animate(
        audio=media.wav(12.0), guild_id=BOOSTED_GUILD_ID, channel_id=BOOSTED_CHANNEL_ID
    )
    there = await app.reply_to(elsewhere, "Nothing is charged until you confirm")
    shown = there.content
    await app.forge(button(quote, "Confirm"), there.id)
    assert app.discord.message(there.id).content == shown
    assert app.query("SELECT state FROM quotes ORDER BY id") == [("open",), ("open",)]
    assert app.query("SELECT COUNT(*) FROM jobs") == [(0,)] and app.query("SELECT COUNT(*) FROM ledger") == [
        (0,)
    ]
    await click(app, quote, "Confirm")
    await app.discord.wait_for(lambda: "accepted" in app.discord.message(quote.id).content)


async def test_a_quote_pressed_on_a_public_message_does_nothing(app: App) -> None:
    """A quote's Cancel pressed by its member on a public post of the bot leaves the post and the quote as
    they were; pressed on the quote it works."""
    await app.animate()  # a cheap clip: no quote, a public post
    post = await app.post_in_channel("ready")
    _, quote = await quote_for(app)
    shown = (post.content, list(post.components))
    await app.forge(button(quote, "Cancel"), post.id)
    assert (app.discord.message(post.id).content, app.discord.message(post.id).components) == shown
    assert app.query("SELECT state FROM quotes") == [("open",)]
    await click(app, quote, "Cancel")
    await app.discord.wait_for(lambda: "Cancelled" in app.discord.message(quote.id).content)
