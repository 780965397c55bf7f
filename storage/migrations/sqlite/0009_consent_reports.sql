-- Consent, reports and the rest of each job's moderation trail.

-- More moderation choices per guild (NULL: the default).
ALTER TABLE guild_settings ADD COLUMN consent_required INTEGER;   -- default: yes
ALTER TABLE guild_settings ADD COLUMN dms_allowed INTEGER;        -- default: no
ALTER TABLE guild_settings ADD COLUMN withhold_flagged INTEGER;   -- default: no (spoiler in age-restricted)

-- A member's acceptance of the consent statement in a guild: the latest version they accepted, and when.
CREATE TABLE consents (
    guild_id     INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    accepted_at  REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
) WITHOUT ROWID;

-- An /animate waiting for its member to accept the statement: who, where and the options. The files
-- themselves wait in the asking process's memory only (never in the database, and Discord's signed links
-- are never stored); nothing is sent to the video service or charged before Accept.
CREATE TABLE consent_requests (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id            INTEGER NOT NULL,
    channel_id          INTEGER NOT NULL,
    user_id             INTEGER NOT NULL,
    role_ids            TEXT    NOT NULL,  -- JSON array
    output_format       TEXT    NOT NULL,
    output_quality      INTEGER NOT NULL,
    upload_limit_bytes  INTEGER,
    channel_nsfw        INTEGER NOT NULL DEFAULT 0,
    version             INTEGER NOT NULL,
    created_at          REAL    NOT NULL,
    expires_at          REAL    NOT NULL,
    state               TEXT    NOT NULL DEFAULT 'open'
                            CHECK (state IN ('open', 'accepted', 'declined', 'expired')),
    decided_at          REAL
);

-- Where a job's result was posted, so that moderators (and its member) can delete it later.
ALTER TABLE jobs ADD COLUMN result_channel_id INTEGER;
ALTER TABLE jobs ADD COLUMN result_message_id INTEGER;
ALTER TABLE jobs ADD COLUMN removed_at REAL;

-- Members' reports of a result: once per member per job. The moderation-log message carries the buttons.
CREATE TABLE reports (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          INTEGER NOT NULL REFERENCES jobs (id),
    guild_id        INTEGER NOT NULL,
    reporter_id     INTEGER NOT NULL,
    created_at      REAL    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'dismissed', 'deleted')),
    log_channel_id  INTEGER,
    log_message_id  INTEGER,
    decided_by      INTEGER,
    decided_at      REAL,
    UNIQUE (job_id, reporter_id)
);
CREATE INDEX reports_time ON reports (created_at);

-- Moderation actions on a job (report, delete, ban, dismiss) go to the audit log with the job's number.
ALTER TABLE audit_log ADD COLUMN job_id INTEGER;
CREATE INDEX audit_log_job ON audit_log (job_id) WHERE job_id IS NOT NULL;
-- Retention pruning walks these by age.
CREATE INDEX audit_log_time ON audit_log (created_at);
CREATE INDEX jobs_with_hashes ON jobs (created_at) WHERE image_sha256 IS NOT NULL;
