"""A guild's configuration on PostgreSQL: limits, role tiers, moderation settings, the allow-list."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields

from core.models import GuildLimits, GuildLimitsPatch, GuildSettings, GuildSettingsPatch, RoleTier
from storage.postgres.connection import PostgresConnection, rowcount
from storage.postgres.rows import GUILD_LIMIT_COLUMNS, TIER_COLUMNS, guild_limits_from_row, role_tier_from_row
from storage.postgres.statements import audit

# Patch field -> column, fixed when this module loads: the only names an update writes into SQL.
_LIMIT_COLUMN = {f.name: f.name for f in fields(GuildLimitsPatch)}
_SETTING_COLUMN = {f.name: f.name for f in fields(GuildSettingsPatch)}


def _assignments(columns: dict[str, str], changes: Iterable[str]) -> str:
    """`col = $1, …` for the changed fields, in their order."""
    return ", ".join(f"{columns[name]} = ${n}" for n, name in enumerate(changes, start=1))


class PostgresGuildConfig(PostgresConnection):
    """GuildConfigStore on PostgreSQL."""

    async def guild_limits(self, guild_id: int) -> GuildLimits | None:
        """A guild's own limit choices, or None if it has made none."""
        rows = await self._fetch(
            f"SELECT {GUILD_LIMIT_COLUMNS} FROM guild_limits WHERE guild_id = $1", guild_id
        )
        return guild_limits_from_row(rows[0]) if rows else None

    async def update_guild_limits(
        self, guild_id: int, patch: GuildLimitsPatch, actor_id: int, now: float
    ) -> GuildLimits:
        """Apply an admin's changes to a guild's limits and record who did it, in one transaction.

        A value of None resets that field to the default."""
        changes = patch.changes()
        async with self._write() as db:
            await db.execute(
                "INSERT INTO guild_limits (guild_id, updated_at, updated_by) VALUES ($1, $2, $3) "
                "ON CONFLICT (guild_id) DO NOTHING",
                guild_id,
                now,
                actor_id,
            )
            if changes:
                n = len(changes)
                await db.execute(
                    f"UPDATE guild_limits SET {_assignments(_LIMIT_COLUMN, changes)}, updated_at = ${n + 1}, "
                    f"updated_by = ${n + 2} WHERE guild_id = ${n + 3}",
                    *changes.values(),
                    now,
                    actor_id,
                    guild_id,
                )
            await audit(db, guild_id, actor_id, "budget.set", changes, now)
            row = await db.fetchrow(
                f"SELECT {GUILD_LIMIT_COLUMNS} FROM guild_limits WHERE guild_id = $1", guild_id
            )
            assert row is not None
            return guild_limits_from_row(row)

    async def role_tiers(self, guild_id: int, role_ids: Iterable[int] | None = None) -> list[RoleTier]:
        """The guild's role tiers (only those of `role_ids` when given), by role id."""
        rows = await self._fetch(
            f"SELECT {TIER_COLUMNS} FROM role_tiers WHERE guild_id = $1 ORDER BY role_id", guild_id
        )
        wanted = None if role_ids is None else set(role_ids)
        return [role_tier_from_row(row) for row in rows if wanted is None or row["role_id"] in wanted]

    async def set_role_tier(self, guild_id: int, tier: RoleTier, actor_id: int, now: float) -> None:
        """Create or replace a role's tier, recorded with who did it."""
        async with self._write() as db:
            await db.execute(
                # SQLite's INSERT OR REPLACE: every column of the row is the new one.
                f"INSERT INTO role_tiers (guild_id, {TIER_COLUMNS}, updated_at, updated_by) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (guild_id, role_id) DO UPDATE SET "
                "daily_micros = excluded.daily_micros, monthly_micros = excluded.monthly_micros, "
                "max_active_jobs = excluded.max_active_jobs, cooldown_s = excluded.cooldown_s, "
                "updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                guild_id,
                tier.role_id,
                tier.daily_micros,
                tier.monthly_micros,
                tier.max_active_jobs,
                tier.cooldown_s,
                now,
                actor_id,
            )
            detail = {
                "role_id": tier.role_id,
                "daily_micros": tier.daily_micros,
                "monthly_micros": tier.monthly_micros,
                "max_active_jobs": tier.max_active_jobs,
                "cooldown_s": tier.cooldown_s,
            }
            await audit(db, guild_id, actor_id, "budget.tier.set", detail, now)

    async def remove_role_tier(self, guild_id: int, role_id: int, actor_id: int, now: float) -> bool:
        """Remove a role's tier; False if it had none. Recorded with who did it."""
        async with self._write() as db:
            status = await db.execute(
                "DELETE FROM role_tiers WHERE guild_id = $1 AND role_id = $2", guild_id, role_id
            )
            if rowcount(status) != 1:
                return False
            await audit(db, guild_id, actor_id, "budget.tier.remove", {"role_id": role_id}, now)
            return True

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        """A guild's moderation settings (defaults when it has chosen none)."""
        async with self._snapshot() as db:
            # One snapshot for both reads.
            found = await db.fetchrow(
                f"SELECT {', '.join(_SETTING_COLUMN.values())} FROM guild_settings WHERE guild_id = $1",
                guild_id,
            )
            channels = await db.fetch(
                "SELECT channel_id FROM allowed_channels WHERE guild_id = $1 ORDER BY channel_id", guild_id
            )
        row = {name: found[column] if found else None for name, column in _SETTING_COLUMN.items()}
        return GuildSettings(
            guild_id,
            safety_mode=row["safety_mode"],
            mod_log_channel_id=row["mod_log_channel_id"],
            allowed_channels=tuple(int(c["channel_id"]) for c in channels),
            # NULL: the default.
            consent_required=True if row["consent_required"] is None else bool(row["consent_required"]),
            dms_allowed=bool(row["dms_allowed"]),
            withhold_flagged=bool(row["withhold_flagged"]),
        )

    async def update_guild_settings(
        self, guild_id: int, patch: GuildSettingsPatch, actor_id: int, now: float
    ) -> None:
        """Apply an admin's moderation-setting changes, recorded with who made them."""
        changes = patch.changes()
        async with self._write() as db:
            await db.execute(
                "INSERT INTO guild_settings (guild_id, updated_at, updated_by) VALUES ($1, $2, $3) "
                "ON CONFLICT (guild_id) DO NOTHING",
                guild_id,
                now,
                actor_id,
            )
            if changes:
                n = len(changes)
                await db.execute(
                    f"UPDATE guild_settings SET {_assignments(_SETTING_COLUMN, changes)}, "
                    f"updated_at = ${n + 1}, updated_by = ${n + 2} WHERE guild_id = ${n + 3}",
                    *changes.values(),
                    now,
                    actor_id,
                    guild_id,
                )
            # Switches are audited as 0 or 1, as on SQLite (the columns themselves are BOOLEAN).
            detail = {name: int(v) if isinstance(v, bool) else v for name, v in changes.items()}
            await audit(db, guild_id, actor_id, "settings.set", detail, now)

    async def set_channel_allowed(
        self, guild_id: int, channel_id: int, allowed: bool, actor_id: int, now: float
    ) -> None:
        """Add a channel to (or remove it from) the guild's /animate allow-list, recorded."""
        async with self._write() as db:
            if allowed:
                await db.execute(
                    "INSERT INTO allowed_channels (guild_id, channel_id) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING",
                    guild_id,
                    channel_id,
                )
            else:
                await db.execute(
                    "DELETE FROM allowed_channels WHERE guild_id = $1 AND channel_id = $2",
                    guild_id,
                    channel_id,
                )
            detail = {"channel_id": channel_id, "allowed": allowed}
            await audit(db, guild_id, actor_id, "settings.channel", detail, now)
