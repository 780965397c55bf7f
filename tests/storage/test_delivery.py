"""Posting results exactly once (DeliveryStore): delivery marks, where results went, post attempts."""

from __future__ import annotations

from core.models import (
    Job,
    Limits,
    QuotaRefusal,
)
from core.ports import Store
from tests.conftest import reserve
from tests.storage.builders import (
    NOW,
    new_job,
    posted_job,
)


async def test_mark_delivered_is_true_once(store: Store) -> None:
    """Only the first delivery mark wins; undelivered_jobs no longer lists the job."""
    job = await reserve(store, new_job(), Limits(1_000_000, 2), NOW)
    assert not isinstance(job, QuotaRefusal)
    await store.fail_job(job.id, "x", "y", NOW)
    assert [j.id for j in await store.undelivered_jobs()] == [job.id]
    assert await store.mark_delivered(job.id, NOW) is True
    assert await store.mark_delivered(job.id, NOW) is False
    assert await store.undelivered_jobs() == []


async def test_mark_delivered_records_where_the_result_was_posted(store: Store) -> None:
    """With posted_at, the job keeps the channel and message of its result; without, both stay empty."""
    job = await posted_job(store)
    quiet = await posted_job(store)
    assert await store.mark_delivered(job.id, NOW + 9, posted_at=(777, 888)) is True
    assert await store.mark_delivered(quiet.id, NOW + 9) is True
    stored, stored_quiet = await store.get_job(job.id), await store.get_job(quiet.id)
    assert stored is not None and stored_quiet is not None
    assert (stored.delivered_at, stored.result_channel_id, stored.result_message_id) == (NOW + 9, 777, 888)
    assert (stored_quiet.result_channel_id, stored_quiet.result_message_id) == (None, None)


async def test_a_post_attempt_keeps_its_first_time_per_channel(store: Store) -> None:
    """Each channel a result was about to be posted in is recorded once, with the first try's time."""
    job = await reserve(store, new_job(), Limits(None, None), NOW)
    assert isinstance(job, Job)
    assert await store.post_attempts(job.id) == []
    await store.record_post_attempt(job.id, 10, NOW)
    await store.record_post_attempt(job.id, 10, NOW + 60)
    await store.record_post_attempt(job.id, 20, NOW + 90)
    assert await store.post_attempts(job.id) == [(10, NOW), (20, NOW + 90)]
