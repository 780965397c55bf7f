"""/budget through real discord.py: admins see and set limits; members feel them; others are refused."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from core.work_slots import BUSY
from tests import media_factory as media
from tests.e2e.conftest import App
from tests.fakes.discord import DEFAULT_PERMISSIONS

MANAGE_GUILD = 1 << 5
ADMIN_ID = 200_000_000_000_000_777


async def budget(app: App, subcommand: str, *options: tuple[str, int, Any], admin: bool = True) -> str:
    """Run /budget <subcommand> and return the private reply's text."""
    payload = app.discord.make_slash_interaction(
        "budget",
        list(options),
        subcommand=subcommand,
        user_id=ADMIN_ID if admin else 200_000_000_000_000_001,
        permissions=DEFAULT_PERMISSIONS | (MANAGE_GUILD if admin else 0),
    )
    await app.discord.send_interaction(payload)
    reply = await app.reply_to(payload)
    assert reply.ephemeral
    return reply.content


async def test_show_lists_limits_and_budget_use(app: App) -> None:
    """An admin sees each limit and the server's monthly budget with its reset time."""
    text = await budget(app, "show")
    assert "Monthly budget: $0.00 of $200.00 used (0%)" in text
    assert "Per member, per day: $1.00" in text and "<t:" in text


async def test_set_changes_limits_and_records_who(app: App) -> None:
    """/budget set saves the values, marks them as the server's own, and writes the audit log."""
    text = await budget(app, "set", ("daily", 3, "0.50"), ("budget", 3, "$20"), ("cooldown", 3, "30"))
    assert "Saved:\n· Per member, per day: $0.50\n" in text and "· Monthly budget: $20.00" in text
    assert "Per member, per day: $0.50 (set here)" in text and "of $20.00 used" in text
    (row,) = app.query("SELECT actor_id, action, detail FROM audit_log")
    assert row[0] == ADMIN_ID and row[1] == "budget.set"
    assert json.loads(row[2]) == {
        "user_daily_micros": 500_000,
        "guild_monthly_micros": 20_000_000,
        "cooldown_s": 30.0,
    }


async def test_members_feel_the_new_daily_limit(app: App) -> None:
    """After an admin lowers the daily limit, a clip over it is refused with the new numbers."""
    await budget(app, "set", ("daily", 3, "0.25"))
    payload = await app.animate(audio=media.wav(3.0))
    reply = await app.reply_to(payload, "daily limit")
    assert "$0.30" in reply.content and "$0.25" in reply.content
    assert app.runware.requests == []


async def test_guild_budget_refuses_everyone_with_the_reset_time(app: App) -> None:
    """With the server's monthly budget used up, a member is refused and told when it resets."""
    await budget(app, "set", ("budget", 3, "0.20"))
    payload = await app.animate(audio=media.wav(3.0))
    reply = await app.reply_to(payload, "monthly budget")
    assert "$0.20" in reply.content and "resets <t:" in reply.content


async def test_unlimited_and_default(app: App) -> None:
    """`unlimited` removes a limit and `default` brings the setting's value back."""
    text = await budget(app, "set", ("daily", 3, "unlimited"))
    assert "Per member, per day: unlimited (set here)" in text
    text = await budget(app, "set", ("daily", 3, "default"))
    assert (
        "Per member, per day: $1.00\n" in text + "\n"
        and "(set here)" not in text.split("day:")[1].split("\n")[0]
    )


async def test_bad_value_says_what_works(app: App) -> None:
    """A value that is not an amount is refused with examples of what works; nothing changes."""
    text = await budget(app, "set", ("daily", 3, "lots"))
    assert "`lots` is not an amount" in text and "2.50" in text
    assert app.query("SELECT COUNT(*) FROM guild_limits") == [(0,)]


async def test_member_without_manage_server_is_refused_in_code(app: App) -> None:
    """A member without Manage Server is refused by the bot itself, even if Discord showed the command."""
    for sub, options in (("show", ()), ("set", (("daily", 3, "100"),)), ("usage", ()), ("export", ())):
        text = await budget(app, sub, *options, admin=False)
        assert "Manage Server" in text
    assert app.query("SELECT COUNT(*) FROM guild_limits") == [(0,)]
    assert app.query("SELECT COUNT(*) FROM audit_log") == [(0,)]


