"""The Runware client against the local fake Runware server."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from core.runware import (
    ErrorKind,
    RunwareClient,
    RunwareError,
    TaskState,
    VideoRequest,
    classify_error,
)
from core.settings import SafetyMode, Settings
from tests.fakes.runware import DEFAULT_VIDEO, FakeRunware, Outcome, make_mp4

KEY = "sk-test-7f3c9a1b2d4e5f60718293a4b5c6d7e8"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" * 64
TIMEOUT_S = 0.3  # short, so hang tests are quick
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def fake() -> AsyncIterator[FakeRunware]:
    async with FakeRunware(api_key=KEY, polls_to_finish=1) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_client(http: aiohttp.ClientSession, fake: FakeRunware, **kwargs: object) -> RunwareClient:
    options: dict[str, object] = {"timeout_s": TIMEOUT_S, "max_attempts": 4, "retry_base_s": 0.01}
    options.update(kwargs)
    api_key = options.pop("api_key", SecretStr(fake.api_key))
    return RunwareClient(http, api_url=fake.url, api_key=api_key, **options)  # type: ignore[arg-type]


@pytest.fixture
def client(http: aiohttp.ClientSession, fake: FakeRunware) -> RunwareClient:
    return make_client(http, fake)


async def submit(client: RunwareClient, **overrides: object) -> VideoRequest:
    """Upload an image and audio, then submit a video task; return the request."""
    fields: dict[str, object] = {
        "task_uuid": str(uuid.uuid4()),
        "image_ref": await client.upload_image(PNG, "image/png"),
        "audio_ref": await client.upload_audio(MP3, "audio/mpeg"),
        "output_format": "MP4",
        "output_quality": 85,
        "safety_mode": SafetyMode.FAST,
        "ttl_s": 3600,
    }
    fields.update(overrides)
    req = VideoRequest(**fields)  # type: ignore[arg-type]
    await client.submit_video(req)
    return req


# --- uploads ---


async def test_upload_image_returns_uuid_and_uploads_decoded_bytes(
    client: RunwareClient, fake: FakeRunware
) -> None:
    """upload_image uses mediaStorage (not the deprecated imageUpload) and returns the mediaUUID."""
    image_uuid = await client.upload_image(PNG, "image/png")
    upload = fake.uploads[image_uuid]
    assert (upload.kind, upload.data, upload.mime, upload.source) == ("media", PNG, "image/png", "data_uri")
    assert [t["operation"] for t in fake.tasks_of_type("mediaStorage")] == ["upload"]
    assert fake.tasks_of_type("imageUpload") == []


async def test_upload_image_accepts_bare_object_data(client: RunwareClient, fake: FakeRunware) -> None:
    """An upload reply whose `data` is a bare object (as in the doc example) is understood."""
    fake.bare_upload_data = True
    image_uuid = await client.upload_image(PNG, "image/png")
    assert fake.uploads[image_uuid].data == PNG


async def test_upload_audio_uses_media_storage(client: RunwareClient, fake: FakeRunware) -> None:
    """upload_audio uses mediaStorage upload and returns the mediaUUID."""
    media_uuid = await client.upload_audio(MP3, "audio/mpeg")
    assert fake.uploads[media_uuid].data == MP3
    assert fake.tasks_of_type("mediaStorage")[0]["operation"] == "upload"


async def test_upload_of_a_10_mb_file_is_streamed(client: RunwareClient, fake: FakeRunware) -> None:
    """A 10 MB upload arrives whole and raises no 'large body blocks the loop' warning (errors here)."""
    big = bytes(range(256)) * (10 * 1024 * 1024 // 256)
    media_uuid = await client.upload_audio(big, "audio/wav")
    assert fake.uploads[media_uuid].data == big


async def test_upload_audio_resolves_placeholder_media_uuid(client: RunwareClient, fake: FakeRunware) -> None:
    """A placeholder mediaUUID "1" is replaced by the real one from getResponse on the upload's taskUUID."""
    fake.placeholder_media_uuid = True
    fake.placeholder_polls = 2
    media_uuid = await client.upload_audio(MP3, "audio/mpeg")
    assert media_uuid != "1"
    assert fake.uploads[media_uuid].data == MP3
    assert len(fake.tasks_of_type("getResponse")) == 3


async def test_upload_audio_gives_up_on_a_placeholder_that_never_resolves(
    client: RunwareClient, fake: FakeRunware
) -> None:
    """A placeholder that getResponse never replaces ends in a retryable error after a few asks."""
    fake.placeholder_media_uuid = True
    fake.placeholder_polls = 1000
    with pytest.raises(RunwareError) as caught:
        await client.upload_audio(MP3, "audio/mpeg")
    assert caught.value.retryable
    assert len(fake.tasks_of_type("getResponse")) <= 10


# --- submit ---


