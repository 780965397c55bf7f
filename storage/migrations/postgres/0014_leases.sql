-- The PostgreSQL twin of sqlite/0014 (claims there take FOR UPDATE SKIP LOCKED).
-- Several processes share the jobs (issue 11): a job is advanced by the process holding its lease (owner,
-- expiry); a dead process's leases run out and another process claims its jobs. An uploading job's lease
-- belongs to the process whose command is uploading it. A finished job's result is offered for posting by
-- the process holding its delivery lease, so two processes do not post the same result at once.
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_at DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN delivery_owner TEXT;
ALTER TABLE jobs ADD COLUMN delivery_expires_at DOUBLE PRECISION;
-- The claim: jobs the runner may advance (unfinished ones, and expired ones still watched), by when due.
CREATE INDEX jobs_claimable ON jobs (next_poll_at, lease_expires_at)
    WHERE status IN ('queued', 'submitting', 'processing') OR late_until IS NOT NULL;
-- A process renews the leases it holds (released at a terminal step, so this index stays small).
CREATE INDEX jobs_leased ON jobs (lease_owner) WHERE lease_owner IS NOT NULL;
