-- Switchyard keys: secrets are stored only as their SHA-256.
CREATE TABLE keys (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    hash            TEXT NOT NULL UNIQUE,
    last4           TEXT NOT NULL,
    models          TEXT NOT NULL DEFAULT '[]',
    rpm             BIGINT,
    tpm             BIGINT,
    budget_usd      DOUBLE PRECISION,
    budget_period   TEXT,
    metadata        TEXT NOT NULL DEFAULT '{}',
    log_mode        TEXT,
    jurisdictions   TEXT,
    cache_namespace TEXT,
    cache_ttl_s     BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX keys_updated_at ON keys (updated_at);

-- Spend per key and budget period, and the money held for calls in flight.
CREATE TABLE budget_spend (
    key_id       TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    spent_usd    DOUBLE PRECISION NOT NULL DEFAULT 0,
    reserved_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, period_start)
);

CREATE TABLE budget_reservations (
    id           TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    amount_usd   DOUBLE PRECISION NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX budget_reservations_key ON budget_reservations (key_id, expires_at);
