-- Request records partitioned by UTC day of time_ms, so retention drops a
-- whole day at a time and a query over a time range reads only its days.
-- Partitions are named requests_d<days since 1970-01-01>; the gateway
-- creates the next days' ahead of time, and anything outside them lands in
-- requests_default. The primary key includes the partition key, as
-- Postgres requires: (id, time_ms), where time_ms never changes for an id.
ALTER TABLE requests RENAME TO requests_unpartitioned;
ALTER INDEX requests_pkey RENAME TO requests_unpartitioned_pkey;
ALTER INDEX requests_time RENAME TO requests_unpartitioned_time;
ALTER INDEX requests_key_time RENAME TO requests_unpartitioned_key_time;
ALTER INDEX requests_provider_time RENAME TO requests_unpartitioned_provider_time;
ALTER INDEX requests_model_time RENAME TO requests_unpartitioned_model_time;
ALTER INDEX requests_route_time RENAME TO requests_unpartitioned_route_time;
ALTER INDEX requests_status_time RENAME TO requests_unpartitioned_status_time;
ALTER INDEX requests_error_time RENAME TO requests_unpartitioned_error_time;
ALTER INDEX requests_begun RENAME TO requests_unpartitioned_begun;

CREATE TABLE requests (LIKE requests_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (time_ms);
ALTER TABLE requests ADD PRIMARY KEY (id, time_ms);
CREATE INDEX requests_time ON requests (time_ms, id);
CREATE INDEX requests_key_time ON requests (key_id, time_ms) WHERE key_id IS NOT NULL;
CREATE INDEX requests_provider_time ON requests (provider, time_ms);
CREATE INDEX requests_model_time ON requests (model, time_ms);
CREATE INDEX requests_route_time ON requests (route, time_ms) WHERE route IS NOT NULL;
CREATE INDEX requests_status_time ON requests (status, time_ms);
CREATE INDEX requests_error_time ON requests (error_class, time_ms) WHERE error_class IS NOT NULL;
CREATE INDEX requests_begun ON requests (instance) WHERE state = 'begun';
CREATE TABLE requests_default PARTITION OF requests DEFAULT;

-- A partition for each day the records cover, then the records moved in.
DO $$
DECLARE
    lo BIGINT;
    hi BIGINT;
    d  BIGINT;
BEGIN
    SELECT min(time_ms) / 86400000, max(time_ms) / 86400000 INTO lo, hi
        FROM requests_unpartitioned WHERE time_ms >= 0;
    IF lo IS NOT NULL THEN
        d := lo;
        WHILE d <= hi LOOP
            EXECUTE format(
                'CREATE TABLE requests_d%s PARTITION OF requests FOR VALUES FROM (%s) TO (%s)',
                d, d * 86400000, (d + 1) * 86400000);
            d := d + 1;
        END LOOP;
    END IF;
END $$;
INSERT INTO requests SELECT * FROM requests_unpartitioned;
DROP TABLE requests_unpartitioned;
