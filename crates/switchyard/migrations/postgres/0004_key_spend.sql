-- Spend per key and UTC day, kept by the log writer in the transaction that
-- finishes each request (like the usage sums, once per request). A budget's
-- spend is the sum of its period's days. Never touched by retention: total
-- budgets need all of it. Holds for calls in flight live in the ledger
-- (memory, or Redis for several replicas), not here.
CREATE TABLE key_spend (
    key_id    TEXT NOT NULL,
    day_ms    BIGINT NOT NULL,
    spent_usd DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (key_id, day_ms)
);

-- What the per-period table of earlier versions had settled (every period
-- starts at a UTC midnight).
INSERT INTO key_spend (key_id, day_ms, spent_usd)
SELECT key_id, period_start, spent_usd FROM budget_spend WHERE spent_usd <> 0;

-- What a call held of its key's budget, on its record: a call whose
-- process died is settled at it.
ALTER TABLE requests ADD COLUMN hold_usd DOUBLE PRECISION;

DROP TABLE budget_reservations;
DROP TABLE budget_spend;
