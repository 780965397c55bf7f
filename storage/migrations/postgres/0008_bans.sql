-- Members banned from the bot: per guild, or everywhere (guild_id 0, set by a bot owner).
CREATE TABLE bans (
    guild_id    BIGINT  NOT NULL,
    user_id     BIGINT  NOT NULL,
    reason      TEXT    NOT NULL,
    banned_by   BIGINT  NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

-- "Was this face used here?": jobs by the hash of their image.
CREATE INDEX jobs_image_hash ON jobs (guild_id, image_sha256);
