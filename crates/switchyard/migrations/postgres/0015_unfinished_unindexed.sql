-- A request's row is written when it begins and finished by an UPDATE when
-- it ends. Until then it has no provider, model or status: indexing those
-- NULLs cost every such record three index entries at its begin. Indexed
-- only where present, as errors, routes and keys already are; a filter on
-- any of them names a value, which implies `IS NOT NULL`. On the
-- partitioned table, each index is dropped and built again on every
-- partition.
DROP INDEX requests_provider_time;
CREATE INDEX requests_provider_time ON requests (provider, time_ms) WHERE provider IS NOT NULL;
DROP INDEX requests_model_time;
CREATE INDEX requests_model_time ON requests (model, time_ms) WHERE model IS NOT NULL;
DROP INDEX requests_status_time;
CREATE INDEX requests_status_time ON requests (status, time_ms) WHERE status IS NOT NULL;
