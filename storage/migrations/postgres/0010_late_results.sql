-- Late results: a job expired at JOB_DEADLINE_S that Runware still has keeps being polled.
ALTER TABLE jobs ADD COLUMN late_until DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN late_delivered_at DOUBLE PRECISION;

CREATE INDEX jobs_late_due ON jobs (next_poll_at) WHERE late_until IS NOT NULL;
CREATE INDEX jobs_late_undelivered ON jobs (finished_at)
    WHERE status = 'expired' AND result_url IS NOT NULL AND late_delivered_at IS NULL;

-- One settle and one refund per job (each at most once), instead of one of the two.
DROP INDEX ledger_one_final;
CREATE UNIQUE INDEX ledger_one_settle ON ledger (job_id) WHERE kind = 'settle';
CREATE UNIQUE INDEX ledger_one_refund ON ledger (job_id) WHERE kind = 'refund';
