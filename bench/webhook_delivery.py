"""Webhook against polling: Runware calls per job, and the time from a task finishing to its delivery.

What is measured
    The same workload twice in one run, once with webhooks on (PUBLIC_URL: the bot's HTTP server on
    loopback, the route of web/runware_webhook.py, the fake Runware POSTing each finished result to the
    URL its submit carried) and once polling only. Each job goes the real path: JobService.accept (real
    media, validated, reserved in a real SqliteStore, uploaded), then the JobRunner (submit, then a
    webhook or getResponse polls), then delivery, which here records the job as posted the moment the
    runner offers it (what the bot's delivery cog is handed; the Discord post itself is the same in both
    modes and is not timed).
    - Runware calls per job: from the fake's own records, by task type (uploads counted apart).
    - Latency: from the moment the fake Runware's task finished (`finished_at`: its time to finish ran
      out) to the moment the runner offered the finished job for posting, per job.

How
    Time is scaled by S (default 30), as in runware_requests.py: jobs take 120/S seconds and the poll
    settings are the defaults divided by S, so polling's latency is S times shorter than the real one
    (the real-time equivalent is printed beside it); the webhook's is not scaled (it is a POST on
    loopback). Jobs arrive evenly over one job length. The script checks its work (exit status 1): every
    job accepted, submitted once, succeeded and offered once; with webhooks, every job's webhook answered
    200 once.

Goal
    With webhooks: 1 submit and 0 polls per job, and p99 from finish to delivery ≤ 250 ms on loopback
    (reported, not judged, with --quick).

    uv run python bench/webhook_delivery.py            # 30 jobs per mode, S = 30 (about 20 s)
    uv run python bench/webhook_delivery.py --quick    # 6 jobs per mode, S = 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

# Run as `python bench/webhook_delivery.py`: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.jobs import Accepted, AnimateRequest, JobService
from core.models import Job, JobStatus
from core.runner import JobRunner
from core.runware import RunwareClient
from core.settings import Settings
from core.webhooks import WebhookReceiver
from storage.sqlite import SqliteStore
from tests import media_factory as media
from tests.fakes.runware import FakeRunware
from web.runware_webhook import add_runware_webhook
from web.server import HttpServer

JOB_SECONDS = 120.0
GOAL_P99_MS = 250.0
DEFAULT_INITIAL_S = float(Settings.model_fields["poll_initial_delay_s"].default)
DEFAULT_MAX_INTERVAL_S = float(Settings.model_fields["poll_max_interval_s"].default)


@dataclass
class Result:
    mode: str
    jobs: int
    submits: int
    polls: int  # getResponse task items
    poll_requests: int  # getResponse POSTs
    uploads: int
    latencies_ms: list[float]
    webhook_calls: int
    outcomes: dict[str, int]

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def settings_for(fake: FakeRunware, db: Path, jobs: int, scale: float, public_url: str | None) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        discord_token="bench-discord-token-0123456789",
        runware_api_key=fake.api_key,
        runware_api_url=fake.url,
        database_url=f"sqlite:///{db}",
        poll_initial_delay_s=DEFAULT_INITIAL_S / scale,
        poll_max_interval_s=DEFAULT_MAX_INTERVAL_S / scale,
        quota_user_daily_usd=None,
        quota_user_monthly_usd=None,
        quota_guild_monthly_usd=None,
        quota_user_max_active_jobs=max(2, jobs),
        quota_cooldown_s=0.0,
        confirm_above_usd=None,
        operator_daily_usd=None,
        guild_budget_max_usd=None,
        public_url=public_url,
    )


async def run_mode(
    webhooks: bool, jobs: int, scale: float, folder: Path, image: bytes, audio: bytes
) -> Result:
    mode = "webhook" if webhooks else "polling"
    db = folder / f"{mode}.db"
    store = await SqliteStore.open(str(db))
    server = HttpServer("127.0.0.1", 0)
    outcomes: dict[str, int] = {}
    # The route is added before the server starts (its app freezes), and the server starts before the
    # settings exist (its port goes into PUBLIC_URL): the client and the runner are reached through these.
    parts: dict[str, Callable[..., Any]] = {}
    if webhooks:
        receiver = WebhookReceiver(store, lambda raw: parts["read"](raw), wake=lambda job_id: parts["wake"]())
        add_runware_webhook(
            server.app, receiver, lambda outcome: outcomes.__setitem__(outcome, outcomes.get(outcome, 0) + 1)
        )
        await server.start()
    try:
        async with (
            FakeRunware(polls_to_finish=None, seconds_to_finish=JOB_SECONDS / scale) as fake,
            aiohttp.ClientSession() as http,
        ):
            public_url = server.url if webhooks else None
            settings = settings_for(fake, db, jobs, scale, public_url)
            client = RunwareClient.from_settings(http, settings)
            finished: asyncio.Queue[tuple[Job, float]] = asyncio.Queue()
            runner = JobRunner(
                store,
                client,
                settings,
                on_finished=lambda job: finished.put_nowait((job, time.time())),
                public_url=public_url,
            )
            parts["read"], parts["wake"] = client.read_webhook, runner.wake
            service = JobService(store, client, settings, wake_runner=runner.wake, hold_upload=runner.lease)
            runner_task = asyncio.create_task(runner.run())
            offered: dict[int, tuple[Job, float]] = {}
            duplicates = 0

            async def deliver() -> None:
                nonlocal duplicates
                while len(offered) < jobs:
                    job, at = await finished.get()
                    duplicates += job.id in offered
                    offered[job.id] = (job, at)
                    await service.mark_delivered(job.id)

            async def arrive(index: int) -> None:
                await asyncio.sleep(index * JOB_SECONDS / scale / jobs)
                request = AnimateRequest(guild_id=1, channel_id=2, user_id=42, image=image, audio=audio)
                if not isinstance(await service.accept(request), Accepted):
                    raise SystemExit("a job was not accepted: the bench's settings need updating")

            try:
                delivering = asyncio.create_task(deliver())
                await asyncio.gather(*(arrive(i) for i in range(jobs)))
                await asyncio.wait_for(delivering, 30.0 + 20 * JOB_SECONDS / scale)
                await asyncio.sleep(0.2)  # a late duplicate offer would show here
                while not finished.empty():
                    duplicates += 1
                    finished.get_nowait()
            finally:
                runner_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner_task
            problems = []
            if duplicates:
                problems.append(f"{duplicates} jobs offered twice")
            if any(j.status is not JobStatus.SUCCEEDED for j, _ in offered.values()):
                problems.append("a job did not succeed")
            if len(fake.submitted) != jobs or any(n != 1 for n in fake.submission_counts.values()):
                problems.append("a job was not submitted exactly once")
            latencies = []
            for job, at in offered.values():
                done_at = fake.finished_at(job.task_uuid)
                if done_at is None:
                    problems.append(f"job {job.id} offered before Runware finished it")
                    continue
                latencies.append((at - done_at) * 1000)
                if webhooks and fake.webhook_deliveries(job.task_uuid) != 1:
                    problems.append(f"job {job.id}: its webhook was not answered 200 once")
            if problems:
                raise SystemExit(f"{mode}: " + "; ".join(problems))
            polls = [
                b
                for b in fake.requests
                if isinstance(b, list) and b and b[0].get("taskType") == "getResponse"
            ]
            return Result(
                mode=mode,
                jobs=jobs,
                submits=fake.task_counts["videoInference"],
                polls=fake.task_counts["getResponse"],
                poll_requests=len(polls),
                uploads=fake.task_counts["mediaStorage"],
                latencies_ms=latencies,
                webhook_calls=len(fake.webhook_calls),
                outcomes=outcomes,
            )
    finally:
        await server.stop()
        await store.close()


async def main_async(jobs: int, scale: float, quick: bool) -> int:
    image, audio = media.png(512, 512), media.wav(3.0)
    with tempfile.TemporaryDirectory() as tmp:
        polling = await run_mode(False, jobs, scale, Path(tmp), image, audio)
        webhook = await run_mode(True, jobs, scale, Path(tmp), image, audio)
    print(
        f"{jobs} jobs per mode, jobs of {JOB_SECONDS / scale:g} s (S = {scale:g}), "
        "arriving over one job length"
    )
    print(
        "mode     submits/job  polls/job  getResponse POSTs/job  uploads/job  finish->delivery p50 / p99 ms"
    )
    for r in (webhook, polling):
        print(
            f"{r.mode:8} {r.submits / r.jobs:11.2f} {r.polls / r.jobs:10.2f} "
            f"{r.poll_requests / r.jobs:22.2f} {r.uploads / r.jobs:12.2f}   {r.p(0.5):7.0f} / {r.p(0.99):.0f}"
        )
    print(
        f"polling's latency in real time (× S): p50 {polling.p(0.5) * scale / 1000:.1f} s, "
        f"p99 {polling.p(0.99) * scale / 1000:.1f} s"
    )
    print(f"webhook POSTs: {webhook.webhook_calls} for {webhook.jobs} jobs, answered {webhook.outcomes}")
    calls_ok = webhook.submits == webhook.jobs and webhook.polls == 0
    fast = webhook.p(0.99) <= GOAL_P99_MS
    print(f"goal 1 submit and 0 polls per job with webhooks: {'met' if calls_ok else 'MISSED'}")
    print(f"goal p99 finish->delivery <= {GOAL_P99_MS:g} ms with webhooks: {'met' if fast else 'MISSED'}")
    if not calls_ok or webhook.outcomes != {"accepted": webhook.jobs}:
        return 1  # a poll with webhooks working is a fault, not noise
    return 0 if fast or quick else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 jobs per mode, S = 60")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--scale", type=float, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    jobs = args.jobs or (6 if args.quick else 30)
    scale = args.scale or (60.0 if args.quick else 30.0)
    return asyncio.run(main_async(jobs, scale, args.quick))


if __name__ == "__main__":
    sys.exit(main())
