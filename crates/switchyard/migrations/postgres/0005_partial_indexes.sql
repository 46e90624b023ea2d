-- Cheaper index upkeep for every record written.
--
-- Ascending time: a new record's entries go at the right edge of each
-- index, where B-trees append without splitting half-full pages (a
-- descending index takes every new entry at its left edge). Newest-first
-- queries read the same indexes backwards.
--
-- Partial: errors, routes and keys are indexed only where present, and
-- unfinished requests (what settling after a crash looks for) only while
-- they are unfinished. A filter on one of these columns implies
-- `IS NOT NULL` (or the state), so queries still use them.
DROP INDEX requests_time;
CREATE INDEX requests_time ON requests (time_ms, id);
DROP INDEX requests_key_time;
CREATE INDEX requests_key_time ON requests (key_id, time_ms) WHERE key_id IS NOT NULL;
DROP INDEX requests_provider_time;
CREATE INDEX requests_provider_time ON requests (provider, time_ms);
DROP INDEX requests_model_time;
CREATE INDEX requests_model_time ON requests (model, time_ms);
DROP INDEX requests_route_time;
CREATE INDEX requests_route_time ON requests (route, time_ms) WHERE route IS NOT NULL;
DROP INDEX requests_status_time;
CREATE INDEX requests_status_time ON requests (status, time_ms);
DROP INDEX requests_error_time;
CREATE INDEX requests_error_time ON requests (error_class, time_ms) WHERE error_class IS NOT NULL;
DROP INDEX requests_state;
CREATE INDEX requests_begun ON requests (instance) WHERE state = 'begun';
DROP INDEX request_tags_lookup;
CREATE INDEX request_tags_lookup ON request_tags (tag, value, time_ms);
