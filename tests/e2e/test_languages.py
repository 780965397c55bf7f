"""The members' languages through real discord.py: replies in the interaction's locale (de, es-ES, es-419
served by es-ES, pt-BR; English for anything else), public posts in the server's, and the synced commands
carrying their localised names and descriptions."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cogs._i18n import words
from core.models import GuildSettingsPatch
from tests import media_factory as media
from tests.e2e.conftest import CHANNEL, MANAGE_GUILD, MANAGE_MESSAGES, STRING, App, labels
from tests.fakes.discord import DEFAULT_PERMISSIONS, FakeMessage
from tests.fakes.discord_fixtures import GUILD_ID, NSFW_CHANNEL_ID

LOG_CHANNEL_ID = 300_000_000_000_000_019
REPORTER_ID = 200_000_000_000_000_321
ADMIN_ID = 200_000_000_000_000_777

# What a member reads, by their Discord locale: /usage's title, /animate's acknowledgement and how long it
# follows the job, a refused file.
ENGLISH = (
    "**Your usage**",
    "🎬 **Job #1 accepted.**",
    "This message follows the job until <t:",
    "That image file isn't a PNG, JPEG or WEBP.",
)
SPANISH = (
    "**Tu uso**",
    "🎬 **Trabajo #1 aceptado.**",
    "Este mensaje sigue el trabajo hasta las <t:",
    "Ese archivo de imagen no es PNG, JPEG ni WEBP.",
)
READS = {
    "de": (
        "**Deine Nutzung**",
        "🎬 **Auftrag #1 angenommen.**",
        "Diese Nachricht verfolgt den Auftrag bis <t:",
        "Diese Bilddatei ist kein PNG, JPEG oder WEBP.",
    ),
    "es-ES": SPANISH,
    "es-419": SPANISH,  # Latin American Spanish reads Spain's
    "pt-BR": (
        "**Seu uso**",
        "🎬 **Pedido #1 aceito.**",
        "Esta mensagem acompanha o pedido até <t:",
        "Esse arquivo de imagem não é PNG, JPEG nem WEBP.",
    ),
    "fr": ENGLISH,  # no French catalogue: English
    "en-US": ENGLISH,
}
# Discord's rule for localised command and option names.
NAME = re.compile(r"^[-_\w]{1,32}$")


async def private_reply(app: App, payload: dict[str, Any], contains: str = "") -> FakeMessage:
    reply = await app.reply_to(payload, contains)
    assert reply.ephemeral
    return reply


@pytest.mark.parametrize("locale", sorted(READS))
async def test_replies_read_in_the_members_language(app: App, locale: str) -> None:
    """/usage, a refused /animate and an accepted one (its acknowledgement kept up to date in the same
    language) answer in the interaction's locale."""
    usage_title, accepted, follows, refused = READS[locale]
    usage = app.discord.make_slash_interaction("usage", locale=locale)
    await app.discord.send_interaction(usage)
    assert (await private_reply(app, usage)).content.startswith(usage_title)

    bad = await app.animate(image=b"hello, I am not a picture\n", locale=locale)
    assert (await private_reply(app, bad)).content == refused

    good = await app.animate(audio=media.wav(3.0), locale=locale)
    ack = await private_reply(app, good, accepted)
    assert "$0.30" in ack.content and follows in ack.content  # money stays in dollars


# /usage's line for a video still being made, by locale.
IN_PROGRESS = {"de": "in Arbeit", "es-ES": "en curso", "es-419": "en curso", "pt-BR": "em andamento"}


@pytest.mark.parametrize("locale", sorted(IN_PROGRESS))
async def test_usage_lists_a_video_in_progress_in_the_members_language(app: App, locale: str) -> None:
    """/usage's list of the member's last videos says "in progress" in their language too."""
    app.runware.polls_to_finish = 10**6  # the video stays in progress
    good = await app.animate(audio=media.wav(3.0), locale=locale)
    await private_reply(app, good, "#1")
    usage = app.discord.make_slash_interaction("usage", locale=locale)
    await app.discord.send_interaction(usage)
    line = next(line for line in (await private_reply(app, usage)).content.splitlines() if "#1 ·" in line)
    assert f" · {IN_PROGRESS[locale]} · <t:" in line and "in progress" not in line


