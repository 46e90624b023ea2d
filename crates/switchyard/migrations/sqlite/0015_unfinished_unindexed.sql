-- A request's row is written when it begins and finished by an UPDATE when
-- it ends (a call outlasts the writer's round). Until then it has no
-- provider, model or status: indexing those NULLs cost every such record
-- three index entries written at its begin and removed again at its end.
-- Indexed only where present, as errors, routes and keys already are
-- (0005); a filter on any of them names a value, which implies
-- `IS NOT NULL`, so queries use them as before.
DROP INDEX requests_provider_time;
CREATE INDEX requests_provider_time ON requests (provider, time_ms) WHERE provider IS NOT NULL;
DROP INDEX requests_model_time;
CREATE INDEX requests_model_time ON requests (model, time_ms) WHERE model IS NOT NULL;
DROP INDEX requests_status_time;
CREATE INDEX requests_status_time ON requests (status, time_ms) WHERE status IS NOT NULL;