async def test_submit_sends_every_field(client: RunwareClient, fake: FakeRunware) -> None:
    """submit_video sends the OmniHuman-1 task exactly as docs/runware-api.md describes."""
    req = await submit(
        client, output_format="WEBM", output_quality=70, safety_mode=SafetyMode.FULL, ttl_s=600
    )
    assert fake.submitted[req.task_uuid] == {
        "taskType": "videoInference",
        "taskUUID": req.task_uuid,
        "model": "bytedance:5@1",
        "deliveryMethod": "async",
        "inputs": {"referenceImages": [req.image_ref], "audio": req.audio_ref},
        "outputFormat": "WEBM",
        "outputQuality": 70,
        "includeCost": True,
        "safety": {"mode": "full"},
        "ttl": 600,
    }


async def test_submit_accepts_an_empty_ack(client: RunwareClient, fake: FakeRunware) -> None:
    """An acknowledgement of {"data": []} counts as accepted."""
    fake.ack_empty_data = True
    req = await submit(client)
    assert req.task_uuid in fake.submitted


@pytest.mark.parametrize("status", [400, 409, 200])
async def test_submit_treats_conflict_as_accepted(
    client: RunwareClient, fake: FakeRunware, status: int
) -> None:
    """A second submit of the same taskUUID gets conflictTaskUUID, which means already accepted."""
    fake.conflict_status = status
    req = await submit(client)
    await client.submit_video(req)
    assert fake.submission_counts[req.task_uuid] == 2


async def test_submit_invalid_reference_is_permanent(client: RunwareClient, fake: FakeRunware) -> None:
    """An unknown image reference is a validation error, raised at once without retrying."""
    audio = await client.upload_audio(MP3, "audio/mpeg")
    req = VideoRequest(str(uuid.uuid4()), str(uuid.uuid4()), audio, "MP4", 85, SafetyMode.FAST, 3600)
    with pytest.raises(RunwareError) as caught:
        await client.submit_video(req)
    assert caught.value.kind is ErrorKind.VALIDATION
    assert caught.value.code == "invalidReferenceImages"
    assert not caught.value.retryable
    assert fake.submission_counts[req.task_uuid] == 1


async def test_submit_after_ambiguous_failure_asks_before_resending(
    client: RunwareClient, fake: FakeRunware
) -> None:
    """A 500 after Runware took the task is settled by getResponse, without a second submit."""
    fake.inject(500, task_type="videoInference", process=True)
    req = await submit(client)
    assert fake.submission_counts[req.task_uuid] == 1
    assert fake.tasks_of_type("getResponse") == [{"taskType": "getResponse", "taskUUID": req.task_uuid}]


async def test_submit_resends_when_runware_does_not_have_the_task(
    client: RunwareClient, fake: FakeRunware
) -> None:
    """A 500 before Runware took the task is followed by getResponse (not found), then a resubmit."""
    fake.inject(500, task_type="videoInference")
    req = await submit(client)
    assert fake.submission_counts[req.task_uuid] == 2
    assert req.task_uuid in fake.submitted


async def test_submit_raises_original_error_when_the_check_fails(
    client: RunwareClient, fake: FakeRunware
) -> None:
    """If getResponse cannot say whether an ambiguous submit landed, it is not resent; the error is raised."""
    image = await client.upload_image(PNG, "image/png")
    audio = await client.upload_audio(MP3, "audio/mpeg")
    fake.inject(503, task_type="videoInference")
    fake.inject(503, task_type="getResponse")
    req = VideoRequest(str(uuid.uuid4()), image, audio, "MP4", 85, SafetyMode.FAST, 3600)
    with pytest.raises(RunwareError) as caught:
        await client.submit_video(req)
    assert caught.value.retryable
    assert caught.value.kind is ErrorKind.SERVER
    assert fake.submission_counts[req.task_uuid] == 1


async def test_submit_that_timed_out_after_landing_is_not_resent(
    client: RunwareClient, fake: FakeRunware
) -> None:
    """A submit that hangs past the timeout after Runware took it is confirmed by getResponse, not resent."""
    fake.inject_hang(TIMEOUT_S * 3, task_type="videoInference", process=True)
    req = await submit(client)
    assert fake.submission_counts[req.task_uuid] == 1
    assert len(fake.tasks_of_type("getResponse")) == 1


async def test_submit_retries_rate_limit_without_asking(client: RunwareClient, fake: FakeRunware) -> None:
    """A 429 means the task was not taken: it is resent after a backoff without a getResponse check."""
    fake.inject(429, task_type="videoInference")
    req = await submit(client)
    assert fake.submission_counts[req.task_uuid] == 2
    assert fake.tasks_of_type("getResponse") == []


# --- poll ---


