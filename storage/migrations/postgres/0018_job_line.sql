-- The acknowledgement's place in line (issue 13): the jobs Runware has not accepted yet, by number. Only
-- waiting jobs are in this index, so counting the line reads a few entries however many jobs there are.
CREATE INDEX jobs_waiting ON jobs (id) WHERE status IN ('uploading', 'queued', 'submitting');
