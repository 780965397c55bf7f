"""JobEvents on SQLite: in the process only (SQLite serves one process). A notification tied to a state
change is handed to the subscribers after its COMMIT, by the part that made the change."""

from __future__ import annotations

from core.ports import JobNotice
from storage.events import Subscription
from storage.sqlite.connection import SqliteConnection


class SqliteEvents(SqliteConnection):
    """JobEvents on SQLite."""

    async def publish(self, notice: JobNotice) -> None:
        """Hand a notification to this process's subscribers."""
        self._fanout.deliver(notice)

    def subscribe(self) -> Subscription:
        """Start receiving this process's notifications."""
        return self._fanout.subscribe()