async def test_poll_reports_processing_with_progress(client: RunwareClient, fake: FakeRunware) -> None:
    """A running task is PROCESSING with the progress Runware reported."""
    fake.polls_to_finish = 4
    req = await submit(client)
    result = (await client.poll([req.task_uuid]))[req.task_uuid]
    assert result.state is TaskState.PROCESSING
    assert result.progress == 25


async def test_poll_reports_success(client: RunwareClient, fake: FakeRunware) -> None:
    """A finished task is SUCCESS with its video URL, videoUUID, cost and NSFW flag."""
    fake.next_outcome(Outcome.success(cost_usd=1.25, nsfw=True))
    req = await submit(client)
    result = (await client.poll([req.task_uuid]))[req.task_uuid]
    assert result.state is TaskState.SUCCESS
    assert result.video_url is not None and result.video_url.startswith(fake.base_url + "/videos/")
    assert result.video_url.endswith(".mp4")
    assert result.video_uuid and result.video_uuid in result.video_url
    assert (result.cost_usd, result.nsfw, result.error) == (1.25, True, None)


async def test_poll_treats_unknown_status_words_as_processing(
    client: RunwareClient, fake: FakeRunware
) -> None:
    """Older status words such as "pending" count as still running."""
    fake.processing_status = "pending"
    fake.polls_to_finish = 3
    req = await submit(client)
    assert (await client.poll([req.task_uuid]))[req.task_uuid].state is TaskState.PROCESSING


async def test_poll_dedupes_repeated_results(client: RunwareClient, fake: FakeRunware) -> None:
    """Several identical result items for one task give one SUCCESS."""
    fake.next_outcome(Outcome.success(repeat=3))
    req = await submit(client)
    result = (await client.poll([req.task_uuid]))[req.task_uuid]
    assert result.state is TaskState.SUCCESS


@pytest.mark.parametrize("poll_error_status", [200, 400])
async def test_poll_reads_documented_failure_shape(
    client: RunwareClient, fake: FakeRunware, poll_error_status: int
) -> None:
    """A top-level errors item with the taskUUID makes that task ERROR, classified by its code."""
    fake.poll_error_status = poll_error_status
    fake.next_outcome(Outcome.failure("timeoutProvider", "Provider timed out", shape="errors"))
    req = await submit(client)
    result = (await client.poll([req.task_uuid]))[req.task_uuid]
    assert result.state is TaskState.ERROR
    assert result.error is not None
    assert (result.error.kind, result.error.code, result.error.task_uuid) == (
        ErrorKind.TIMEOUT,
        "timeoutProvider",
        req.task_uuid,
    )
    assert result.error.retryable


async def test_poll_reads_nested_failure_shape(client: RunwareClient, fake: FakeRunware) -> None:
    """A data item with status "error" and a nested error object makes that task ERROR."""
    fake.next_outcome(Outcome.failure("contentPolicyViolation", "Nope", shape="nested"))
    req = await submit(client)
    result = (await client.poll([req.task_uuid]))[req.task_uuid]
    assert result.state is TaskState.ERROR
    assert result.error is not None
    assert (result.error.kind, result.error.code) == (ErrorKind.SAFETY, "contentPolicyViolation")
    assert result.error.user_message() == "The safety check refused this image or audio. Try a different one."
    assert not result.error.retryable


async def test_poll_reads_single_error_envelope(client: RunwareClient, fake: FakeRunware) -> None:
    """A `{"error": {...}, "taskUUID": ...}` answer makes that task ERROR, classified by its code."""
    req = await submit(client)
    fake.inject(200, task_type="getResponse", code="taskFailed", envelope="error")
    result = (await client.poll([req.task_uuid]))[req.task_uuid]
    assert result.state is TaskState.ERROR
    assert result.error is not None
    assert (result.error.kind, result.error.code, result.error.task_uuid) == (
        ErrorKind.PROVIDER,
        "taskFailed",
        req.task_uuid,
    )


async def test_poll_server_error_without_task_uuid_is_a_failed_request(
    client: RunwareClient, fake: FakeRunware
) -> None:
    """An `internalServerError` with no taskUUID (HTTP 200) is the request's failure, never the task's."""
    req = await submit(client)
    fake.inject(200, task_type="getResponse", code="internalServerError")
    try:
        result = (await client.poll([req.task_uuid]))[req.task_uuid]
    except RunwareError as error:
        assert error.retryable
        return
    assert result.state is not TaskState.ERROR


async def test_upload_refusal_in_single_error_envelope_keeps_its_code(
    client: RunwareClient, fake: FakeRunware
) -> None:
    """A 400 whose body is one `error` object is classified by that error's code, not only by the status."""
    fake.inject(400, task_type="mediaStorage", code="imageBlocked", envelope="error")
    with pytest.raises(RunwareError) as caught:
        await client.upload_image(PNG, "image/png")
    assert (caught.value.kind, caught.value.code, caught.value.retryable) == (
        ErrorKind.SAFETY,
        "imageBlocked",
        False,
    )