async def test_commands_carry_default_member_permissions(app: App) -> None:
    """The synced /budget command asks Discord to show it only to Manage Server members."""
    from tests.fakes.discord_fixtures import GUILD_ID

    (command,) = [c for c in app.discord.synced_commands(GUILD_ID) if c["name"] == "budget"]
    assert int(command["default_member_permissions"]) == MANAGE_GUILD
    assert {o["name"] for o in command["options"]} >= {"show", "set"}


async def test_500_concurrent_jobs_never_exceed_the_guild_budget(app: App) -> None:
    """500 simultaneous /animate from 50 members against a $5 budget: never exceeded, everyone answered."""
    await budget(app, "set", ("budget", 3, "5"), ("daily", 3, "unlimited"), ("active", 3, "unlimited"))
    app.runware.polls_to_finish = 10**6  # keep every accepted job reserved
    clip = media.wav(3.0)  # $0.30 each: at most 16 fit in $5
    image = media.png(400, 500)
    payloads = []
    for i in range(500):
        img = app.discord.add_attachment("face.png", image)
        aud = app.discord.add_attachment("voice.wav", clip)
        payloads.append(
            app.discord.make_slash_interaction(
                "animate", [("image", 11, img), ("audio", 11, aud)], user_id=300_000 + i % 50
            )
        )
    await asyncio.gather(*(app.discord.send_interaction(p) for p in payloads))
    ids = {int(p["id"]) for p in payloads}

    def answered() -> int:
        # A request waiting for a download slot says so first; its answer comes after.
        return len(
            {
                m.interaction_id
                for m in app.discord.messages
                if m.interaction_id in ids and m.content and "Waiting for a free slot" not in m.content
            }
        )

    await app.discord.wait_for(lambda: answered() == 500, timeout=120)
    accepted = [m for m in app.discord.messages if m.interaction_id in ids and "accepted" in m.content]
    refused = [m for m in app.discord.messages if m.interaction_id in ids and "would cost about" in m.content]
    # On a loaded machine a few may wait past the download slots' limit and be asked to try again instead.
    busy = [m for m in app.discord.messages if m.interaction_id in ids and m.content == BUSY]
    others = {m.content for m in app.discord.messages if m.interaction_id in ids} - {
        m.content for m in accepted + refused + busy
    }
    assert len(accepted) == 16 and len(refused) + len(busy) == 484 and len(busy) < 50, others
    (total,) = app.query("SELECT COALESCE(SUM(amount_micros), 0) FROM ledger")[0]
    assert total == 16 * 300_000 <= 5_000_000


VIP_ROLE = 400_000_000_000_000_001
MEMBER_ID = 200_000_000_000_000_001


async def add_role(app: App, role_id: int, name: str) -> dict[str, Any]:
    """Create a role in the guild (as Discord would announce it) and return its payload."""
    from tests.fakes.discord_fixtures import GUILD_ID

    role = {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "hoist": False,
        "position": 1,
        "permissions": "0",
        "managed": False,
        "mentionable": True,
        "flags": 0,
    }
    await app.discord.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(GUILD_ID), "role": role})
    await app.discord.wait_for(lambda: app.bot.get_guild(GUILD_ID).get_role(role_id) is not None)  # type: ignore[union-attr]
    return role


def member_option(
    name: str, user_id: int, roles: list[int] | None = None
) -> tuple[tuple[str, int, Any], dict[str, Any]]:
    """A USER option and the `resolved` block Discord sends with it."""
    from tests.fakes.discord import user_payload

    resolved = {
        "users": {str(user_id): user_payload(user_id, f"user{user_id}")},
        "members": {
            str(user_id): {
                "roles": [str(r) for r in roles or []],
                "joined_at": "2026-01-01T00:00:00+00:00",
                "flags": 0,
                "permissions": str(DEFAULT_PERMISSIONS),
            }
        },
    }
    return (name, 6, str(user_id)), resolved


