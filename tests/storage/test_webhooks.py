"""WebhookStore on both backends: tokens stored with the submitting mark only, results kept once per job and
per video, a finished job's result refused as a repeat, and a kept result making the job due at once (also
when it came before the submit's answer)."""

from __future__ import annotations

from core.models import WebhookTarget
from core.ports import Store
from tests.storage.builders import reserved

NOW = 1_000.0


async def submitting(store: Store, token_hash: str | None = "h1") -> int:
    """A job marked submitting with a webhook token's hash."""
    job = await reserved(store, user_id=7, estimate=1_000, now=NOW)
    assert await store.mark_job_queued(job.id, "img", "aud", NOW) is not None
    assert await store.mark_submitting(job.id, NOW, NOW + 2, webhook_token_hash=token_hash)
    return job.id


async def test_a_token_is_stored_with_its_submit_and_a_refused_submit_stores_none(store: Store) -> None:
    job_id = await submitting(store)
    job = await store.get_job(job_id)
    assert job is not None
    assert await store.webhook_target(job_id) == WebhookTarget(job.task_uuid, ("h1",))
    # A second token (another process resubmits) is added; the same one again changes nothing.
    assert await store.mark_submitting(job_id, NOW, NOW + 2, webhook_token_hash="h2")
    assert await store.mark_submitting(job_id, NOW, NOW + 2, webhook_token_hash="h2")
    target = await store.webhook_target(job_id)
    assert target is not None and sorted(target.token_hashes) == ["h1", "h2"]
    # Held by another process: not sent, and no token kept.
    assert not await store.mark_submitting(job_id, NOW, NOW + 2, owner="other", webhook_token_hash="h3")
    target = await store.webhook_target(job_id)
    assert target is not None and "h3" not in target.token_hashes
    assert await store.webhook_target(job_id + 100) is None


async def test_a_result_is_kept_once_and_makes_the_job_due(store: Store) -> None:
    job_id = await submitting(store)
    # It came before the submit's answer: kept, and the submit's mark makes the job due now.
    assert await store.record_webhook_result(job_id, "t", "v1", '{"r": 1}', NOW + 1)
    assert not await store.record_webhook_result(job_id, "t", "v1", '{"r": 2}', NOW + 2)
    assert await store.webhook_results([job_id, job_id + 1]) == {job_id: '{"r": 1}'}
    assert await store.mark_submitted(job_id, NOW + 3, NOW + 60)
    job = await store.get_job(job_id)
    assert job is not None and job.next_poll_at == NOW + 3


async def test_a_processing_job_is_made_due_and_a_video_is_kept_once(store: Store) -> None:
    first, second = await submitting(store), await submitting(store, "h9")
    for job_id in (first, second):
        assert await store.mark_submitted(job_id, NOW, NOW + 60)
    assert await store.record_webhook_result(first, "t", "video", "{}", NOW + 5)
    job = await store.get_job(first)
    assert job is not None and job.next_poll_at == NOW + 5
    # The same video for another job is a repeat, not a second result.
    assert not await store.record_webhook_result(second, "t2", "video", "{}", NOW + 5)
    assert await store.webhook_results([second]) == {}


async def test_a_finished_job_takes_no_result(store: Store) -> None:
    job_id = await submitting(store)
    assert await store.mark_submitted(job_id, NOW, NOW + 60)
    assert await store.complete_job(job_id, "http://v", 500, False, NOW + 1) is not None
    assert not await store.record_webhook_result(job_id, "t", "v", "{}", NOW + 2)
    assert await store.webhook_results([job_id]) == {}
