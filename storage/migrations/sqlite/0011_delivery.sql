-- Where a job's result was about to be posted (a channel, the command's reply in a channel, a DM), written
-- before the post: a delivery that starts again (after a crash, or a lost answer) looks for the post there
-- before posting, as Discord forgets a message nonce after a few minutes.
CREATE TABLE post_attempts (
    job_id      INTEGER NOT NULL REFERENCES jobs(id),
    channel_id  INTEGER NOT NULL,
    started_at  REAL    NOT NULL,
    PRIMARY KEY (job_id, channel_id)
) WITHOUT ROWID;

-- A budget alert is claimed, then posted; a claim whose post failed is posted again (claimed_at is the
-- latest try; posted_at is also set when it is dropped as stale). The spend it announces is kept for that.
-- Alerts from before this count as posted.
ALTER TABLE budget_alerts ADD COLUMN spent_micros INTEGER;
ALTER TABLE budget_alerts ADD COLUMN posted_at REAL;
UPDATE budget_alerts SET posted_at = claimed_at;
CREATE INDEX budget_alerts_unposted ON budget_alerts (month_start) WHERE posted_at IS NULL;
