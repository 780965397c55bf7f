"""The member's private acknowledgement of a job, kept true while this process holds its interaction: the
job's place in line while it waits, then Runware's progress, then the outcome; never a stale "working"
after the job ended.

Every edit of one acknowledgement goes through its lock, so edits reach Discord in the order they were
made: an outcome waits for a progress edit already on its way, and is the last edit (a change that comes
after it is dropped). Changes are shown at most once per `interval_s` per acknowledgement (Discord's
per-route rate limits), the outcome at once; a change held back is shown by the next refresh. Each refresh
also reads where every held job stands (one query, `job_places`), so a job submitted, cancelled or ended by
another process shows even when its notification was missed (or, on SQLite, never crosses processes).

Discord lets a bot edit an interaction's reply for 15 minutes only: the acknowledgement says so in its
first text (`follows_until_text`), and an acknowledgement whose token ran out is let go.

An acknowledgement is also kept in the database while its token lives (`Keeping`, cogs/delivery.py), so
that a process started after a restart adopts it (`adopt`) and edits it through the interaction's webhook,
with the same lock, pace and last-word rules; the row goes when the outcome is shown, or the token expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import discord

from cogs._i18n import Words, words
from cogs._wording import line_text, making_text
from core.models import JobPlace, JobStatus

log = logging.getLogger(__name__)

# The most often one acknowledgement is edited with progress (the outcome is never held back).
ACK_EDIT_INTERVAL_S = 5.0
# A change of place is worth an edit when the job is this near the front …
NEAR_THE_FRONT = 10
# … or when it moved up by at least this share of the place shown (from 57th to 51st, not to 56th).
MOVED_SHARE = 0.1
# The interaction's reply, in the webhook's message route (discord.py types message ids as ints, and
# formats this one into the URL as Discord documents it: /webhooks/{application}/{token}/messages/@original).
ORIGINAL = cast(int, "@original")


@dataclass
class Ack:
    """A job's private acknowledgement and what it shows: `head` (the job, its estimate, the promise),
    then one line for the state: its place, or Runware's progress.

    Edited through `interaction` while this process holds the live one; else (adopted after a restart)
    through `webhook`, the interaction's webhook rebuilt from its stored token, until `expires_at`."""

    interaction: discord.Interaction[Any] | None
    head: str
    shown: str
    locale: str
    expires_at: float
    webhook: discord.Webhook | None = None
    place: int | None = None
    shown_place: int | None = None
    making: bool = False
    percent: int | None = None
    last_edit: float = -math.inf
    ended: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def words(self) -> Words:
        """Its member's language (their interaction's locale)."""
        return words(self.locale)

    def expired(self) -> bool:
        """Whether its token ran out (Discord refuses edits then)."""
        if self.interaction is not None:
            return self.interaction.is_expired()
        return time.time() >= self.expires_at

    async def edit(self, text: str, *, final: bool = False) -> None:
        """Show `text`; `final`: the outcome, without the Cancel button."""
        if self.interaction is not None:
            if final:
                await self.interaction.edit_original_response(content=text, view=None)
            else:
                await self.interaction.edit_original_response(content=text)
        elif self.webhook is not None:
            if final:
                await self.webhook.edit_message(ORIGINAL, content=text, view=None)
            else:
                await self.webhook.edit_message(ORIGINAL, content=text)

    def text(self) -> str:
        """What the acknowledgement should say now, in its member's language (their interaction's)."""
        _ = self.words()
        if self.making:
            return f"{self.head}\n{making_text(_, self.percent)}"
        if self.place is not None:
            return f"{self.head}\n{line_text(_, self.place)}"
        return self.head

    def worth_an_edit(self) -> bool:
        """Whether what it should say differs enough from what it shows."""
        if self.ended or self.text() == self.shown:
            return False
        if self.making or self.place is None or self.shown_place is None:
            return True
        moved = self.shown_place - self.place
        return self.place <= NEAR_THE_FRONT or moved >= MOVED_SHARE * self.shown_place


def opening_text(_: Words, head: str, stands: JobPlace | None) -> str:
    """The acknowledgement's first text: its head, then the job's place when it waits, or that it is being
    made when Runware has it already (the runner may submit it before the acknowledgement is sent)."""
    if stands is not None and stands.place is not None:
        return f"{head}\n{line_text(_, stands.place)}"
    if stands is not None and stands.status is JobStatus.PROCESSING:
        return f"{head}\n{making_text(_, None)}"
    return head


