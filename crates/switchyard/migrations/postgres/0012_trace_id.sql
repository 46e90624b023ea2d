-- The W3C trace each call belongs to (issue 15), beside its request id.
ALTER TABLE requests ADD COLUMN trace_id TEXT;
