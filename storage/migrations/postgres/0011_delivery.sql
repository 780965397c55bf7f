-- Where a job's result was about to be posted, written before the post (see sqlite/0011).
CREATE TABLE post_attempts (
    job_id      BIGINT NOT NULL REFERENCES jobs (id),
    channel_id  BIGINT NOT NULL,
    started_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job_id, channel_id)
);

-- A budget alert is claimed, then posted; a claim whose post failed is posted again.
ALTER TABLE budget_alerts ADD COLUMN spent_micros BIGINT;
ALTER TABLE budget_alerts ADD COLUMN posted_at DOUBLE PRECISION;
UPDATE budget_alerts SET posted_at = claimed_at;
CREATE INDEX budget_alerts_unposted ON budget_alerts (month_start) WHERE posted_at IS NULL;
