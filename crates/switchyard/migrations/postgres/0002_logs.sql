-- One row per request: written at admission (begin) and completed at the
-- end; both writes are idempotent, keyed by the request id.
CREATE TABLE requests (
    id               TEXT PRIMARY KEY,
    time_ms          BIGINT NOT NULL,
    instance         TEXT NOT NULL,
    state            TEXT NOT NULL,            -- begun | complete | interrupted
    key_id           TEXT,
    route            TEXT,
    requested_model  TEXT NOT NULL,
    dialect          TEXT NOT NULL,
    stream           BOOLEAN NOT NULL,
    log_mode         TEXT NOT NULL,
    est_input_tokens BIGINT NOT NULL DEFAULT 0,
    provider         TEXT,
    model            TEXT,
    status           BIGINT,
    error_class      TEXT,
    latency_ms       DOUBLE PRECISION,
    ttft_ms          DOUBLE PRECISION,
    input_tokens     BIGINT,
    output_tokens    BIGINT,
    cached_tokens    BIGINT,
    reasoning_tokens BIGINT,
    usage_source     TEXT,                     -- reported | estimated
    cost_usd         DOUBLE PRECISION,
    saved_usd        DOUBLE PRECISION,
    price_version    TEXT,
    cache            TEXT,
    metadata         TEXT NOT NULL DEFAULT '{}',
    attempts         TEXT NOT NULL DEFAULT '[]',
    excluded         TEXT NOT NULL DEFAULT '[]',
    request_body     TEXT,
    response_body    TEXT
);
CREATE INDEX requests_time ON requests (time_ms DESC, id DESC);
CREATE INDEX requests_key_time ON requests (key_id, time_ms DESC);
CREATE INDEX requests_provider_time ON requests (provider, time_ms DESC);
CREATE INDEX requests_model_time ON requests (model, time_ms DESC);
CREATE INDEX requests_route_time ON requests (route, time_ms DESC);
CREATE INDEX requests_status_time ON requests (status, time_ms DESC);
CREATE INDEX requests_error_time ON requests (error_class, time_ms DESC);
CREATE INDEX requests_state ON requests (state, instance);

-- Metadata tags, one row each, for filtering and grouping by any tag.
CREATE TABLE request_tags (
    request_id TEXT NOT NULL,
    tag        TEXT NOT NULL,
    value      TEXT NOT NULL,
    time_ms    BIGINT NOT NULL,
    PRIMARY KEY (request_id, tag)
);
CREATE INDEX request_tags_lookup ON request_tags (tag, value, time_ms DESC);
CREATE INDEX request_tags_time ON request_tags (tag, time_ms);

-- Gateway processes, the spool each wrote to, and when each was last alive:
-- a `begun` request whose process stopped beating, or whose spool another
-- process took over, is settled as interrupted.
CREATE TABLE instances (
    id         TEXT PRIMARY KEY,
    spool      TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    beat_ms    BIGINT NOT NULL
);
