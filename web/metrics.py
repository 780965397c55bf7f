"""`GET /metrics`: the bot's numbers in Prometheus' text format (prometheus-client).

`Metrics` is the core's Observer (core/observe.py) on a registry of its own (several bots may run in one
process, as in the tests), plus the webhook's outcomes. Jobs by status are read from the database when
Prometheus scrapes, at most once per JOB_COUNTS_MAX_AGE_S in a process (CachedJobCounts). No label
carries an id: statuses, kinds of error, kinds of request and webhook outcomes only, each from a fixed set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

log = logging.getLogger(__name__)

PREFIX = "ventriloquist"
# Every status a job can have (core.models.JobStatus); each is shown, 0 when no job has it.
JOB_STATUSES = ("uploading", "queued", "submitting", "processing", "succeeded", "failed", "expired")
# The statuses a job ends in: the labels of jobs_finished.
FINAL_STATUSES = ("succeeded", "failed", "expired")
# The kinds of Runware error (core.runware.ErrorKind values); anything else is counted as "unknown".
ERROR_KINDS = (
    "auth",
    "funds",
    "permission",
    "safety",
    "validation",
    "not_found",
    "provider",
    "timeout",
    "rate_limit",
    "connection",
    "server",
    "unknown",
)
REQUEST_TASKS = ("videoInference", "getResponse", "mediaStorage", "other")
WEBHOOK_OUTCOMES = ("accepted", "rejected", "repeated", "invalid", "limited")
# How long a scrape waits for the job counts before answering without them.
JOB_COUNT_TIMEOUT_S = 2.0
# The job counts a scrape shows are at most this old: counting reads the whole jobs table (its status
# index), so it is done at most once per this interval per process, however many scrapers (or strangers)
# ask. 15 s is Prometheus' shortest usual scrape interval: a 15 s or 30 s scrape still sees a fresh
# count almost every time, and the gauge moves slowly anyway (jobs take minutes).
JOB_COUNTS_MAX_AGE_S = 15.0
# Runware requests: from a fast poll to a stalled upload (the request timeout is 30 s by default).
REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Acknowledgements: Discord allows 3 s; the goal is 50 ms.
ACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0)

JobCounts = Callable[[], Awaitable[dict[str, int]]]


class CachedJobCounts:
    """`read` (the store's count of jobs by status) called at most once per `max_age_s`: a call within that
    time of the last read's start gets its figures without a query, and concurrent calls share one read. A
    read that fails (or is cancelled by the scrape's timeout) keeps nothing, so the next call reads again.
    `clock`: seconds, monotonic."""

    def __init__(
        self,
        read: JobCounts,
        *,
        max_age_s: float = JOB_COUNTS_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.max_age_s = max_age_s
        self._clock = clock
        self._counts: dict[str, int] | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self) -> dict[str, int] | None:
        if self._counts is not None and self._clock() - self._read_at < self.max_age_s:
            return dict(self._counts)
        return None

    async def __call__(self) -> dict[str, int]:
        counts = self._fresh()
        if counts is not None:
            return counts
        async with self._lock:
            counts = self._fresh()  # read by the call this one waited for
            if counts is not None:
                return counts
            started = self._clock()
            counts = dict(await self._read())
            self._counts, self._read_at = counts, started
            return dict(counts)


class Metrics:
    """The bot's counters, histograms and gauges on one registry (implements core.observe.Observer)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs = Gauge(f"{PREFIX}_jobs", "Jobs in the database, by status", ["status"], registry=r)
        self.submissions = Counter(
            f"{PREFIX}_submissions", "Video tasks Runware accepted from this process", registry=r
        )
        self.requests = Histogram(
            f"{PREFIX}_runware_request_seconds",
            "Duration of HTTP requests to Runware's API, answered or not, by task type",
            ["task"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            f"{PREFIX}_runware_errors", "Errors met talking to Runware, by kind", ["kind"], registry=r
        )
        self.polls = Counter(
            f"{PREFIX}_polled_tasks", "Task status checks (polls) the job runner made", registry=r
        )
        self.finished = Counter(
            f"{PREFIX}_jobs_finished", "Jobs this process brought to a final status", ["status"], registry=r
        )
        self.spend = Counter(
            f"{PREFIX}_spend_usd",
            "Cost of finished videos settled by this process, in US dollars (what Runware bills)",
            registry=r,
        )
        self.acks = Histogram(
            f"{PREFIX}_ack_seconds",
            "From a command's creation (its interaction's snowflake) to its acknowledgement",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.deliveries = Counter(
            f"{PREFIX}_deliveries", "Finished jobs whose outcome was posted (or recorded)", registry=r
        )
        self.delivery_failures = Counter(
            f"{PREFIX}_delivery_failures", "Failed tries to post a finished job (tried again)", registry=r
        )
        self.webhook_calls = Counter(
            f"{PREFIX}_webhook_calls", "Runware webhook calls, by outcome", ["outcome"], registry=r
        )
        # Every label value shown from the start, at 0: a rate() over a series that appears late misses
        # its first increase.
        for status in FINAL_STATUSES:
            self.finished.labels(status)
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        for task in REQUEST_TASKS:
            self.requests.labels(task)
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_calls.labels(outcome)

    # --- core.observe.Observer ---

    def submitted(self) -> None:
        self.submissions.inc()

    def runware_request(self, task_type: str, seconds: float) -> None:
        self.requests.labels(task_type if task_type in REQUEST_TASKS else "other").observe(max(0.0, seconds))

    def runware_error(self, kind: str) -> None:
        self.errors.labels(kind if kind in ERROR_KINDS else "unknown").inc()

    def polled(self, tasks: int) -> None:
        self.polls.inc(tasks)

    def job_finished(self, status: str) -> None:
        if status in FINAL_STATUSES:
            self.finished.labels(status).inc()

    def settled(self, cost_usd: float) -> None:
        if cost_usd > 0:
            self.spend.inc(cost_usd)

    def acknowledged(self, seconds: float) -> None:
        # The snowflake's clock is Discord's, to the millisecond: a little skew can make it negative.
        self.acks.observe(max(0.0, seconds))

    def delivered(self) -> None:
        self.deliveries.inc()

    def delivery_failed(self) -> None:
        self.delivery_failures.inc()

    # --- the webhook route's outcomes ---

    def webhook_call(self, outcome: str) -> None:
        """Count one webhook call: accepted, rejected (unknown token), repeated, invalid (its body) or
        limited (its peer refused too often: 429, not checked)."""
        if outcome not in WEBHOOK_OUTCOMES:
            raise ValueError(f"unknown webhook outcome {outcome!r}")
        self.webhook_calls.labels(outcome).inc()

    # --- exposition ---

    async def render(self, job_counts: JobCounts | None) -> bytes:
        """The text format, with the job counts read now (left out, with a warning, when the database does
        not answer in time: the other numbers still come)."""
        self.jobs.clear()
        if job_counts is not None:
            try:
                async with asyncio.timeout(JOB_COUNT_TIMEOUT_S):
                    counts = await job_counts()
            except Exception as error:
                log.warning("metrics: the job counts could not be read (%s)", type(error).__name__)
            else:
                for status in JOB_STATUSES:
                    self.jobs.labels(status).set(counts.get(status, 0))
        return generate_latest(self.registry)


def add_metrics_route(app: web.Application, metrics: Metrics, job_counts: JobCounts | None) -> None:
    """Serve `metrics` at GET /metrics on `app`, the job counts read by `job_counts` at each scrape (bot.py
    hands in a CachedJobCounts, so that scrapes close together share one count)."""

    async def handle(request: web.Request) -> web.Response:
        body = await metrics.render(job_counts)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    app.router.add_get("/metrics", handle)
