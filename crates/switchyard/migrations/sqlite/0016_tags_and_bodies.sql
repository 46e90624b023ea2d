-- A tag costs each record that carries it one entry per B-tree of
-- request_tags: there were four (the rowid table, its primary key's index,
-- request_tags_lookup, request_tags_time), keyed by strings. Now two:
--  * the table is its primary key (WITHOUT ROWID: a tag's rows are small);
--  * request_tags_time goes: it served only retention's `time_ms < ?`,
--    and that as a scan of the whole index on every round. A request's
--    tags now go with its row (the trigger below), found by the key.
CREATE TABLE request_tags_keyed (
    request_id TEXT NOT NULL,
    tag        TEXT NOT NULL,
    value      TEXT NOT NULL,
    time_ms    INTEGER NOT NULL,
    PRIMARY KEY (request_id, tag)
) WITHOUT ROWID;
-- Only tags whose record is still there: retention deleted tags and
-- records in batches of its own, so a backlog could leave tags behind
-- whose records were gone, and nothing would delete them now.
INSERT INTO request_tags_keyed (request_id, tag, value, time_ms)
SELECT request_id, tag, value, time_ms FROM request_tags
WHERE request_id IN (SELECT id FROM requests);
DROP TABLE request_tags;
ALTER TABLE request_tags_keyed RENAME TO request_tags;
CREATE INDEX request_tags_lookup ON request_tags (tag, value, time_ms, request_id);
CREATE TRIGGER request_tags_follow AFTER DELETE ON requests
BEGIN
    DELETE FROM request_tags WHERE request_id = old.id;
END;

-- Bodies past logs.body_retain_days are cleared a batch at a time. Found
-- by time alone, every round walked every record older than the cutoff,
-- cleared or not; indexed only while a body is there, a round reads what
-- it clears.
CREATE INDEX requests_bodies ON requests (time_ms)
    WHERE request_body IS NOT NULL OR response_body IS NOT NULL;