class Acks:
    """The acknowledgements this process holds, by job number, and their edits."""

    def __init__(
        self,
        interval_s: float = ACK_EDIT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        forget: Callable[[int], Awaitable[None]] | None = None,
    ):
        """`forget`: delete a job's stored acknowledgement (called once nothing more will be shown in it)."""
        self.interval_s = interval_s
        self._clock = clock
        self._forget = forget
        self._held: dict[int, Ack] = {}

    def track(
        self,
        job_id: int,
        interaction: discord.Interaction[Any],
        head: str,
        shown: str,
        stands: JobPlace | None,
    ) -> None:
        """Hold a job's acknowledgement, as first shown (`shown`: opening_text of `head` and `stands`)."""
        place = stands.place if stands is not None else None
        making = stands is not None and stands.status is JobStatus.PROCESSING
        locale, expires_at = str(interaction.locale), interaction.expires_at.timestamp()
        self._held[job_id] = Ack(
            interaction, head, shown, locale, expires_at, place=place, shown_place=place, making=making
        )

    def adopt(
        self, job_id: int, webhook: discord.Webhook, head: str, shown: str, locale: str, expires_at: float
    ) -> bool:
        """Hold a job's acknowledgement kept by an earlier process (`webhook`: its interaction's), as it
        last stood; its place or progress is read by the next refresh. False when one is held already."""
        if job_id in self._held or time.time() >= expires_at:
            return False
        self._held[job_id] = Ack(None, head, shown, locale, expires_at, webhook=webhook)
        return True

    def live(self, job_id: int) -> Ack | None:
        """The acknowledgement of a job, while its token still works."""
        ack = self._held.get(job_id)
        return ack if ack is not None and not ack.expired() else None

    def held(self) -> list[int]:
        """The jobs whose acknowledgements can still be edited (the others are let go; their rows are
        pruned by the keeper's refresh pass)."""
        for job_id in [j for j, a in self._held.items() if a.expired()]:
            del self._held[job_id]
        return list(self._held)

    async def end(self, job_id: int, *, forget: bool = True) -> Ack | None:
        """Let go of a job's acknowledgement: nothing more is shown in it. Returns once an edit on its way
        has been answered, so that whatever the caller shows next is the last word. `forget`: delete its
        stored row too (not when closing: a process started next adopts it)."""
        ack = self._held.pop(job_id, None)
        if ack is not None:
            async with ack.lock:
                ack.ended = True
            if forget:
                await self.forget(job_id)
        return ack

    async def forget(self, job_id: int) -> None:
        """Delete a job's stored acknowledgement; a failure leaves it to the prune at its expiry."""
        if self._forget is None:
            return
        try:
            await self._forget(job_id)
        except Exception as error:  # the database may be down: the row expires within 15 minutes
            log.debug("job=%s stored acknowledgement not deleted: %s", job_id, type(error).__name__)

    async def finish(self, job_id: int, text: str) -> None:
        """Show the outcome: the last edit, after any edit on its way, without the Cancel button."""
        ack = self._held.pop(job_id, None)  # at once: no change is shown after this
        if ack is None:
            return
        if ack.expired():
            await self.forget(job_id)
            return
        async with ack.lock:
            if ack.ended:
                return  # ended by another path (its member's Cancel), which had the last word
            ack.ended = True
            try:
                await ack.edit(text, final=True)
            except (discord.HTTPException, RuntimeError) as error:  # RuntimeError: closing down
                # A courtesy: the public post is what counts.
                log.debug("job=%s could not show the outcome in its acknowledgement: %r", job_id, error)
        await self.forget(job_id)

    def progress(self, job_id: int, percent: int | None) -> bool:
        """Runware has the job (`percent`: how far along, when it says). False when not held here."""
        ack = self.live(job_id)
        if ack is None:
            return False
        ack.making, ack.place = True, None
        if percent is not None and (ack.percent is None or percent > ack.percent):
            ack.percent = percent  # never backwards: a stale or reordered report is not shown
        return True

    def stands(self, place: JobPlace) -> None:
        """Take in where a job stands, read from the database."""
        ack = self.live(place.job_id)
        if ack is None or ack.making:
            return  # never back from being made to waiting
        if place.place is not None:
            ack.place = place.place if ack.place is None else min(ack.place, place.place)
        elif place.status is JobStatus.PROCESSING:
            ack.making, ack.place = True, None

    async def show(self, job_id: int) -> None:
        """Edit the acknowledgement with what it should say now, unless it was edited less than
        `interval_s` ago, an edit is on its way, or the change is too small (the next refresh looks again)."""
        ack = self.live(job_id)
        if ack is None or ack.lock.locked() or self._clock() - ack.last_edit < self.interval_s:
            return
        if not ack.worth_an_edit():
            return
        async with ack.lock:
            if ack.ended:
                return
            text, place = ack.text(), (None if ack.making else ack.place)
            ack.last_edit = self._clock()
            try:
                await ack.edit(text)
            except (discord.HTTPException, RuntimeError) as error:
                log.debug("job=%s could not update its acknowledgement: %r", job_id, error)
                if not (isinstance(error, discord.HTTPException) and error.status == 401):
                    return  # the next refresh tries again
                # Its token is dead (revoked, or our clock behind Discord's): every later edit would be
                # refused too, and refusals count towards Discord's limit of invalid requests.
                ack.ended = True
                self._held.pop(job_id, None)
            else:
                ack.shown, ack.shown_place = text, place
                return
        await self.forget(job_id)

    async def refresh(
        self,
        places: Callable[[list[int]], Awaitable[dict[int, JobPlace]]],
        recorded: Callable[[int], Awaitable[None]],
    ) -> None:
        """Read where every held job stands and show it; `recorded` is called for a job whose outcome is
        recorded (posted, or nothing to post), to show it."""
        held = self.held()
        if not held:
            return
        read = await places(held)
        shows: list[Awaitable[None]] = []
        for job_id in held:
            place = read.get(job_id)
            if place is None:
                continue
            if place.delivered:
                shows.append(recorded(job_id))
                continue
            self.stands(place)
            shows.append(self.show(job_id))
        await asyncio.gather(*shows)

    async def keep_fresh(
        self,
        places: Callable[[list[int]], Awaitable[dict[int, JobPlace]]],
        recorded: Callable[[int], Awaitable[None]],
        chores: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Refresh every half interval until cancelled, after `chores` (adopting, pruning the stored
        acknowledgements); no error stops it."""
        while True:
            await asyncio.sleep(self.interval_s / 2)
            try:
                if chores is not None:
                    await chores()
                await self.refresh(places, recorded)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database may be down: the next refresh tries again
                log.debug("acknowledgements not refreshed: %r", error)

    async def close(self) -> None:
        """Stop showing anything (the bot is closing)."""
        for job_id in list(self._held):
            with contextlib.suppress(Exception):
                await self.end(job_id, forget=False)  # kept: the process started next adopts it
