-- Moderation settings per guild (NULL: the default), and what each job's audit trail needs.
CREATE TABLE guild_settings (
    guild_id            BIGINT  PRIMARY KEY,
    safety_mode         TEXT CHECK (safety_mode IN ('none', 'fast', 'full')),
    mod_log_channel_id  BIGINT,
    updated_at          DOUBLE PRECISION NOT NULL,
    updated_by          BIGINT  NOT NULL
);

-- Channels where /animate may be used; a guild with no rows allows every channel.
CREATE TABLE allowed_channels (
    guild_id    BIGINT NOT NULL,
    channel_id  BIGINT NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);

-- Per job: the safety mode it ran with, and SHA-256 of its inputs (never the media itself).
ALTER TABLE jobs ADD COLUMN safety_mode TEXT;
ALTER TABLE jobs ADD COLUMN image_sha256 TEXT;
ALTER TABLE jobs ADD COLUMN audio_sha256 TEXT;
ALTER TABLE quotes ADD COLUMN safety_mode TEXT;
ALTER TABLE quotes ADD COLUMN image_sha256 TEXT;
ALTER TABLE quotes ADD COLUMN audio_sha256 TEXT;
