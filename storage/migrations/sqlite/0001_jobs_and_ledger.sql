-- Jobs and the append-only ledger. Money is integer micro-dollars, times are UTC epoch seconds.

CREATE TABLE jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    task_uuid           TEXT    NOT NULL UNIQUE,
    guild_id            INTEGER NOT NULL,
    channel_id          INTEGER NOT NULL,
    user_id             INTEGER NOT NULL,
    status              TEXT    NOT NULL CHECK (status IN
                            ('uploading', 'queued', 'submitting', 'processing', 'succeeded', 'failed', 'expired')),
    audio_seconds       REAL    NOT NULL,
    estimate_micros     INTEGER NOT NULL CHECK (estimate_micros >= 0),
    cost_micros         INTEGER,
    output_format       TEXT    NOT NULL,
    output_quality      INTEGER NOT NULL,
    image_ref           TEXT,
    audio_ref           TEXT,
    created_at          REAL    NOT NULL,
    updated_at          REAL    NOT NULL,
    submitted_at        REAL,
    next_poll_at        REAL,
    poll_count          INTEGER NOT NULL DEFAULT 0,
    finished_at         REAL,
    delivered_at        REAL,
    result_url          TEXT,
    nsfw                INTEGER NOT NULL DEFAULT 0,
    error_code          TEXT,
    error_message       TEXT,
    upload_limit_bytes  INTEGER,
    channel_nsfw        INTEGER NOT NULL DEFAULT 0
);

-- The runner's scan: only unfinished jobs, ordered by when they are due.
CREATE INDEX jobs_due ON jobs (next_poll_at)
    WHERE status IN ('uploading', 'queued', 'submitting', 'processing');
-- Finished jobs whose result has not been posted yet (redelivered after a restart).
CREATE INDEX jobs_undelivered ON jobs (finished_at)
    WHERE delivered_at IS NULL AND status IN ('succeeded', 'failed', 'expired');
-- Jobs still uploading: their inputs live only in the process that accepted them.
CREATE INDEX jobs_uploading ON jobs (created_at) WHERE status = 'uploading';
-- A member's active jobs, counted by the quota check.
CREATE INDEX jobs_member_status ON jobs (guild_id, user_id, status);

CREATE TABLE ledger (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id       INTEGER NOT NULL,
    user_id        INTEGER NOT NULL,
    job_id         INTEGER REFERENCES jobs (id),
    kind           TEXT    NOT NULL CHECK (kind IN ('reserve', 'release', 'settle', 'refund', 'grant')),
    -- Signed contribution to spend: reserve +estimate, release -estimate, settle +cost, refund -estimate,
    -- grant -credit or +debit (e.g. the cost of a video that could not be shown to the member).
    amount_micros  INTEGER NOT NULL,
    -- When the amount counts towards spend windows: a job's rows all count at its reservation time,
    -- so a job reserved before midnight and settled after it stays in one day.
    counts_at      REAL    NOT NULL,
    created_at     REAL    NOT NULL,
    reason         TEXT
);

-- Spend in a window is a sum over this index alone (covering: amount is in the key).
CREATE INDEX ledger_member_window ON ledger (guild_id, user_id, counts_at, amount_micros);
-- At most one reservation and one final row (settle or refund) per job: a retried step cannot charge twice.
CREATE UNIQUE INDEX ledger_one_reserve ON ledger (job_id) WHERE kind = 'reserve';
CREATE UNIQUE INDEX ledger_one_final ON ledger (job_id) WHERE kind IN ('settle', 'refund');
-- At most one credit tied to a job (a job's cost is given back once, whatever retries happen).
CREATE UNIQUE INDEX ledger_one_job_grant ON ledger (job_id) WHERE kind = 'grant' AND job_id IS NOT NULL;

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

-- Small facts the bot keeps about itself (e.g. a hash of the last synced slash commands).
CREATE TABLE app_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
