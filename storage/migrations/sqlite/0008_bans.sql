-- Members banned from the bot: per guild, or everywhere (guild_id 0, set by a bot owner).
CREATE TABLE bans (
    guild_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    banned_by   INTEGER NOT NULL,
    created_at  REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
) WITHOUT ROWID;

-- "Was this face used here?": jobs by the hash of their image.
CREATE INDEX jobs_image_hash ON jobs (guild_id, image_sha256);
