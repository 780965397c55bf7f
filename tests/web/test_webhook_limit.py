"""The limit on refused webhook calls per peer (web/webhook_limit.py), over real HTTP on a real store of each
backend whose statements are recorded: a peer refused too often is answered 429 without any database read
until its allowance refills (an injected clock), other peers are checked as always, and the table of peers
stays within its bound. Peers are real: 127.0.0.1 and other loopback addresses the client binds to."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from pydantic import SecretStr

from core.ports import Store
from core.runware import RunwareClient
from core.webhooks import WebhookReceiver, new_token, token_hash, webhook_url
from tests.databases import Database
from tests.storage.builders import reserved
from tests.web.statements import Sent, traced_store
from web.runware_webhook import add_runware_webhook
from web.server import HttpServer
from web.webhook_limit import RefusalLimit, peer_key

NOW = 1_000.0
BURST = 3
PER_S = 0.5  # one more check every 2 s


@dataclass
class Rig:
    server: HttpServer
    store: Store
    sent: Sent
    limit: RefusalLimit
    counted: list[str]
    clock: list[float] = field(default_factory=lambda: [0.0])


@pytest.fixture
async def rig(database: Database) -> AsyncIterator[Rig]:
    clock = [0.0]
    async with traced_store(database) as (store, sent), aiohttp.ClientSession() as http:
        client = RunwareClient(http, api_url="http://127.0.0.1:9/v1", api_key=SecretStr("k" * 20))
        limit = RefusalLimit(burst=BURST, per_s=PER_S, max_peers=4, clock=lambda: clock[0])
        counted: list[str] = []
        server = HttpServer("127.0.0.1", 0)
        add_runware_webhook(
            server.app, WebhookReceiver(store, client.read_webhook), record=counted.append, limit=limit
        )
        await server.start()
        try:
            yield Rig(server, store, sent, limit, counted, clock)
        finally:
            await server.stop()


async def submitting(store: Store, user_id: int = 7) -> tuple[int, str, str]:
    """A job marked submitting with a webhook token: its number, taskUUID and token."""
    job = await reserved(store, user_id=user_id, estimate=1_000, now=NOW)
    assert await store.mark_job_queued(job.id, "img", "aud", NOW) is not None
    token = new_token(job.id)
    assert await store.mark_submitting(job.id, NOW, NOW + 2, webhook_token_hash=token_hash(token))
    return job.id, job.task_uuid, token


def wrong(token: str) -> str:
    """The same job's number with another secret."""
    job, _, secret = token.partition(".")
    return f"{job}.{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"


def success(task_uuid: str) -> bytes:
    return json.dumps({"taskUUID": task_uuid, "status": "success", "videoURL": "http://x/y"}).encode()


async def post(url: str, data: bytes, peer: str = "127.0.0.1") -> tuple[int, str | None]:
    """POST from the loopback address `peer`: the status and the Retry-After header."""
    connector = aiohttp.TCPConnector(local_addr=(peer, 0))
    async with aiohttp.ClientSession(connector=connector) as http, http.post(url, data=data) as answer:
        return answer.status, answer.headers.get("Retry-After")


