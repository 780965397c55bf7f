"""JobEvents on PostgreSQL: LISTEN/NOTIFY, so a notification reaches every process on the database.

Notifications tied to a state change are sent in its transaction (`PostgresConnection._notify`); others
by `publish`. This process listens on a connection of its own, outside the pool (a pooled connection is
reset when it is handed back, which would end its LISTEN), opened when the first subscriber arrives. When
that connection drops (a restart, an operator ending sessions), it is opened again with a backoff and one
log line per outage (one that stops answering without closing, a network path that died silently, is
found by a periodic SELECT 1 and ended); since notifications sent meanwhile are lost, the subscribers are
then told to look at the database (RESYNC).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from core.ports import JobEvent, JobNotice
from storage.events import Subscription, decode, encode
from storage.postgres.connection import PostgresConnection, connection_lost

log = logging.getLogger(__name__)

# Reconnecting the LISTEN connection: the first wait, doubled up to the longest.
RECONNECT_FIRST_S = 0.2
RECONNECT_MAX_S = 10.0
# How often the LISTEN connection is checked for having closed without telling (besides asyncpg's own
# termination callback), and asked a question that must be answered within PING_TIMEOUT_S: a network
# path that died silently (no reset, no close) leaves the socket open and the notifications lost.
CHECK_EVERY_S = 5.0
PING_TIMEOUT_S = 10.0


class PostgresEvents(PostgresConnection):
    """JobEvents on PostgreSQL."""

    _listener: asyncio.Task[None] | None = None

    async def publish(self, notice: JobNotice) -> None:
        """Send a notification on its own (`pg_notify` in a transaction of its own)."""
        await self._fetch("SELECT pg_notify($1, $2)", self._channel, encode(notice))

    def subscribe(self) -> Subscription:
        """Start receiving notifications; the first subscriber starts this process's LISTEN connection."""
        subscription = self._fanout.subscribe()
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="postgres-listen")
        return subscription

    async def close(self) -> None:
        """Stop listening, then close the pool."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        await super().close()

    async def _listen(self) -> None:
        """Keep a LISTEN connection open until cancelled, reconnecting after every drop."""
        delay = RECONNECT_FIRST_S
        outage = False
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, server_settings=self._server_settings)
            except Exception as error:
                if not connection_lost(error) and not isinstance(error, asyncpg.PostgresError):
                    raise
                if not outage:
                    log.warning("cannot listen for notifications, the database is unavailable (%s)", error)
                outage = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            try:
                await self._follow(conn, resumed=outage)
                outage, delay = True, RECONNECT_FIRST_S
                log.warning("the notification connection to the database was lost; listening again")
            except Exception as error:
                if not connection_lost(error, None) and not conn.is_closed():
                    raise
                if not outage:
                    log.warning("the notification connection to the database was lost (%s)", error)
                outage = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
            finally:
                if conn.is_closed():
                    conn.terminate()
                else:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))

    async def _follow(self, conn: asyncpg.Connection, *, resumed: bool) -> None:
        """LISTEN on `conn` and hand each notification to the subscribers until the connection ends.
        `resumed`: after an outage."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(self._channel, self._received)
        if resumed:
            log.info("listening for notifications again")
        # Notifications sent before this LISTEN (the outage, or the moment since the first subscriber
        # arrived) are lost: whoever waits on one looks at the database now.
        self._fanout.deliver(JobNotice(JobEvent.RESYNC))
        while not lost.is_set() and not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECK_EVERY_S):
                    await lost.wait()
            if lost.is_set() or conn.is_closed():
                break
            try:
                async with asyncio.timeout(PING_TIMEOUT_S):
                    await conn.fetchval("SELECT 1")
            except TimeoutError:
                log.info("the notification connection to the database stopped answering; ending it")
                conn.terminate()
                return

    def _received(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        notice = decode(str(payload))
        if notice is None:
            log.debug("ignored a notification this version does not understand: %r", payload)
            return
        self._fanout.deliver(notice)
