"""The fake Runware driven by Runware's official Python SDK (`runware-sdk`, REST transport), so that the fake
answers in the shapes the real client expects. Everything stays on 127.0.0.1."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from runware import RunOptions, RuntimeDependencies, Runware
from runware import RunwareError as SdkError
from yarl import URL

from tests.fakes.runware import FakeRunware, Outcome

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" * 64


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeRunware]:
    async with FakeRunware(polls_to_finish=2) as server:
        yield server


@pytest.fixture
async def hosts() -> list[str]:
    """Every host the SDK's session asks for, to show that nothing leaves the machine."""
    return []


@pytest.fixture
async def sdk(fake: FakeRunware, hosts: list[str]) -> AsyncIterator[Runware]:
    """The official SDK on REST, pointed at the fake, on a session whose every request is recorded."""

    async def on_start(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        hosts.append(params.url.host or "")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as http:
        client = Runware(
            api_key=fake.api_key,
            transport="rest",
            http_base_url=fake.url,
            max_retries=0,
            dependencies=RuntimeDependencies(session=http),
        )
        async with client:
            yield client
    assert set(hosts) <= {"127.0.0.1"}


async def test_sdk_media_storage_upload_gets_uuid_and_a_working_url(
    sdk: Runware, fake: FakeRunware, hosts: list[str]
) -> None:
    """The SDK's media_storage upload reads the fake's mediaUUID and mediaURL, and the URL serves the file."""
    results = await sdk.media_storage({"operation": "upload", "media": data_uri(PNG, "image/png")})
    [result] = results
    assert result["operation"] == "upload"
    assert fake.uploads[result["mediaUUID"]].data == PNG
    async with aiohttp.ClientSession() as http, http.get(result["mediaURL"]) as resp:
        assert await resp.read() == PNG
    assert hosts == ["127.0.0.1"]


async def test_sdk_deprecated_image_upload_gets_uuid_and_url(sdk: Runware, fake: FakeRunware) -> None:
    """The fake still answers the deprecated imageUpload with the imageUUID and imageURL the SDK names."""
    [result] = await sdk.image_upload({"image": data_uri(PNG, "image/png")})
    assert fake.uploads[result["imageUUID"]].data == PNG
    assert URL(result["imageURL"]).host == "127.0.0.1"


async def test_sdk_runs_an_omnihuman_task_to_its_video(sdk: Runware, fake: FakeRunware) -> None:
    """The SDK submits a video task, polls getResponse through "processing" and reads the video and cost."""
    fake.next_outcome(Outcome.success(cost_usd=0.27))
    [image] = await sdk.media_storage({"operation": "upload", "media": data_uri(PNG, "image/png")})
    [audio] = await sdk.media_storage({"operation": "upload", "media": data_uri(MP3, "audio/mpeg")})
    progress: list[dict[str, Any]] = []
    results = await sdk.run(
        {
            "taskType": "videoInference",
            "model": "bytedance:5@1",
            "inputs": {"referenceImages": [image["mediaUUID"]], "audio": audio["mediaUUID"]},
            "outputFormat": "MP4",
            "includeCost": True,
            "safety": {"mode": "fast"},
        },
        RunOptions(on_progress=progress.append, timeout=30_000),
    )
    [video] = results
    task_uuid = video["taskUUID"]
    assert fake.submitted[task_uuid]["deliveryMethod"] == "async"
    assert (video["cost"], video["NSFWContent"]) == (0.27, False)
    assert video["videoUUID"] and URL(video["videoURL"]).host == "127.0.0.1"
    assert [p["status"] for p in progress] == ["processing"]
    assert fake.polls_of(task_uuid) == 2


@pytest.mark.parametrize(
    ("code", "shape", "sdk_code", "retryable"),
    [
        ("taskFailed", "errors", "provider", True),
        ("internalServerError", "errors", "serverError", True),
        ("contentPolicyViolation", "nested", "safety", False),
    ],
)
async def test_sdk_reads_a_failed_task(
    sdk: Runware, fake: FakeRunware, code: str, shape: str, sdk_code: str, retryable: bool
) -> None:
    """A task failure in either of the fake's shapes reaches the SDK as its error, with the task's UUID."""
    fake.accept_inline_media = True
    fake.next_outcome(Outcome.failure(code, shape=shape, polls_to_finish=1))  # type: ignore[arg-type]
    task_uuid = str(uuid.uuid4())
    with pytest.raises(SdkError) as caught:
        await sdk.run(
            {
                "taskType": "videoInference",
                "taskUUID": task_uuid,
                "model": "bytedance:5@1",
                "inputs": {
                    "referenceImages": ["https://example.com/a.png"],
                    "audio": "https://example.com/a.mp3",
                },
            },
            RunOptions(timeout=30_000),
        )
    assert (caught.value.code, caught.value.retryable, caught.value.task_uuid) == (
        sdk_code,
        retryable,
        task_uuid,
    )


async def test_sdk_reads_the_single_error_envelope(sdk: Runware, fake: FakeRunware) -> None:
    """An injected `{"error": {...}}` answer is parsed by the SDK with its code, status and taskUUID."""
    fake.inject(400, task_type="mediaStorage", code="imageBlocked", envelope="error")
    task_uuid = str(uuid.uuid4())
    with pytest.raises(SdkError) as caught:
        await sdk.media_storage(
            {"taskUUID": task_uuid, "operation": "upload", "media": data_uri(PNG, "image/png")}
        )
    error = caught.value
    assert (error.code, error.status_code, error.task_uuid, error.retryable) == (
        "safety",
        400,
        task_uuid,
        False,
    )


async def test_sdk_reads_a_refused_key_as_auth(fake: FakeRunware) -> None:
    """The fake's 401 for a wrong key is an auth error to the SDK."""
    async with Runware(api_key="wrong", transport="rest", http_base_url=fake.url, max_retries=0) as client:
        with pytest.raises(SdkError) as caught:
            await client.media_storage({"operation": "upload", "media": data_uri(PNG, "image/png")})
    assert (caught.value.code, caught.value.status_code) == ("auth", 401)