async def test_poll_unknown_task_is_not_found(client: RunwareClient) -> None:
    """A taskUUID Runware does not know is ERROR with kind NOT_FOUND."""
    task_uuid = str(uuid.uuid4())
    result = (await client.poll([task_uuid]))[task_uuid]
    assert result.state is TaskState.ERROR
    assert result.error is not None and result.error.kind is ErrorKind.NOT_FOUND


async def test_poll_batches_fifty_tasks_per_request(client: RunwareClient, fake: FakeRunware) -> None:
    """120 tasks are asked about in 3 HTTP requests and every one gets a result."""
    uuids = [str(uuid.uuid4()) for _ in range(120)]
    results = await client.poll(uuids)
    assert set(results) == set(uuids)
    assert [len(body) for body in fake.requests] == [50, 50, 20]
    assert client.requests_sent == 3


async def test_poll_answers_a_mixed_batch(client: RunwareClient, fake: FakeRunware) -> None:
    """One request reports success, failure, processing and not-found for different tasks."""
    fake.next_outcome(
        Outcome.success(),
        Outcome.failure("inferenceError", shape="errors"),
        Outcome.success(polls_to_finish=5),
    )
    done, failed, running = [await submit(client) for _ in range(3)]
    missing = str(uuid.uuid4())
    results = await client.poll([done.task_uuid, failed.task_uuid, running.task_uuid, missing])
    assert [results[u].state for u in (done.task_uuid, failed.task_uuid, running.task_uuid, missing)] == [
        TaskState.SUCCESS,
        TaskState.ERROR,
        TaskState.PROCESSING,
        TaskState.ERROR,
    ]
    assert len(fake.tasks_of_type("getResponse")) == 4
    assert len([b for b in fake.requests if b and b[0]["taskType"] == "getResponse"]) == 1


# --- permanent HTTP errors ---


async def test_bad_key_is_auth_error(http: aiohttp.ClientSession, fake: FakeRunware) -> None:
    """A 401 is an AUTH error raised at once, with a readable message and no key in its text."""
    wrong = "sk-wrong-0000111122223333444455556666"
    client = make_client(http, fake, api_key=SecretStr(wrong))
    with pytest.raises(RunwareError) as caught:
        await client.upload_image(PNG, "image/png")
    error = caught.value
    assert (error.kind, error.http_status, error.retryable) == (ErrorKind.AUTH, 401, False)
    assert "key was rejected" in error.user_message()
    assert wrong not in str(error) and wrong not in repr(error) and KEY not in str(error)
    assert client.requests_sent == 1


async def test_out_of_credit_is_funds_error(client: RunwareClient, fake: FakeRunware) -> None:
    """A 402 is a FUNDS error raised at once with the admin-facing user message."""
    fake.inject(402)
    with pytest.raises(RunwareError) as caught:
        await client.upload_image(PNG, "image/png")
    assert caught.value.kind is ErrorKind.FUNDS
    assert "out of credit" in caught.value.user_message() and "Runware" not in caught.value.user_message()
    assert client.requests_sent == 1


async def test_bad_request_is_validation_error(client: RunwareClient, fake: FakeRunware) -> None:
    """A 400 is a VALIDATION error raised at once, not retried."""
    fake.inject(400, code="invalidImage", message="The image could not be read.")
    with pytest.raises(RunwareError) as caught:
        await client.upload_image(PNG, "image/png")
    assert (caught.value.kind, caught.value.code, caught.value.retryable) == (
        ErrorKind.VALIDATION,
        "invalidImage",
        False,
    )
    assert "could not be read" in str(caught.value)
    assert client.requests_sent == 1


async def test_permanent_poll_error_without_task_uuid_raises(
    client: RunwareClient, fake: FakeRunware
) -> None:
    """A failed poll request whose error names no task raises instead of inventing per-task results."""
    fake.inject(400, task_type="getResponse")
    with pytest.raises(RunwareError) as caught:
        await client.poll([str(uuid.uuid4()), str(uuid.uuid4())])
    assert caught.value.kind is ErrorKind.VALIDATION


# --- transient errors ---


@pytest.mark.parametrize(
    "inject",
    [
        pytest.param(lambda f: f.inject(429), id="429"),
        pytest.param(lambda f: f.inject(500), id="500"),
        pytest.param(lambda f: f.inject(503, times=2), id="503x2"),
        pytest.param(lambda f: f.inject_non_json(), id="non-json"),
        pytest.param(lambda f: f.inject_hang(TIMEOUT_S * 3), id="hang"),
        pytest.param(lambda f: f.inject_disconnect(), id="disconnect"),
    ],
)
async def test_transient_failures_are_retried(
    client: RunwareClient, fake: FakeRunware, inject: object
) -> None:
    """429, 5xx, non-JSON bodies, hangs and dropped connections are retried until a poll succeeds."""
    task_uuid = str(uuid.uuid4())
    inject(fake)  # type: ignore[operator]
    result = (await client.poll([task_uuid]))[task_uuid]
    assert result.error is not None and result.error.kind is ErrorKind.NOT_FOUND
    assert client.requests_sent == len(fake.requests) > 1


