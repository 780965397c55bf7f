"""A guild's configuration in the store (GuildConfigStore): settings and limits, changed by patches."""

from __future__ import annotations

import json

from core.models import GuildLimits, GuildLimitsPatch, GuildSettings, GuildSettingsPatch
from core.ports import Store
from tests.storage.builders import (
    NOW,
    audit,
)
from tests.storage.conftest import Backend, Query


async def test_guild_settings_default_to_consent_on_and_dms_and_withholding_off(store: Store) -> None:
    """A guild that chose nothing asks for consent, sends no DMs and only spoilers flagged videos."""
    settings = await store.guild_settings(5)
    assert settings == GuildSettings(5, None, None, (), True, False, False)


async def test_switches_persist_and_every_change_is_audited(
    store: Store, query: Query, backend: Backend
) -> None:
    """Each change is stored (and read back by another connection) with an audit row naming who made it."""
    await store.update_guild_settings(5, GuildSettingsPatch(consent_required=False), actor_id=90, now=NOW)
    await store.update_guild_settings(5, GuildSettingsPatch(dms_allowed=True), actor_id=91, now=NOW + 1)
    await store.update_guild_settings(
        5, GuildSettingsPatch(withhold_flagged=True, safety_mode="full"), 92, NOW + 2
    )
    other = await backend.open()
    try:
        settings = await other.guild_settings(5)
    finally:
        await other.close()
    assert (settings.consent_required, settings.dms_allowed, settings.withhold_flagged) == (False, True, True)
    assert settings.safety_mode == "full"
    assert await store.guild_settings(6) == GuildSettings(6)
    logged = query("SELECT guild_id, actor_id, action, detail, created_at FROM audit_log ORDER BY id")
    assert [(g, a, act, json.loads(d), t) for g, a, act, d, t in logged] == [
        (5, 90, "settings.set", {"consent_required": 0}, NOW),
        (5, 91, "settings.set", {"dms_allowed": 1}, NOW + 1),
        (5, 92, "settings.set", {"safety_mode": "full", "withhold_flagged": 1}, NOW + 2),
    ]


async def test_a_switch_set_back_to_none_returns_to_its_default(store: Store) -> None:
    """None in a switch column means the default: consent is required again."""
    await store.update_guild_settings(
        5, GuildSettingsPatch(consent_required=False, dms_allowed=True), 90, NOW
    )
    await store.update_guild_settings(5, GuildSettingsPatch(consent_required=None, dms_allowed=None), 90, NOW)
    settings = await store.guild_settings(5)
    assert (settings.consent_required, settings.dms_allowed) == (True, False)


async def test_an_empty_patch_changes_no_setting_but_is_recorded(store: Store, query: Query) -> None:
    """A patch that sets nothing leaves the settings at their defaults (the admin's call is still audited)."""
    await store.update_guild_settings(5, GuildSettingsPatch(), 90, NOW)
    assert await store.guild_settings(5) == GuildSettings(5)
    assert audit(query) == [(5, 90, "settings.set", None, NOW)]


async def test_every_limit_of_a_patch_is_stored_and_read_back(store: Store, query: Query) -> None:
    """Each field of GuildLimitsPatch reaches its column; fields left UNSET keep their value."""
    everything = GuildLimitsPatch(
        user_daily_micros=1_000_000,
        user_monthly_micros=5_000_000,
        max_active_jobs=2,
        cooldown_s=30.0,
        guild_monthly_micros=50_000_000,
        log_channel_id=123,
        confirm_above_micros=700_000,
    )
    stored = await store.update_guild_limits(5, everything, actor_id=90, now=NOW)
    assert stored == GuildLimits(5, 1_000_000, 5_000_000, 2, 30.0, 50_000_000, 123, 700_000)
    after = await store.update_guild_limits(
        5, GuildLimitsPatch(max_active_jobs=None), actor_id=91, now=NOW + 1
    )
    assert after == GuildLimits(5, 1_000_000, 5_000_000, None, 30.0, 50_000_000, 123, 700_000)
    assert await store.guild_limits(5) == after and await store.guild_limits(6) is None
    assert [(a, action) for _, a, action, _, _ in audit(query)] == [(90, "budget.set"), (91, "budget.set")]


async def test_every_setting_of_a_patch_is_stored_and_read_back(store: Store) -> None:
    """Each field of GuildSettingsPatch reaches its column; fields left UNSET keep their value."""
    everything = GuildSettingsPatch(
        safety_mode="full",
        mod_log_channel_id=77,
        consent_required=False,
        dms_allowed=True,
        withhold_flagged=True,
    )
    await store.update_guild_settings(5, everything, actor_id=90, now=NOW)
    assert await store.guild_settings(5) == GuildSettings(5, "full", 77, (), False, True, True)
    await store.update_guild_settings(5, GuildSettingsPatch(mod_log_channel_id=None), actor_id=90, now=NOW)
    assert await store.guild_settings(5) == GuildSettings(5, "full", None, (), False, True, True)
