"""The operator's money through the real bot: ceilings above every server, the servers it serves, and cheap
checks before any download."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from core.models import UNLIMITED, GuildLimitsPatch
from core.work_slots import MAX_CONCURRENT_HEAVY_WORK
from tests import media_factory as media
from tests.e2e.conftest import ADMIN_ID, MANAGE_GUILD, App
from tests.fakes.discord import DEFAULT_PERMISSIONS
from tests.fakes.discord_fixtures import BOOSTED_CHANNEL_ID, BOOSTED_GUILD_ID, GUILD_ID

MEMBER = 200_000_000_000_000_001
STOP = "The bot has reached its spending limit for today"


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    """A $1.00 day for all servers together, server budgets capped at $50, and only the first server."""
    return {
        **app_settings,
        "operator_daily_usd": 1.0,
        "guild_budget_max_usd": 50.0,
        "quota_guild_monthly_usd": 20.0,
        "allowed_guild_ids": [GUILD_ID],
    }


async def animate(app: App, seconds: float, user_id: int, **context: Any) -> tuple[dict[str, Any], list[int]]:
    """Run /animate with a clip of `seconds`; returns the payload and the ids of its two attachments."""
    image = app.discord.add_attachment("face.png", media.png(400, 500))
    audio = app.discord.add_attachment("voice.wav", media.wav(seconds))
    payload = app.discord.make_slash_interaction(
        "animate", [("image", 11, image), ("audio", 11, audio)], user_id=user_id, **context
    )
    await app.discord.send_interaction(payload)
    return payload, [int(image["id"]), int(audio["id"])]


async def admin(app: App, sub: str, *options: tuple[str, int, Any]) -> str:
    return await app.command(
        "budget", sub, *options, user_id=ADMIN_ID, permissions=DEFAULT_PERMISSIONS | MANAGE_GUILD
    )


async def test_operator_ceiling_refuses_without_telling_its_figure(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """Past OPERATOR_DAILY_USD a member is told the bot is done for today (not the figure); the log says."""
    app.runware.polls_to_finish = 10**6  # the reservations stay
    for i in range(3):  # $0.90 of the operator's $1.00
        payload, _ = await animate(app, 3.0, MEMBER + i)
        await app.reply_to(payload, "accepted")
    with caplog.at_level(logging.WARNING, logger="core.jobs"):
        payload, _ = await animate(app, 3.0, MEMBER + 5)
        reply = await app.reply_to(payload, STOP)
    assert reply.ephemeral and "try again after <t:" in reply.content and "$1.00" not in reply.content
    assert app.spent() == 900_000
    assert any("OPERATOR_DAILY_USD reached" in r.getMessage() for r in caplog.records)


async def test_operator_ceiling_reached_refuses_before_downloading(app: App) -> None:
    """Once all servers together have spent the operator's day, /animate downloads nothing."""
    app.runware.polls_to_finish = 10**6
    for i in range(2):  # $0.50 each: the operator's $1.00 is used up
        payload, _ = await animate(app, 5.0, MEMBER + i)
        await app.reply_to(payload, "accepted")
    payload, attachments = await animate(app, 1.0, MEMBER + 5)
    await app.reply_to(payload, STOP)
    assert [app.discord.downloads(a) for a in attachments] == [0, 0]


async def test_budget_above_the_cap_is_refused(app: App) -> None:
    """/budget set budget: above GUILD_BUDGET_MAX_USD, or unlimited, is refused naming the cap."""
    for value in ("60", "unlimited"):
        text = await admin(app, "set", ("budget", 3, value))
        assert "at most $50.00" in text and "GUILD_BUDGET_MAX_USD" in text
    assert app.query("SELECT COUNT(*) FROM guild_limits") == [(0,)]
    assert "of $50.00 used" in await admin(app, "set", ("budget", 3, "50"))


async def test_a_stored_budget_above_the_cap_applies_as_the_cap(app: App) -> None:
    """A budget saved before the cap (here unlimited) shows and counts as the cap in /budget and /usage."""
    await app.store.update_guild_limits(
        GUILD_ID, GuildLimitsPatch(guild_monthly_micros=UNLIMITED), ADMIN_ID, 0.0
    )
    shown = await admin(app, "show")
    assert "of $50.00 used (0%)" in shown and "the most this bot's operator allows" in shown
    payload = app.discord.make_slash_interaction("usage", user_id=MEMBER)
    await app.discord.send_interaction(payload)
    usage = await app.reply_to(payload, "Your usage")
    assert "Server budget this month: $0.00 of $50.00 used" in usage.content


