-- Retention found old tags by `time_ms < ?` on an index that leads with
-- the tag: no use, so every round read the whole table. Indexed by time.
DROP INDEX request_tags_time;
CREATE INDEX request_tags_time ON request_tags (time_ms);

-- Bodies past logs.body_retain_days are cleared a batch at a time. Found
-- by time alone, every round walked every record older than the cutoff,
-- cleared or not; indexed only while a body is there, a round reads what
-- it clears.
CREATE INDEX requests_bodies ON requests (time_ms)
    WHERE request_body IS NOT NULL OR response_body IS NOT NULL;
