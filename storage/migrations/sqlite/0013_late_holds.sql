-- A job watched for a late result (0010) was refunded at its deadline, but Runware still renders and will
-- bill it: until the watch ends, its estimate keeps its place in the server's month and the operator's day
-- (usage reads these sums), so new jobs cannot spend what the late result will cost.
CREATE INDEX jobs_watched_by_guild ON jobs (guild_id, created_at) WHERE late_until IS NOT NULL;
CREATE INDEX jobs_watched_by_time ON jobs (created_at) WHERE late_until IS NOT NULL;
