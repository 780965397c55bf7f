-- Spend limits read the running totals (0002), so the per-member window index only slowed every ledger
-- insert. Reports and exports select a guild's rows by the period they count in.
DROP INDEX ledger_member_window;
CREATE INDEX ledger_guild_period ON ledger (guild_id, counts_at);
