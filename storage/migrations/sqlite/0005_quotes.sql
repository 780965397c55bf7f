-- Cost quotes: a job above the guild's confirmation threshold waits here, inputs already uploaded, until
-- its member confirms (then it becomes a job with its reservation) or cancels, or it expires.
CREATE TABLE quotes (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id            INTEGER NOT NULL,
    channel_id          INTEGER NOT NULL,
    user_id             INTEGER NOT NULL,
    role_ids            TEXT    NOT NULL,  -- JSON array: the member's roles when they asked
    image_ref           TEXT    NOT NULL,
    audio_ref           TEXT    NOT NULL,
    audio_seconds       REAL    NOT NULL,
    estimate_micros     INTEGER NOT NULL,
    output_format       TEXT    NOT NULL,
    output_quality      INTEGER NOT NULL,
    upload_limit_bytes  INTEGER,
    channel_nsfw        INTEGER NOT NULL DEFAULT 0,
    created_at          REAL    NOT NULL,
    expires_at          REAL    NOT NULL,
    state               TEXT    NOT NULL DEFAULT 'open'
                            CHECK (state IN ('open', 'confirmed', 'cancelled', 'expired')),
    job_id              INTEGER REFERENCES jobs (id),
    decided_at          REAL
);

-- A guild's own confirmation threshold (NULL: the CONFIRM_ABOVE_USD setting; -1: never ask).
ALTER TABLE guild_limits ADD COLUMN confirm_above_micros INTEGER;
