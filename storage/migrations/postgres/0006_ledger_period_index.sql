-- Spend limits read the running totals (0002); reports and exports select a guild's rows by period.
DROP INDEX ledger_member_window;
CREATE INDEX ledger_guild_period ON ledger (guild_id, counts_at);
