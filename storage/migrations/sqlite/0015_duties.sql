-- Work that one process of several does for all (issue 11): syncing the slash commands, the daily pruning.
-- A process claims a duty until `until`; another may claim it only once that has passed.
CREATE TABLE duties (
    name   TEXT PRIMARY KEY,
    owner  TEXT NOT NULL,
    until  REAL NOT NULL
);
