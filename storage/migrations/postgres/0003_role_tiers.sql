-- Role tiers: a role's own limits for its members. NULL: the guild's value; -1: unlimited.
CREATE TABLE role_tiers (
    guild_id         BIGINT  NOT NULL,
    role_id          BIGINT  NOT NULL,
    daily_micros     BIGINT,
    monthly_micros   BIGINT,
    max_active_jobs  INTEGER,
    cooldown_s       DOUBLE PRECISION,
    updated_at       DOUBLE PRECISION NOT NULL,
    updated_by       BIGINT  NOT NULL,
    PRIMARY KEY (guild_id, role_id)
);
