-- Calls in flight at once per key (issue 18); NULL: no bound of its own.
ALTER TABLE keys ADD COLUMN max_concurrent BIGINT;
