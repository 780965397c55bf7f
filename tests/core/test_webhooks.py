"""Webhook tokens and bodies: a token names its job and hides a long secret; a result survives being kept
in the database; each body shape Runware may POST reads as a poll's answer would, and anything else is
refused."""

from __future__ import annotations

import json

import aiohttp
import pytest
from pydantic import SecretStr

from core.runware import (
    ErrorKind,
    MalformedReply,
    RunwareClient,
    TaskResult,
    TaskState,
    redact_webhook_secrets,
)
from core.webhooks import (
    decode_result,
    encode_result,
    is_final,
    new_token,
    token_hash,
    token_job,
    webhook_url,
)

TASK = "2f1d5a4e-7c1b-4b8e-9a0e-5d2c3b4a1f00"


def test_tokens_name_their_job_and_differ() -> None:
    first, second = new_token(12), new_token(12)
    assert first != second and first.startswith("12.") and len(first) >= 40
    assert token_job(first) == 12
    assert [token_job(t) for t in ("12", ".abc", "x.abc", "12.", "1" * 19 + ".abc", "1." + "a" * 90)] == [
        None
    ] * 6
    assert token_hash(first) != token_hash(second) and len(token_hash(first)) == 64


@pytest.fixture
async def client() -> RunwareClient:
    async with aiohttp.ClientSession() as http:
        return RunwareClient(http, api_url="http://127.0.0.1:9/v1", api_key=SecretStr("k" * 20))


def body(value: object) -> bytes:
    return json.dumps(value).encode()


async def test_each_body_shape_reads_as_a_result(client: RunwareClient) -> None:
    flat = {"taskType": "videoInference", "taskUUID": TASK, "status": "success", "videoUUID": "v"}
    success = client.read_webhook(body({**flat, "videoURL": "https://x/v.mp4", "cost": 0.5}))
    assert (success.state, success.video_url, success.cost_usd) == (TaskState.SUCCESS, "https://x/v.mp4", 0.5)
    nested = {"taskUUID": TASK, "status": "error", "error": {"code": "timeoutProvider", "message": "m"}}
    errors = {"errors": [{"code": "timeoutProvider", "message": "m", "taskUUID": TASK}]}
    single = {"error": {"code": "timeoutProvider", "message": "m"}, "taskUUID": TASK}
    for shape in (nested, errors, single, {"data": [nested]}):
        failed = client.read_webhook(body(shape))
        assert failed.state is TaskState.ERROR and failed.error is not None
        assert failed.error.code == "timeoutProvider" and is_final(failed)
    progress = client.read_webhook(body({"taskUUID": TASK, "status": "processing", "progress": 40}))
    assert progress.state is TaskState.PROCESSING and not is_final(progress)
    for bad in (
        b"nope",
        b"[]",
        body({"status": "success"}),
        body({"data": [flat, {**flat, "taskUUID": "x"}]}),
    ):
        with pytest.raises(MalformedReply):
            client.read_webhook(bad)


async def test_a_kept_result_reads_back_the_same(client: RunwareClient) -> None:
    success = TaskResult(
        TASK, TaskState.SUCCESS, video_url="u", video_uuid="v", cost_usd=0.3, nsfw=True, progress=100
    )
    assert decode_result(encode_result(success)) == success
    failed = client.read_webhook(
        body({"taskUUID": TASK, "status": "error", "error": {"code": "contentBlocked"}})
    )
    back = decode_result(encode_result(failed))
    assert back.error is not None and failed.error is not None
    assert (back.state, back.error.kind, back.error.code, back.error.message) == (
        failed.state,
        failed.error.kind,
        failed.error.code,
        failed.error.message,
    )
    assert back.error.kind is not ErrorKind.NOT_FOUND


def test_a_webhook_urls_secret_is_redacted_wherever_it_appears() -> None:
    """The secret of a URL webhook_url() makes is removed from a text (an error quoting it, a log line);
    the job number stays; a text without one is returned as it was."""
    token = new_token(5)
    text = f"Invalid webhookURL: {webhook_url('https://bot.example.org/hooks', token)} (parameter webhookURL)"
    assert redact_webhook_secrets(text) == (
        "Invalid webhookURL: https://bot.example.org/hooks/runware/webhook/5.*** (parameter webhookURL)"
    )
    assert redact_webhook_secrets("no URL here") == "no URL here"
