"""The members' languages: which catalogue serves a Discord locale, the words of one language (`Words`),
and the command tree's Translator (command and option names, descriptions, choices).

The catalogues are gettext files in `locales/<language>/LC_MESSAGES/messages.po`, managed with Babel
(`pybabel extract/update/compile`, see the README); the bot reads their compiled `.mo` files with the
standard library's `gettext`, so Babel is needed only to edit them. A message id is the English sentence
itself, with named placeholders (`{job}`) that `Words` fills in after translating; English needs no
catalogue and is what every other locale falls back to.
"""

from __future__ import annotations

import functools
import gettext
import logging
import re
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"

# Discord's locale → the catalogue that serves it. Latin American Spanish reads Spain's (the issue asks
# for es-419 to be served by es-ES); every other locale reads English.
CATALOGUES: dict[str, str] = {"de": "de", "es-ES": "es_ES", "es-419": "es_ES", "pt-BR": "pt_BR"}

# Discord's rule for command and option names (lowercase where the script has case): 1–32 letters,
# digits, "-" or "_".
NAME_PATTERN = re.compile(r"^[-_\w]{1,32}$")
MAX_DESCRIPTION = 100


def N_(message: str) -> str:
    """Mark a message for the catalogue without translating it here (a command's description, an option's
    name): it is translated where it is shown, by `Words` or the Translator."""
    return message


class Words:
    """One language's words: `_("Job #{job} is ready.", job=3)` translates, then fills in the values."""

    def __init__(self, language: str, catalogue: gettext.NullTranslations) -> None:
        self.language = language
        self._catalogue = catalogue

    def __call__(self, message: str, /, **values: Any) -> str:
        text = self._catalogue.gettext(message)
        return text.format(**values) if values else text

    def ngettext(self, singular: str, plural: str, count: int, /, **values: Any) -> str:
        """A sentence with a count in it, in the language's plural form for `count` (filled in as
        `{count}`)."""
        return self._catalogue.ngettext(singular, plural, count).format(count=count, **values)

    def gettext(self, message: str) -> str:
        """The catalogue's translation of a message as it is (the message itself when it has none)."""
        return self._catalogue.gettext(message)

    def __repr__(self) -> str:
        return f"Words({self.language!r})"


ENGLISH = Words("en", gettext.NullTranslations())


@functools.cache
def _catalogue_words(catalogue: str) -> Words:
    translations = gettext.translation(DOMAIN, LOCALES_DIR, languages=[catalogue])
    return Words(catalogue, translations)


def words(locale: discord.Locale | str | None) -> Words:
    """The words for a Discord locale (`de`, `es-ES`, `es-419`, `pt-BR`; anything else reads English)."""
    catalogue = CATALOGUES.get(str(locale)) if locale is not None else None
    return ENGLISH if catalogue is None else _catalogue_words(catalogue)


def every_language() -> list[Words]:
    """English and every catalogue, once each."""
    return [ENGLISH, *(_catalogue_words(c) for c in sorted(set(CATALOGUES.values())))]


def member_words(interaction: discord.Interaction[Any]) -> Words:
    """The words for what only the member reads: their own Discord language."""
    return words(interaction.locale)


def server_words(interaction: discord.Interaction[Any]) -> Words:
    """The words for what the channel reads: the server's language (its Community "primary language")."""
    return words(interaction.guild_locale)


def guild_words(guild: discord.Guild | None) -> Words:
    """The words for a post made later, without an interaction (a result, a budget alert, a moderation
    log entry): the server's language as it is at post time, English when the server is unknown."""
    return words(guild.preferred_locale) if guild is not None else ENGLISH


class CommandTranslator(app_commands.Translator):
    """Names, descriptions and choices of the commands from the catalogues, for each locale Discord has.

    A name whose translation breaks Discord's rules is left out (Discord shows the English one) rather than
    failing the whole sync; the catalogue test keeps that from happening."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        catalogue = CATALOGUES.get(str(locale))
        if catalogue is None:
            return None
        text = _catalogue_words(catalogue).gettext(string.message)
        if text == string.message:
            return None
        if isinstance(context.data, app_commands.ContextMenu):
            # A context menu's name is shown as it is (spaces and capitals allowed), up to 32 characters.
            return text if len(text) <= 32 else None
        if context.location in NAME_LOCATIONS and not valid_name(text):
            log.warning("the %s name %r is not a valid command name; left out", locale, text)
            return None
        return text[:MAX_DESCRIPTION]


NAME_LOCATIONS = (
    app_commands.TranslationContextLocation.command_name,
    app_commands.TranslationContextLocation.group_name,
    app_commands.TranslationContextLocation.parameter_name,
)


def valid_name(name: str) -> bool:
    """Whether Discord accepts this as a command, group or option name."""
    return NAME_PATTERN.match(name) is not None and name == name.lower()
