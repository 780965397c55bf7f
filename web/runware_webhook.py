"""`POST /runware/webhook/<token>`: where Runware delivers a finished task (see core/webhooks.py).

The order of checks keeps a stranger cheap: its peer's allowance of refusals first (429, nothing read: see
web/webhook_limit.py), then the token (401, a read and no write), then the body's size (413, read no
further than the cap), then its JSON (400). A result is kept in the database before the
200, and nothing slow (no video download) happens inside the request: Runware retries a call that takes
more than about 5 s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from core.ports import StoreUnavailable
from core.webhooks import WEBHOOK_PATH, WebhookOutcome, WebhookReceiver
from web.webhook_limit import RefusalLimit, peer_key, retry_after

log = logging.getLogger(__name__)

# Runware's result objects are a few hundred bytes; a body beyond this is not one.
MAX_WEBHOOK_BODY_BYTES = 16 * 1024

STATUS = {
    WebhookOutcome.ACCEPTED: 200,
    WebhookOutcome.REPEATED: 200,
    WebhookOutcome.REJECTED: 401,
    WebhookOutcome.INVALID: 400,
    WebhookOutcome.LIMITED: 429,
}


def add_runware_webhook(
    app: web.Application,
    receiver: WebhookReceiver,
    record: Callable[[str], None] = lambda outcome: None,
    limit: RefusalLimit | None = None,
) -> None:
    """Serve the webhook on `app`. `record(outcome)` counts each call (accepted, rejected, repeated,
    invalid or limited) for the metrics. `limit`: the refusals allowed per peer (a fresh RefusalLimit
    when not given)."""
    refusals = RefusalLimit() if limit is None else limit

    async def handle(request: web.Request) -> web.Response:
        # The token is never logged: aiohttp's access log is off (web/server.py), and nothing here names it.
        peer = peer_key(request.remote)
        wait = refusals.take(peer)
        if wait > 0:
            record(WebhookOutcome.LIMITED.value)
            return web.json_response(
                {"status": WebhookOutcome.LIMITED.value},
                status=STATUS[WebhookOutcome.LIMITED],
                headers={"Retry-After": retry_after(wait)},
            )
        try:
            caller = await receiver.authorize(request.match_info["token"])
        except StoreUnavailable as error:
            refusals.give_back(peer)
            log.warning("webhook call not checked, the database is unavailable (%s)", error)
            return unavailable()
        except BaseException:
            refusals.give_back(peer)
            raise
        if caller is None:
            return answer(WebhookOutcome.REJECTED)  # the refusal taken stays taken
        refusals.give_back(peer)
        body = await read_capped(request, MAX_WEBHOOK_BODY_BYTES)
        if body is None:
            record(WebhookOutcome.INVALID.value)
            return web.json_response({"status": "too large"}, status=413)
        try:
            outcome = await receiver.receive(caller, body)
        except StoreUnavailable as error:
            log.warning(
                "job=%s webhook result not kept, the database is unavailable (%s)", caller.job_id, error
            )
            return unavailable()
        if outcome is WebhookOutcome.INVALID:
            log.info("job=%s webhook call with a body that is not its result", caller.job_id)
        return answer(outcome)

    def unavailable() -> web.Response:
        # Not kept: a 5xx makes Runware try again (and polling is there anyway).
        return web.json_response({"status": "unavailable"}, status=503)

    def answer(outcome: WebhookOutcome) -> web.Response:
        record(outcome.value)
        return web.json_response({"status": outcome.value}, status=STATUS[outcome])

    app.router.add_post(WEBHOOK_PATH + "{token}", handle)


async def read_capped(request: web.Request, cap: int) -> bytes | None:
    """The request body, or None once it is longer than `cap` (a declared length is checked before
    anything is read, and a chunked body is read no further than the cap)."""
    if request.content_length is not None and request.content_length > cap:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(cap + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return None
    return b"".join(chunks)
