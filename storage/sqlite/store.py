"""SqliteStore: every part of the store on one SQLite connection."""

from __future__ import annotations

from storage.sqlite.acks import SqliteAcks
from storage.sqlite.budgets import SqliteBudgets
from storage.sqlite.consent import SqliteConsent
from storage.sqlite.delivery import SqliteDelivery
from storage.sqlite.events import SqliteEvents
from storage.sqlite.guild_config import SqliteGuildConfig
from storage.sqlite.jobs import SqliteJobs
from storage.sqlite.moderation import SqliteModeration
from storage.sqlite.quotes import SqliteQuotes
from storage.sqlite.state import SqliteState
from storage.sqlite.webhooks import SqliteWebhooks


class SqliteStore(
    SqliteJobs,
    SqliteQuotes,
    SqliteDelivery,
    SqliteGuildConfig,
    SqliteBudgets,
    SqliteModeration,
    SqliteConsent,
    SqliteState,
    SqliteWebhooks,
    SqliteAcks,
    SqliteEvents,
):
    """The Store protocol on one SQLite file (WAL, synchronous=FULL, BEGIN IMMEDIATE for every write).
    Each base class is one port; they share the connection and its lock (connection.py)."""
