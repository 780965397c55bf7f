-- The operator's ceiling: what all guilds together spend per UTC day (OPERATOR_DAILY_USD).

-- A running total per UTC day over every guild, fed by the trigger below in the same transaction, so the
-- reservation reads one row however many guilds and ledger rows there are. Like a guild's total it leaves
-- out grants: it is what Runware bills, and a credit to a member makes that bill no smaller.
-- (Its own table rather than spend_totals rows with made-up ids: no id can ever collide with a guild's.)
CREATE TABLE operator_totals (
    day_start      REAL    PRIMARY KEY,
    amount_micros  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER ledger_feeds_operator_totals AFTER INSERT ON ledger WHEN NEW.kind != 'grant'
BEGIN
    INSERT INTO operator_totals (day_start, amount_micros)
    VALUES (CAST((CAST(NEW.counts_at AS INTEGER) / 86400) * 86400 AS REAL), NEW.amount_micros)
    ON CONFLICT (day_start) DO UPDATE SET amount_micros = amount_micros + excluded.amount_micros;
END;

-- Totals for the ledger rows written before this migration.
INSERT INTO operator_totals (day_start, amount_micros)
SELECT CAST((CAST(counts_at AS INTEGER) / 86400) * 86400 AS REAL), SUM(amount_micros)
FROM ledger WHERE kind != 'grant' GROUP BY 1;
