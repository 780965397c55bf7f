-- Late results: a job expired at JOB_DEADLINE_S that Runware still has keeps being polled, because Runware
-- still renders (and bills) it. Its video, if one arrives, is posted as a late result.

-- Until when an expired job is still asked about (its output's time to live); NULL: not watched.
ALTER TABLE jobs ADD COLUMN late_until REAL;
-- When the late video was posted (the expiry notice itself is `delivered_at`).
ALTER TABLE jobs ADD COLUMN late_delivered_at REAL;

-- The runner's scan of watched jobs, by when they are due.
CREATE INDEX jobs_late_due ON jobs (next_poll_at) WHERE late_until IS NOT NULL;
-- Late videos not yet posted.
CREATE INDEX jobs_late_undelivered ON jobs (finished_at)
    WHERE status = 'expired' AND result_url IS NOT NULL AND late_delivered_at IS NULL;

-- A late video is refunded at the deadline and settled when it arrives: one settle and one refund per job
-- (each at most once), instead of one of the two.
DROP INDEX ledger_one_final;
CREATE UNIQUE INDEX ledger_one_settle ON ledger (job_id) WHERE kind = 'settle';
CREATE UNIQUE INDEX ledger_one_refund ON ledger (job_id) WHERE kind = 'refund';
