"""The fake's interactions: payloads for slash commands and component presses, the callback route with its
3 s window, and the webhook routes of followups and the original response."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any, Unpack

from aiohttp import web

from tests.fakes.discord.protocol import (
    CALLBACK_DEFERRED_MESSAGE,
    CALLBACK_DEFERRED_UPDATE,
    CALLBACK_MESSAGE,
    CALLBACK_UPDATE_MESSAGE,
    DEFAULT_PERMISSIONS,
    DEFAULT_USER_ID,
    EPHEMERAL,
    LOADING,
    VOICE_MESSAGE,
    ApiError,
    Json,
    _form_error,
    _iso,
    _json,
    _utcnow,
    text_channel,
    user_payload,
)
from tests.fakes.discord.records import (
    FakeFile,
    FakeInteraction,
    FakeMessage,
    InteractionContext,
    InteractionEvent,
)


class InteractionRoutes:
    """FakeDiscord's interaction builders and its callback and webhook routes.

    Its state lives in FakeDiscord.__init__."""

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

    def member_message(
        self,
        channel_id: int,
        author_id: int,
        attachments: Sequence[Json] = (),
        *,
        content: str = "",
        voice: bool = False,
        replying_to: Json | None = None,
        with_referenced_message: bool = True,
        username: str = "member",
    ) -> Json:
        """A member's message payload (not one the bot made), to target with a message command: its
        ``attachments`` are payloads from ``add_attachment``; ``voice`` sets IS_VOICE_MESSAGE (1 << 13), as
        Discord does on a voice message (one audio/ogg attachment with ``duration_secs`` and ``waveform``);
        ``replying_to``: another such payload, which it replies to (its ``message_reference``, and the
        replied message itself as ``referenced_message`` unless ``with_referenced_message`` is False: Discord
        may leave it out). The fake keeps the message: GET /channels/{c}/messages/{m} returns it until
        ``delete_member_message``."""
        message_id = self.new_id()
        guild_id = self._channels[channel_id][0] if channel_id in self._channels else None
        payload: Json = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "type": 19 if replying_to is not None else 0,
            "content": content,
            "embeds": [],
            "components": [],
            "attachments": [{k: v for k, v in a.items() if k != "ephemeral"} for a in attachments],
            "author": user_payload(author_id, username),
            "timestamp": _iso(_utcnow()),
            "edited_timestamp": None,
            "flags": VOICE_MESSAGE if voice else 0,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
        }
        if guild_id is not None:
            payload["guild_id"] = str(guild_id)
        if replying_to is not None:
            payload["message_reference"] = {
                "type": 0,
                "message_id": replying_to["id"],
                "channel_id": replying_to["channel_id"],
                **({"guild_id": replying_to["guild_id"]} if "guild_id" in replying_to else {}),
            }
            if with_referenced_message:
                payload["referenced_message"] = replying_to
        self._member_messages[message_id] = {k: v for k, v in payload.items() if k != "referenced_message"}
        return payload

    def make_message_command_interaction(
        self,
        name: str,
        target: Json,
        *,
        command_guild_id: int | None = None,
        **context: Unpack[InteractionContext],
    ) -> Json:
        """Build and register a MESSAGE command interaction (type 2, ``data.type`` 3: right click → Apps) on
        ``target`` (a payload from ``member_message``), which Discord sends in ``resolved.messages``. The
        interaction happens in the target's channel."""
        cmd = next(
            (c for c in self._commands.get(command_guild_id, []) if c["name"] == name and c.get("type") == 3),
            None,
        )
        data: Json = {
            "id": cmd["id"] if cmd else str(self.new_id()),
            "name": name,
            "type": 3,
            "target_id": target["id"],
            "resolved": {"messages": {target["id"]: target}},
        }
        if command_guild_id is not None:
            data["guild_id"] = str(command_guild_id)
        context.setdefault("channel_id", int(target["channel_id"]))
        if "guild_id" in target:
            context.setdefault("guild_id", int(target["guild_id"]))
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
            guild_locale = context.get("guild_locale", guild.preferred_locale)
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
                guild={"id": str(guild_id), "locale": guild_locale, "features": guild.features},
                guild_locale=guild_locale,
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
