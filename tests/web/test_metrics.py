"""web/metrics.py on its own: a registry per instance, every fixed label shown from the start, webhook
outcomes checked, and a scrape that still answers when the job counts cannot be read."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from web.metrics import WEBHOOK_OUTCOMES, Metrics


def values(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


async def test_two_instances_count_apart() -> None:
    """Two bots in one process: each counts its own."""
    one, two = Metrics(), Metrics()
    one.submitted()
    one.settled(0.42)
    one.settled(0.08)
    one.webhook_call("accepted")
    first, second = values(await one.render(None)), values(await two.render(None))
    assert first[("ventriloquist_submissions_total", ())] == 1
    assert first[("ventriloquist_spend_usd_total", ())] == pytest.approx(0.50)
    assert first[("ventriloquist_webhook_calls_total", (("outcome", "accepted"),))] == 1
    assert second[("ventriloquist_submissions_total", ())] == 0
    assert second[("ventriloquist_webhook_calls_total", (("outcome", "accepted"),))] == 0


async def test_webhook_outcomes_are_a_fixed_set() -> None:
    """Each outcome shows at 0 before any call; an unknown one is a programming error, not a new label."""
    metrics = Metrics()
    shown = values(await metrics.render(None))
    for outcome in WEBHOOK_OUTCOMES:
        assert shown[("ventriloquist_webhook_calls_total", (("outcome", outcome),))] == 0
    with pytest.raises(ValueError):
        metrics.webhook_call("guild-300000000000000001")


async def test_unknown_kinds_and_statuses_stay_out_of_the_labels() -> None:
    """A kind or task type outside the fixed sets is counted under "unknown" / "other", never as itself."""
    metrics = Metrics()
    metrics.runware_error("something-new")
    metrics.runware_request("imageInference", 0.1)
    metrics.job_finished("weird")
    text = (await metrics.render(None)).decode()
    assert "something-new" not in text and "imageInference" not in text and "weird" not in text
    shown = values(text.encode())
    assert shown[("ventriloquist_runware_errors_total", (("kind", "unknown"),))] == 1
    assert shown[("ventriloquist_runware_request_seconds_count", (("task", "other"),))] == 1


async def test_job_counts_are_read_at_each_scrape_and_left_out_when_unreadable() -> None:
    """The gauge shows what the database says now, every status present; when the read fails the page
    still comes, without the gauge."""
    counts = {"succeeded": 3, "processing": 1}
    metrics = Metrics()

    async def read() -> dict[str, int]:
        return dict(counts)

    async def broken() -> dict[str, int]:
        raise ConnectionError("the database is away")

    shown = values(await metrics.render(read))
    assert shown[("ventriloquist_jobs", (("status", "succeeded"),))] == 3
    assert shown[("ventriloquist_jobs", (("status", "queued"),))] == 0
    counts["succeeded"] = 4
    assert values(await metrics.render(read))[("ventriloquist_jobs", (("status", "succeeded"),))] == 4
    shown = values(await metrics.render(broken))
    assert not [key for key in shown if key[0] == "ventriloquist_jobs"]
    assert ("ventriloquist_submissions_total", ()) in shown


async def test_jobs_finished_shows_only_the_final_statuses() -> None:
    """`ventriloquist_jobs_finished_total` has the README's three labels (succeeded, failed, expired), each
    from the start: a job is never "finished" as queued or processing, so such series would only mislead."""
    metrics = Metrics()
    metrics.job_finished("queued")
    shown = values(await metrics.render(None))
    name = "ventriloquist_jobs_finished_total"
    finished = {dict(labels)["status"] for shown_name, labels in shown if shown_name == name}
    assert finished == {"succeeded", "failed", "expired"}