async def admin_command(
    app: App, subcommand: str, options: list[tuple[str, int, Any]], resolved: dict[str, Any]
) -> str:
    payload = app.discord.make_slash_interaction(
        "budget",
        options,
        subcommand=subcommand,
        resolved=resolved,
        user_id=ADMIN_ID,
        permissions=DEFAULT_PERMISSIONS | MANAGE_GUILD,
    )
    await app.discord.send_interaction(payload)
    return (await app.reply_to(payload)).content


async def test_a_role_tier_applies_to_its_members(app: App) -> None:
    """A member with a tiered role gets the tier's more generous daily limit; others keep the server's."""
    role = await add_role(app, VIP_ROLE, "VIP")
    text = await admin_command(
        app, "tier", [("role", 8, str(VIP_ROLE)), ("daily", 3, "3.00")], {"roles": {str(VIP_ROLE): role}}
    )
    assert "Saved the tier" in text and "per day $3.00" in text
    shown = await budget(app, "show")
    assert f"<@&{VIP_ROLE}>: per day $3.00" in shown
    # $1.20 is over the server's $1.00 daily limit, within the VIP tier's $3.00.
    vip = await app.animate(audio=media.wav(12.0), user_id=MEMBER_ID, roles=[VIP_ROLE])
    await app.reply_to(vip, "accepted")
    other = await app.animate(audio=media.wav(12.0), user_id=MEMBER_ID + 1)
    await app.reply_to(other, "daily limit")
    usage = app.discord.make_slash_interaction("usage", user_id=MEMBER_ID, roles=[VIP_ROLE])
    await app.discord.send_interaction(usage)
    reply = await app.reply_to(usage, "Your tier")
    assert f"Your tier: <@&{VIP_ROLE}>" in reply.content and "$1.20 of $3.00" in reply.content


async def test_removing_a_tier(app: App) -> None:
    """`remove:True` deletes a role's tier and says so; the audit log has both actions."""
    role = await add_role(app, VIP_ROLE, "VIP")
    resolved = {"roles": {str(VIP_ROLE): role}}
    await admin_command(app, "tier", [("role", 8, str(VIP_ROLE)), ("active", 3, "unlimited")], resolved)
    text = await admin_command(app, "tier", [("role", 8, str(VIP_ROLE)), ("remove", 5, True)], resolved)
    assert "Removed the tier" in text
    assert [a for (a,) in app.query("SELECT action FROM audit_log ORDER BY id")] == [
        "budget.tier.set",
        "budget.tier.remove",
    ]


async def test_grant_gives_room_and_is_on_the_ledger(app: App) -> None:
    """A $2 credit lets a member past today's limit and is a ledger row with its reason and an audit row."""
    option, resolved = member_option("member", MEMBER_ID)
    text = await admin_command(
        app, "grant", [option, ("amount", 3, "2"), ("reason", 3, "contest winner")], resolved
    )
    assert "Gave $2.00" in text and "contest winner" in text and "$3.00 left" in text
    assert app.query("SELECT user_id, kind, amount_micros, reason FROM ledger") == [
        (MEMBER_ID, "grant", -2_000_000, "contest winner")
    ]
    (actor, action, detail) = app.query("SELECT actor_id, action, detail FROM audit_log")[0]
    assert actor == ADMIN_ID and action == "budget.grant" and json.loads(detail)["user_id"] == MEMBER_ID
    payload = await app.animate(audio=media.wav(25.0), user_id=MEMBER_ID)  # $2.50 > $1.00 daily
    await app.reply_to(payload, "accepted")


