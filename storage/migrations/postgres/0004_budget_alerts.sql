-- Budget alerts already posted: one row per guild, month, budget amount and threshold (50, 80, 100 %).
CREATE TABLE budget_alerts (
    guild_id       BIGINT  NOT NULL,
    month_start    DOUBLE PRECISION NOT NULL,
    budget_micros  BIGINT  NOT NULL,
    threshold      INTEGER NOT NULL,
    claimed_at     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (guild_id, month_start, budget_micros, threshold)
);
