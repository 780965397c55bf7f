-- /videos (issue 13): a member's jobs in a server, newest first, paged by job number (keyset pagination).
CREATE INDEX jobs_member_id ON jobs (guild_id, user_id, id);
