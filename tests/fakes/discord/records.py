"""What the fake holds and records: messages and their files, interactions and their responses, requests,
and its guilds, faults, CDN entries and gateway sessions."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypedDict

from aiohttp import web

from tests.fakes.discord.protocol import EPHEMERAL, LOADING, Json, _utcnow


class InteractionContext(TypedDict, total=False):
    """Where and by whom an interaction is made (keyword arguments of the ``make_*_interaction`` methods).

    Defaults: the first configured guild and its first channel; user DEFAULT_USER_ID "tester" with no roles
    and DEFAULT_PERMISSIONS (also the bot's ``app_permissions``); the channel's own nsfw flag; the guild's
    filesize limit as ``attachment_size_limit``; now as ``created_at`` (it dates the snowflake id, which
    ``Interaction.is_expired()`` reads, and the 15-minute token expiry); ``dm=True`` makes a DM interaction;
    ``locale`` en-US (the member's Discord language); ``guild_locale`` the guild's ``preferred_locale``.
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
    guild_locale: str


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
    preferred_locale: str = "en-US"


@dataclass
class _Fault:
    route_substring: str
    status: int
    body: Json
    headers: dict[str, str]
    remaining: int
    after_effect: bool = False  # the request is carried out, then its answer is replaced (a lost answer)


@dataclass
class Hold:
    """A request held on its way (``FakeDiscord.hold``): it takes effect, and is answered, only once
    ``release()`` is called. ``arrived`` is set when the fake has it."""

    route_substring: str
    body_contains: str
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    taken: bool = False

    def release(self) -> None:
        self.released.set()


@dataclass
class _CdnEntry:
    file: FakeFile
    expires_at: float  # wall clock, like the ``ex`` parameter


@dataclass
class _Session:
    session_id: str
    # The IDENTIFY's [shard id, shard count]: the session gets the events of the guilds of that shard.
    shard: tuple[int, int] = (0, 1)
    seq: int = 0
    buffer: list[Json] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
