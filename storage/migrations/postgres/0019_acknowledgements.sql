-- The PostgreSQL twin of sqlite/0019.
-- The member's private acknowledgement of a job, kept so that a process started after a restart can still
-- edit it (issue 13 item 5: never a stale "being made"). The interaction token is a credential that lives
-- 15 minutes: a row goes as soon as the outcome is shown or the token expired (the refresh pass prunes),
-- and migrate-db never copies this table.
CREATE TABLE acknowledgements (
    job_id          BIGINT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    guild_id        BIGINT NOT NULL,
    application_id  BIGINT NOT NULL,
    token           TEXT   NOT NULL,
    locale          TEXT   NOT NULL,
    head            TEXT   NOT NULL,
    shown           TEXT   NOT NULL,
    expires_at      DOUBLE PRECISION NOT NULL
);
CREATE INDEX acknowledgements_expiry ON acknowledgements (expires_at);
