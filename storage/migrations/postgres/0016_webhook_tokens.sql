-- The PostgreSQL twin of sqlite/0016.
-- Runware's webhook (issue 12). Each submit carries a URL with a token of its own; only the token's SHA-256
-- is kept, one row per token (a job resubmitted by another process after a restart gets a second token,
-- and the first stays valid: Runware keeps the first submit's URL for that taskUUID).
CREATE TABLE webhook_tokens (
    job_id      BIGINT NOT NULL REFERENCES jobs (id),
    token_hash  TEXT   NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job_id, token_hash)
);
-- A final result Runware POSTed, kept until the runner holding the job applies it (as it would a poll's
-- answer). One per job and per video: a repeat changes nothing.
CREATE TABLE webhook_results (
    job_id       BIGINT PRIMARY KEY REFERENCES jobs (id),
    task_uuid    TEXT   NOT NULL,
    video_uuid   TEXT,
    result       TEXT   NOT NULL,
    received_at  DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX webhook_results_video ON webhook_results (video_uuid) WHERE video_uuid IS NOT NULL;
