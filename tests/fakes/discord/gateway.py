"""The fake's gateway: HELLO, IDENTIFY (READY and GUILD_CREATE, or held back), RESUME, heartbeats and
dispatches. A session IDENTIFYing with ``shard: [id, count]`` gets the guilds and events of that shard
only, as Discord routes them: (guild_id >> 22) % count."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

from aiohttp import WSMsgType, web

from tests.fakes.discord.protocol import (
    OP_DISPATCH,
    OP_HEARTBEAT,
    OP_HEARTBEAT_ACK,
    OP_HELLO,
    OP_IDENTIFY,
    OP_INVALID_SESSION,
    OP_RESUME,
    Json,
)
from tests.fakes.discord.records import _Session

log = logging.getLogger(__name__)


def shard_of(guild_id: int | str | None, shard_count: int) -> int:
    """The shard Discord sends a guild's events to: (guild_id >> 22) % shard_count; DMs go to shard 0."""
    return 0 if guild_id is None else (int(guild_id) >> 22) % shard_count


def shard_serves(shard: tuple[int, int], guild_id: int | str | None) -> bool:
    """Whether a session of ``shard`` ([id, count]) gets the events of ``guild_id``."""
    return shard_of(guild_id, shard[1]) == shard[0]


class GatewayMixin:
    """FakeDiscord's gateway websocket and the events it dispatches.

    Its state lives in FakeDiscord.__init__."""

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
        """Send a DISPATCH to every identified session of the event's shard (data's ``guild_id``; none: a
        DM, shard 0); return how many had an open socket.

        Sessions whose socket dropped buffer it for a RESUME.
        """
        guild_id = data.get("guild_id") if isinstance(data, dict) else None
        delivered = 0
        for session in list(self._sessions.values()):
            if shard_serves(session.shard, guild_id) and await self._send_dispatch(session, event, data):
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
        shard = d.get("shard") or [0, 1]
        if not (isinstance(shard, list) and len(shard) == 2 and 0 <= shard[0] < shard[1]):
            await ws.close(code=4010, message=b"Invalid shard.")
            return None
        session = _Session(session_id=uuid.uuid4().hex, ws=ws, shard=(int(shard[0]), int(shard[1])))
        self._sessions[session.session_id] = session
        if self.hold_ready:
            self._held_sessions.append(session)
            await self._notify()
            return session
        await self._send_ready(session)
        return session

    async def release_ready(self) -> None:
        """Stop holding back READY: send it (and every GUILD_CREATE) to the sessions that wait for it."""
        self.hold_ready = False
        held, self._held_sessions = self._held_sessions, []
        for session in held:
            await self._send_ready(session)

    async def _send_ready(self, session: _Session) -> None:
        guilds = [gid for gid in self._guilds if shard_serves(session.shard, gid)]
        ready = {
            "v": 10,
            "user": self.bot_user(),
            "guilds": [{"id": str(gid), "unavailable": True} for gid in guilds],
            "session_id": session.session_id,
            "resume_gateway_url": self.gateway_url,
            "shard": list(session.shard),
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "user_settings": {},
            "presences": [],
        }
        await self._send_dispatch(session, "READY", ready)
        for guild_id in guilds:
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
