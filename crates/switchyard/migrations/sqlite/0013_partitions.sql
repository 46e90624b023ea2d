-- Postgres only (request records partitioned by day); SQLite serves one
-- process and deletes by rows.
SELECT 1;
