-- Budget alerts already posted: one row per guild, month and threshold (50, 80, 100 percent).
CREATE TABLE budget_alerts (
    guild_id      INTEGER NOT NULL,
    month_start   REAL    NOT NULL,
    threshold     INTEGER NOT NULL,
    claimed_at    REAL    NOT NULL,
    PRIMARY KEY (guild_id, month_start, threshold)
) WITHOUT ROWID;
