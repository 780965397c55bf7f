"""Consent: before a member's first /animate in a guild, they accept a short statement.

The statement has a version; a member who accepted an older one is asked again. Until they accept, the
/animate waits: its details in the database, its files (already downloaded from Discord, whose links
expire and are never stored) in this process's memory only. Nothing is sent to the video service or
charged before Accept, and Accept goes ahead with the same files (no second upload). After a restart
the files are gone: Accept still records the consent and asks the member to run /animate again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import N_, UserFacingError
from core.models import ConsentRequest, ConsentState, GuildSettings, Submission
from core.ports import ConsentStore

log = logging.getLogger(__name__)

# How long the statement waits for Accept.
CONSENT_REQUEST_TTL_S = 600.0
# Files held in memory for members reading the statement, at most (each /animate holds up to 20 MiB).
MAX_HELD_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HeldFiles:
    """A waiting /animate's downloaded image and audio."""

    image: bytes
    audio: bytes

    @property
    def size(self) -> int:
        return len(self.image) + len(self.audio)


@dataclass(frozen=True, slots=True)
class Statement:
    """The consent statement. Change `version` when the meaning changes: everyone is asked again."""

    version: int
    text: str


STATEMENT = Statement(
    version=1,
    text=N_(
        "Before your first video here, please read and accept:\n"
        "• You have the right to use this face and this voice: your own, or with the person's permission.\n"
        "• No impersonation to deceive, no harassment, no sexual content of real people.\n"
        "• Every video is posted labelled as AI-generated, with its job number, and moderators can see "
        "who made it."
    ),
)

_CLOSED = {
    ConsentState.ACCEPTED: N_(
        "You already accepted. If your video didn't start, run /animate again: you won't be asked again."
    ),
    ConsentState.DECLINED: N_("You chose not to go ahead. Run /animate again whenever you like."),
    ConsentState.EXPIRED: N_("This request expired. Nothing was sent or charged; run /animate again."),
    ConsentState.OPEN: N_("This request is still open."),
}


class ConsentService:
    """Who has accepted which statement, and the /animate requests waiting for an answer."""

    def __init__(
        self, store: ConsentStore, *, statement: Statement = STATEMENT, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self.statement = statement
        self._clock = clock
        self._held: dict[int, HeldFiles] = {}
        self._held_bytes = 0

    def _drop(self, request_id: int) -> HeldFiles | None:
        """Forget a request's files (returning them), freeing their room."""
        files = self._held.pop(request_id, None)
        if files is not None:
            self._held_bytes -= files.size
        return files

    async def get_request(self, request_id: int) -> ConsentRequest | None:
        """One waiting (or answered) /animate by its id."""
        return await self._store.get_consent_request(request_id)

    async def needed(self, guild: GuildSettings, user_id: int) -> bool:
        """Whether the member must accept the current statement before their /animate goes ahead."""
        if not guild.consent_required:
            return False
        accepted = await self._store.consent_version(guild.guild_id, user_id)
        return accepted is None or accepted < self.statement.version

    async def ask(self, submission: Submission, files: HeldFiles) -> ConsentRequest:
        """Hold a submission until its member answers the current statement (its files in memory)."""
        # Counted before the database is awaited, so that simultaneous asks can't all pass the check.
        if self._held_bytes + files.size > MAX_HELD_BYTES:
            raise UserFacingError(
                "Many members are reading the consent statement right now. Please try again in a few minutes."
            )
        self._held_bytes += files.size
        now = self._clock()
        try:
            request = await self._store.create_consent_request(
                ConsentRequest(0, submission, self.statement.version, now, now + CONSENT_REQUEST_TTL_S)
            )
        except BaseException:
            self._held_bytes -= files.size
            raise
        self._held[request.id] = files
        log.info("consent=%s user=%s asked (version %s)", request.id, submission.user_id, request.version)
        return request

    async def accept(self, request_id: int, user_id: int) -> tuple[Submission, HeldFiles | None]:
        """The member accepted: record it and hand back their submission and files to go ahead with
        (no files after a restart: the member runs /animate again, and is not asked again)."""
        request = await self._request_of(request_id, user_id)
        if request.version < self.statement.version and request.state is ConsentState.OPEN:
            # They read an older statement (the bot was updated meanwhile): show them the new one.
            await self._store.decide_consent_request(request_id, ConsentState.EXPIRED, self._clock())
            self._drop(request_id)
            raise UserFacingError(
                "The statement has changed since. Nothing was sent or charged; run /animate again to read it."
            )
        decided = await self._decide(request_id, ConsentState.ACCEPTED)
        return decided.submission, self._drop(request_id)

    async def decline(self, request_id: int, user_id: int) -> None:
        """The member chose not to go ahead: close the request (nothing was sent or charged)."""
        await self._request_of(request_id, user_id)
        await self._decide(request_id, ConsentState.DECLINED)
        self._drop(request_id)

    async def expire(self, request_id: int) -> bool:
        """Close a request nobody answered in time; True if it was still open."""
        self._drop(request_id)  # whatever its state now (the daily prune may have closed it)
        request = await self._store.get_consent_request(request_id)
        if request is None or request.state is not ConsentState.OPEN:
            return False
        decided = await self._store.decide_consent_request(request_id, ConsentState.EXPIRED, self._clock())
        return decided is ConsentState.EXPIRED

    async def _request_of(self, request_id: int, user_id: int) -> ConsentRequest:
        request = await self._store.get_consent_request(request_id)
        if request is None or request.submission.user_id != user_id:
            raise UserFacingError("Only the member who ran this /animate can answer it.")
        return request

    async def _decide(self, request_id: int, state: ConsentState) -> ConsentRequest:
        decided = await self._store.decide_consent_request(request_id, state, self._clock())
        if isinstance(decided, ConsentState):
            self._drop(request_id)
            raise UserFacingError(_CLOSED[decided])
        log.info("consent=%s user=%s %s", request_id, decided.submission.user_id, state.value)
        return decided