async def test_upload_retries_a_hang(client: RunwareClient, fake: FakeRunware) -> None:
    """An upload whose request hangs past the timeout is sent again and succeeds."""
    fake.inject_hang(TIMEOUT_S * 3, task_type="mediaStorage")
    image_uuid = await client.upload_image(PNG, "image/png")
    assert fake.uploads[image_uuid].data == PNG
    assert len(fake.tasks_of_type("mediaStorage")) == 2


async def test_exhausted_retries_raise_a_retryable_error(
    http: aiohttp.ClientSession, fake: FakeRunware
) -> None:
    """When every attempt fails transiently the last error is raised, marked retryable."""
    client = make_client(http, fake, max_attempts=3)
    fake.inject(503, times=10)
    with pytest.raises(RunwareError) as caught:
        await client.poll([str(uuid.uuid4())])
    assert (caught.value.kind, caught.value.http_status, caught.value.retryable) == (
        ErrorKind.SERVER,
        503,
        True,
    )
    assert client.requests_sent == len(fake.requests) == 3


async def test_unreachable_server_is_a_retryable_connection_error(http: aiohttp.ClientSession) -> None:
    """Nothing listening on the port gives a CONNECTION error after the retries."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = RunwareClient(
        http, api_url=f"http://127.0.0.1:{port}/v1", api_key=SecretStr(KEY), max_attempts=2, retry_base_s=0.01
    )
    with pytest.raises(RunwareError) as caught:
        await client.check_auth()
    assert (caught.value.kind, caught.value.retryable) == (ErrorKind.CONNECTION, True)
    assert client.requests_sent == 2


# --- check_auth ---


async def test_check_auth_accepts_a_good_key(client: RunwareClient, fake: FakeRunware) -> None:
    """check_auth returns quietly when the key works (the random task is simply not found)."""
    await client.check_auth()
    assert fake.task_counts["getResponse"] == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_check_auth_rejects_a_refused_key(
    client: RunwareClient, fake: FakeRunware, status: int
) -> None:
    """check_auth raises an AUTH error on 401 and 403."""
    fake.inject(status)
    with pytest.raises(RunwareError) as caught:
        await client.check_auth()
    assert (caught.value.kind, caught.value.http_status) == (ErrorKind.AUTH, status)


# --- download ---


async def test_download_returns_the_video_without_auth_header(
    client: RunwareClient, fake: FakeRunware
) -> None:
    """download fetches the output bytes and sends no Authorization header."""
    req = await submit(client)
    url = (await client.poll([req.task_uuid]))[req.task_uuid].video_url
    assert url is not None
    data = await client.download(url, max_bytes=1_000_000)
    assert data == DEFAULT_VIDEO and data[4:8] == b"ftyp"
    assert "Authorization" not in fake.video_requests[0]


async def test_download_over_limit_by_content_length_is_none(
    client: RunwareClient, fake: FakeRunware
) -> None:
    """A Content-Length above max_bytes gives None."""
    fake.next_outcome(Outcome.success(video=make_mp4(300_000)))
    req = await submit(client)
    url = (await client.poll([req.task_uuid]))[req.task_uuid].video_url
    assert url is not None
    assert await client.download(url, max_bytes=299_999) is None
    assert await client.download(url, max_bytes=300_000) == make_mp4(300_000)


async def test_download_over_limit_while_streaming_is_none(client: RunwareClient, fake: FakeRunware) -> None:
    """Without a Content-Length, a stream growing past max_bytes gives None."""
    fake.omit_content_length = True
    fake.next_outcome(Outcome.success(video=make_mp4(300_000)))
    req = await submit(client)
    url = (await client.poll([req.task_uuid]))[req.task_uuid].video_url
    assert url is not None
    assert await client.download(url, max_bytes=100_000) is None


async def test_download_of_a_missing_file_is_not_found(client: RunwareClient, fake: FakeRunware) -> None:
    """A 404 from the output URL (expired) is NOT_FOUND, not retried."""
    with pytest.raises(RunwareError) as caught:
        await client.download(f"{fake.base_url}/videos/nope.mp4", max_bytes=1000)
    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert len(fake.video_requests) == 1


# --- secrecy ---


async def test_api_key_never_appears_in_errors_or_logs(
    client: RunwareClient, fake: FakeRunware, caplog: pytest.LogCaptureFixture
) -> None:
    """Across failing calls, the key is in no exception text, no repr and no log line, even if echoed back."""
    caplog.set_level(logging.DEBUG)
    texts = [repr(client)]
    fake.inject(400, message=f"Bad request for key {KEY}")
    fake.inject(503, times=10, message=f"overloaded ({KEY})")
    for call in (client.upload_image(PNG, "image/png"), client.poll([str(uuid.uuid4())])):
        with pytest.raises(RunwareError) as caught:
            await call
        texts += [str(caught.value), repr(caught.value), caught.value.message, caught.value.user_message()]
    fake.clear_faults()
    fake.api_key = "another-key"
    with pytest.raises(RunwareError) as caught:
        await client.check_auth()
    texts += [str(caught.value), repr(caught.value)]
    texts += [record.getMessage() for record in caplog.records]
    assert caplog.records
    assert not [text for text in texts if KEY in text]


async def test_client_repr_hides_the_key(client: RunwareClient) -> None:
    """The client's repr shows the URL only."""
    assert KEY not in repr(client) and "RunwareClient" in repr(client)


