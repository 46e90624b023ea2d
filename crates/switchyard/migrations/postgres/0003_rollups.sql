-- Usage sums of finished requests per hour and per day (span_ms), kept by
-- the log writer in the same transaction that finishes each request (once:
-- only the step out of `begun`, or out of `interrupted` when a late end
-- replaces the estimate, changes them). Usage queries over long ranges read
-- these instead of every record. No NULLs: an absent key, route, provider or
-- model is '', an absent status 0.
CREATE TABLE usage_sums (
    span_ms       BIGINT NOT NULL,
    start_ms      BIGINT NOT NULL,
    provider      TEXT NOT NULL,
    model         TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    route         TEXT NOT NULL,
    status        BIGINT NOT NULL,
    requests      BIGINT NOT NULL,
    errors        BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    saved_usd     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (span_ms, start_ms, provider, model, key_id, route, status)
);

-- The same per tag value (one row per tag of each request).
CREATE TABLE usage_sums_tags (
    tag           TEXT NOT NULL,
    value         TEXT NOT NULL,
    span_ms       BIGINT NOT NULL,
    start_ms      BIGINT NOT NULL,
    provider      TEXT NOT NULL,
    model         TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    route         TEXT NOT NULL,
    status        BIGINT NOT NULL,
    requests      BIGINT NOT NULL,
    errors        BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    saved_usd     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tag, span_ms, start_ms, value, provider, model, key_id, route, status)
);
-- For retention.
CREATE INDEX usage_sums_tags_age ON usage_sums_tags (span_ms, start_ms);

-- Records written before this migration.
INSERT INTO usage_sums
SELECT 3600000, (time_ms / 3600000) * 3600000, COALESCE(provider, ''), COALESCE(model, ''),
       COALESCE(key_id, ''), COALESCE(route, ''), COALESCE(status, 0), COUNT(*),
       SUM(CASE WHEN status >= 400 OR state = 'interrupted' THEN 1 ELSE 0 END),
       COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cached_tokens), 0),
       COALESCE(SUM(cost_usd), 0), COALESCE(SUM(saved_usd), 0)
FROM requests WHERE state IN ('complete', 'interrupted')
GROUP BY 1, 2, 3, 4, 5, 6, 7;

INSERT INTO usage_sums_tags
SELECT t.tag, t.value, 3600000, (r.time_ms / 3600000) * 3600000, COALESCE(r.provider, ''), COALESCE(r.model, ''),
       COALESCE(r.key_id, ''), COALESCE(r.route, ''), COALESCE(r.status, 0), COUNT(*),
       SUM(CASE WHEN r.status >= 400 OR r.state = 'interrupted' THEN 1 ELSE 0 END),
       COALESCE(SUM(r.input_tokens), 0), COALESCE(SUM(r.output_tokens), 0), COALESCE(SUM(r.cached_tokens), 0),
       COALESCE(SUM(r.cost_usd), 0), COALESCE(SUM(r.saved_usd), 0)
FROM requests r JOIN request_tags t ON t.request_id = r.id
WHERE r.state IN ('complete', 'interrupted')
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
INSERT INTO usage_sums
SELECT 86400000, (time_ms / 86400000) * 86400000, COALESCE(provider, ''), COALESCE(model, ''),
       COALESCE(key_id, ''), COALESCE(route, ''), COALESCE(status, 0), COUNT(*),
       SUM(CASE WHEN status >= 400 OR state = 'interrupted' THEN 1 ELSE 0 END),
       COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cached_tokens), 0),
       COALESCE(SUM(cost_usd), 0), COALESCE(SUM(saved_usd), 0)
FROM requests WHERE state IN ('complete', 'interrupted')
GROUP BY 1, 2, 3, 4, 5, 6, 7;

INSERT INTO usage_sums_tags
SELECT t.tag, t.value, 86400000, (r.time_ms / 86400000) * 86400000, COALESCE(r.provider, ''), COALESCE(r.model, ''),
       COALESCE(r.key_id, ''), COALESCE(r.route, ''), COALESCE(r.status, 0), COUNT(*),
       SUM(CASE WHEN r.status >= 400 OR r.state = 'interrupted' THEN 1 ELSE 0 END),
       COALESCE(SUM(r.input_tokens), 0), COALESCE(SUM(r.output_tokens), 0), COALESCE(SUM(r.cached_tokens), 0),
       COALESCE(SUM(r.cost_usd), 0), COALESCE(SUM(r.saved_usd), 0)
FROM requests r JOIN request_tags t ON t.request_id = r.id
WHERE r.state IN ('complete', 'interrupted')
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
