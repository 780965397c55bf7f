-- A task Runware was judged to have lost (getResponse kept answering "not found": a processing job failed
-- as lost, or an expired job whose late watch ended so) may still have been rendered, and billed: its
-- webhook's success, arriving before the output's time to live runs out, is posted late at the server's
-- cost as a late video is (0010). When the runner judged it lost; NULL: it did not.
ALTER TABLE jobs ADD COLUMN lost_at REAL;
-- Jobs failed as lost before this column: the runner gave them that code only.
UPDATE jobs SET lost_at = finished_at WHERE status = 'failed' AND error_code = 'taskFailedOrNotFound';
-- A late video waiting to be posted may now belong to a failed (lost) job as well as an expired one.
DROP INDEX jobs_late_undelivered;
CREATE INDEX jobs_late_undelivered ON jobs (finished_at)
    WHERE status IN ('expired', 'failed') AND result_url IS NOT NULL AND late_delivered_at IS NULL;