async def test_reset_starts_the_day_afresh(app: App) -> None:
    """After a member spent today's limit, a reset gives it back and a new job is accepted."""
    first = await app.animate(audio=media.wav(9.0), user_id=MEMBER_ID)
    await app.reply_to(first, "accepted")
    await app.delivered(1)
    refused = await app.animate(audio=media.wav(9.0), user_id=MEMBER_ID)
    await app.reply_to(refused, "daily limit")
    option, resolved = member_option("member", MEMBER_ID)
    text = await admin_command(app, "reset", [option, ("window", 3, "day")], resolved)
    assert "given back" in text and "$0.42" in text
    again = await app.animate(audio=media.wav(9.0), user_id=MEMBER_ID)
    await app.reply_to(again, "accepted")
    assert app.query("SELECT action FROM audit_log") == [("budget.reset",)]


async def test_admin_commands_refuse_members_without_manage_server(app: App) -> None:
    """tier, grant and reset are refused in code for a member without Manage Server; nothing is written."""
    role = await add_role(app, VIP_ROLE, "VIP")
    option, resolved = member_option("member", MEMBER_ID)
    cases = [
        ("tier", [("role", 8, str(VIP_ROLE)), ("daily", 3, "100")], {"roles": {str(VIP_ROLE): role}}),
        ("grant", [option, ("amount", 3, "100"), ("reason", 3, "me")], resolved),
        ("reset", [option, ("window", 3, "month")], resolved),
    ]
    for sub, options, res in cases:
        payload = app.discord.make_slash_interaction(
            "budget",
            options,
            subcommand=sub,
            resolved=res,
            user_id=MEMBER_ID,
            permissions=DEFAULT_PERMISSIONS,
        )
        await app.discord.send_interaction(payload)
        assert "Manage Server" in (await app.reply_to(payload)).content
    assert app.query("SELECT COUNT(*) FROM ledger") == [(0,)]
    assert app.query("SELECT COUNT(*) FROM role_tiers") == [(0,)]
    assert app.query("SELECT COUNT(*) FROM audit_log") == [(0,)]


async def test_usage_report_totals_top_spenders_and_outcomes(app: App) -> None:
    """/budget usage shows the month's total, who spent most, and videos by outcome."""
    from tests.fakes.runware import Outcome

    app.runware.next_outcome(Outcome.success(cost_usd=0.27), Outcome.failure("timeoutProvider"))
    first = await app.animate(user_id=MEMBER_ID)
    await app.reply_to(first, "accepted")
    await app.delivered(1)
    second = await app.animate(user_id=MEMBER_ID + 1)
    await app.reply_to(second, "accepted")
    await app.delivered(2)
    text = await budget(app, "usage")
    assert "**Spending this month**: $0.27" in text
    assert f"<@{MEMBER_ID}> $0.27" in text and f"<@{MEMBER_ID + 1}>" not in text
    assert "Videos: 2 (1 succeeded, 1 failed)" in text


async def test_export_is_a_csv_of_the_ledger(app: App) -> None:
    """/budget export attaches a CSV whose rows, parsed back, are exactly the ledger's."""
    import csv
    import io

    first = await app.animate(user_id=MEMBER_ID)
    await app.reply_to(first, "accepted")
    await app.delivered(1)
    option, resolved = member_option("member", MEMBER_ID + 5)
    await admin_command(
        app, "grant", [option, ("amount", 3, "1.25"), ("reason", 3, "bug bounty, thanks")], resolved
    )
    payload = app.discord.make_slash_interaction(
        "budget", [], subcommand="export", user_id=ADMIN_ID, permissions=DEFAULT_PERMISSIONS | MANAGE_GUILD
    )
    await app.discord.send_interaction(payload)
    reply = await app.reply_to(payload, "The ledger")
    (attachment,) = reply.attachments
    assert attachment.filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(attachment.data.decode())))
    ledger = app.query("SELECT user_id, job_id, kind, amount_micros, reason FROM ledger ORDER BY id")
    assert [
        (
            int(r["member_id"]),
            int(r["job"]) if r["job"] else None,
            r["kind"],
            round(float(r["amount_usd"]) * 1_000_000),
            r["reason"] or None,
        )
        for r in rows
    ] == ledger
    assert {r["kind"] for r in rows} == {"reserve", "release", "settle", "grant"}
    assert all(r["time_utc"].endswith("+00:00") for r in rows)