# --- pure rules and wiring ---


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("insufficientCredits", 200, ErrorKind.FUNDS),
        ("quotaExceeded", 400, ErrorKind.FUNDS),
        ("rateLimitExceeded", 429, ErrorKind.RATE_LIMIT),
        ("contentPolicyViolation", 400, ErrorKind.SAFETY),
        ("providerContentPolicyViolation", 200, ErrorKind.SAFETY),
        ("nsfwContentDetected", 200, ErrorKind.SAFETY),
        ("timeoutProvider", 200, ErrorKind.TIMEOUT),
        ("taskFailedOrNotFound", 200, ErrorKind.NOT_FOUND),
        ("mediaExpired", 400, ErrorKind.NOT_FOUND),
        ("inferenceError", 200, ErrorKind.PROVIDER),
        ("noAvailableServer", 503, ErrorKind.PROVIDER),
        ("providerError", 200, ErrorKind.PROVIDER),
        ("invalidOutputQuality", 400, ErrorKind.VALIDATION),
        ("conflictTaskUUID", 409, ErrorKind.VALIDATION),
        ("invalidApiKey", 401, ErrorKind.AUTH),
        ("anything", 402, ErrorKind.FUNDS),
        ("anything", 403, ErrorKind.PERMISSION),
        (None, 404, ErrorKind.NOT_FOUND),
        (None, 502, ErrorKind.SERVER),
        ("invalidWhatever", 500, ErrorKind.SERVER),
        ("somethingNew", 200, ErrorKind.UNKNOWN),
    ],
)
def test_classify_error(code: str | None, status: int, kind: ErrorKind) -> None:
    """Error codes and HTTP statuses map to kinds as docs/runware-api.md says."""
    assert classify_error(code, status) is kind


