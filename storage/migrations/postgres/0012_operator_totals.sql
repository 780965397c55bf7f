-- The operator's ceiling: what all guilds together spend per UTC day (OPERATOR_DAILY_USD), without grants.
CREATE TABLE operator_totals (
    day_start      DOUBLE PRECISION PRIMARY KEY,
    amount_micros  BIGINT NOT NULL
);

CREATE FUNCTION ledger_feeds_operator_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO operator_totals AS t (day_start, amount_micros)
    VALUES (utc_day_start(NEW.counts_at), NEW.amount_micros)
    ON CONFLICT (day_start) DO UPDATE SET amount_micros = t.amount_micros + excluded.amount_micros;
    RETURN NULL;
END;
$$;

-- Fires after ledger_feeds_spend_totals (PostgreSQL fires a table's triggers by name): every ledger
-- insert locks the member's, the guild's, then the operator's totals rows, in that order.
CREATE TRIGGER ledger_feeds_zz_operator_totals AFTER INSERT ON ledger
    FOR EACH ROW WHEN (NEW.kind <> 'grant') EXECUTE FUNCTION ledger_feeds_operator_totals();

-- Totals for the ledger rows written before this migration.
INSERT INTO operator_totals (day_start, amount_micros)
SELECT utc_day_start(counts_at), SUM(amount_micros) FROM ledger WHERE kind <> 'grant' GROUP BY 1;