async def test_public_posts_read_in_the_servers_language(app: App) -> None:
    """The result post and its buttons follow the server's language, not the member's; a button's private
    answer follows whoever pressed it; the moderation log reads in the server's language too."""
    app.discord.add_text_channel(GUILD_ID, LOG_CHANNEL_ID, "mod-log")
    await app.store.update_guild_settings(
        GUILD_ID, GuildSettingsPatch(mod_log_channel_id=LOG_CHANNEL_ID), 7, 0
    )
    await app.discord.set_guild_locale(GUILD_ID, "pt-BR")
    await app.discord.wait_for(lambda: str(app.bot.get_guild(GUILD_ID).preferred_locale) == "pt-BR")  # type: ignore[union-attr]

    payload = await app.animate(locale="de")
    await private_reply(app, payload, "🎬 **Auftrag #1 angenommen.**")
    post = await app.post_in_channel("seu retrato falante está pronto")
    assert "Pedido #1" in post.content and "Vídeo gerado por IA" in post.content
    assert labels(post) == ["Denunciar", "Excluir"]
    await app.delivered(1)

    report = await app.click(post, "Denunciar", user_id=REPORTER_ID, locale="es-419")
    assert (await private_reply(app, report)).content == "🚩 Gracias. Se ha avisado a los moderadores."
    logged = await app.discord.wait_for_message(lambda m: m.channel_id == LOG_CHANNEL_ID, 10.0)
    assert logged.content.startswith("🚩 **Denúncia** · pedido #1 de ") and "denunciado por" in logged.content
    assert "Excluir vídeo" in labels(logged)


async def test_budget_alerts_read_in_the_servers_language(app: App) -> None:
    """A budget alert is a public post: the server's language, whoever set the budget or spent it."""
    await app.discord.set_guild_locale(GUILD_ID, "de")
    await app.discord.wait_for(lambda: str(app.bot.get_guild(GUILD_ID).preferred_locale) == "de")  # type: ignore[union-attr]
    alerts = NSFW_CHANNEL_ID  # a channel the bot knows from GUILD_CREATE
    channel = {"id": str(alerts), "name": "after-dark", "type": 0, "permissions": "0"}
    payload = app.discord.make_slash_interaction(
        "budget",
        [("budget", STRING, "0.50"), ("log_channel", CHANNEL, str(alerts))],
        subcommand="set",
        resolved={"channels": {str(alerts): channel}},
        user_id=ADMIN_ID,
        permissions=DEFAULT_PERMISSIONS | MANAGE_GUILD,
        locale="es-ES",
    )
    await app.discord.send_interaction(payload)
    saved = (await private_reply(app, payload)).content
    assert saved.startswith("Guardado:\n· Presupuesto mensual: $0.50\n")
    app.runware.polls_to_finish = 10**6  # $0.30 of $0.50 stays reserved: 60 %
    await private_reply(
        app, await app.animate(audio=media.wav(3.0), locale="pt-BR"), "🎬 **Pedido #1 aceito.**"
    )
    alert = await app.discord.wait_for_message(lambda m: m.channel_id == alerts, 10.0)
    assert alert.content.startswith(
        "⚠️ Dieser Server hat 50 % seines Monatsbudgets von $0.50 verbraucht ($0.30)."
    )