# Every code Runware's official Python SDK sorts (runware-sdk 1.8.0, runware/errors.py: `derive_code`,
# `is_retryable`), with the kind the bot gives it and whether it is retryable. Where the bot differs from
# the SDK, SDK_DIFFERENCES says how and why.
CODE_TABLE: list[tuple[str, ErrorKind, bool]] = [
    # quota: codes containing Credits/Quota/Balance, and a few named ones
    ("insufficientCredits", ErrorKind.FUNDS, False),
    ("insufficientBalance", ErrorKind.FUNDS, False),
    ("quotaExceeded", ErrorKind.FUNDS, False),
    ("paymentRequired", ErrorKind.FUNDS, False),
    ("environmentPaused", ErrorKind.FUNDS, False),
    # rate limits
    ("rateLimitExceeded", ErrorKind.RATE_LIMIT, True),
    ("providerRateLimit", ErrorKind.RATE_LIMIT, True),
    # blocked content is a safety refusal
    ("contentPolicyViolation", ErrorKind.SAFETY, False),
    ("providerContentPolicyViolation", ErrorKind.SAFETY, False),
    ("sensitiveContentDetected", ErrorKind.SAFETY, False),
    ("unsafeContentDetected", ErrorKind.SAFETY, False),
    ("nsfwContentDetected", ErrorKind.SAFETY, False),
    ("promptBlocked", ErrorKind.SAFETY, False),
    ("imageBlocked", ErrorKind.SAFETY, False),
    ("moderationFailed", ErrorKind.SAFETY, False),
    ("invalidProviderContent", ErrorKind.SAFETY, False),
    # auth (and, kept apart by the bot, permission)
    ("invalidApiKey", ErrorKind.AUTH, False),
    ("missingApiKey", ErrorKind.AUTH, False),
    ("unauthorized", ErrorKind.AUTH, False),
    ("authenticationFailed", ErrorKind.AUTH, False),
    ("authFailed", ErrorKind.AUTH, False),
    ("authTimeout", ErrorKind.AUTH, False),
    ("invalidAuthentication", ErrorKind.AUTH, False),
    ("invalidCredentials", ErrorKind.AUTH, False),
    ("missingAuthentication", ErrorKind.AUTH, False),
    ("tokenExpired", ErrorKind.AUTH, False),
    ("tokenInvalid", ErrorKind.AUTH, False),
    ("tokenMissing", ErrorKind.AUTH, False),
    ("tokenRevoked", ErrorKind.AUTH, False),
    ("accountSuspended", ErrorKind.AUTH, False),
    ("accountDisabled", ErrorKind.AUTH, False),
    ("organizationSuspended", ErrorKind.AUTH, False),
    ("organizationDisabled", ErrorKind.AUTH, False),
    ("workspaceSuspended", ErrorKind.AUTH, False),
    ("workspaceDisabled", ErrorKind.AUTH, False),
    ("forbidden", ErrorKind.PERMISSION, False),
    ("permissionDenied", ErrorKind.PERMISSION, False),
    ("insufficientPermissions", ErrorKind.PERMISSION, False),
    # timeouts
    ("timeout", ErrorKind.TIMEOUT, True),
    ("gatewayTimeout", ErrorKind.TIMEOUT, True),
    ("providerTimeout", ErrorKind.TIMEOUT, True),
    ("timeoutProvider", ErrorKind.TIMEOUT, True),
    # not found
    ("taskFailedOrNotFound", ErrorKind.NOT_FOUND, False),
    ("taskCancelled", ErrorKind.NOT_FOUND, False),
    ("unknownModel", ErrorKind.NOT_FOUND, False),
    ("mediaNotFound", ErrorKind.NOT_FOUND, False),
    ("mediaExpired", ErrorKind.NOT_FOUND, False),
    # server trouble
    ("internalServerError", ErrorKind.SERVER, True),
    ("serviceUnavailable", ErrorKind.SERVER, True),
    ("serverUnavailable", ErrorKind.SERVER, True),
    ("standardError", ErrorKind.SERVER, True),
    ("unknownError", ErrorKind.SERVER, True),
    ("undefinedError", ErrorKind.SERVER, True),
    ("defaultError", ErrorKind.SERVER, True),
    ("unrecognizedResponse", ErrorKind.SERVER, True),
    ("errorRetrievingAccountManagement", ErrorKind.SERVER, True),
    # provider / inference trouble
    ("taskFailed", ErrorKind.PROVIDER, True),
    ("inferenceError", ErrorKind.PROVIDER, True),
    ("processingFailed", ErrorKind.PROVIDER, True),
    ("downloadFailed", ErrorKind.PROVIDER, True),
    ("uploadFailed", ErrorKind.PROVIDER, True),
    ("noAvailableServer", ErrorKind.PROVIDER, True),
    ("modelUnavailable", ErrorKind.PROVIDER, True),
    ("modelDisabled", ErrorKind.PROVIDER, True),
    ("modelNotReady", ErrorKind.PROVIDER, True),
    ("mediaStorageFileCouldNotBeMoved", ErrorKind.PROVIDER, True),
    ("providerError", ErrorKind.PROVIDER, True),
    ("providerAuthError", ErrorKind.PROVIDER, True),
    # validation: request-shape problems
    ("invalidOutputQuality", ErrorKind.VALIDATION, False),
    ("invalidSafety", ErrorKind.VALIDATION, False),
    ("missingAudio", ErrorKind.VALIDATION, False),
    ("conflictTaskUUID", ErrorKind.VALIDATION, False),
    ("taskUUIDConflict", ErrorKind.VALIDATION, False),
    ("duplicateTaskUUID", ErrorKind.VALIDATION, False),
    ("unsupportedTaskType", ErrorKind.VALIDATION, False),
    ("valueTooLarge", ErrorKind.VALIDATION, False),
    ("arrayTooLong", ErrorKind.VALIDATION, False),
    ("maxDurationExceeded", ErrorKind.VALIDATION, False),
    ("unknownParameter", ErrorKind.VALIDATION, False),
    ("incompatibleParameters", ErrorKind.VALIDATION, False),
    ("validationFailed", ErrorKind.VALIDATION, False),
    ("modelAlreadyExists", ErrorKind.VALIDATION, False),
    # anything else
    ("somethingNew", ErrorKind.UNKNOWN, False),
]

# code -> the SDK's category, where the bot deliberately answers differently.
SDK_DIFFERENCES = {
    # The SDK's "Timeout" test is case-sensitive and misses the code Runware documents for a slow provider.
    "timeoutProvider": "unknown",
    # The SDK calls these "auth"; the bot says "lacks a permission" instead of "key rejected" (both final).
    "forbidden": "auth",
    "permissionDenied": "auth",
    "insufficientPermissions": "auth",
}

