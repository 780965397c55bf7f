"""Webhook against polling: Runware calls per job, and the time from a task finishing to its Discord message.

What is measured
    The same workload twice in one run, once with webhooks on (HTTP_PORT and PUBLIC_URL: the bot's HTTP
    server on loopback, the fake Runware POSTing each finished result to the URL its submit carried) and
    once polling only. Each mode runs the real bot in this process (VideoBot and discord.py against the
    fake Discord's REST API and gateway, as tests/e2e does), on a real SQLite file: members send /animate
    through the gateway, the bot checks and uploads the files, reserves, queues; its runner submits, then
    gets the result by webhook or getResponse polls; its delivery cog downloads the video from the fake
    Runware and posts it in the channel with the bot token.
    - Runware calls per job: from the fake's own records, by task type (uploads counted apart).
    - Latency: from the moment the fake Runware's task finished (`finished_at`: its time to finish ran
      out) to the moment the fake Discord received the channel message POST of that job's video (its
      handler's entry, before it reads the multipart body), per job.

How
    Time is scaled by S (default 30), as in runware_requests.py: jobs take 120/S seconds and the poll
    settings are the defaults divided by S, so polling's latency is S times shorter than the real one
    (the real-time equivalent is printed beside it); the webhook's is not scaled (it is a POST on
    loopback, then the same download and post as polling's). Jobs arrive evenly over one job length. The
    script checks its work (exit status 1): every job accepted, submitted once, succeeded, posted once
    (one channel message with the video per job) and charged once (one settle row per job); with
    webhooks, no poll, and every job's webhook answered 200 once and counted "accepted" by the bot.

Goal
    With webhooks: 1 submit and 0 polls per job, and p99 from finish to the Discord message ≤ 250 ms on
    loopback (reported, not judged, with --quick).

    uv run python bench/webhook_delivery.py            # 30 jobs per mode, S = 30 (about 20 s)
    uv run python bench/webhook_delivery.py --quick    # 6 jobs per mode, S = 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import socket
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

# Run as `python bench/webhook_delivery.py`: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.runware_requests import settings_for as runware_settings
from bot import VideoBot, point_discord_at
from core.models import GuildSettingsPatch
from core.runware import RunwareClient
from core.settings import Settings
from storage.sqlite import SqliteStore
from tests import media_factory as media
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_fixtures import (
    CHANNEL_ID,
    GUILD_ID,
    GUILD_READY_TIMEOUT,
    populate_default_guilds,
    running_bot,
)
from tests.fakes.runware import FakeRunware

JOB_SECONDS = 120.0
GOAL_P99_MS = 250.0
ATTACHMENT = 11  # the option type of an attachment
ADMIN_ID = 200_000_000_000_000_900
JOB_NUMBER = re.compile(r"#(\d+)")


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
    accepted: int  # webhook calls the bot counted "accepted" (its /metrics counter)

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class StampingDiscord(FakeDiscord):
    """The fake Discord, which notes when each channel message POST reaches it (by the message's id)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.received_at: dict[int, float] = {}

    async def _post_channel_message(self, request: web.Request) -> web.Response:
        at = time.time()
        response = await super()._post_channel_message(request)
        assert isinstance(response.body, bytes)
        self.received_at[int(json.loads(response.body)["id"])] = at
        return response


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings_for(
    fake: FakeRunware, discord: FakeDiscord, db: Path, jobs: int, scale: float, port: int | None
) -> Settings:
    """runware_requests' settings (poll timings divided by `scale`, no limits in the way) on the fake
    Discord, with the HTTP server on `port` as the webhook's address (no webhook without one)."""
    return runware_settings(
        fake,
        db,
        jobs,
        scale,
        discord_token=discord.token,
        discord_api_base=discord.api_base,
        discord_gateway_url=discord.gateway_url,
        dev_guild_id=GUILD_ID,
        http_port=port,
        public_url=f"http://127.0.0.1:{port}" if port else None,
    )


async def run_mode(
    webhooks: bool, jobs: int, scale: float, folder: Path, image: bytes, audio: bytes
) -> Result:
    mode = "webhook" if webhooks else "polling"
    db = folder / f"{mode}.db"
    store = await SqliteStore.open(str(db))
    await store.update_guild_settings(GUILD_ID, GuildSettingsPatch(consent_required=False), ADMIN_ID, 0.0)
    try:
        async with (
            StampingDiscord() as discord_fake,
            FakeRunware(polls_to_finish=None, seconds_to_finish=JOB_SECONDS / scale) as fake,
            aiohttp.ClientSession() as http,
        ):
            populate_default_guilds(discord_fake)
            settings = settings_for(fake, discord_fake, db, jobs, scale, free_port() if webhooks else None)
            point_discord_at(settings)
            client = RunwareClient.from_settings(http, settings)
            bot = VideoBot(
                settings=settings, store=store, runware=client, guild_ready_timeout=GUILD_READY_TIMEOUT
            )

            def posts() -> dict[int, list[int]]:
                """The channel messages carrying a video, by job number: their message ids."""
                found: dict[int, list[int]] = {}
                for m in discord_fake.messages_in(CHANNEL_ID):
                    number = JOB_NUMBER.search(m.content)
                    if m.via == "channel" and m.attachments and number:
                        found.setdefault(int(number.group(1)), []).append(m.id)
                return found

            async def arrive(index: int) -> None:
                await asyncio.sleep(index * JOB_SECONDS / scale / jobs)
                options = [
                    ("image", ATTACHMENT, discord_fake.add_attachment("face.png", image)),
                    ("audio", ATTACHMENT, discord_fake.add_attachment("voice.wav", audio)),
                ]
                await discord_fake.send_interaction(discord_fake.make_slash_interaction("animate", options))

            async with running_bot(bot, discord_fake):
                await asyncio.gather(*(arrive(i) for i in range(jobs)))
                await discord_fake.wait_for(lambda: len(posts()) >= jobs, 30.0 + 20 * JOB_SECONDS / scale)
                await asyncio.sleep(0.3)  # a late second post would show here
                accepted = 0.0
                if bot.metrics is not None:
                    sample = bot.metrics.registry.get_sample_value(
                        "ventriloquist_webhook_calls_total", {"outcome": "accepted"}
                    )
                    accepted = sample or 0.0
            problems = []
            posted = posts()
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT id, task_uuid, status FROM jobs ORDER BY id").fetchall()
                settles = dict(
                    conn.execute(
                        "SELECT job_id, COUNT(*) FROM ledger WHERE kind = 'settle' GROUP BY job_id"
                    ).fetchall()
                )
            if len(rows) != jobs:
                problems.append(f"{len(rows)} jobs accepted of {jobs}")
            if any(status != "succeeded" for _, _, status in rows):
                problems.append("a job did not succeed")
            if len(fake.submitted) != jobs or any(n != 1 for n in fake.submission_counts.values()):
                problems.append("a job was not submitted exactly once")
            latencies = []
            for job_id, task_uuid, _ in rows:
                if len(posted.get(job_id, [])) != 1:
                    problems.append(f"job {job_id} posted {len(posted.get(job_id, []))} times")
                    continue
                if settles.get(job_id) != 1:
                    problems.append(f"job {job_id} charged {settles.get(job_id, 0)} times")
                done_at = fake.finished_at(task_uuid)
                if done_at is None:
                    problems.append(f"job {job_id} posted before Runware finished it")
                    continue
                latencies.append((discord_fake.received_at[posted[job_id][0]] - done_at) * 1000)
                if webhooks and fake.webhook_deliveries(task_uuid) != 1:
                    problems.append(f"job {job_id}: its webhook was not answered 200 once")
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
                accepted=int(accepted),
            )
    finally:
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
        "mode     submits/job  polls/job  getResponse POSTs/job  uploads/job  "
        "finish->Discord message p50 / p99 ms"
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
    print(
        f"webhook POSTs: {webhook.webhook_calls} for {webhook.jobs} jobs, "
        f"{webhook.accepted} accepted by the bot"
    )
    calls_ok = webhook.submits == webhook.jobs and webhook.polls == 0
    fast = webhook.p(0.99) <= GOAL_P99_MS
    print(f"goal 1 submit and 0 polls per job with webhooks: {'met' if calls_ok else 'MISSED'}")
    print(
        f"goal p99 finish->Discord message <= {GOAL_P99_MS:g} ms with webhooks: {'met' if fast else 'MISSED'}"
    )
    if not calls_ok or webhook.accepted != webhook.jobs or webhook.webhook_calls != webhook.jobs:
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
    logging.getLogger("discord").setLevel(logging.ERROR)  # its notes on voice support are not ours
    jobs = args.jobs or (6 if args.quick else 30)
    scale = args.scale or (60.0 if args.quick else 30.0)
    return asyncio.run(main_async(jobs, scale, args.quick))


if __name__ == "__main__":
    sys.exit(main())
