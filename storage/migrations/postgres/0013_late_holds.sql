-- A job watched for a late result keeps its estimate held in the server's month and the operator's day.
CREATE INDEX jobs_watched_by_guild ON jobs (guild_id, created_at) WHERE late_until IS NOT NULL;
CREATE INDEX jobs_watched_by_time ON jobs (created_at) WHERE late_until IS NOT NULL;
