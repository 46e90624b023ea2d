-- Usage sums by the whole set of a request's tags (a JSON object of its tag
-- values, keys sorted; '{}' for none), per hour and per day like usage_sums:
-- a usage query grouped by two or more tags reads these instead of every
-- record. One row per distinct set, so a tag that differs on every request
-- (a session id) makes this about one row per request and span.
CREATE TABLE usage_sums_sets (
    span_ms       BIGINT NOT NULL,
    start_ms      BIGINT NOT NULL,
    tags          TEXT NOT NULL,
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
    PRIMARY KEY (span_ms, start_ms, tags, provider, model, key_id, route, status)
);

-- Records written before this migration: each request's set once, then
-- summed per hour and per day.
CREATE TEMPORARY TABLE request_tag_sets AS
SELECT request_id,
       '{' || string_agg(to_json(tag)::text || ':' || to_json(value)::text, ',' ORDER BY tag COLLATE "C") || '}' AS tags
FROM request_tags GROUP BY request_id;
CREATE INDEX ON request_tag_sets (request_id);

INSERT INTO usage_sums_sets
SELECT s.span, (r.time_ms / s.span) * s.span, COALESCE(t.tags, '{}'), COALESCE(r.provider, ''), COALESCE(r.model, ''),
       COALESCE(r.key_id, ''), COALESCE(r.route, ''), COALESCE(r.status, 0), COUNT(*),
       SUM(CASE WHEN r.status >= 400 OR r.state = 'interrupted' THEN 1 ELSE 0 END),
       COALESCE(SUM(r.input_tokens), 0), COALESCE(SUM(r.output_tokens), 0), COALESCE(SUM(r.cached_tokens), 0),
       COALESCE(SUM(r.cost_usd), 0), COALESCE(SUM(r.saved_usd), 0)
FROM (VALUES (3600000::BIGINT), (86400000::BIGINT)) AS s(span)
CROSS JOIN requests r LEFT JOIN request_tag_sets t ON t.request_id = r.id
WHERE r.state IN ('complete', 'interrupted')
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
DROP TABLE request_tag_sets;

-- A tag's records newest first, in (time, id) order, straight from the
-- index: a log page filtered by a tag reads the page's rows and no more.
DROP INDEX request_tags_lookup;
CREATE INDEX request_tags_lookup ON request_tags (tag, value, time_ms, request_id);
