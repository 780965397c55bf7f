"""A process-wide cap on work that holds members' files in memory: downloads and decodes.

The cogs hold a slot while they download a member's attachments, and JobService holds one while it decodes
them; a member who waits long is told so, and one who waits too long is asked to try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from core.errors import UserFacingError

log = logging.getLogger(__name__)

# Downloads and decodes of members' files at once, in the whole process. Each holds up to two 10 MiB files,
# and a decode of a 6000 px image holds ~150 MB of pixels for up to a second of CPU: on a small machine
# (2 cores) a burst of /animate must queue here rather than exhaust memory and starve the event loop.
MAX_CONCURRENT_HEAVY_WORK = 4
# A member waiting this long for a slot is told they are waiting; after the second figure, to try again.
SLOT_NOTICE_AFTER_S = 1.0
SLOT_GIVE_UP_AFTER_S = 120.0
BUSY = "The bot is very busy right now. Please try again in a minute; nothing was charged."


class WorkSlots:
    """A process-wide cap on work that holds members' files in memory (downloads and decodes)."""

    def __init__(
        self,
        size: int = MAX_CONCURRENT_HEAVY_WORK,
        *,
        notice_after_s: float = SLOT_NOTICE_AFTER_S,
        give_up_after_s: float = SLOT_GIVE_UP_AFTER_S,
    ) -> None:
        self._slots = asyncio.Semaphore(size)
        self._notice_after_s = notice_after_s
        self._give_up_after_s = give_up_after_s

    @contextlib.asynccontextmanager
    async def hold(self, on_wait: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[None]:
        """Run the body in a free slot, waiting in line for one. `on_wait` runs once if the wait is
        longer than a moment (to tell the member); a wait longer than SLOT_GIVE_UP_AFTER_S gives up with
        a UserFacingError (nothing was downloaded or charged)."""
        try:
            async with asyncio.timeout(self._notice_after_s):
                await self._slots.acquire()
        except TimeoutError:
            if on_wait is not None:
                await on_wait()
            try:
                async with asyncio.timeout(self._give_up_after_s):
                    await self._slots.acquire()
            except TimeoutError:
                log.warning("no free slot for downloads and decodes in %s s", self._give_up_after_s)
                raise UserFacingError(BUSY) from None
        try:
            yield
        finally:
            self._slots.release()
