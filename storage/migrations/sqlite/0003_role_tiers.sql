-- Role tiers: a role's own limits for its members. NULL: the guild's value; -1: unlimited.
CREATE TABLE role_tiers (
    guild_id         INTEGER NOT NULL,
    role_id          INTEGER NOT NULL,
    daily_micros     INTEGER,
    monthly_micros   INTEGER,
    max_active_jobs  INTEGER,
    cooldown_s       REAL,
    updated_at       REAL    NOT NULL,
    updated_by       INTEGER NOT NULL,
    PRIMARY KEY (guild_id, role_id)
) WITHOUT ROWID;
