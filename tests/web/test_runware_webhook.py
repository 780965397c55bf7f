"""The webhook route over real HTTP on a real store (each backend), without the bot: what a caller who is
not Runware can send, and what it gets. Every such call is answered with a 4xx and no write, never a 500
(a server error is logged with a traceback, and Runware would retry it for nothing)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from core.ports import Store
from core.runware import RunwareClient
from core.webhooks import WebhookReceiver, new_token, token_hash, webhook_url
from storage.postgres import PostgresStore
from tests.databases import Database
from tests.postgres import PostgresProxy
from tests.storage.builders import reserved
from web.runware_webhook import add_runware_webhook
from web.server import HttpServer

NOW = 1_000.0


@pytest.fixture
async def served(store: Store) -> AsyncIterator[tuple[HttpServer, list[str]]]:
    """The webhook route on a free port of loopback; the outcomes it counted."""
    counted: list[str] = []
    async with aiohttp.ClientSession() as http:
        client = RunwareClient(http, api_url="http://127.0.0.1:9/v1", api_key=SecretStr("k" * 20))
        server = HttpServer("127.0.0.1", 0)
        add_runware_webhook(server.app, WebhookReceiver(store, client.read_webhook), record=counted.append)
        await server.start()
        try:
            yield server, counted
        finally:
            await server.stop()


async def submitting(store: Store) -> tuple[int, str, str]:
    """A job marked submitting with a webhook token: its number, taskUUID and token."""
    job = await reserved(store, user_id=7, estimate=1_000, now=NOW)
    assert await store.mark_job_queued(job.id, "img", "aud", NOW) is not None
    token = new_token(job.id)
    assert await store.mark_submitting(job.id, NOW, NOW + 2, webhook_token_hash=token_hash(token))
    return job.id, job.task_uuid, token


async def post(url: str, data: bytes) -> int:
    async with aiohttp.ClientSession() as http, http.post(url, data=data) as answer:
        return answer.status


async def test_a_token_with_non_ascii_digits_is_refused_not_an_error(
    store: Store, served: tuple[HttpServer, list[str]]
) -> None:
    """'²' is a digit to str.isdigit() but not to int(): such a job part is not one of ours (401), from
    anyone, without a 500."""
    server, counted = served
    job_id, task_uuid, token = await submitting(store)
    secret = token.split(".", 1)[1]
    result = json.dumps({"taskUUID": task_uuid, "status": "success", "videoURL": "http://x/y"}).encode()
    for job_part in ("²", "1²", "١"):  # superscript two; Arabic-Indic one (int() reads it as 1)
        assert await post(webhook_url(server.url, f"{job_part}.{secret}"), result) == 401
    assert counted == ["rejected"] * 3
    assert await store.webhook_results([job_id]) == {}


async def test_a_deeply_nested_body_is_invalid_not_an_error(
    store: Store, served: tuple[HttpServer, list[str]]
) -> None:
    """A body within the size cap but nested beyond what the JSON reader recurses into: 400, nothing kept."""
    server, counted = served
    job_id, task_uuid, token = await submitting(store)
    deep = b'{"taskUUID": "' + task_uuid.encode() + b'", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert len(deep) < 16 * 1024
    assert await post(webhook_url(server.url, token), deep) == 400
    assert counted == ["invalid"]
    assert await store.webhook_results([job_id]) == {}


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_database_outage_is_answered_503_at_the_token_check_too(database: Database) -> None:
    """The database stops answering before a call's token is checked: 503 (Runware tries again later),
    as when it stops while the result is kept; not a 500 with a traceback. (SQLite has no outage.)"""
    proxy = PostgresProxy()
    await proxy.start()
    store = await PostgresStore.open(proxy.route(database.url))
    counted: list[str] = []
    try:
        job_id, task_uuid, token = await submitting(store)
        async with aiohttp.ClientSession() as http:
            client = RunwareClient(http, api_url="http://127.0.0.1:9/v1", api_key=SecretStr("k" * 20))
            receiver = WebhookReceiver(store, client.read_webhook)
            server = HttpServer("127.0.0.1", 0)
            add_runware_webhook(server.app, receiver, record=counted.append)
            await server.start()
            try:
                await proxy.cut()
                result = {"taskUUID": task_uuid, "status": "success", "videoURL": "http://x/y"}
                assert await post(webhook_url(server.url, token), json.dumps(result).encode()) == 503
            finally:
                await server.stop()
    finally:
        await store.close()
    reader = await database.open()
    try:
        assert await reader.webhook_results([job_id]) == {}
    finally:
        await reader.close()
