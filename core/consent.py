"""Consent: before a member's first /animate in a guild, they accept a short statement.

The statement has a version; a member who accepted an older one is asked again. Until they accept, the
/animate waits in the database as Discord's links to the files: nothing is downloaded, sent to the video
service or charged, and Accept goes ahead with the same files (no second upload)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import UserFacingError
from core.models import ConsentRequest, ConsentState, GuildSettings, Submission
from storage.base import Store

log = logging.getLogger(__name__)

# How long the statement waits for Accept (Discord's links to the files last about a day).
CONSENT_REQUEST_TTL_S = 600.0


@dataclass(frozen=True, slots=True)
class Statement:
    """The consent statement. Change `version` when the meaning changes: everyone is asked again."""

    version: int
    text: str


STATEMENT = Statement(
    version=1,
    text=(
        "Before your first video here, please read and accept:\n"
        "• You have the right to use this face and this voice: your own, or with the person's permission.\n"
        "• No impersonation to deceive, no harassment, no sexual content of real people.\n"
        "• Every video is posted labelled as AI-generated, with its job number, and moderators can see "
        "who made it."
    ),
)

_CLOSED = {
    ConsentState.ACCEPTED: "You already accepted; this video went ahead.",
    ConsentState.DECLINED: "You chose not to go ahead. Run /animate again whenever you like.",
    ConsentState.EXPIRED: "This request expired. Nothing was sent or charged; run /animate again.",
    ConsentState.OPEN: "This request is still open.",
}


class ConsentService:
    """Who has accepted which statement, and the /animate requests waiting for an answer."""

    def __init__(
        self, store: Store, *, statement: Statement = STATEMENT, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self.statement = statement
        self._clock = clock

    async def needed(self, guild: GuildSettings, user_id: int) -> bool:
        """Whether the member must accept the current statement before their /animate goes ahead."""
        if not guild.consent_required:
            return False
        accepted = await self._store.consent_version(guild.guild_id, user_id)
        return accepted is None or accepted < self.statement.version

    async def ask(self, submission: Submission) -> ConsentRequest:
        """Hold a submission until its member answers the current statement."""
        now = self._clock()
        request = await self._store.create_consent_request(
            ConsentRequest(0, submission, self.statement.version, now, now + CONSENT_REQUEST_TTL_S)
        )
        log.info("consent=%s user=%s asked (version %s)", request.id, submission.user_id, request.version)
        return request

    async def accept(self, request_id: int, user_id: int) -> Submission:
        """The member accepted: record it and hand back their submission to go ahead with."""
        return (await self._decide(request_id, user_id, ConsentState.ACCEPTED)).submission

    async def decline(self, request_id: int, user_id: int) -> None:
        """The member chose not to go ahead: close the request (nothing was sent or charged)."""
        await self._decide(request_id, user_id, ConsentState.DECLINED)

    async def expire(self, request_id: int) -> bool:
        """Close a request nobody answered in time; True if it was still open."""
        request = await self._store.get_consent_request(request_id)
        if request is None or request.state is not ConsentState.OPEN:
            return False
        decided = await self._store.decide_consent_request(request_id, ConsentState.EXPIRED, self._clock())
        return decided is ConsentState.EXPIRED

    async def _decide(self, request_id: int, user_id: int, state: ConsentState) -> ConsentRequest:
        request = await self._store.get_consent_request(request_id)
        if request is None or request.submission.user_id != user_id:
            raise UserFacingError("Only the member who ran this /animate can answer it.")
        decided = await self._store.decide_consent_request(request_id, state, self._clock())
        if isinstance(decided, ConsentState):
            raise UserFacingError(_CLOSED[decided])
        log.info("consent=%s user=%s %s", request_id, user_id, state.value)
        return decided
