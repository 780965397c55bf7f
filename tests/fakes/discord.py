"""A local fake of the Discord API (REST, gateway, signed CDN) that real discord.py 2.7.1 talks to.

No machine here reaches Discord, so the bot is tested through the real library against this server::

    async with FakeDiscord() as fake:
        fake.add_guild(GUILD_ID, "Guild", premium_tier=2, channels=[text_channel(CHANNEL_ID, "general")])
        point_discord_py_at(fake.api_base, fake.gateway_url)   # tests: use monkeypatch (discord_fixtures.py)
        ...  # bot.start(fake.token) in a task; await fake.wait_for_ready()
        await fake.send_interaction(fake.make_slash_interaction("animate", [("image", 11, attachment)]))
        message = await fake.wait_for_message(lambda m: m.attachments)

What it models (see /work/shared/docs/discord-platform.md): the 3 s window for the first interaction
callback (404 10062), a second ack (400 40060), expired interaction tokens (401 50027), the first followup
after a defer filling the deferred placeholder and keeping its ephemeral flag, per-file upload limits
(413 40005), message nonces with ``enforce_nonce`` (a repeat within ``nonce_ttl_s`` returns the message
already created), channel history pages (before/after/around/limit, newest first), signed expiring CDN URLs
(404), injected 429s and error statuses (also after the request took effect: a lost answer), and a gateway
that can hold back READY (``hold_ready``). Everything is recorded for assertions: messages
with their edit history, every interaction's responses in order, the request log and unknown routes.

Responses carry ``Content-Type: application/json`` exactly: with a charset suffix discord.py reads the body as
text. The gateway speaks plain JSON text frames; discord.py asks for ``compress=zlib-stream`` but only
decompresses binary frames, so sending text frames is how the fake declines compression.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

import discord.gateway
import discord.http
import yarl
from aiohttp import BodyPartReader, WSMsgType, web

log = logging.getLogger(__name__)

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


class InteractionContext(TypedDict, total=False):
    """Where and by whom an interaction is made (keyword arguments of the ``make_*_interaction`` methods).

    Defaults: the first configured guild and its first channel; user DEFAULT_USER_ID "tester" with no roles
    and DEFAULT_PERMISSIONS (also the bot's ``app_permissions``); the channel's own nsfw flag; the guild's
    filesize limit as ``attachment_size_limit``; now as ``created_at`` (it dates the snowflake id, which
    ``Interaction.is_expired()`` reads, and the 15-minute token expiry); ``dm=True`` makes a DM interaction.
    """

    guild_id: int
    channel_id: int
    dm: bool
    user_id: int
    username: str
    roles: Iterable[int]
    permissions: int
    app_permissions: int
    channel_nsfw: bool
    attachment_size_limit: int
    created_at: dt.datetime
    locale: str


@dataclass
class FakeFile:
    """An uploaded file or a CDN attachment, with its bytes."""

    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    proxy_url: str

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class FakeMessage:
    """A message the bot created (channel post, interaction response or followup), as it stands now.

    ``via`` says which route gave it its content: "channel", "callback", "followup" or "original" (a
    deferred placeholder filled by ``edit_original_response``). ``edits`` holds earlier versions, oldest
    first.
    """

    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    via: str
    content: str = ""
    embeds: list[Json] = field(default_factory=list)
    components: list[Json] = field(default_factory=list)
    flags: int = 0
    attachments: list[FakeFile] = field(default_factory=list)
    nonce: str | None = None
    allowed_mentions: Json | None = None
    interaction_id: int | None = None
    interaction_token: str | None = None
    webhook_id: int | None = None
    created_at: dt.datetime = field(default_factory=_utcnow)
    edited_at: dt.datetime | None = None
    deleted: bool = False
    edits: list[Json] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    def snapshot(self) -> Json:
        """The visible state, as stored in ``edits`` before a change."""
        return {
            "via": self.via,
            "content": self.content,
            "embeds": list(self.embeds),
            "components": list(self.components),
            "flags": self.flags,
            "attachments": [a.filename for a in self.attachments],
        }


@dataclass
class InteractionEvent:
    """One response step of an interaction.

    ``kind``: "callback", "followup", "edit_original", "edit_message", "delete_original", "delete_message".
    """

    kind: str
    payload: Json
    callback_type: int | None = None
    message_id: int | None = None
    files: list[FakeFile] = field(default_factory=list)


@dataclass
class FakeInteraction:
    """Server-side state of an interaction the fake built."""

    id: int
    token: str
    type: int
    guild_id: int | None
    channel_id: int
    user_id: int
    attachment_size_limit: int
    payload: Json
    delivered_at: float  # monotonic; the 3 s callback window starts here
    token_expires_at: float  # monotonic
    component_message_id: int | None = None
    callback_type: int | None = None
    original_message_id: int | None = None
    placeholder_pending: bool = False
    token_revoked: bool = False
    events: list[InteractionEvent] = field(default_factory=list)


@dataclass
class RequestRecord:
    """One HTTP request the fake received; ``path`` is relative to /api/v10 for API routes."""

    method: str
    path: str
    query: dict[str, str]
    status: int = 0


@dataclass
class _Guild:
    id: int
    name: str
    premium_tier: int
    channels: list[Json]
    roles: list[Json]
    owner_id: int
    member_count: int
    features: list[str]


@dataclass
class _Fault:
    route_substring: str
    status: int
    body: Json
    headers: dict[str, str]
    remaining: int
    after_effect: bool = False  # the request is carried out, then its answer is replaced (a lost answer)


@dataclass
class _CdnEntry:
    file: FakeFile
    expires_at: float  # wall clock, like the ``ex`` parameter


@dataclass
class _Session:
    session_id: str
    seq: int = 0
    buffer: list[Json] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FakeDiscord:
    """Fake Discord: REST under ``api_base``, gateway at ``gateway_url``, a signed CDN (see module doc)."""

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        bot_user_id: int = 100_000_000_000_000_001,
        bot_name: str = "Ventriloquist",
        application_id: int | None = None,
        owner_id: int = 100_000_000_000_000_009,
        heartbeat_interval_ms: int = 41_250,
        callback_window_s: float = 3.0,
        token_ttl_s: float = 15 * 60,
        nonce_ttl_s: float = 5 * 60,
        client_max_size: int = 110 * MIB,
        listen_backlog: int = LISTEN_BACKLOG,
    ) -> None:
        self.token = token
        self.bot_user_id = bot_user_id
        self.bot_name = bot_name
        self.application_id = application_id if application_id is not None else bot_user_id
        self.owner_id = owner_id
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.callback_window_s = callback_window_s
        self.token_ttl_s = token_ttl_s
        self.nonce_ttl_s = nonce_ttl_s
        self.allow_resume = True  # False: a RESUME gets INVALID_SESSION and the client re-identifies
        # True: an IDENTIFY gets no READY (nor GUILD_CREATE) until release_ready(), as right after a start.
        self.hold_ready = False
        self._held_sessions: list[_Session] = []

        # Recordings tests assert on.
        self.messages: list[FakeMessage] = []
        self.requests: list[RequestRecord] = []
        self.unexpected_requests: list[tuple[str, str]] = []
        self.identify_payloads: list[Json] = []
        self.gateway_connections: list[dict[str, str]] = []  # query of each websocket connect
        self.resumes = 0
        self.heartbeats = 0
        self.download_counts: Counter[int] = Counter()
        # Each CDN download takes this long; the most downloads ever in flight at once is recorded.
        self.cdn_delay_s = 0.0
        self.cdn_in_flight = 0
        self.cdn_max_in_flight = 0
        self.command_syncs: list[tuple[int | None, list[Json]]] = []

        self._client_max_size = client_max_size
        self.listen_backlog = listen_backlog
        self._guilds: dict[int, _Guild] = {}
        self._channels: dict[int, tuple[int | None, Json]] = {}
        self._dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self._dm_recipients: dict[int, int] = {}  # DM channel id -> user id
        self._closed_dms: set[int] = set()
        self._messages_by_id: dict[int, FakeMessage] = {}
        self._interactions: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self._nonces: dict[tuple[int, str], tuple[int, float]] = {}
        self._commands: dict[int | None, list[Json]] = {}
        self._cdn: dict[int, _CdnEntry] = {}
        self._cdn_secret = secrets.token_bytes(16)
        self._faults: list[_Fault] = []
        self._sessions: dict[str, _Session] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._last_id = 0
        self._changed: asyncio.Condition | None = None
        self._ready = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start serving on 127.0.0.1 at a free port."""
        self._changed = asyncio.Condition()
        self._ready = asyncio.Event()
        app = web.Application(client_max_size=self._client_max_size, middlewares=[self._make_middleware()])
        self._add_routes(app.router)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=self.listen_backlog)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Close gateway sockets and stop the server."""
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ configuration

    def bot_user(self) -> Json:
        return user_payload(self.bot_user_id, self.bot_name, bot=True)

    def add_guild(
        self,
        guild_id: int,
        name: str = "Test Guild",
        premium_tier: int = 0,
        channels: Iterable[Json] = (),
        *,
        roles: Iterable[Json] | None = None,
        owner_id: int | None = None,
        member_count: int = 2,
        features: Iterable[str] = (),
    ) -> None:
        """Configure a guild the bot is in; GUILD_CREATE follows READY (add guilds before connecting)."""
        everyone = {"id": str(guild_id), "name": "@everyone", "permissions": str(DEFAULT_PERMISSIONS)}
        guild = _Guild(
            id=guild_id,
            name=name,
            premium_tier=premium_tier,
            channels=[],
            roles=list(roles) if roles is not None else [{**everyone, "position": 0, "flags": 0}],
            owner_id=owner_id if owner_id is not None else self.owner_id,
            member_count=member_count,
            features=list(features),
        )
        self._guilds[guild_id] = guild
        for channel in channels:
            self.add_text_channel(
                guild_id, int(channel["id"]), channel["name"], nsfw=channel.get("nsfw", False)
            )

    def add_text_channel(self, guild_id: int, channel_id: int, name: str, *, nsfw: bool = False) -> Json:
        """Add a text channel (optionally age-restricted) to a configured guild."""
        guild = self._guilds[guild_id]
        channel = text_channel(channel_id, name, nsfw=nsfw, position=len(guild.channels))
        guild.channels.append(channel)
        self._channels[channel_id] = (guild_id, channel)
        return channel

    def add_thread(self, guild_id: int, parent_id: int, thread_id: int, name: str) -> Json:
        """Add a public thread (type 11) under a channel; it is age-restricted when its parent is. Like on
        Discord, it is not in GUILD_CREATE's channels (the bot meets it in interactions or by fetching)."""
        parent = self._channels[parent_id][1]
        thread: Json = {
            "id": str(thread_id),
            "type": 11,
            "guild_id": str(guild_id),
            "parent_id": str(parent_id),
            "owner_id": str(DEFAULT_USER_ID),
            "name": name,
            "nsfw": parent.get("nsfw", False),
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _iso(_utcnow()),
                "locked": False,
            },
        }
        self._channels[thread_id] = (guild_id, thread)
        return thread

    def guild_filesize_limit(self, guild_id: int | None) -> int:
        """The per-file upload limit of a guild by boost tier (10/10/50/100 MiB; 10 MiB if unknown)."""
        guild = self._guilds.get(guild_id) if guild_id is not None else None
        return PREMIUM_FILESIZE_LIMITS[guild.premium_tier] if guild else DEFAULT_FILESIZE_LIMIT

    def guild_payload(self, guild_id: int) -> Json:
        """The full GUILD_CREATE payload of a configured guild."""
        g = self._guilds[guild_id]
        me = {
            "user": self.bot_user(),
            "roles": [],
            "joined_at": _iso(_utcnow()),
            "deaf": False,
            "mute": False,
            "flags": 0,
        }
        return {
            "id": str(g.id),
            "name": g.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(g.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "features": g.features,
            "roles": g.roles,
            "emojis": [],
            "stickers": [],
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": g.premium_tier,
            "premium_subscription_count": _PREMIUM_SUBSCRIPTIONS[g.premium_tier],
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "joined_at": _iso(_utcnow()),
            "large": False,
            "unavailable": False,
            "member_count": g.member_count,
            "members": [me],
            "channels": g.channels,
            "threads": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    # ------------------------------------------------------------------ ids, CDN

    def new_id(self, when: dt.datetime | None = None) -> int:
        """A fresh snowflake (unique within this fake), optionally dated ``when``."""
        if when is not None:
            self._last_id += 1
            return snowflake_at(when, self._last_id)
        self._last_id = max(self._last_id + 1, snowflake_at(_utcnow()))
        return self._last_id

    def add_attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        ttl_s: float = 24 * 3600,
        *,
        channel_id: int = 0,
        width: int | None = None,
        height: int | None = None,
        duration_secs: float | None = None,
        waveform: str | None = None,
    ) -> Json:
        """Serve ``data`` on the CDN at a signed URL expiring in ``ttl_s``; return its attachment payload."""
        file = self._store_cdn(channel_id, filename, data, content_type, ttl_s)
        payload = self._attachment_payload(file)
        payload["ephemeral"] = True  # what Discord sends for a slash command option attachment
        extras = {"width": width, "height": height, "duration_secs": duration_secs, "waveform": waveform}
        payload.update({k: v for k, v in extras.items() if v is not None})
        return payload

    def expire_attachment(self, attachment_id: int | str) -> None:
        """Make an attachment's URLs answer 404 from now on, as after the ``ex`` time."""
        self._cdn[int(attachment_id)].expires_at = 0.0

    def downloads(self, attachment_id: int | str) -> int:
        """How many times an attachment was fetched successfully from the CDN."""
        return self.download_counts[int(attachment_id)]

    def _store_cdn(
        self, channel_id: int, filename: str, data: bytes, content_type: str | None, ttl_s: float
    ) -> FakeFile:
        att_id = self.new_id()
        issued = int(time.time())
        expires = time.time() + ttl_s
        path = f"/attachments/{channel_id}/{att_id}/{filename}"  # signed as the server will see it
        query = f"ex={int(expires):x}&is={issued:x}&hm={self._sign(path, int(expires), issued)}&"
        quoted = f"/attachments/{channel_id}/{att_id}/{urllib.parse.quote(filename, safe='')}?{query}"
        file = FakeFile(
            id=att_id,
            filename=filename,
            data=data,
            content_type=content_type,
            url=f"{self.base_url}/cdn{quoted}",
            proxy_url=f"{self.base_url}/media{quoted}",
        )
        self._cdn[att_id] = _CdnEntry(file, expires)
        return file

    def _sign(self, path: str, ex: int, issued: int) -> str:
        return hmac.new(self._cdn_secret, f"{path}|{ex:x}|{issued:x}".encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _attachment_payload(file: FakeFile) -> Json:
        payload: Json = {
            "id": str(file.id),
            "filename": file.filename,
            "size": file.size,
            "url": file.url,
            "proxy_url": file.proxy_url,
        }
        if file.content_type is not None:
            payload["content_type"] = file.content_type
        return payload

    # ------------------------------------------------------------------ faults

    def inject_429(
        self, route_substring: str, retry_after: float = 0.1, times: int = 1, *, is_global: bool = False
    ) -> None:
        """Answer the next ``times`` requests whose "METHOD /path" contains the substring with a 429.

        It carries a ``Via`` header and a JSON ``retry_after``, which is what makes discord.py retry.
        """
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        headers = {"Via": "1.1 google", "Retry-After": str(max(1, round(retry_after)))}
        headers["X-RateLimit-Scope"] = "global" if is_global else "user"
        self._faults.append(_Fault(route_substring, 429, body, headers, times))

    def inject_status(
        self, route_substring: str, status: int, code: int = 0, times: int = 1, message: str | None = None
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` and a Discord error (403 50013...)."""
        body = {"message": message or f"{status} fault injected by FakeDiscord", "code": code}
        self._faults.append(_Fault(route_substring, status, body, {}, times))

    def inject_lost_answer(self, route_substring: str, status: int | None = 503, times: int = 1) -> None:
        """Carry out the next ``times`` matching requests, then answer them with ``status``, or drop the
        connection without an answer (None), as if the answer had been lost on the way: the message exists,
        the caller cannot know. (discord.py retries a webhook request itself on any 5xx.)"""
        body = {"message": f"{status} answer lost (fault injected by FakeDiscord)", "code": 0}
        self._faults.append(_Fault(route_substring, status or 0, body, {}, times, after_effect=True))

    def clear_faults(self) -> None:
        """Forget every injected fault not used up yet."""
        self._faults.clear()

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        target = f"{method} {path}"
        for fault in self._faults:
            if fault.remaining > 0 and fault.route_substring in target:
                fault.remaining -= 1
                return fault
        return None

    # ------------------------------------------------------------------ interactions

    def make_slash_interaction(
        self,
        name: str,
        options: Sequence[tuple[str, int, Any]] = (),
        *,
        attachments: dict[str, Json] | None = None,
        subcommand: str | None = None,
        subcommand_group: str | None = None,
        command_guild_id: int | None = None,
        resolved: Json | None = None,
        **context: Unpack[InteractionContext],
    ) -> Json:
        """Build and register an APPLICATION_COMMAND interaction (type 2); send it with ``send_interaction``.

        ``options`` are (name, type, value); an ATTACHMENT (11) value may be the payload from
        ``add_attachment`` (resolved automatically) or its id with the payload in ``attachments``.
        ``command_guild_id`` marks a guild-registered command. ``context``: see ``InteractionContext``.
        """
        resolved_data: Json = dict(resolved or {})
        resolved_attachments: dict[str, Json] = dict(resolved_data.get("attachments", {}))
        resolved_attachments.update(attachments or {})
        built: list[Json] = []
        for opt_name, opt_type, value in options:
            if isinstance(value, dict):
                resolved_attachments[str(value["id"])] = value
                value = str(value["id"])
            built.append({"name": opt_name, "type": int(opt_type), "value": value})
        if subcommand is not None:
            built = [{"name": subcommand, "type": 1, "options": built}]
        if subcommand_group is not None:
            built = [{"name": subcommand_group, "type": 2, "options": built}]
        if resolved_attachments:
            resolved_data["attachments"] = resolved_attachments
        cmd = next((c for c in self._commands.get(command_guild_id, []) if c["name"] == name), None)
        data: Json = {
            "id": cmd["id"] if cmd else str(self.new_id()),
            "name": name,
            "type": 1,
            "options": built,
            "resolved": resolved_data,
        }
        if command_guild_id is not None:
            data["guild_id"] = str(command_guild_id)
        return self._make_interaction(2, data, context)

    def make_component_interaction(
        self,
        custom_id: str,
        message_id: int,
        *,
        component_type: int = 2,
        values: Sequence[str] | None = None,
        **context: Unpack[InteractionContext],
    ) -> Json:
        """Build and register a MESSAGE_COMPONENT interaction (type 3, a button by default) on ``message_id``.

        The message payload is the fake's record of that message when it has one (its channel wins).
        """
        data: Json = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        known = self._messages_by_id.get(message_id)
        if known is not None:
            context["channel_id"] = known.channel_id
            if known.guild_id is not None:
                context["guild_id"] = known.guild_id
        payload = self._make_interaction(3, data, context)
        inter = self._interactions[int(payload["id"])]
        inter.component_message_id = inter.original_message_id = message_id
        if known is None:
            known = FakeMessage(message_id, inter.channel_id, inter.guild_id, self.bot_user_id, via="channel")
        payload["message"] = self._message_payload(known)
        return payload

    def _make_interaction(self, kind: int, data: Json, context: InteractionContext) -> Json:
        user_id = context.get("user_id", DEFAULT_USER_ID)
        user = user_payload(user_id, context.get("username", "tester"))
        permissions = context.get("permissions", DEFAULT_PERMISSIONS)
        created_at = context.get("created_at")
        interaction_id = self.new_id(created_at)
        token = f"fake-interaction-{interaction_id}-{secrets.token_urlsafe(24)}"
        payload: Json = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "token": token,
            "version": 1,
            "data": data,
            "app_permissions": str(context.get("app_permissions", DEFAULT_PERMISSIONS)),
            "locale": context.get("locale", "en-US"),
            "entitlements": [],
        }
        guild_id = context.get("guild_id")
        channel_id = context.get("channel_id")
        if context.get("dm", False):
            guild_id = None
            channel_id = channel_id if channel_id is not None else self.new_id()
            channel: Json = {"id": str(channel_id), "type": 1, "recipients": [user], "flags": 0}
            self._channels[channel_id] = (None, channel)
            payload.update(user=user, context=1, authorizing_integration_owners={"1": str(user_id)})
        else:
            if guild_id is None:
                if not self._guilds:
                    raise ValueError("no guild configured: call add_guild() or pass dm=True")
                guild_id = next(iter(self._guilds))
            guild = self._guilds[guild_id]
            if channel_id is None:
                if not guild.channels:
                    raise ValueError(f"guild {guild_id} has no channel: add one or pass channel_id")
                channel_id = int(guild.channels[0]["id"])
            known = self._channels.get(channel_id)
            channel = dict(known[1]) if known else text_channel(channel_id, "unknown")
            channel.update(guild_id=str(guild_id), permissions=str(permissions))
            if context.get("channel_nsfw") is not None:
                channel["nsfw"] = context.get("channel_nsfw")
            member = {
                "user": user,
                "roles": [str(r) for r in context.get("roles", ())],
                "flags": 0,
                "permissions": str(permissions),
                "joined_at": _iso(_utcnow()),
                "deaf": False,
                "mute": False,
                "nick": None,
                "avatar": None,
                "pending": False,
                "premium_since": None,
            }
            payload.update(
                guild_id=str(guild_id),
                guild={"id": str(guild_id), "locale": "en-US", "features": guild.features},
                guild_locale="en-US",
                member=member,
                context=0,
                authorizing_integration_owners={"0": str(guild_id)},
            )
        payload["channel_id"] = str(channel_id)
        payload["channel"] = channel
        limit = context.get("attachment_size_limit") or self.guild_filesize_limit(guild_id)
        payload["attachment_size_limit"] = limit
        # The token lives 15 minutes from the interaction's creation (its snowflake time).
        age = (_utcnow() - created_at).total_seconds() if created_at is not None else 0.0
        now = time.monotonic()
        inter = FakeInteraction(
            id=interaction_id,
            token=token,
            type=kind,
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=user_id,
            attachment_size_limit=limit,
            payload=payload,
            delivered_at=now,
            token_expires_at=now - age + self.token_ttl_s,
        )
        self._interactions[interaction_id] = inter
        self._interactions_by_token[token] = inter
        return payload

    async def send_interaction(self, payload: Json) -> None:
        """Deliver INTERACTION_CREATE through the gateway; the 3 s callback window starts now."""
        self._interactions[int(payload["id"])].delivered_at = time.monotonic()
        if await self.dispatch("INTERACTION_CREATE", payload) == 0:
            raise RuntimeError("no gateway session is connected and ready")

    def expire_interaction_token(self, token: str) -> None:
        """Make the webhook routes of this interaction token answer 401 (code 50027) from now on."""
        self._interactions_by_token[token].token_revoked = True

    def interaction(self, interaction_id: int | str) -> FakeInteraction:
        """The fake's state for an interaction it built."""
        return self._interactions[int(interaction_id)]

    def interaction_responses(self, interaction_id: int | str) -> list[InteractionEvent]:
        """The callback, edits of @original, followups, ... of an interaction, in order."""
        return list(self._interactions[int(interaction_id)].events)

    # ------------------------------------------------------------------ message accessors

    def request_log(self) -> list[tuple[str, str]]:
        """(method, path) of every HTTP request so far; API paths are relative to /api/v10."""
        return [(r.method, r.path) for r in self.requests]

    def message(self, message_id: int | str) -> FakeMessage:
        """A recorded message by id (KeyError if the bot never created it)."""
        return self._messages_by_id[int(message_id)]

    def messages_in(
        self, channel_id: int, *, include_ephemeral: bool = True, include_loading: bool = False
    ) -> list[FakeMessage]:
        """Live messages of a channel, oldest first; "thinking" placeholders left out by default."""
        return [
            m
            for m in self.messages
            if m.channel_id == channel_id
            and not m.deleted
            and (include_ephemeral or not m.ephemeral)
            and (include_loading or not m.loading)
        ]

    def ephemeral(self, message_id: int | str) -> bool:
        """Whether a recorded message carries the EPHEMERAL flag (64)."""
        return self.message(message_id).ephemeral

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (re-checked on each request and gateway event and every 50 ms)."""
        changed = self._changed
        assert changed is not None, "FakeDiscord is not started"
        async with asyncio.timeout(timeout):
            while not predicate():
                async with changed:
                    # Also poll, for predicates over state the fake does not announce (the bot's, say).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), 0.05)

    async def wait_for_message(
        self,
        predicate: Callable[[FakeMessage], bool],
        timeout: float = 5.0,
    ) -> FakeMessage:
        """The first live, non-placeholder message matching ``predicate``, waiting up to ``timeout``."""

        def find() -> FakeMessage | None:
            return next((m for m in self.messages if not m.deleted and not m.loading and predicate(m)), None)

        await self.wait_for(lambda: find() is not None, timeout)
        found = find()
        assert found is not None
        return found

    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    # ------------------------------------------------------------------ gateway

    async def wait_for_ready(self, timeout: float = 5.0) -> None:
        """Wait until a gateway session got READY and the GUILD_CREATE of every configured guild."""
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    @property
    def connected_sessions(self) -> int:
        """How many gateway sessions currently have an open socket."""
        return sum(1 for s in self._sessions.values() if s.ws is not None and not s.ws.closed)

    async def dispatch(self, event: str, data: Json) -> int:
        """Send a DISPATCH to every identified session; return how many had an open socket.

        Sessions whose socket dropped buffer it for a RESUME.
        """
        delivered = 0
        for session in list(self._sessions.values()):
            if await self._send_dispatch(session, event, data):
                delivered += 1
        return delivered

    async def disconnect_gateway(self, code: int = 4000) -> None:
        """Close every gateway socket with ``code`` (4000: discord.py reconnects and RESUMEs)."""
        for ws in list(self._sockets):
            await ws.close(code=code)

    async def _send_dispatch(self, session: _Session, event: str, data: Json) -> bool:
        async with session.lock:
            session.seq += 1
            frame = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
            session.buffer.append(frame)
            ws = session.ws
            if ws is None or ws.closed:
                return False
            await ws.send_str(json.dumps(frame))
            return True

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        # discord.py asks for ?v=10&encoding=json&compress=zlib-stream (zstd-stream when a zstd module is
        # importable) but only decompresses binary frames: plain text frames decline compression.
        self.gateway_connections.append(dict(request.query))
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        session: _Session | None = None
        try:
            hello = {
                "op": OP_HELLO,
                "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                "s": None,
                "t": None,
            }
            await ws.send_str(json.dumps(hello))
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op, d = frame.get("op"), frame.get("d")
                if op == OP_HEARTBEAT:
                    self.heartbeats += 1
                    await ws.send_str(json.dumps({"op": OP_HEARTBEAT_ACK, "d": None}))
                elif op == OP_IDENTIFY:
                    session = await self._identify(ws, d)
                elif op == OP_RESUME:
                    session = await self._resume(ws, d)
                else:
                    log.debug("fake gateway ignores op %s", op)
                if ws.closed:
                    break
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
            await self._notify()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, d: Json) -> _Session | None:
        self.identify_payloads.append(d)
        if d.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        session = _Session(session_id=uuid.uuid4().hex, ws=ws)
        self._sessions[session.session_id] = session
        if self.hold_ready:
            self._held_sessions.append(session)
            await self._notify()
            return session
        await self._send_ready(session, d)
        return session

    async def release_ready(self) -> None:
        """Stop holding back READY: send it (and every GUILD_CREATE) to the sessions that wait for it."""
        self.hold_ready = False
        held, self._held_sessions = self._held_sessions, []
        for session in held:
            await self._send_ready(session, {})

    async def _send_ready(self, session: _Session, d: Json) -> None:
        ready = {
            "v": 10,
            "user": self.bot_user(),
            "guilds": [{"id": str(gid), "unavailable": True} for gid in self._guilds],
            "session_id": session.session_id,
            "resume_gateway_url": self.gateway_url,
            "shard": d.get("shard", [0, 1]),
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "user_settings": {},
            "presences": [],
        }
        await self._send_dispatch(session, "READY", ready)
        for guild_id in self._guilds:
            await self._send_dispatch(session, "GUILD_CREATE", self.guild_payload(guild_id))
        self._ready.set()
        await self._notify()

    async def _resume(self, ws: web.WebSocketResponse, d: Json) -> _Session | None:
        session = self._sessions.get(d.get("session_id") or "")
        if not self.allow_resume or session is None or d.get("token") != self.token:
            await ws.send_str(json.dumps({"op": OP_INVALID_SESSION, "d": False}))
            return None
        self.resumes += 1
        async with session.lock:
            session.ws = ws
            for frame in session.buffer:
                if frame["s"] > (d.get("seq") or 0):
                    await ws.send_str(json.dumps(frame))
        await self._send_dispatch(session, "RESUMED", {})
        await self._notify()
        return session

    # ------------------------------------------------------------------ HTTP plumbing

    def _add_routes(self, r: web.UrlDispatcher) -> None:
        api = API_PREFIX
        r.add_get("/gateway", self._gateway)
        r.add_get(api + "/gateway", self._get_gateway)
        r.add_get(api + "/gateway/bot", self._get_gateway_bot)
        r.add_get(api + "/users/@me", self._get_me)
        r.add_get(api + "/oauth2/applications/@me", self._get_application)
        r.add_get(api + "/users/{user_id}", self._get_user)
        r.add_post(api + "/users/@me/channels", self._open_dm)
        for path in ("/applications/{app_id}/commands", "/applications/{app_id}/guilds/{guild_id}/commands"):
            r.add_get(api + path, self._get_commands)
            r.add_put(api + path, self._put_commands)
        r.add_get(api + "/channels/{channel_id}", self._get_channel)
        r.add_post(api + "/channels/{channel_id}/messages", self._post_channel_message)
        r.add_get(api + "/channels/{channel_id}/messages", self._get_channel_messages)
        message_path = api + "/channels/{channel_id}/messages/{message_id}"
        r.add_get(message_path, self._get_channel_message)
        r.add_patch(message_path, self._edit_channel_message)
        r.add_delete(message_path, self._delete_channel_message)
        r.add_post(api + "/interactions/{interaction_id}/{token}/callback", self._callback)
        r.add_post(api + "/webhooks/{app_id}/{token}", self._followup)
        webhook_message = api + "/webhooks/{app_id}/{token}/messages/{message_id}"
        r.add_get(webhook_message, self._get_webhook_message)
        r.add_patch(webhook_message, self._edit_webhook_message)
        r.add_delete(webhook_message, self._delete_webhook_message)
        for prefix in ("/cdn", "/media"):
            r.add_get(prefix + "/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn_get)

    def _make_middleware(self) -> Any:
        @web.middleware
        async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
            path = request.path.removeprefix(API_PREFIX)
            record = RequestRecord(request.method, path, dict(request.query))
            self.requests.append(record)
            response: web.StreamResponse
            fault = None if request.path == "/gateway" else self._take_fault(request.method, path)
            if fault is not None and not fault.after_effect:
                response = _json(fault.body, fault.status, fault.headers)
            else:
                try:
                    response = await handler(request)
                except ApiError as exc:
                    response = exc.response()
                except web.HTTPException as exc:  # the router found no route (handlers raise ApiError)
                    self.unexpected_requests.append((request.method, path))
                    log.warning("FakeDiscord has no route for %s %s", request.method, path)
                    response = _json({"message": f"{exc.status}: {exc.reason}", "code": 0}, exc.status)
                if fault is not None and fault.status == 0 and request.transport is not None:
                    request.transport.close()  # the client sees the server disconnect, no answer
                elif fault is not None:
                    response = _json(fault.body, fault.status, fault.headers)
            record.status = response.status
            await self._notify()
            return response

        return middleware

    def _require_bot_auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            raise ApiError(401, 0, "401: Unauthorized")

    def _require_app(self, request: web.Request) -> None:
        if request.match_info["app_id"] != str(self.application_id):
            raise ApiError(404, 10002, "Unknown Application")

    @staticmethod
    async def _read_body(request: web.Request) -> tuple[Json, list[tuple[int, str, bytes, str | None]]]:
        """The JSON payload and the uploaded files (index, filename, bytes, content type) of a request."""
        if request.content_type.startswith("multipart/"):
            payload: Json = {}
            files: list[tuple[int, str, bytes, str | None]] = []
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "payload_json":
                    payload = json.loads(await part.text())
                elif part.name and part.name.startswith("files["):
                    data = await part.read(decode=False)
                    index = int(part.name[len("files[") : -1])
                    files.append(
                        (index, part.filename or f"file{index}", data, part.headers.get("Content-Type"))
                    )
            return payload, files
        if request.can_read_body:
            body = await request.json()
            return (body if isinstance(body, dict) else {"_": body}), []
        return {}, []

    # ------------------------------------------------------------------ identity routes

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return _json({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _get_me(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        return _json({**self.bot_user(), "verified": True, "mfa_enabled": False, "flags": 0})

    async def _get_application(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        return _json(
            {
                "id": str(self.application_id),
                "name": self.bot_name,
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "owner": user_payload(self.owner_id, "owner"),
                "team": None,
                "flags": 0,
                "interactions_endpoint_url": None,
                "rpc_origins": [],
                "summary": "",
                "bot": self.bot_user(),
            }
        )

    # ------------------------------------------------------------------ commands

    def synced_commands(self, guild_id: int | None = None) -> list[Json]:
        """The commands last synced globally (``None``) or to a guild."""
        return list(self._commands.get(guild_id, []))

    async def _get_commands(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        self._require_app(request)
        guild_id = request.match_info.get("guild_id")
        return _json(self._commands.get(int(guild_id) if guild_id else None, []))

    async def _put_commands(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        self._require_app(request)
        raw_guild = request.match_info.get("guild_id")
        guild_id = int(raw_guild) if raw_guild else None
        body = await request.json()
        if not isinstance(body, list):
            raise _form_error("_", "expected a list of commands")
        previous = {c["name"]: c["id"] for c in self._commands.get(guild_id, [])}
        commands = []
        for cmd in body:
            stored = {
                "type": 1,
                "description": "",
                "options": [],
                **cmd,
                "id": previous.get(cmd["name"], str(self.new_id())),
                "application_id": str(self.application_id),
                "version": str(self.new_id()),
            }
            if guild_id is not None:
                stored["guild_id"] = str(guild_id)
            commands.append(stored)
        self._commands[guild_id] = commands
        self.command_syncs.append((guild_id, commands))
        return _json(commands)

    # ------------------------------------------------------------------ messages

    def _message_payload(self, msg: FakeMessage) -> Json:
        payload: Json = {
            "id": str(msg.id),
            "channel_id": str(msg.channel_id),
            "type": 20 if msg.interaction_id is not None and msg.via != "followup" else 0,
            "content": msg.content,
            "embeds": msg.embeds,
            "components": msg.components,
            "attachments": [self._attachment_payload(a) for a in msg.attachments],
            "author": self.bot_user(),
            "timestamp": _iso(msg.created_at),
            "edited_timestamp": _iso(msg.edited_at) if msg.edited_at else None,
            "flags": msg.flags,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
        }
        if msg.guild_id is not None:
            payload["guild_id"] = str(msg.guild_id)
        if msg.nonce is not None:
            payload["nonce"] = msg.nonce
        if msg.webhook_id is not None:
            payload["webhook_id"] = str(msg.webhook_id)
            payload["application_id"] = str(self.application_id)
        return payload

    def _validate(self, payload: Json, files: list[tuple[int, str, bytes, str | None]], limit: int) -> None:
        """Discord's checks on a new message: per-file size (413), lengths (50035), emptiness (50006)."""
        for _, filename, data, _ in files:
            if len(data) > limit:
                raise ApiError(413, 40005, f"Request entity too large: {filename} is over {limit} bytes")
        content = payload.get("content") or ""
        if len(content) > 2000:
            raise _form_error("content", "Must be 2000 or fewer in length.")
        embeds = payload.get("embeds") or []
        if len(embeds) > 10:
            raise _form_error("embeds", "Must be 10 or fewer in length.")
        if sum(_embed_length(e) for e in embeds) > 6000:
            raise _form_error("embeds", "Embed size exceeds maximum size of 6000")
        nonce = payload.get("nonce")
        if nonce is not None and len(str(nonce)) > 25:
            raise _form_error("nonce", "Must be 25 or fewer in length.")
        if not (content or embeds or files or payload.get("components") or payload.get("sticker_ids")):
            raise ApiError(400, 50006, "Cannot send an empty message")

    def _uploads(
        self, channel_id: int, payload: Json, files: list[tuple[int, str, bytes, str | None]]
    ) -> list[FakeFile]:
        names = {str(a.get("id")): a.get("filename") for a in payload.get("attachments") or []}
        return [
            self._store_cdn(channel_id, names.get(str(index)) or filename, data, ctype, 30 * 24 * 3600)
            for index, filename, data, ctype in sorted(files)
        ]

    async def _create_message(
        self,
        channel_id: int,
        payload: Json,
        files: list[FakeFile],
        *,
        via: str,
        flags: int,
        interaction: FakeInteraction | None = None,
    ) -> FakeMessage:
        guild_id = self._channels[channel_id][0] if channel_id in self._channels else None
        msg = FakeMessage(
            id=self.new_id(),
            channel_id=channel_id,
            guild_id=guild_id,
            author_id=self.bot_user_id,
            via=via,
            content=payload.get("content") or "",
            embeds=list(payload.get("embeds") or []),
            components=list(payload.get("components") or []),
            flags=flags,
            attachments=files,
            nonce=str(payload["nonce"]) if payload.get("nonce") is not None else None,
            allowed_mentions=payload.get("allowed_mentions"),
            interaction_id=interaction.id if interaction else None,
            interaction_token=interaction.token if interaction else None,
            webhook_id=self.application_id if interaction else None,
        )
        self.messages.append(msg)
        self._messages_by_id[msg.id] = msg
        await self._notify()
        return msg

    @staticmethod
    def _apply_edit(msg: FakeMessage, payload: Json, files: list[FakeFile]) -> None:
        msg.edits.append(msg.snapshot())
        msg.edited_at = _utcnow()
        for key in ("content", "embeds", "components", "allowed_mentions"):
            if key in payload:
                value = payload[key]
                setattr(msg, key, value if value is not None else ("" if key == "content" else []))
        if "flags" in payload and payload["flags"] is not None:
            # Only SUPPRESS_EMBEDS (4) may change on edit; EPHEMERAL/LOADING are fixed at creation.
            msg.flags = (msg.flags & ~4) | (int(payload["flags"]) & 4)
        if "attachments" in payload:
            keep = {str(a.get("id")) for a in payload["attachments"] or []}
            msg.attachments = [a for a in msg.attachments if str(a.id) in keep] + files
        else:
            msg.attachments = msg.attachments + files

    def _channel_or_404(self, request: web.Request) -> tuple[int, int | None, Json]:
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self._channels:
            raise ApiError(404, 10003, "Unknown Channel")
        guild_id, channel = self._channels[channel_id]
        return channel_id, guild_id, channel

    def _message_or_404(self, channel_id: int, raw_id: str) -> FakeMessage:
        msg = self._messages_by_id.get(int(raw_id)) if raw_id.isdigit() else None
        if msg is None or msg.deleted or msg.channel_id != channel_id:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    async def _get_channel(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        _, guild_id, channel = self._channel_or_404(request)
        return _json({**channel, "guild_id": str(guild_id)} if guild_id is not None else channel)

    async def _get_user(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        user_id = int(request.match_info["user_id"])
        return _json(user_payload(user_id, f"user{user_id}"))

    async def _open_dm(self, request: web.Request) -> web.Response:
        """POST /users/@me/channels: the DM channel with a user (created once, then the same one)."""
        self._require_bot_auth(request)
        recipient = int((await request.json())["recipient_id"])
        channel_id = self._dm_channels.get(recipient)
        if channel_id is None:
            channel_id = self.new_id()
            self._dm_channels[recipient] = channel_id
            self._dm_recipients[channel_id] = recipient
            self._channels[channel_id] = (
                None,
                {
                    "id": str(channel_id),
                    "type": 1,
                    "recipients": [user_payload(recipient, f"user{recipient}")],
                },
            )
        return _json(self._channels[channel_id][1])

    def close_dms(self, user_id: int) -> None:
        """The user accepts no DMs from the bot: posts to their DM channel get 403 (code 50007)."""
        self._closed_dms.add(user_id)

    def dm_channel_of(self, user_id: int) -> int | None:
        """The id of the bot's DM channel with a user, if the bot opened one."""
        return self._dm_channels.get(user_id)

    async def _post_channel_message(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        channel_id, guild_id, _ = self._channel_or_404(request)
        if self._dm_recipients.get(channel_id) in self._closed_dms:
            raise ApiError(403, 50007, "Cannot send messages to this user")
        payload, files = await self._read_body(request)
        nonce = payload.get("nonce")
        key = (self.bot_user_id, str(nonce))
        if nonce is not None and payload.get("enforce_nonce"):
            seen = self._nonces.get(key)
            if seen is not None and time.monotonic() - seen[1] < self.nonce_ttl_s:
                return _json(self._message_payload(self._messages_by_id[seen[0]]))
        self._validate(payload, files, self.guild_filesize_limit(guild_id))
        uploads = self._uploads(channel_id, payload, files)
        flags = int(payload.get("flags") or 0) & ~EPHEMERAL  # only interaction responses can be ephemeral
        msg = await self._create_message(channel_id, payload, uploads, via="channel", flags=flags)
        if nonce is not None and payload.get("enforce_nonce"):
            self._nonces[key] = (msg.id, time.monotonic())
        return _json(self._message_payload(msg))

    async def _get_channel_messages(self, request: web.Request) -> web.Response:
        """GET /channels/{id}/messages: a page of the channel's history, newest first, like Discord: at most
        ``limit`` (1-100, default 50) messages before, after or around a message id, or the latest ones.
        Ephemeral messages and "thinking" placeholders are not in a channel's history, and Discord returns a
        message's ``nonce`` only when it is created."""
        self._require_bot_auth(request)
        channel_id, _, _ = self._channel_or_404(request)
        q = request.query
        try:
            limit = int(q.get("limit", "50"))
            anchors = {k: int(q[k]) for k in ("before", "after", "around") if k in q}
        except ValueError as error:
            raise _form_error("limit", "Value is not a snowflake or a number.") from error
        if not 1 <= limit <= 100:
            raise _form_error("limit", "int value should be between 1 and 100.")
        history = sorted(self.messages_in(channel_id, include_ephemeral=False), key=lambda m: m.id)
        if "around" in anchors:
            at = anchors["around"]
            older = [m for m in history if m.id < at][-(limit // 2) :] if limit > 1 else []
            newer = [m for m in history if m.id >= at][: limit - len(older)]
            page = older + newer
        elif "after" in anchors:
            page = [m for m in history if m.id > anchors["after"]][:limit]
        else:
            before = anchors.get("before")
            page = [m for m in history if before is None or m.id < before][-limit:]
        payloads = []
        for msg in reversed(page):
            payload = self._message_payload(msg)
            payload.pop("nonce", None)
            payloads.append(payload)
        return _json(payloads)

    def set_channel_nsfw(self, channel_id: int, nsfw: bool) -> Json:
        """Turn a guild channel's age restriction on or off; returns its payload (dispatch CHANNEL_UPDATE with
        it to tell connected clients, as Discord does)."""
        guild_id, channel = self._channels[channel_id]
        channel["nsfw"] = nsfw
        return {**channel, "guild_id": str(guild_id)}

    async def _get_channel_message(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        channel_id, _, _ = self._channel_or_404(request)
        return _json(
            self._message_payload(self._message_or_404(channel_id, request.match_info["message_id"]))
        )

    async def _edit_channel_message(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        channel_id, guild_id, _ = self._channel_or_404(request)
        msg = self._message_or_404(channel_id, request.match_info["message_id"])
        if msg.author_id != self.bot_user_id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        payload, files = await self._read_body(request)
        for _, filename, data, _ in files:
            if len(data) > self.guild_filesize_limit(guild_id):
                raise ApiError(413, 40005, f"Request entity too large: {filename}")
        self._apply_edit(msg, payload, self._uploads(channel_id, payload, files))
        return _json(self._message_payload(msg))

    async def _delete_channel_message(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        channel_id, _, _ = self._channel_or_404(request)
        self._message_or_404(channel_id, request.match_info["message_id"]).deleted = True
        return web.Response(status=204)

    # ------------------------------------------------------------------ interaction routes

    async def _callback(self, request: web.Request) -> web.Response:
        inter = self._interactions.get(int(request.match_info["interaction_id"]))
        if inter is None or inter.token != request.match_info["token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        if inter.callback_type is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if time.monotonic() - inter.delivered_at > self.callback_window_s:
            raise ApiError(404, 10062, "Unknown interaction")
        payload, files = await self._read_body(request)
        cb_type = int(payload.get("type", 0))
        data: Json = payload.get("data") or {}
        msg: FakeMessage | None = None
        uploads: list[FakeFile] = []
        if cb_type == CALLBACK_MESSAGE:
            self._validate(data, files, inter.attachment_size_limit)
            uploads = self._uploads(inter.channel_id, data, files)
            flags = int(data.get("flags") or 0)
            msg = await self._create_message(
                inter.channel_id, data, uploads, via="callback", flags=flags, interaction=inter
            )
            inter.original_message_id = msg.id
        elif cb_type == CALLBACK_DEFERRED_MESSAGE:
            flags = (int(data.get("flags") or 0) & EPHEMERAL) | LOADING
            msg = await self._create_message(
                inter.channel_id, {}, [], via="callback", flags=flags, interaction=inter
            )
            inter.original_message_id = msg.id
            inter.placeholder_pending = True
        elif cb_type == CALLBACK_UPDATE_MESSAGE:
            if inter.component_message_id is None or inter.component_message_id not in self._messages_by_id:
                raise ApiError(400, 50035, "Invalid Form Body: no message to update")
            msg = self._messages_by_id[inter.component_message_id]
            uploads = self._uploads(inter.channel_id, data, files)
            self._apply_edit(msg, data, uploads)
        elif cb_type not in (1, CALLBACK_DEFERRED_UPDATE, 8, 9, 10, 12):
            raise _form_error("type", f"Value {cb_type} is not a valid interaction callback type.")
        inter.callback_type = cb_type
        message_id = msg.id if msg is not None else None
        inter.events.append(InteractionEvent("callback", payload, cb_type, message_id, uploads))
        await self._notify()
        body: Json = {
            "interaction": {
                "id": str(inter.id),
                "type": inter.type,
                "response_message_loading": cb_type == CALLBACK_DEFERRED_MESSAGE,
                "response_message_ephemeral": bool(msg is not None and msg.ephemeral),
            }
        }
        if msg is not None:
            body["interaction"]["response_message_id"] = str(msg.id)
            body["resource"] = {"type": cb_type, "message": self._message_payload(msg)}
        else:
            body["resource"] = {"type": cb_type}
        return _json(body)

    def _webhook_interaction(self, request: web.Request) -> FakeInteraction:
        """The interaction behind /webhooks/{app}/{token}: 404 unknown, 401 code 50027 once expired."""
        inter = self._interactions_by_token.get(request.match_info["token"])
        if inter is None or request.match_info["app_id"] != str(self.application_id):
            raise ApiError(404, 10015, "Unknown Webhook")
        if inter.token_revoked or time.monotonic() > inter.token_expires_at:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return inter

    def _webhook_message(self, inter: FakeInteraction, raw_id: str) -> FakeMessage:
        message_id = (
            inter.original_message_id if raw_id == "@original" else int(raw_id) if raw_id.isdigit() else None
        )
        msg = self._messages_by_id.get(message_id) if message_id is not None else None
        belongs = msg is not None and (msg.interaction_id == inter.id or msg.id == inter.component_message_id)
        if msg is None or msg.deleted or not belongs:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    async def _followup(self, request: web.Request) -> web.Response:
        inter = self._webhook_interaction(request)
        if inter.callback_type is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        payload, files = await self._read_body(request)
        self._validate(payload, files, inter.attachment_size_limit)
        uploads = self._uploads(inter.channel_id, payload, files)
        flags = int(payload.get("flags") or 0)
        if inter.placeholder_pending:
            # The first followup after a defer fills the "thinking" placeholder and keeps the defer's
            # ephemeral flag, whatever this request asks for.
            msg = self._messages_by_id[inter.original_message_id or 0]
            self._apply_edit(msg, payload, uploads)
            msg.flags = (flags & ~(EPHEMERAL | LOADING)) | (msg.flags & EPHEMERAL)
            msg.via = "followup"
            inter.placeholder_pending = False
        else:
            msg = await self._create_message(
                inter.channel_id, payload, uploads, via="followup", flags=flags & ~LOADING, interaction=inter
            )
        inter.events.append(InteractionEvent("followup", payload, None, msg.id, uploads))
        await self._notify()
        if request.query.get("wait", "").lower() in ("1", "true"):
            return _json(self._message_payload(msg))
        return web.Response(status=204)

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        inter = self._webhook_interaction(request)
        return _json(self._message_payload(self._webhook_message(inter, request.match_info["message_id"])))

    async def _edit_webhook_message(self, request: web.Request) -> web.Response:
        inter = self._webhook_interaction(request)
        raw_id = request.match_info["message_id"]
        msg = self._webhook_message(inter, raw_id)
        payload, files = await self._read_body(request)
        for _, filename, data, _ in files:
            if len(data) > inter.attachment_size_limit:
                raise ApiError(413, 40005, f"Request entity too large: {filename}")
        uploads = self._uploads(inter.channel_id, payload, files)
        self._apply_edit(msg, payload, uploads)
        if msg.loading:
            msg.flags &= ~LOADING
            msg.via = "original"
            inter.placeholder_pending = False
        kind = "edit_original" if raw_id == "@original" else "edit_message"
        inter.events.append(InteractionEvent(kind, payload, None, msg.id, uploads))
        await self._notify()
        return _json(self._message_payload(msg))

    async def _delete_webhook_message(self, request: web.Request) -> web.Response:
        inter = self._webhook_interaction(request)
        raw_id = request.match_info["message_id"]
        msg = self._webhook_message(inter, raw_id)
        msg.deleted = True
        if msg.id == inter.original_message_id:
            inter.placeholder_pending = False
        kind = "delete_original" if raw_id == "@original" else "delete_message"
        inter.events.append(InteractionEvent(kind, {}, None, msg.id))
        await self._notify()
        return web.Response(status=204)

    # ------------------------------------------------------------------ CDN

    async def _cdn_get(self, request: web.Request) -> web.Response:
        info = request.match_info
        entry = self._cdn.get(int(info["attachment_id"])) if info["attachment_id"].isdigit() else None
        q = request.query
        try:
            ex, issued = int(q["ex"], 16), int(q["is"], 16)
            path = f"/attachments/{info['channel_id']}/{info['attachment_id']}/{info['filename']}"
            signed = hmac.compare_digest(q["hm"], self._sign(path, ex, issued))
        except (KeyError, ValueError):
            signed = False
        if entry is None or not signed or time.time() > min(ex, entry.expires_at):
            return web.Response(status=404, text="This content is no longer available.")
        self.cdn_in_flight += 1
        self.cdn_max_in_flight = max(self.cdn_max_in_flight, self.cdn_in_flight)
        try:
            await asyncio.sleep(self.cdn_delay_s)
        finally:
            self.cdn_in_flight -= 1
        self.download_counts[entry.file.id] += 1
        ctype = entry.file.content_type or "application/octet-stream"
        return web.Response(body=entry.file.data, headers={"Content-Type": ctype})


def _embed_length(embed: Json) -> int:
    """Characters counted towards the 6,000 total of a message's embeds."""
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    total += len((embed.get("footer") or {}).get("text") or "") + len(
        (embed.get("author") or {}).get("name") or ""
    )
    for f in embed.get("fields") or []:
        total += len(f.get("name") or "") + len(f.get("value") or "")
    return total
