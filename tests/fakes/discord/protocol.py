"""What the fake says on the wire: Discord's constants (flags, permissions, callback types, gateway opcodes),
payload builders, API errors, and pointing discord.py at the fake."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import discord.gateway
import discord.http
import yarl
from aiohttp import web

Json = dict[str, Any]


API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
MIB = 1024 * 1024
DEFAULT_FILESIZE_LIMIT = 10 * MIB
# Guild.filesize_limit by boost tier (discord.py's _PREMIUM_GUILD_LIMITS).
PREMIUM_FILESIZE_LIMITS = {0: 10 * MIB, 1: 10 * MIB, 2: 50 * MIB, 3: 100 * MIB}
_PREMIUM_SUBSCRIPTIONS = {0: 0, 1: 2, 2: 7, 3: 14}

EPHEMERAL = 1 << 6  # message flag
LOADING = 1 << 7  # message flag: the "Bot is thinking..." placeholder of a deferred response
VOICE_MESSAGE = 1 << 13  # message flag IS_VOICE_MESSAGE: a recorded voice message (one audio/ogg attachment)

# Permission bits used for defaults.
ADMINISTRATOR = 1 << 3
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
DEFAULT_USER_ID = 200_000_000_000_000_001
DEFAULT_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_APPLICATION_COMMANDS
)

# Interaction callback types.
CALLBACK_MESSAGE = 4
CALLBACK_DEFERRED_MESSAGE = 5
CALLBACK_DEFERRED_UPDATE = 6
CALLBACK_UPDATE_MESSAGE = 7

# The listen backlog of the fake's socket. aiohttp's default (128) is too shallow for a burst: discord.py
# opens a connection per concurrent request, so 200 simultaneous callbacks overflow a 128-deep accept
# queue and the dropped SYNs come back after TCP's 1 s retransmission timeout. Discord's edge does not do
# that. The kernel caps it at net.core.somaxconn (4096 by default since Linux 5.4).
LISTEN_BACKLOG = 1024

# Gateway opcodes.
OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME = 0, 1, 2, 6
OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 9, 10, 11


def point_discord_py_at(api_base: str, gateway_url: str) -> None:
    """Point discord.py's REST base (all routes, webhooks and interaction callbacks) and its gateway here.

    These two class attributes are everything: ``Route.BASE`` is read each time a Route is built and
    ``DiscordWebSocket.DEFAULT_GATEWAY`` when a (non-sharded) client connects or re-identifies.
    """
    discord.http.Route.BASE = api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def snowflake_at(when: dt.datetime, increment: int = 0) -> int:
    """A snowflake id whose embedded timestamp is ``when`` (what ``discord.utils.snowflake_time`` reads)."""
    ms = int(when.timestamp() * 1000)
    return ((ms - DISCORD_EPOCH_MS) << 22) | (increment & 0xFFF)


def text_channel(channel_id: int, name: str, *, nsfw: bool = False, position: int = 0) -> Json:
    """The gateway payload of a guild text channel (type 0)."""
    return {
        "id": str(channel_id),
        "type": 0,
        "name": name,
        "position": position,
        "nsfw": nsfw,
        "topic": None,
        "parent_id": None,
        "permission_overwrites": [],
        "rate_limit_per_user": 0,
        "last_message_id": None,
        "flags": 0,
    }


def user_payload(user_id: int, username: str, *, bot: bool = False) -> Json:
    """A Discord user object."""
    return {
        "id": str(user_id),
        "username": username,
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def _iso(when: dt.datetime) -> str:
    return when.isoformat()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": aiohttp's json_response appends "; charset=utf-8" and discord.py compares
    # the header verbatim, so it would hand the caller a str instead of a dict.
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


class ApiError(Exception):
    """Raised by route handlers; becomes a Discord-style JSON error response."""

    def __init__(self, status: int, code: int, message: str, errors: Json | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def response(self) -> web.Response:
        body: Json = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return _json(body, self.status)


def _form_error(field_name: str, message: str) -> ApiError:
    errors = {field_name: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": message}]}}
    return ApiError(400, 50035, "Invalid Form Body", errors)


def _embed_length(embed: Json) -> int:
    """Characters counted towards the 6,000 total of a message's embeds."""
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    total += len((embed.get("footer") or {}).get("text") or "") + len(
        (embed.get("author") or {}).get("name") or ""
    )
    for f in embed.get("fields") or []:
        total += len(f.get("name") or "") + len(f.get("value") or "")
    return total
