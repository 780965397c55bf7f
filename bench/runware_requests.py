"""Runware HTTP requests per job, with 1 and with 100 jobs in flight (2-minute jobs, batched polling).

What is measured
    Every POST the bot sends to Runware while jobs go through the real path: JobService.accept (real media
    from tests/media_factory, validated, reserved in a real SqliteStore, uploaded: two mediaStorage
    uploads), then the JobRunner loop (videoInference submit, getResponse polls until the task
    finishes). Counted from FakeRunware's own records (`fake.requests`: one entry per POST, which may carry
    many tasks; `fake.task_counts`: task items), divided by the number of jobs.

How
    Time is scaled by S (default 30) to keep the run short: jobs take 120/S seconds on the fake
    (`seconds_to_finish`, counted from the videoInference submit) and the poll settings are the defaults of
    core/settings.py divided by S (POLL_INITIAL_DELAY_S 5 s -> 5/S, POLL_MAX_INTERVAL_S 15 s -> 15/S), so the
    ratio of job length to poll interval is the real one. Workloads: 1 job, 100 jobs accepted at once
    (asyncio.gather), and 100 jobs arriving evenly over one job length (a steady stream: each arrival
    wakes the runner, as a real /animate does; in flight peaks near 100). One member makes them all, with
    the bench's own limits: no money limits, no cooldown between jobs, no cost quote to confirm, and the
    max-active limit raised to fit. The script stops (exit status 1) unless every job was accepted,
    uploaded and submitted once and succeeded, and the client's count of POSTs is the fake's.
    The baseline, run in the same process right after, is the same workload with each job polled alone:
    `core.runware.client.POLL_BATCH_SIZE` is patched to 1, so every getResponse POST carries one task.
    The noise of a shared machine barely moves request counts, but it moves timing; the baseline of the
    same run is shown beside each figure, as a ratio.

    Caveat printed with the results: `poll_delay` floors its starting interval at 1 s. When
    POLL_INITIAL_DELAY_S / S < 1 s (S > 5), the scaled back-off curve is flatter than the real one; the
    script prints the polls a lone job needs under both schedules. `--scale 5` keeps the real curve
    exactly (about 3.5 min).

Goal
    With 100 jobs in flight: ≤ 0.5 getResponse requests per job (judged for both 100-job workloads).

    uv run python bench/runware_requests.py              # 1 and 100 jobs, S = 30 (about 35 s)
    uv run python bench/runware_requests.py --quick      # smoke run: 1 and 20 jobs, S = 60
    uv run python bench/runware_requests.py --scale 5    # slower, but the exact back-off curve
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

# Run as `python bench/runware_requests.py`: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import core.runware.client
from core.jobs import Accepted, AnimateRequest, JobService
from core.models import Job, JobStatus
from core.runner import JobRunner, poll_delay
from core.runware import RunwareClient
from core.settings import Settings
from storage.sqlite import SqliteStore
from tests import media_factory as media
from tests.fakes.runware import FakeRunware

JOB_SECONDS = 120.0  # a 2-minute OmniHuman job, in real seconds
GOAL_POLL_REQUESTS_PER_JOB = 0.5
TYPES = ("mediaStorage", "videoInference", "getResponse")
DEFAULT_INITIAL_S = float(Settings.model_fields["poll_initial_delay_s"].default)
DEFAULT_MAX_INTERVAL_S = float(Settings.model_fields["poll_max_interval_s"].default)


@dataclass
class Result:
    """What one workload cost, from FakeRunware's records."""

    jobs: int
    spread_s: float  # arrivals spread evenly over this many real (unscaled) seconds; 0 = all at once
    batch_size: int
    peak_in_flight: int  # most jobs accepted and not yet finished at one time
    requests: Counter[str]  # POSTs by the taskType they carry
    tasks: Counter[str]  # task items by taskType
    largest_poll: int  # most getResponse tasks in one POST
    client_requests: int  # RunwareClient.requests_sent (must equal the POSTs the fake saw)
    accept_s: float  # time to accept (validate, reserve, upload) all jobs
    wall_s: float  # first accept to last job finished

    def per_job(self, counter: Counter[str], task_type: str) -> float:
        return counter[task_type] / self.jobs

    @property
    def total_per_job(self) -> float:
        return sum(self.requests.values()) / self.jobs

    @property
    def label(self) -> str:
        if not self.spread_s:
            return f"{self.jobs} at once"
        return f"{self.jobs} over {self.spread_s:g}s (peak {self.peak_in_flight})"


def lone_job_polls(initial_s: float, max_interval_s: float, job_s: float) -> int:
    """How many polls a lone job gets from the runner's schedule (mark_submitted, then poll_delay)."""
    t, polls = initial_s, 0
    while True:
        polls += 1
        if t >= job_s:
            return polls
        t += poll_delay(polls - 1, initial_s, max_interval_s)


