"""The translation catalogues (locales/): every message of the code in every language, placeholders kept,
plural forms complete, the compiled .mo files up to date, and command localisations valid for Discord."""

from __future__ import annotations

import gettext
import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from cogs._i18n import CATALOGUES, DOMAIN, LOCALES_DIR, valid_name, words
from core.jobs import UPLOAD_INTERRUPTED_REASON
from core.runner import LOST_REASON, NO_VIDEO_REASON, UPLOAD_STALE_REASON

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {
    "_": None,
    "N_": None,
    "words": None,
    "ngettext": (1, 2),
    "UserFacingError": None,
    "InvalidMedia": None,
}
LANGUAGES = sorted(set(CATALOGUES.values()))
_PERCENT = re.compile(r"%\(\w+\)[sd]|%[sd]")


def _catalogue(language: str):  # type: ignore[no-untyped-def]
    with open(LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po", "rb") as file:
        return read_po(file)


def _placeholders(text: str) -> set[str]:
    names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    return names | set(_PERCENT.findall(text))


def _code_messages() -> set[str]:
    method_map = [("bot.py", "python"), ("cogs/**.py", "python"), ("core/**.py", "python")]
    found: set[str] = set()
    for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map, keywords=KEYWORDS):
        if isinstance(message, tuple):
            found.add(message[0])
        else:
            found.add(message)
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_of_the_code_is_translated(language: str) -> None:
    """Every message the code marks is in the catalogue, translated, not fuzzy, with the same placeholders
    and every plural form."""
    catalogue = _catalogue(language)
    ids = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalogue if m.id}
    missing = _code_messages() - set(ids)
    assert not missing, f"not in locales/{language}: {sorted(missing)[:5]} (run the pybabel commands)"
    for message in ids.values():
        assert not message.fuzzy, message.id
        singular = message.id if isinstance(message.id, str) else message.id[0]
        translations = message.string if isinstance(message.string, tuple) else (message.string,)
        assert len(translations) == (catalogue.num_plurals if isinstance(message.id, tuple) else 1)
        for text in translations:
            assert text, f"{language}: no translation for {singular!r}"
            assert _placeholders(text) == _placeholders(singular), (language, singular, text)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_of_the_catalogue_is_looked_up_by_the_code(language: str) -> None:
    """No entry the code no longer marks (obsolete or `#~` entries included): a translator never spends
    time on a sentence nobody reads (`pybabel update --ignore-obsolete` drops them)."""
    catalogue = _catalogue(language)
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in catalogue if m.id}
    unused = ids - _code_messages()
    assert not unused, f"locales/{language} has entries the code never looks up: {sorted(unused)[:5]}"
    assert not catalogue.obsolete, sorted(catalogue.obsolete)[:5]


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalogue_matches_the_po_file(language: str) -> None:
    """The committed .mo (what the bot reads) says what the .po says: `pybabel compile` was run."""
    with open(LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo", "rb") as file:
        compiled = gettext.GNUTranslations(file)
    for message in _catalogue(language):
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            for count in (1, 2, 5):
                got = compiled.ngettext(message.id[0], message.id[1], count)
                assert got in message.string, (language, message.id[0])
        else:
            assert compiled.gettext(message.id) == message.string, (language, message.id)


def test_locales_choose_their_catalogue_and_fall_back_to_english() -> None:
    """de, es-ES, es-419 (served by es-ES) and pt-BR read their language; anything else reads English."""
    cancel = "Cancelled. Nothing was charged."
    assert words("de")(cancel) == "Abgebrochen. Es wurde nichts berechnet."
    assert words("es-ES")(cancel) == words("es-419")(cancel) == "Cancelado. No se ha cobrado nada."
    assert words("pt-BR")(cancel) == "Cancelado. Nada foi cobrado."
    assert words("fr")(cancel) == words("en-US")(cancel) == words(None)(cancel) == cancel


def test_command_names_are_valid_for_discord() -> None:
    """Translated command, subcommand and option names follow Discord's rule (lowercase, no spaces, ≤ 32)
    (the end-to-end test checks every name of the synced tree)."""
    names = (
        *("animate", "usage", "videos", "image", "audio", "format", "quality"),
        *(
            "budget",
            "show",
            "set",
            "tier",
            "grant",
            "reset",
            "export",
            "daily",
            "monthly",
            "active",
            "cooldown",
        ),
        *("confirm", "log_channel", "role", "remove", "member", "amount", "reason", "window", "period"),
        *("settings", "channel", "allow", "safety", "mode", "log", "consent", "required", "dms", "allowed"),
        *(
            "flagged",
            "withhold_everywhere",
            "moderation",
            "ban",
            "unban",
            "bans",
            "everywhere",
            "lookup",
            "job",
        ),
    )
    for language in LANGUAGES:
        for name in names:
            translated = _catalogue(language)[name]
            assert translated is not None and valid_name(translated.string), (language, name)


def test_no_message_is_marked_inside_an_f_string() -> None:
    """pybabel does not extract `_("…")` written inside an f-string's braces, so such words would stay
    English in every language (as "in progress" did in /usage): mark them outside the f-string."""
    inside = re.compile(r"""\{\s*(?:_|N_|words)\(\s*['"]""")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("cogs", "core")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if inside.search(line)
    ]
    found += [
        f"bot.py:{n}"
        for n, line in enumerate((ROOT / "bot.py").read_text().splitlines(), 1)
        if inside.search(line)
    ]
    assert not found, found


@pytest.mark.parametrize("locale", ["de", "es-ES", "pt-BR"])
@pytest.mark.parametrize(
    "reason", [LOST_REASON, NO_VIDEO_REASON, UPLOAD_STALE_REASON, UPLOAD_INTERRUPTED_REASON]
)
def test_the_reasons_a_job_fails_for_are_translated(locale: str, reason: str) -> None:
    """The runner stores why a job failed in English and the replies show it in the member's language
    (cogs/_ui.py): each reason it stores has a translation, or a German reply reads it in English."""
    assert words(locale)(reason) != reason
