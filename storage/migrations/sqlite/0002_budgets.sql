-- Budgets: per-guild limits, running spend totals per window, and an audit trail of admin actions.

-- Per-guild overrides of the settings' defaults. NULL in a limit column: use the default.
-- A limit of -1 means "unlimited" (set explicitly by an admin).
CREATE TABLE guild_limits (
    guild_id              INTEGER PRIMARY KEY,
    user_daily_micros     INTEGER,
    user_monthly_micros   INTEGER,
    max_active_jobs       INTEGER,
    cooldown_s            REAL,
    guild_monthly_micros  INTEGER,
    log_channel_id        INTEGER,
    updated_at            REAL    NOT NULL,
    updated_by            INTEGER NOT NULL
);

-- Running totals of spend per UTC day and month, for each member (user_id) and for the whole guild
-- (user_id = 0, never a Discord id). Derived from the ledger by the triggers below, in the same
-- transaction, so a limit check reads three rows instead of summing a month of ledger rows.
-- A member's total includes admin grants (credits give them room); the guild's total does not: it is
-- what Runware bills, and no credit to a member makes the server's bill smaller.
CREATE TABLE spend_totals (
    guild_id       INTEGER NOT NULL,
    user_id        INTEGER NOT NULL,
    period         TEXT    NOT NULL CHECK (period IN ('day', 'month')),
    period_start   REAL    NOT NULL,
    amount_micros  INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id, period, period_start)
) WITHOUT ROWID;

CREATE TRIGGER ledger_feeds_member_totals AFTER INSERT ON ledger
BEGIN
    INSERT INTO spend_totals (guild_id, user_id, period, period_start, amount_micros)
    VALUES
        (NEW.guild_id, NEW.user_id, 'day', CAST((CAST(NEW.counts_at AS INTEGER) / 86400) * 86400 AS REAL),
         NEW.amount_micros),
        (NEW.guild_id, NEW.user_id, 'month',
         CAST(strftime('%s', CAST(NEW.counts_at AS INTEGER), 'unixepoch', 'start of month') AS REAL),
         NEW.amount_micros)
    ON CONFLICT (guild_id, user_id, period, period_start)
    DO UPDATE SET amount_micros = amount_micros + excluded.amount_micros;
END;

CREATE TRIGGER ledger_feeds_guild_totals AFTER INSERT ON ledger WHEN NEW.kind != 'grant'
BEGIN
    INSERT INTO spend_totals (guild_id, user_id, period, period_start, amount_micros)
    VALUES
        (NEW.guild_id, 0, 'day', CAST((CAST(NEW.counts_at AS INTEGER) / 86400) * 86400 AS REAL),
         NEW.amount_micros),
        (NEW.guild_id, 0, 'month',
         CAST(strftime('%s', CAST(NEW.counts_at AS INTEGER), 'unixepoch', 'start of month') AS REAL),
         NEW.amount_micros)
    ON CONFLICT (guild_id, user_id, period, period_start)
    DO UPDATE SET amount_micros = amount_micros + excluded.amount_micros;
END;

-- Totals for the ledger rows written before this migration.
INSERT INTO spend_totals (guild_id, user_id, period, period_start, amount_micros)
SELECT guild_id, user_id, 'day', CAST((CAST(counts_at AS INTEGER) / 86400) * 86400 AS REAL), SUM(amount_micros)
FROM ledger GROUP BY 1, 2, 4;
INSERT INTO spend_totals (guild_id, user_id, period, period_start, amount_micros)
SELECT guild_id, user_id, 'month',
       CAST(strftime('%s', CAST(counts_at AS INTEGER), 'unixepoch', 'start of month') AS REAL), SUM(amount_micros)
FROM ledger GROUP BY 1, 2, 4;
INSERT INTO spend_totals (guild_id, user_id, period, period_start, amount_micros)
SELECT guild_id, 0, 'day', CAST((CAST(counts_at AS INTEGER) / 86400) * 86400 AS REAL), SUM(amount_micros)
FROM ledger WHERE kind != 'grant' GROUP BY 1, 4;
INSERT INTO spend_totals (guild_id, user_id, period, period_start, amount_micros)
SELECT guild_id, 0, 'month',
       CAST(strftime('%s', CAST(counts_at AS INTEGER), 'unixepoch', 'start of month') AS REAL), SUM(amount_micros)
FROM ledger WHERE kind != 'grant' GROUP BY 1, 4;

-- A member's latest job, for the cooldown between jobs.
CREATE INDEX jobs_member_created ON jobs (guild_id, user_id, created_at);

-- Who changed what, and when (admin commands). `detail` is JSON.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id    INTEGER NOT NULL,
    actor_id    INTEGER NOT NULL,
    action      TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    created_at  REAL    NOT NULL
);
CREATE INDEX audit_log_guild_time ON audit_log (guild_id, created_at);