def settings_for(fake: FakeRunware, db: Path, jobs: int, scale: float, **extra: Any) -> Settings:
    """Default settings with the poll timings divided by `scale`, and nothing that would stop one member's
    `jobs` jobs from all going through at once: no money limits, no cooldown between jobs, no cost quote to
    confirm, an active-job cap that fits them. The bench counts requests per job, not the limits. `extra`
    settings are set over these (bench/webhook_delivery.py adds its fake Discord and HTTP server)."""
    values: dict[str, Any] = {
        "discord_token": "bench-discord-token-0123456789",
        "runware_api_key": fake.api_key,
        "runware_api_url": fake.url,
        "database_url": f"sqlite:///{db}",
        "poll_initial_delay_s": DEFAULT_INITIAL_S / scale,
        "poll_max_interval_s": DEFAULT_MAX_INTERVAL_S / scale,
        "quota_user_daily_usd": None,
        "quota_user_monthly_usd": None,
        "quota_guild_monthly_usd": None,
        "quota_user_max_active_jobs": max(2, jobs),
        "quota_cooldown_s": 0.0,
        "confirm_above_usd": None,
        "operator_daily_usd": None,
        "guild_budget_max_usd": None,
    }
    return Settings(_env_file=None, **{**values, **extra})  # type: ignore[call-arg]


