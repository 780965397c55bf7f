"""The fake's channel routes: messages (create with nonces and upload limits, history pages, edit, delete),
channels, users and DMs."""

from __future__ import annotations

import time

from aiohttp import web

from tests.fakes.discord.protocol import (
    EPHEMERAL,
    ApiError,
    Json,
    _embed_length,
    _form_error,
    _iso,
    _json,
    _utcnow,
    user_payload,
)
from tests.fakes.discord.records import FakeFile, FakeInteraction, FakeMessage


class MessageRoutes:
    """FakeDiscord's channel, message, user and DM routes.

    Its state lives in FakeDiscord.__init__."""

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

    def delete_member_message(self, message: Json) -> None:
        """A member deletes their message (a ``member_message`` payload): fetching it then gets 404 10008, and
        a reply to it carries ``referenced_message: null``."""
        self._member_messages.pop(int(message["id"]), None)

    def _member_message(self, channel_id: int, raw_id: str) -> Json | None:
        """A member's message of this channel as GET returns it: a reply carries the message it replies to
        as ``referenced_message`` (null once that one is deleted), one level deep, as Discord does."""
        stored = self._member_messages.get(int(raw_id)) if raw_id.isdigit() else None
        if stored is None or int(stored["channel_id"]) != channel_id:
            return None
        reference = stored.get("message_reference")
        if reference is None or reference.get("type", 0) != 0:
            return dict(stored)
        replied = self._member_messages.get(int(reference["message_id"]))
        if replied is None and int(reference["message_id"]) in self._messages_by_id:
            bot_message = self._messages_by_id[int(reference["message_id"])]
            replied = None if bot_message.deleted else self._message_payload(bot_message)
        return {**stored, "referenced_message": replied}

    async def _get_channel_message(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        channel_id, _, _ = self._channel_or_404(request)
        member = self._member_message(channel_id, request.match_info["message_id"])
        if member is not None:
            return _json(member)
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
