"""Settings: defaults, names, validation messages that name the variable, secrets kept secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import SafetyMode, Settings, describe_settings_error


def settings_from(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key in list(Settings.model_fields):
        monkeypatch.delenv(key.upper(), raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def error_text(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    with pytest.raises(ValidationError) as info:
        settings_from(monkeypatch, **env)
    return describe_settings_error(info.value)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the two secrets are required; the rest have the documented defaults."""
    s = settings_from(monkeypatch, DISCORD_TOKEN="t" * 20, RUNWARE_API_KEY="k" * 20)
    assert s.runware_api_url == "https://api.runware.ai/v1"
    assert s.database_url == "sqlite:///data/bot.db"
    assert s.max_audio_seconds == 30
    assert s.safety_mode is SafetyMode.FAST
    assert s.dev_guild_id is None


def test_missing_token_names_the_variable_and_where_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DISCORD_TOKEN: the message names it and points at the developer portal."""
    text = error_text(monkeypatch, RUNWARE_API_KEY="k" * 20)
    assert "DISCORD_TOKEN is not set" in text
    assert "discord.com/developers/applications" in text


def test_bad_value_names_the_variable_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value is reported by variable name, and the value itself is not printed."""
    text = error_text(
        monkeypatch, DISCORD_TOKEN="t" * 20, RUNWARE_API_KEY="k" * 20, SAFETY_MODE="paranoid-secret"
    )
    assert "SAFETY_MODE is invalid" in text
    assert "paranoid-secret" not in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("POLL_INITIAL_DELAY_S", "-1"),
        ("QUOTA_USER_MAX_ACTIVE_JOBS", "0"),
        ("MAX_AUDIO_SECONDS", "31"),
        ("DATABASE_URL", "mysql://x"),
        ("RUNWARE_API_URL", "ftp://x"),
        ("LOG_LEVEL", "LOUD"),
        ("DEV_GUILD_ID", "abc"),
        ("HTTP_PORT", "70000"),
        ("PUBLIC_URL", "bot.example.org"),
        ("PUBLIC_URL", "ftp://bot.example.org"),
        ("PUBLIC_URL", "https://bot.example.org/?key=1"),
        # A port urlsplit cannot read: the check's line and Runware's URL would carry it.
        ("PUBLIC_URL", "https://bot.example.org:99999"),
        ("PUBLIC_URL", "https://bot.example.org:abc/vq"),
    ],
)
def test_invalid_values_stop_start_up(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """Each invalid value is named in the message."""
    text = error_text(monkeypatch, DISCORD_TOKEN="t" * 20, RUNWARE_API_KEY="k" * 20, **{name: value})
    assert f"{name} is invalid" in text


def test_secrets_are_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token and key never appear in the settings' repr."""
    s = settings_from(monkeypatch, DISCORD_TOKEN="tok-SECRET-123456", RUNWARE_API_KEY="key-SECRET-123456")
    assert "SECRET" not in repr(s) and "SECRET" not in str(s)


def test_bot_owner_ids_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    """BOT_OWNER_IDS takes a comma-separated list of Discord ids; unset means nobody."""
    s = settings_from(monkeypatch, DISCORD_TOKEN="t" * 20, RUNWARE_API_KEY="k" * 20, BOT_OWNER_IDS="12, 34")
    assert s.bot_owner_ids == [12, 34]
    assert settings_from(monkeypatch, DISCORD_TOKEN="t" * 20, RUNWARE_API_KEY="k" * 20).bot_owner_ids == []
    assert "BOT_OWNER_IDS is invalid" in error_text(
        monkeypatch, DISCORD_TOKEN="t" * 20, RUNWARE_API_KEY="k" * 20, BOT_OWNER_IDS="12,abc"
    )


def test_shards_are_optional_and_checked_against_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """SHARD_COUNT and SHARD_IDS: unset, no sharding; SHARD_IDS comma-separated, sorted; it needs
    SHARD_COUNT and each id below it, and the messages say so."""
    secrets = {"DISCORD_TOKEN": "t" * 20, "RUNWARE_API_KEY": "k" * 20}
    unset = settings_from(monkeypatch, **secrets)
    assert (unset.shard_count, unset.shard_ids) == (None, [])
    both = settings_from(monkeypatch, **secrets, SHARD_COUNT="4", SHARD_IDS="3, 1")
    assert (both.shard_count, both.shard_ids) == (4, [1, 3])
    assert settings_from(monkeypatch, **secrets, SHARD_COUNT="2", SHARD_IDS="").shard_ids == []
    text = error_text(monkeypatch, **secrets, SHARD_IDS="1")
    assert "SHARD_IDS is invalid" in text and "needs SHARD_COUNT" in text
    text = error_text(monkeypatch, **secrets, SHARD_COUNT="2", SHARD_IDS="0,2")
    assert "SHARD_IDS is invalid" in text and "has 2" in text and "from 0 to SHARD_COUNT - 1 (1)" in text
    assert "names a shard twice" in error_text(monkeypatch, **secrets, SHARD_COUNT="2", SHARD_IDS="1,1")
    assert "SHARD_COUNT is invalid" in error_text(monkeypatch, **secrets, SHARD_COUNT="0")
    assert "SHARD_IDS is invalid" in error_text(monkeypatch, **secrets, SHARD_COUNT="2", SHARD_IDS="a")


def test_the_http_server_is_off_by_default_and_public_url_is_a_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HTTP_PORT: no server; HTTP_HOST defaults to loopback; PUBLIC_URL loses a trailing slash (the
    webhook path is appended to it) and an empty one is unset."""
    s = settings_from(monkeypatch, DISCORD_TOKEN="t" * 20, RUNWARE_API_KEY="k" * 20)
    assert (s.http_port, s.http_host, s.public_url) == (None, "127.0.0.1", None)
    s = settings_from(
        monkeypatch,
        DISCORD_TOKEN="t" * 20,
        RUNWARE_API_KEY="k" * 20,
        HTTP_PORT="8080",
        PUBLIC_URL="https://bot.example.org/ventriloquist/",
    )
    assert (s.http_port, s.public_url) == (8080, "https://bot.example.org/ventriloquist")
    s = settings_from(
        monkeypatch, DISCORD_TOKEN="t" * 20, RUNWARE_API_KEY="k" * 20, HTTP_PORT="", PUBLIC_URL=""
    )
    assert (s.http_port, s.public_url) == (None, None)