async def test_export_keeps_reasons_from_becoming_formulas(app: App) -> None:
    """Reasons that a spreadsheet would run as formulas are exported behind a `'`; amounts stay numbers."""
    import csv
    import io

    reasons = ["=1+1", "@SUM(A1)", "+1", "-1", "\t=1", '=HYPERLINK("http://x.test","a, b")']
    option, resolved = member_option("member", MEMBER_ID)
    for reason in reasons:
        await admin_command(app, "grant", [option, ("amount", 3, "1"), ("reason", 3, reason)], resolved)
    payload = app.discord.make_slash_interaction(
        "budget", [], subcommand="export", user_id=ADMIN_ID, permissions=DEFAULT_PERMISSIONS | MANAGE_GUILD
    )
    await app.discord.send_interaction(payload)
    (attachment,) = (await app.reply_to(payload, "The ledger")).attachments
    header, *rows = list(csv.reader(io.StringIO(attachment.data.decode())))
    assert all(len(row) == len(header) for row in rows)
    assert [row[header.index("reason")] for row in rows] == [f"'{reason}" for reason in reasons]
    assert [row[header.index("amount_usd")] for row in rows] == ["-1.000000"] * len(reasons)


async def test_member_usage_lists_their_last_videos(app: App) -> None:
    """/usage ends with the member's last videos: number, length, cost, outcome."""
    first = await app.animate(audio=media.wav(3.0))
    await app.reply_to(first, "accepted")
    await app.delivered(1)
    payload = app.discord.make_slash_interaction("usage")
    await app.discord.send_interaction(payload)
    reply = await app.reply_to(payload, "Your last videos")
    assert "#1 · 3.0 s · $0.42 · ready · <t:" in reply.content


async def test_budget_alerts_are_posted_once_per_threshold(app: App) -> None:
    """At 50 %, 80 % and 100 % of the monthly budget the alerts channel gets one post each, no more."""
    from tests.fakes.discord_fixtures import NSFW_CHANNEL_ID as LOG_CHANNEL_ID

    channel = {"id": str(LOG_CHANNEL_ID), "name": "after-dark", "type": 0, "permissions": "0"}
    payload = app.discord.make_slash_interaction(
        "budget",
        [("budget", 3, "1.00"), ("log_channel", 7, str(LOG_CHANNEL_ID))],
        subcommand="set",
        resolved={"channels": {str(LOG_CHANNEL_ID): channel}},
        user_id=ADMIN_ID,
        permissions=DEFAULT_PERMISSIONS | MANAGE_GUILD,
    )
    await app.discord.send_interaction(payload)
    assert f"Alerts channel: <#{LOG_CHANNEL_ID}>" in (await app.reply_to(payload, "Saved")).content

    def alerts() -> list[str]:
        return [m.content for m in app.discord.messages_in(LOG_CHANNEL_ID) if "monthly budget" in m.content]

    # $0.30 three times (30 %, 60 %, 90 %), then a refused $0.30 (the budget is reached) and another. The
    # jobs keep rendering: one settled at Runware's cost meanwhile would change the figures.
    app.runware.polls_to_finish = 10**6
    for i in range(5):
        job = await app.animate(audio=media.wav(3.0), user_id=MEMBER_ID + i)
        await app.reply_to(job, "")
    await app.discord.wait_for(lambda: len(alerts()) == 3, timeout=10)
    await asyncio.sleep(0.3)
    texts = alerts()
    assert len(texts) == 3
    assert "50%" in texts[0] and "80%" in texts[1]
    assert "reached its $1.00 monthly budget ($0.90 spent; the next video would go over)" in texts[2]
    # Raising the budget arms the alerts again for the new amount: $1.20 of $2.00 is past 50 %.
    await budget(app, "set", ("budget", 3, "2"))
    job = await app.animate(audio=media.wav(3.0), user_id=MEMBER_ID + 9)
    await app.reply_to(job, "accepted")
    await app.discord.wait_for(lambda: len(alerts()) == 4, timeout=10)
    assert "50% of its $2.00 monthly budget" in alerts()[3]
    texts = alerts()
    assert all("<t:" in t for t in texts)
