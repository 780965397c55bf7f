"""What the bot tells its metrics: a small observer protocol the core and the cogs call, with a no-op default.

The core never imports a metrics library (web/metrics.py implements this with prometheus-client, and bot.py
wires it in). Every method is cheap and synchronous, and none takes an id: labels stay low-cardinality
(a status, a kind of error, a kind of request).
"""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    """Receives counts and durations as they happen."""

    def submitted(self) -> None:
        """Runware accepted a video task (one per job, however many attempts it took)."""
        ...

    def runware_request(self, task_type: str, seconds: float) -> None:
        """One HTTP request to Runware's API ended (answered or not) after `seconds`."""
        ...

    def runware_error(self, kind: str) -> None:
        """Runware (or the way to it) reported an error of this kind (an ErrorKind value)."""
        ...

    def polled(self, tasks: int) -> None:
        """The runner asked Runware about `tasks` tasks (however few requests that took)."""
        ...

    def job_finished(self, status: str) -> None:
        """A job reached a final status (polls per job: polled tasks over finished jobs)."""
        ...

    def settled(self, cost_usd: float) -> None:
        """A finished video's cost (what Runware bills for it) was settled on the ledger."""
        ...

    def acknowledged(self, seconds: float) -> None:
        """A command was acknowledged `seconds` after Discord created its interaction."""
        ...

    def delivered(self) -> None:
        """A finished job's outcome was posted (or recorded as found, or as impossible to post)."""
        ...

    def delivery_failed(self) -> None:
        """A try to post a finished job's outcome failed (it is offered again later)."""
        ...


class NullObserver:
    """Observes nothing: the default when no metrics are served."""

    def submitted(self) -> None:
        """Nothing."""

    def runware_request(self, task_type: str, seconds: float) -> None:
        """Nothing."""

    def runware_error(self, kind: str) -> None:
        """Nothing."""

    def polled(self, tasks: int) -> None:
        """Nothing."""

    def job_finished(self, status: str) -> None:
        """Nothing."""

    def settled(self, cost_usd: float) -> None:
        """Nothing."""

    def acknowledged(self, seconds: float) -> None:
        """Nothing."""

    def delivered(self) -> None:
        """Nothing."""

    def delivery_failed(self) -> None:
        """Nothing."""


NULL_OBSERVER: Observer = NullObserver()
