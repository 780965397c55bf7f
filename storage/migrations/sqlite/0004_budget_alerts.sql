-- Budget alerts already posted: one row per guild, month, budget amount and threshold (50, 80, 100 %).
-- The budget is part of the key: after an admin raises it, the new thresholds are announced again.
CREATE TABLE budget_alerts (
    guild_id       INTEGER NOT NULL,
    month_start    REAL    NOT NULL,
    budget_micros  INTEGER NOT NULL,
    threshold      INTEGER NOT NULL,
    claimed_at     REAL    NOT NULL,
    PRIMARY KEY (guild_id, month_start, budget_micros, threshold)
) WITHOUT ROWID;
