-- Indexes most requests need no entry in, so that writing a record updates
-- fewer of them: errors, routes and keys are indexed only where present,
-- and unfinished requests (what settling after a crash looks for) only
-- while they are unfinished. A filter on one of these columns implies
-- `IS NOT NULL` (or the state), so queries still use them.
DROP INDEX requests_error_time;
CREATE INDEX requests_error_time ON requests (error_class, time_ms DESC) WHERE error_class IS NOT NULL;
DROP INDEX requests_route_time;
CREATE INDEX requests_route_time ON requests (route, time_ms DESC) WHERE route IS NOT NULL;
DROP INDEX requests_key_time;
CREATE INDEX requests_key_time ON requests (key_id, time_ms DESC) WHERE key_id IS NOT NULL;
DROP INDEX requests_state;
CREATE INDEX requests_begun ON requests (instance) WHERE state = 'begun';