_SDK_KIND = {
    "validation": ErrorKind.VALIDATION,
    "auth": ErrorKind.AUTH,
    "quota": ErrorKind.FUNDS,
    "rateLimit": ErrorKind.RATE_LIMIT,
    "safety": ErrorKind.SAFETY,
    "provider": ErrorKind.PROVIDER,
    "timeout": ErrorKind.TIMEOUT,
    "notFound": ErrorKind.NOT_FOUND,
    "serverError": ErrorKind.SERVER,
    "connection": ErrorKind.CONNECTION,
    "unknown": ErrorKind.UNKNOWN,
}


@pytest.mark.parametrize(("code", "kind", "retryable"), CODE_TABLE, ids=[c for c, _, _ in CODE_TABLE])
def test_error_code_table(code: str, kind: ErrorKind, retryable: bool) -> None:
    """Each Runware error code reported in a 200 answer gets its kind and retryability."""
    error = RunwareError(classify_error(code, 200), "x", code=code)
    assert (error.kind, error.retryable) == (kind, retryable)


@pytest.mark.parametrize(("code", "kind", "retryable"), CODE_TABLE, ids=[c for c, _, _ in CODE_TABLE])
def test_error_code_table_agrees_with_runware_sdk(code: str, kind: ErrorKind, retryable: bool) -> None:
    """The table matches Runware's official SDK, code by code, except the listed, explained differences."""
    from runware.errors import derive_code, is_retryable

    sdk = derive_code(code)
    if code in SDK_DIFFERENCES:
        assert sdk == SDK_DIFFERENCES[code]
        return
    assert (_SDK_KIND[sdk], is_retryable(sdk)) == (kind, retryable)


def test_error_code_table_covers_every_code_the_sdk_names() -> None:
    """Every code in the SDK's named lists has a row in the table."""
    from runware import errors

    named = set().union(
        errors._SAFETY_CODES,
        errors._AUTH_CODES,
        errors._SERVER_ERROR_CODES,
        errors._NOT_FOUND_CODES,
        errors._PROVIDER_CODES,
    )
    assert named <= {code for code, _, _ in CODE_TABLE}


def test_retryable_kinds() -> None:
    """Provider, timeout, connection, rate limit and server errors are retryable; the rest are not."""
    retryable = {k for k in ErrorKind if RunwareError(k, "x").retryable}
    assert retryable == {
        ErrorKind.PROVIDER,
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION,
        ErrorKind.RATE_LIMIT,
        ErrorKind.SERVER,
    }


def test_video_request_rejects_out_of_range_quality() -> None:
    """VideoRequest refuses a quality Runware would reject."""
    with pytest.raises(ValueError, match="output_quality"):
        VideoRequest(str(uuid.uuid4()), "i", "a", "MP4", 100, SafetyMode.FAST, 3600)


async def test_from_settings_uses_url_key_and_timeout(http: aiohttp.ClientSession, fake: FakeRunware) -> None:
    """from_settings builds a working client from Settings."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        discord_token=SecretStr("discord"),
        runware_api_key=SecretStr(KEY),
        runware_api_url=fake.url,
        runware_request_timeout_s=5,
    )
    await RunwareClient.from_settings(http, settings).check_auth()


async def test_fake_finishes_tasks_by_wall_time(http: aiohttp.ClientSession) -> None:
    """With only seconds_to_finish set, a task stays PROCESSING until that time has passed."""
    async with FakeRunware(api_key=KEY, seconds_to_finish=0.2) as fake:
        client = make_client(http, fake)
        req = await submit(client)
        assert (await client.poll([req.task_uuid]))[req.task_uuid].state is TaskState.PROCESSING
        await asyncio.sleep(0.25)
        assert (await client.poll([req.task_uuid]))[req.task_uuid].state is TaskState.SUCCESS


async def test_fake_get_task_details_returns_request_and_response(
    http: aiohttp.ClientSession, client: RunwareClient, fake: FakeRunware
) -> None:
    """The fake's getTaskDetails echoes the original request and the current response without polling."""
    req = await submit(client)
    body = [{"taskType": "getTaskDetails", "taskUUID": req.task_uuid}]
    headers = {"Authorization": f"Bearer {KEY}"}
    async with http.post(fake.url, json=body, headers=headers) as resp:
        details = (await resp.json())["data"][0]
    assert details["request"] == fake.submitted[req.task_uuid]
    assert details["response"]["status"] == "processing"
    assert fake.polls_of(req.task_uuid) == 0


async def test_fake_runs_standalone(http: aiohttp.ClientSession) -> None:
    """`python -m tests.fakes.runware` prints its URL first and answers the client."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.runware",
        "--port",
        "0",
        "--api-key",
        KEY,
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        await RunwareClient(http, api_url=url, api_key=SecretStr(KEY)).check_auth()
    finally:
        proc.terminate()
        await proc.wait()
