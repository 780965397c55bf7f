"""PostgresStore: every part of the store on one asyncpg pool."""

from __future__ import annotations

from storage.postgres.acks import PostgresAcks
from storage.postgres.budgets import PostgresBudgets
from storage.postgres.consent import PostgresConsent
from storage.postgres.delivery import PostgresDelivery
from storage.postgres.events import PostgresEvents
from storage.postgres.guild_config import PostgresGuildConfig
from storage.postgres.jobs import PostgresJobs
from storage.postgres.moderation import PostgresModeration
from storage.postgres.quotes import PostgresQuotes
from storage.postgres.state import PostgresState
from storage.postgres.webhooks import PostgresWebhooks


class PostgresStore(
    PostgresJobs,
    PostgresQuotes,
    PostgresDelivery,
    PostgresGuildConfig,
    PostgresBudgets,
    PostgresModeration,
    PostgresConsent,
    PostgresState,
    PostgresWebhooks,
    PostgresAcks,
    PostgresEvents,
):
    """The Store protocol on PostgreSQL, safe to share between several bot processes. Each base class is
    one port; they share the pool (connection.py) and the locking rules (statements.py)."""