async def test_other_servers_are_refused_and_nothing_is_downloaded(app: App) -> None:
    """In a server outside ALLOWED_GUILD_IDS every command gets a short private refusal; no file is read."""
    where = {"guild_id": BOOSTED_GUILD_ID, "channel_id": BOOSTED_CHANNEL_ID}
    payload, attachments = await animate(app, 3.0, MEMBER, **where)
    reply = await app.reply_to(payload, "only serves the servers its operator chose")
    assert reply.ephemeral
    usage = app.discord.make_slash_interaction("usage", user_id=MEMBER, **where)
    await app.discord.send_interaction(usage)
    assert (await app.reply_to(usage)).content == reply.content
    assert [app.discord.downloads(a) for a in attachments] == [0, 0]
    assert app.runware.requests == [] and app.spent() == 0
    served, _ = await animate(app, 3.0, MEMBER)
    await app.reply_to(served, "accepted")


async def test_too_many_running_refuses_before_downloading(app: App) -> None:
    """A member at their cap of videos in progress is refused before their files are downloaded."""
    app.runware.polls_to_finish = 10**6
    for _ in range(2):  # QUOTA_USER_MAX_ACTIVE_JOBS
        payload, _ = await animate(app, 1.0, MEMBER)
        await app.reply_to(payload, "accepted")
    payload, attachments = await animate(app, 1.0, MEMBER)
    await app.reply_to(payload, "in progress")
    assert [app.discord.downloads(a) for a in attachments] == [0, 0]


async def test_no_money_left_refuses_before_downloading(app: App) -> None:
    """A member with nothing left of their daily limit is refused, with the limit, before any download."""
    await admin(app, "set", ("daily", 3, "0.50"))
    payload, _ = await animate(app, 5.0, MEMBER)  # $0.50: the whole daily limit
    await app.reply_to(payload, "accepted")
    payload, attachments = await animate(app, 1.0, MEMBER)
    reply = await app.reply_to(payload, "daily limit")
    assert "You have $0.00 left of your $0.50 daily limit" in reply.content and "resets <t:" in reply.content
    assert [app.discord.downloads(a) for a in attachments] == [0, 0]


async def test_downloads_at_once_are_capped(app: App) -> None:
    """Ten simultaneous /animate never download more than the process-wide cap at once; all are answered,
    and those that wait long are told so."""
    app.discord.cdn_delay_s = 0.5
    app.runware.polls_to_finish = 10**6  # ten $0.10 reservations fit the operator's $1.00 exactly
    payloads = [(await animate(app, 1.0, MEMBER + i))[0] for i in range(10)]
    answers = await asyncio.gather(*(app.reply_to(p, "accepted", timeout=60) for p in payloads))
    assert len(answers) == 10
    assert 2 <= app.discord.cdn_max_in_flight <= MAX_CONCURRENT_HEAVY_WORK
    # (The acknowledgement then replaces the notice in the same message.)
    shown = [
        e.payload.get("content") or "" for p in payloads for e in app.discord.interaction_responses(p["id"])
    ]
    assert any("Waiting for a free slot" in text for text in shown)


async def test_a_request_that_waited_for_a_slot_has_one_private_answer_that_follows_the_job(app: App) -> None:
    """A command told to wait for a free slot is answered in that same message: the acknowledgement
    replaces the waiting notice and shows the outcome there. (It was sent as a second message, while the
    job's updates went to the first: the member kept a stale "accepted" with a Cancel button, and a
    concurrent burst counted more acknowledgements than jobs.)"""
    async with contextlib.AsyncExitStack() as held:
        for _ in range(MAX_CONCURRENT_HEAVY_WORK):  # every download and decode slot busy
            await held.enter_async_context(app.bot.jobs.heavy_work.hold())
        payload, _ = await animate(app, 1.0, MEMBER)
        await app.reply_to(payload, "Waiting for a free slot")
    ack = await app.reply_to(payload, "accepted")
    await app.post_in_channel("ready")
    await app.discord.wait_for(lambda: "is ready" in app.discord.message(ack.id).content)
    answers = [m for m in app.discord.messages if m.interaction_id == int(payload["id"])]
    assert [m.id for m in answers] == [ack.id]
