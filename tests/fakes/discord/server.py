"""FakeDiscord: the server (REST, gateway, CDN) with its state, lifecycle, configuration, faults, the
accessors tests assert with, HTTP plumbing, identity and command routes. Its routes are spread over mixins
by area: gateway.py, messages.py, interactions.py, cdn.py."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.discord.cdn import CdnMixin
from tests.fakes.discord.gateway import GatewayMixin
from tests.fakes.discord.interactions import InteractionRoutes
from tests.fakes.discord.messages import MessageRoutes
from tests.fakes.discord.protocol import (
    _PREMIUM_SUBSCRIPTIONS,
    API_PREFIX,
    DEFAULT_FILESIZE_LIMIT,
    DEFAULT_PERMISSIONS,
    DEFAULT_USER_ID,
    LISTEN_BACKLOG,
    MIB,
    PREMIUM_FILESIZE_LIMITS,
    ApiError,
    Json,
    _form_error,
    _iso,
    _json,
    _utcnow,
    snowflake_at,
    text_channel,
    user_payload,
)
from tests.fakes.discord.records import (
    FakeInteraction,
    FakeMessage,
    Hold,
    RequestRecord,
    _CdnEntry,
    _Fault,
    _Guild,
    _Session,
)

log = logging.getLogger(__name__)


class FakeDiscord(GatewayMixin, MessageRoutes, InteractionRoutes, CdnMixin):
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
        # Members' messages (``member_message``) as Discord's message objects, less ``referenced_message``.
        self._member_messages: dict[int, Json] = {}
        self._interactions: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self._nonces: dict[tuple[int, str], tuple[int, float]] = {}
        self._commands: dict[int | None, list[Json]] = {}
        self._cdn: dict[int, _CdnEntry] = {}
        self._cdn_secret = secrets.token_bytes(16)
        self._faults: list[_Fault] = []
        self._holds: list[Hold] = []
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
        for hold in self._holds:
            hold.release()  # a held request must not keep the server's cleanup waiting
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
        preferred_locale: str = "en-US",
    ) -> None:
        """Configure a guild the bot is in; GUILD_CREATE follows READY (add guilds before connecting).
        ``preferred_locale``: its Community "primary language" (also its interactions' ``guild_locale``)."""
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
            preferred_locale=preferred_locale,
        )
        self._guilds[guild_id] = guild
        for channel in channels:
            self.add_text_channel(
                guild_id, int(channel["id"]), channel["name"], nsfw=channel.get("nsfw", False)
            )

    async def set_guild_locale(self, guild_id: int, preferred_locale: str) -> None:
        """Change a guild's Community "primary language", as its admins can at any time: GUILD_UPDATE tells
        connected sessions, and its later interactions carry it as ``guild_locale``."""
        self._guilds[guild_id].preferred_locale = preferred_locale
        await self.dispatch("GUILD_UPDATE", self.guild_payload(guild_id))

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
            "preferred_locale": g.preferred_locale,
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
        """Forget every injected fault not used up yet (and release every hold)."""
        self._faults.clear()
        for hold in self._holds:
            hold.release()
        self._holds.clear()

    def hold(self, route_substring: str, body_contains: str = "") -> Hold:
        """Hold the next request whose "METHOD /path" contains the substring and whose body contains
        ``body_contains`` (a JSON body; a multipart one is not read) until ``release()``: it reaches the
        fake (``arrived``) but takes effect and is answered only then, as a request slow on its way. Other
        requests go on meanwhile."""
        hold = Hold(route_substring, body_contains)
        self._holds.append(hold)
        return hold

    async def _wait_if_held(self, request: web.Request, target: str) -> None:
        for hold in self._holds:
            if hold.taken or hold.route_substring not in target:
                continue
            # A JSON body is read once and kept by aiohttp (the handler reads it again); a multipart one is a
            # stream, so only its route can match.
            peek = hold.body_contains and not request.content_type.startswith("multipart/")
            body = (await request.read()).decode("utf-8", "replace") if peek else ""
            if hold.body_contains in body:
                hold.taken = True
                hold.arrived.set()
                await self._notify()
                await hold.released.wait()
                return

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        target = f"{method} {path}"
        for fault in self._faults:
            if fault.remaining > 0 and fault.route_substring in target:
                fault.remaining -= 1
                return fault
        return None

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
            if request.path != "/gateway":
                await self._wait_if_held(request, f"{request.method} {path}")
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
        if request.body_exists:  # (not can_read_body: a body already read, by a hold, is at its end)
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