async def test_admin_commands_answer_in_the_admins_language(app: App) -> None:
    """/budget set's confirmation and refusals, and /settings show, in the admin's language."""

    async def admin(name: str, sub: str, *options: tuple[str, int, Any], locale: str) -> str:
        payload = app.discord.make_slash_interaction(
            name,
            list(options),
            subcommand=sub,
            user_id=ADMIN_ID,
            permissions=DEFAULT_PERMISSIONS | MANAGE_GUILD | MANAGE_MESSAGES,
            locale=locale,
        )
        await app.discord.send_interaction(payload)
        return (await private_reply(app, payload)).content

    saved = await admin("budget", "set", ("daily", STRING, "2.50"), locale="de")
    assert saved.startswith("Gespeichert:\n· Pro Mitglied und Tag: $2.50\n")
    refused = await admin("budget", "set", ("budget", STRING, "lots"), locale="es-419")
    assert refused == (
        "`lots` no es un importe para el presupuesto mensual del servidor. "
        "Usa dólares como `2.50`, o `unlimited`, o `default`."
    )
    shown = await admin("settings", "show", locale="pt-BR")
    assert shown.startswith("**Configurações de moderação**\n/animar permitido em: todos os canais")
    nobody = await admin("moderation", "bans", locale="fr")
    assert nobody == "Nobody is banned from the bot here."


async def test_synced_commands_carry_their_localisations(app: App) -> None:
    """The commands PUT to Discord carry names and descriptions for de, es-ES, es-419 and pt-BR (the
    Translator is asked per Discord locale), valid for Discord, down to options, subcommands and choices."""
    commands = {c["name"]: c for c in app.discord.synced_commands(GUILD_ID)}
    animate = commands["animate"]
    assert animate["name_localizations"] == {
        "de": "animieren",
        "es-ES": "animar",
        "es-419": "animar",
        "pt-BR": "animar",
    }
    assert animate["description_localizations"]["de"] == "Lass ein Porträt deinen Audioclip sprechen."
    assert commands["Animate"]["name_localizations"]["pt-BR"] == "Animar"
    budget = commands["budget"]
    assert budget["name_localizations"]["es-419"] == "presupuesto"
    (set_,) = [o for o in budget["options"] if o["name"] == "set"]
    assert set_["name_localizations"]["de"] == "festlegen"
    assert {o["name_localizations"]["pt-BR"] for o in set_["options"]} >= {"diário", "orçamento"}

    def expected(english: str) -> dict[str, str]:
        """What the catalogues say for each Discord locale (left out where it reads as the English)."""
        translated = {locale: words(locale).gettext(english) for locale in ("de", "es-ES", "es-419", "pt-BR")}
        return {locale: text for locale, text in translated.items() if text != english}

    def check(item: dict[str, Any], slash: bool) -> int:
        """Every localisation of a command, option or choice there and valid for Discord; how many."""
        names = item.get("name_localizations") or {}
        assert names == expected(item["name"]), item["name"]
        for name in names.values():
            if slash and "value" not in item:  # a slash command's, subcommand's or option's name
                assert NAME.match(name) and name == name.lower(), name
            assert len(name) <= (100 if "value" in item else 32), name
        if item.get("description"):
            descriptions = item.get("description_localizations") or {}
            assert descriptions == expected(item["description"]), item["description"]
            assert all(1 <= len(d) <= 100 for d in descriptions.values()), descriptions
        options = item.get("options", [])
        for locale in ("de", "es-ES", "es-419", "pt-BR"):
            # Discord refuses two options (or subcommands) of one command with the same name.
            shown = [(o.get("name_localizations") or {}).get(locale, o["name"]) for o in options]
            assert len(shown) == len(set(shown)), (item["name"], locale, shown)
        children = [*options, *item.get("choices", [])]
        return len(names) + sum(check(child, slash) for child in children)

    found = sum(check(command, command.get("type", 1) == 1) for command in commands.values())
    slash = [c for c in commands.values() if c.get("type", 1) == 1]
    for locale in ("de", "es-ES", "es-419", "pt-BR"):
        shown = [(c.get("name_localizations") or {}).get(locale, c["name"]) for c in slash]
        assert len(shown) == len(set(shown)), (locale, shown)  # and no two slash commands alike
    assert found > 200  # the whole tree: every command, option and choice, in four locales
