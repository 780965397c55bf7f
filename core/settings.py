"""Runtime settings, read once from the environment and `.env` (pydantic-settings).

The environment variable names are a contract: operators' deployment files use them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Where each secret comes from, so a missing-setting message can say where to get it.
SETTING_HELP: dict[str, str] = {
    "DISCORD_TOKEN": "the Bot page of your application at https://discord.com/developers/applications",
    "RUNWARE_API_KEY": "https://my.runware.ai/keys (API Keys in the Runware dashboard)",
}


class SafetyMode(StrEnum):
    """Runware's content check: none, fast (first/middle/last frame) or full (every frame)."""

    NONE = "none"
    FAST = "fast"
    FULL = "full"


class Settings(BaseSettings):
    """Every setting the bot reads. Built once in `main()` and passed down."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    discord_token: SecretStr
    runware_api_key: SecretStr
    runware_api_url: str = "https://api.runware.ai/v1"
    database_url: str = "sqlite:///data/bot.db"

    poll_initial_delay_s: Annotated[float, Field(ge=0)] = 5.0
    poll_max_interval_s: Annotated[float, Field(gt=0)] = 15.0
    job_deadline_s: Annotated[float, Field(gt=0)] = 1200.0
    price_per_second_usd: Annotated[float, Field(ge=0)] = 0.14
    quota_user_daily_usd: Annotated[float, Field(ge=0)] | None = 5.0
    quota_user_max_active_jobs: Annotated[int, Field(ge=1)] = 2
    # Budgets: "unlimited" (or empty) turns a money limit off.
    quota_user_monthly_usd: Annotated[float, Field(ge=0)] | None = 50.0
    quota_guild_monthly_usd: Annotated[float, Field(ge=0)] | None = 200.0
    quota_cooldown_s: Annotated[float, Field(ge=0)] = 10.0
    # The operator's own ceilings, above anything a server admin can choose: what all servers together
    # may spend per UTC day, and the highest monthly budget one server may have ("unlimited": no ceiling).
    operator_daily_usd: Annotated[float, Field(ge=0)] | None = 50.0
    guild_budget_max_usd: Annotated[float, Field(ge=0)] | None = 200.0
    # The servers the bot serves (comma-separated ids); empty: every server it is in.
    allowed_guild_ids: Annotated[list[int], NoDecode] = []
    # A job whose estimate is at or above this asks the member to confirm the cost ("off": never ask).
    confirm_above_usd: Annotated[float, Field(ge=0)] | None = 2.0
    max_audio_seconds: Annotated[float, Field(gt=0, le=30)] = 30.0
    max_image_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024
    max_audio_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024
    safety_mode: SafetyMode = SafetyMode.FAST
    dev_guild_id: int | None = None
    log_level: str = "INFO"
    # Discord user ids (comma-separated) who may ban members from the bot in every guild.
    bot_owner_ids: Annotated[list[int], NoDecode] = []
    # Moderation records (audit log, reports, file hashes of jobs) older than this are pruned; the ledger
    # and jobs themselves are kept. "forever" (or empty) keeps everything.
    audit_retention_days: Annotated[int, Field(ge=1)] | None = 365

    # Several processes (issue 11): how many shards the bot has in all, and which of them this process
    # serves (comma-separated; empty: all of them). Neither set: one process, one connection.
    shard_count: Annotated[int, Field(ge=1)] | None = None
    shard_ids: Annotated[list[int], NoDecode] = []

    # The HTTP server (issue 12): off without HTTP_PORT (0 picks a free port, for test rigs); bound to
    # loopback unless the operator says otherwise. PUBLIC_URL is where Runware reaches it from outside.
    http_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    http_host: str = "127.0.0.1"
    public_url: str | None = None

    # Not in the original list; added because the defaults cannot suit every deployment.
    output_ttl_s: Annotated[int, Field(ge=60)] = 86400
    runware_request_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    # For test rigs and API proxies only: where discord.py sends REST calls and opens the gateway.
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None

    @field_validator("discord_token", "runware_api_key", mode="before")
    @classmethod
    def _blank_secret_is_missing(cls, value: object) -> object:
        # `.env.example` has `DISCORD_TOKEN=` lines: left blank, the secret is not set, not an empty token.
        if isinstance(value, str) and not value.strip():
            raise PydanticCustomError("missing", "Field required")
        return value

    @field_validator("runware_api_url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("http_port", "public_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_url")
    @classmethod
    def _public_url_is_a_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = urlsplit(value.strip())
        try:
            # Reading the port checks it: one out of range or not a number raises (in `check` too).
            well_formed = url.port is None or url.port >= 0
        except ValueError:
            well_formed = False
        if (
            not well_formed
            or url.scheme not in ("http", "https")
            or not url.hostname
            or url.query
            or url.fragment
        ):
            raise ValueError(
                "must be the base URL at which Runware reaches this bot's HTTP server, "
                "like https://bot.example.org (no query or fragment)"
            )
        return url.geturl().rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError(
                "must look like sqlite:///data/bot.db, sqlite:////var/lib/bot/bot.db "
                "or postgresql://user@host:5432/dbname"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level_known(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return upper

    @field_validator(
        "quota_user_daily_usd",
        "quota_user_monthly_usd",
        "quota_guild_monthly_usd",
        "confirm_above_usd",
        "operator_daily_usd",
        "guild_budget_max_usd",
        mode="before",
    )
    @classmethod
    def _unlimited_is_none(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"", "unlimited", "none", "off"}:
            return None
        return value

    @field_validator("audit_retention_days", mode="before")
    @classmethod
    def _forever_is_none(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"", "forever", "none", "off"}:
            return None
        return value

    @field_validator("guild_budget_max_usd")
    @classmethod
    def _cap_covers_the_default_budget(cls, value: float | None, info: ValidationInfo) -> float | None:
        # Rejected rather than clamped: a default budget the operator set but that never applies would
        # surprise them. (quota_guild_monthly_usd is declared earlier, so it is already in info.data.)
        if value is None or "quota_guild_monthly_usd" not in info.data:
            return value
        default = info.data["quota_guild_monthly_usd"]
        if default is None or default > value:
            every = "unlimited" if default is None else f"{default:g}"
            raise ValueError(
                f"is below QUOTA_GUILD_MONTHLY_USD ({every}), the budget every server starts with; "
                "lower QUOTA_GUILD_MONTHLY_USD or raise GUILD_BUDGET_MAX_USD"
            )
        return value

    @field_validator("bot_owner_ids", "allowed_guild_ids", "shard_ids", mode="before")
    @classmethod
    def _comma_separated_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("shard_count", mode="before")
    @classmethod
    def _empty_count_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("shard_ids")
    @classmethod
    def _shards_within_the_count(cls, value: list[int], info: ValidationInfo) -> list[int]:
        if not value:
            return value
        if "shard_count" not in info.data:
            return value  # SHARD_COUNT itself is invalid; its own message says why
        count = info.data["shard_count"]
        if count is None:
            raise ValueError(
                "needs SHARD_COUNT, the number of shards of all processes together (e.g. SHARD_COUNT=2)"
            )
        outside = [i for i in value if not 0 <= i < count]
        if outside:
            raise ValueError(
                f"has {', '.join(map(str, outside))}: shard ids go from 0 to SHARD_COUNT - 1 ({count - 1})"
            )
        if len(set(value)) != len(value):
            raise ValueError("names a shard twice")
        return sorted(value)

    @field_validator("dev_guild_id", mode="before")
    @classmethod
    def _empty_guild_is_none(cls, value: object) -> object:
        return None if value == "" else value


def describe_settings_error(error: ValidationError) -> str:
    """Turn a pydantic error into short lines that name each bad variable and say what is wrong."""
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]).upper() if item["loc"] else "?"
        if item["type"] == "missing":
            where = SETTING_HELP.get(name)
            hint = f" Get it from {where}." if where else ""
            lines.append(f"{name} is not set. Put it in the environment or in .env.{hint}")
        else:
            # Never echo the input: it might be a secret pasted into the wrong variable.
            # pydantic puts "Value error, " before the reasons the validators above give.
            reason = item["msg"].removeprefix("Value error, ")
            lines.append(f"{name} is invalid: {reason.rstrip('.')}.")
    return "\n".join(lines)