def post_type(body: Any) -> str:
    """The taskType a POST carries (the client never mixes types in one POST)."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("taskType"))
    return "?"


async def run_workload(
    jobs: int, spread_s: float, scale: float, batch_size: int, folder: Path, image: bytes, audio: bytes
) -> Result:
    """Accept `jobs` jobs (at once, or evenly over `spread_s` real seconds) and run them to the end;
    count what reached the fake."""
    saved = core.runware.client.POLL_BATCH_SIZE
    core.runware.client.POLL_BATCH_SIZE = batch_size
    db = folder / f"jobs-{jobs}-spread{spread_s:g}-batch{batch_size}.db"
    store = await SqliteStore.open(str(db))
    try:
        async with (
            FakeRunware(polls_to_finish=None, seconds_to_finish=JOB_SECONDS / scale) as fake,
            aiohttp.ClientSession() as http,
        ):
            settings = settings_for(fake, db, jobs, scale)
            client = RunwareClient.from_settings(http, settings)
            finished: asyncio.Queue[Job] = asyncio.Queue()
            runner = JobRunner(store, client, settings, on_finished=finished.put_nowait)
            service = JobService(store, client, settings, wake_runner=runner.wake, hold_upload=runner.lease)
            runner_task = asyncio.create_task(runner.run())
            done: dict[int, Job] = {}
            in_flight = peak = 0

            async def deliver() -> None:
                nonlocal in_flight
                while len(done) < jobs:
                    # Deliver as the bot's video cog would: record it, so the runner does not offer it again.
                    job = await finished.get()
                    await service.mark_delivered(job.id)
                    done[job.id] = job
                    in_flight -= 1

            async def arrive(index: int) -> None:
                nonlocal in_flight, peak
                await asyncio.sleep(index * spread_s / scale / jobs)
                request = AnimateRequest(guild_id=1, channel_id=2, user_id=42, image=image, audio=audio)
                if not isinstance(await service.accept(request), Accepted):
                    raise SystemExit("a job was quoted, not accepted: the bench's settings need updating")
                in_flight += 1
                peak = max(peak, in_flight)

            try:
                started = time.perf_counter()
                delivering = asyncio.create_task(deliver())
                await asyncio.gather(*(arrive(i) for i in range(jobs)))
                accept_s = time.perf_counter() - started
                await asyncio.wait_for(delivering, 30.0 + 10 * JOB_SECONDS / scale)
                wall_s = time.perf_counter() - started
            finally:
                runner_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner_task
            failed = [j for j in done.values() if j.status is not JobStatus.SUCCEEDED]
            if failed:
                raise SystemExit(f"{len(failed)} jobs did not succeed, e.g. {failed[0]}")
            polls = [b for b in fake.requests if post_type(b) == "getResponse"]
            return Result(
                jobs=jobs,
                spread_s=spread_s,
                batch_size=batch_size,
                peak_in_flight=peak,
                requests=Counter(post_type(b) for b in fake.requests),
                tasks=Counter(fake.task_counts),
                largest_poll=max((len(b) for b in polls), default=0),
                client_requests=client.requests_sent,
                accept_s=accept_s,
                wall_s=wall_s,
            )
    finally:
        await store.close()
        core.runware.client.POLL_BATCH_SIZE = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 and 20 jobs, S = 60")
    parser.add_argument(
        "--no-spread", action="store_true", help="skip the workload whose jobs arrive over one job length"
    )
    parser.add_argument(
        "--scale", type=float, default=None, help="time scale S (default 30; 60 with --quick)"
    )
    parser.add_argument("--jobs", type=int, nargs="+", default=None, help="jobs in flight (default 1 100)")
    args = parser.parse_args()
    scale = args.scale or (60.0 if args.quick else 30.0)
    sizes = args.jobs or ([1, 20] if args.quick else [1, 100])
    # Bursts as asked, then the largest size arriving evenly over one job length (a steady stream).
    workloads = [(n, 0.0) for n in sizes] + ([] if args.no_spread else [(max(sizes), JOB_SECONDS)])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    batch = core.runware.client.POLL_BATCH_SIZE
    real_polls = lone_job_polls(DEFAULT_INITIAL_S, DEFAULT_MAX_INTERVAL_S, JOB_SECONDS)
    scaled_polls = lone_job_polls(
        DEFAULT_INITIAL_S / scale, DEFAULT_MAX_INTERVAL_S / scale, JOB_SECONDS / scale
    )
    print(
        f"runware_requests: {JOB_SECONDS:g} s jobs, time scale S={scale:g} "
        f"(jobs take {JOB_SECONDS / scale:.2f} s, first poll after {DEFAULT_INITIAL_S / scale:.3f} s, "
        f"max interval {DEFAULT_MAX_INTERVAL_S / scale:.3f} s), "
        f"POLL_BATCH_SIZE={batch}, baseline POLL_BATCH_SIZE=1"
    )
    print(
        f"schedule check: a lone job needs {real_polls} polls at the real settings and {scaled_polls} at the "
        f"scaled ones"
        + ("" if real_polls == scaled_polls else " (poll_delay's 1 s floor flattens the scaled curve)")
    )

    image, audio = media.png(512, 512), media.wav(5.0)
    wall = time.perf_counter()
    rows: list[tuple[Result, Result]] = []
    with tempfile.TemporaryDirectory(prefix="bench-runware-") as tmp:
        for jobs, spread in workloads:
            measured = asyncio.run(run_workload(jobs, spread, scale, batch, Path(tmp), image, audio))
            baseline = asyncio.run(run_workload(jobs, spread, scale, 1, Path(tmp), image, audio))
            for r in (measured, baseline):
                if r.client_requests != sum(r.requests.values()):
                    raise SystemExit(
                        f"client sent {r.client_requests} POSTs, fake saw {sum(r.requests.values())}"
                    )
                # Each job uploads its two files and is submitted once, however its polls are batched.
                uploads = r.tasks["imageUpload"] + r.tasks["mediaStorage"]
                if uploads != 2 * r.jobs or r.tasks["videoInference"] != r.jobs:
                    raise SystemExit(
                        f"{r.jobs} jobs, but the fake received {uploads} uploads and "
                        f"{r.tasks['videoInference']} videoInference tasks"
                    )
                print(
                    f"  {r.label:<26} batch {r.batch_size:>2}: accepted in {r.accept_s:.2f} s, all done in "
                    f"{r.wall_s:.2f} s, {sum(r.requests.values())} POSTs, largest poll {r.largest_poll} tasks"
                )
            rows.append((measured, baseline))

    print()
    print("HTTP requests (POSTs) per job, by type; baseline = same workload with POLL_BATCH_SIZE=1")
    header = (
        f"{'jobs in flight':>26} | {'mediaStor.':>10} {'videoInf.':>9} {'getResp.':>8} "
        f"{'all':>6} | {'getResponse req/job':>19} | {'baseline getResp req/job':>24} | {'ratio':>6} | "
        f"{'getResp tasks/job':>17} {'(baseline)':>10}"
    )
    print(header)
    print("-" * len(header))
    for measured, baseline in rows:
        m = [measured.per_job(measured.requests, t) for t in TYPES]
        polls, base_polls = m[2], baseline.per_job(baseline.requests, "getResponse")
        print(
            f"{measured.label:>26} | {m[0]:>10.2f} {m[1]:>9.2f} {m[2]:>8.2f} "
            f"{measured.total_per_job:>6.2f} | {polls:>19.2f} | {base_polls:>24.2f} | "
            f"{polls / base_polls:>6.3f} | {measured.per_job(measured.tasks, 'getResponse'):>17.2f} "
            f"{baseline.per_job(baseline.tasks, 'getResponse'):>10.2f}"
        )

    def verdict(result: Result) -> str:
        polls = result.per_job(result.requests, "getResponse")
        if polls <= GOAL_POLL_REQUESTS_PER_JOB:
            return f"{result.label} MET"
        return (
            f"{result.label} MISSED by {polls - GOAL_POLL_REQUESTS_PER_JOB:.2f} "
            f"({polls / GOAL_POLL_REQUESTS_PER_JOB:.1f}x the goal)"
        )

    parts = []
    for measured, baseline in rows:
        polls = measured.per_job(measured.requests, "getResponse")
        base_polls = baseline.per_job(baseline.requests, "getResponse")
        parts.append(
            f"{measured.label}: {measured.total_per_job:.2f} requests/job, {polls:.2f} getResponse req/job "
            f"(baseline {base_polls:.2f}, ratio {polls / base_polls:.3f}), "
            f"{measured.per_job(measured.tasks, 'getResponse'):.2f} getResponse tasks/job"
        )
    largest = max(r[0].jobs for r in rows)
    judged = [measured for measured, _ in rows if measured.jobs == largest]
    print()
    print(
        f"SUMMARY runware_requests (S={scale:g}): " + "; ".join(parts) + "; "
        f"goal <= {GOAL_POLL_REQUESTS_PER_JOB} getResponse req/job: "
        + ", ".join(verdict(r) for r in judged)
        + f"; {time.perf_counter() - wall:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
