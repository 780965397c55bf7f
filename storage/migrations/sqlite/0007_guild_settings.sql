-- Moderation settings per guild (NULL: the default), and what each job's audit trail needs.
CREATE TABLE guild_settings (
    guild_id            INTEGER PRIMARY KEY,
    safety_mode         TEXT CHECK (safety_mode IN ('none', 'fast', 'full')),
    mod_log_channel_id  INTEGER,
    updated_at          REAL    NOT NULL,
    updated_by          INTEGER NOT NULL
);

-- Channels where /animate may be used; a guild with no rows allows every channel.
CREATE TABLE allowed_channels (
    guild_id    INTEGER NOT NULL,
    channel_id  INTEGER NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
) WITHOUT ROWID;

-- Per job: the safety mode it ran with, and SHA-256 of its inputs (never the media itself).
ALTER TABLE jobs ADD COLUMN safety_mode TEXT;
ALTER TABLE jobs ADD COLUMN image_sha256 TEXT;
ALTER TABLE jobs ADD COLUMN audio_sha256 TEXT;
ALTER TABLE quotes ADD COLUMN safety_mode TEXT;
ALTER TABLE quotes ADD COLUMN image_sha256 TEXT;
ALTER TABLE quotes ADD COLUMN audio_sha256 TEXT;
