"""Notifications inside one process: the subscribers of a store and how a notice reaches each of them.

Both backends hand every notice they receive to `Fanout.deliver` (SQLite the ones published in this
process, after their commit; PostgreSQL the ones its LISTEN connection reads, from any process), and each
subscriber reads its own queue. Notices are also encoded here for the wire (`encode` / `decode`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from core.ports import JobEvent, JobNotice

log = logging.getLogger(__name__)

# Notices a subscriber may have waiting; past it, new ones are dropped for that subscriber (a notice is a
# hint: a missed one only delays what the database says anyway), and it is told to look again (RESYNC).
QUEUE_LIMIT = 1000


def encode(notice: JobNotice) -> str:
    """The notice as a short text payload: `event:job_id[:percent]`."""
    text = f"{notice.event.value}:{notice.job_id}"
    return text if notice.percent is None else f"{text}:{notice.percent}"


def decode(payload: str) -> JobNotice | None:
    """The notice in a payload, or None for one this version does not understand (a newer process's)."""
    parts = payload.split(":")
    try:
        event = JobEvent(parts[0])
        job_id = int(parts[1]) if len(parts) > 1 else 0
        percent = int(parts[2]) if len(parts) > 2 else None
    except ValueError:
        return None
    return JobNotice(event, job_id, percent)


class Subscription:
    """One subscriber's notices, in order (NoticeStream). Iterating waits for the next one."""

    def __init__(self, fanout: Fanout) -> None:
        self._fanout = fanout
        self._queue: asyncio.Queue[JobNotice] = asyncio.Queue(QUEUE_LIMIT)
        self._overflowed = False
        self.closed = False

    def __aiter__(self) -> AsyncIterator[JobNotice]:
        return self

    async def __anext__(self) -> JobNotice:
        if self.closed:
            raise StopAsyncIteration
        if self._overflowed and self._queue.empty():
            self._overflowed = False
            return JobNotice(JobEvent.RESYNC)
        notice = await self._queue.get()
        if self.closed:  # woken by close()
            raise StopAsyncIteration
        return notice

    def put(self, notice: JobNotice) -> None:
        """Queue a notice for this subscriber (dropped, and a RESYNC owed, when the queue is full)."""
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            if not self._overflowed:
                log.warning("a notification subscriber is %s notices behind; dropping", QUEUE_LIMIT)
            self._overflowed = True

    def close(self) -> None:
        """Stop receiving notices."""
        self.closed = True
        self._fanout.remove(self)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(JobNotice(JobEvent.RESYNC))  # wakes a reader waiting in __anext__

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Fanout:
    """The subscribers of one store; `deliver` hands a notice to each."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        """A new subscriber, receiving the notices delivered from now on."""
        subscription = Subscription(self)
        self._subscribers.add(subscription)
        return subscription

    def remove(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    def deliver(self, notice: JobNotice) -> None:
        """Hand `notice` to every subscriber."""
        for subscription in list(self._subscribers):
            subscription.put(notice)
