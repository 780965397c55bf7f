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
(404), injected 429s and error statuses (also after the request took effect: a lost answer), requests held
on their way until released (``hold``: a slow edit), a gateway that can hold back READY (``hold_ready``),
and languages: a guild's ``preferred_locale`` (``add_guild``; ``set_guild_locale`` changes it with a
GUILD_UPDATE) and each interaction's ``locale`` and ``guild_locale`` (keyword arguments of the
``make_*_interaction`` methods). Everything is recorded for assertions: messages
with their edit history, every interaction's responses in order, the request log and unknown routes.

Responses carry ``Content-Type: application/json`` exactly: with a charset suffix discord.py reads the body as
text. The gateway speaks plain JSON text frames; discord.py asks for ``compress=zlib-stream`` but only
decompresses binary frames, so sending text frames is how the fake declines compression.

Modules: `server` (FakeDiscord: state, lifecycle, configuration, faults, accessors, HTTP plumbing), `gateway`,
`messages` (channel, message and DM routes), `interactions` (payload builders, message commands on a
member's message included, callback and webhook routes), `cdn` (signed attachment URLs), `records` (what it
holds and records), `protocol` (constants, payload builders, errors).
"""

from tests.fakes.discord.protocol import (
    ADMINISTRATOR,
    API_PREFIX,
    ATTACH_FILES,
    CALLBACK_DEFERRED_MESSAGE,
    CALLBACK_DEFERRED_UPDATE,
    CALLBACK_MESSAGE,
    CALLBACK_UPDATE_MESSAGE,
    DEFAULT_FILESIZE_LIMIT,
    DEFAULT_PERMISSIONS,
    DEFAULT_USER_ID,
    DISCORD_EPOCH_MS,
    EMBED_LINKS,
    EPHEMERAL,
    LISTEN_BACKLOG,
    LOADING,
    MIB,
    OP_DISPATCH,
    OP_HEARTBEAT,
    OP_HEARTBEAT_ACK,
    OP_HELLO,
    OP_IDENTIFY,
    OP_INVALID_SESSION,
    OP_RESUME,
    PREMIUM_FILESIZE_LIMITS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    USE_APPLICATION_COMMANDS,
    VIEW_CHANNEL,
    VOICE_MESSAGE,
    ApiError,
    point_discord_py_at,
    snowflake_at,
    text_channel,
    user_payload,
)
from tests.fakes.discord.records import (
    FakeFile,
    FakeInteraction,
    FakeMessage,
    Hold,
    InteractionContext,
    InteractionEvent,
    RequestRecord,
)
from tests.fakes.discord.server import FakeDiscord

__all__ = [
    "ADMINISTRATOR",
    "API_PREFIX",
    "ATTACH_FILES",
    "CALLBACK_DEFERRED_MESSAGE",
    "CALLBACK_DEFERRED_UPDATE",
    "CALLBACK_MESSAGE",
    "CALLBACK_UPDATE_MESSAGE",
    "DEFAULT_FILESIZE_LIMIT",
    "DEFAULT_PERMISSIONS",
    "DEFAULT_USER_ID",
    "DISCORD_EPOCH_MS",
    "EMBED_LINKS",
    "EPHEMERAL",
    "LISTEN_BACKLOG",
    "LOADING",
    "MIB",
    "OP_DISPATCH",
    "OP_HEARTBEAT",
    "OP_HEARTBEAT_ACK",
    "OP_HELLO",
    "OP_IDENTIFY",
    "OP_INVALID_SESSION",
    "OP_RESUME",
    "PREMIUM_FILESIZE_LIMITS",
    "READ_MESSAGE_HISTORY",
    "SEND_MESSAGES",
    "USE_APPLICATION_COMMANDS",
    "VIEW_CHANNEL",
    "VOICE_MESSAGE",
    "ApiError",
    "FakeDiscord",
    "FakeFile",
    "FakeInteraction",
    "FakeMessage",
    "Hold",
    "InteractionContext",
    "InteractionEvent",
    "RequestRecord",
    "point_discord_py_at",
    "snowflake_at",
    "text_channel",
    "user_payload",
]