async def test_a_peer_refused_too_often_gets_429_without_a_database_read(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """BURST wrong secrets are each checked (a read, 401); after that every call from the peer, even with
    the right secret, is 429 with Retry-After and sends the database nothing; one WARNING, no secret."""
    job_id, task_uuid, token = await submitting(rig.store)
    url = webhook_url(rig.server.url, wrong(token))
    rig.sent.clear()
    for _ in range(BURST):
        assert await post(url, success(task_uuid)) == (401, None)
    assert await rig.sent.settled(), "a wrong secret is checked against the database"
    rig.sent.clear()
    with caplog.at_level(logging.WARNING, logger="web.webhook_limit"):
        for _ in range(5):
            assert await post(url, success(task_uuid)) == (429, "2")
        assert await post(webhook_url(rig.server.url, token), success(task_uuid)) == (429, "2")
    assert await rig.sent.settled() == []
    assert rig.counted == ["rejected"] * BURST + ["limited"] * 6
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "127.0.0.1" in warnings[0].getMessage()
    secret = token.split(".", 1)[1]
    assert secret not in caplog.text and wrong(token).split(".", 1)[1] not in caplog.text
    assert await rig.store.webhook_results([job_id]) == {}


async def test_the_allowance_refills_with_time(rig: Rig) -> None:
    """Once limited, a peer gets one more check per 1/PER_S seconds, and all BURST back after a pause: its
    right secret is then accepted."""
    job_id, task_uuid, token = await submitting(rig.store)
    url = webhook_url(rig.server.url, wrong(token))
    for _ in range(BURST):
        assert (await post(url, b"{}"))[0] == 401
    assert await post(url, b"{}") == (429, "2")
    rig.clock[0] += 1.0
    assert await post(url, b"{}") == (429, "1")
    rig.clock[0] += 1.0  # one refusal back: checked (a read), refused, and limited again
    rig.sent.clear()
    assert (await post(url, b"{}"))[0] == 401
    assert await rig.sent.settled()
    assert (await post(url, b"{}"))[0] == 429
    rig.clock[0] += 2.0 * BURST
    assert (await post(webhook_url(rig.server.url, token), success(task_uuid)))[0] == 200
    assert list(await rig.store.webhook_results([job_id])) == [job_id]
    assert rig.counted[-1] == "accepted"


async def test_another_peer_is_checked_while_one_is_limited(rig: Rig) -> None:
    """127.0.0.1 is limited; a right secret from 127.0.0.2 is accepted at once, and 127.0.0.2's own wrong
    secrets are checked (401) until its own allowance runs out."""
    job_id, task_uuid, token = await submitting(rig.store)
    url = webhook_url(rig.server.url, wrong(token))
    for _ in range(BURST):
        assert (await post(url, b"{}"))[0] == 401
    assert (await post(url, b"{}"))[0] == 429
    assert (await post(webhook_url(rig.server.url, token), success(task_uuid), peer="127.0.0.2"))[0] == 200
    assert list(await rig.store.webhook_results([job_id])) == [job_id]
    for _ in range(BURST):
        assert (await post(url, b"{}", peer="127.0.0.2"))[0] == 401
    assert (await post(url, b"{}", peer="127.0.0.2"))[0] == 429
    assert (await post(url, b"{}"))[0] == 429


async def test_the_table_of_peers_stays_within_its_bound(rig: Rig) -> None:
    """Wrong secrets from ten addresses: at most max_peers (4) are tracked; the least recently seen goes
    first. A peer whose calls are all right leaves nothing behind."""
    _, task_uuid, token = await submitting(rig.store)
    url = webhook_url(rig.server.url, wrong(token))
    for n in range(1, 11):
        assert (await post(url, b"{}", peer=f"127.0.0.{n}"))[0] == 401
        assert len(rig.limit) <= 4
    assert len(rig.limit) == 4
    assert "127.0.0.1" not in rig.limit and "127.0.0.10" in rig.limit
    assert (await post(webhook_url(rig.server.url, token), success(task_uuid), peer="127.0.0.20"))[0] == 200
    assert "127.0.0.20" not in rig.limit and len(rig.limit) <= 4


def test_many_random_addresses_never_grow_the_table() -> None:
    """100,000 distinct addresses, each refused: the table never holds more than max_peers."""
    limit = RefusalLimit(burst=2, per_s=1.0, max_peers=1_000, clock=lambda: 0.0)
    for n in range(100_000):
        assert limit.take(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}") == 0.0
        assert len(limit) <= 1_000
    assert len(limit) == 1_000


def test_peers_are_addresses_and_ipv6_slash_64s() -> None:
    """An IPv6 subscriber's addresses share one bucket (their /64); IPv4-mapped addresses are IPv4."""
    assert peer_key("203.0.113.7") == "203.0.113.7"
    assert peer_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert peer_key("2001:db8:1:2::1") == peer_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert peer_key("2001:db8:1:3::1") != peer_key("2001:db8:1:2::1")
    assert peer_key(None) == peer_key("") == peer_key("not an address") == "unknown"
