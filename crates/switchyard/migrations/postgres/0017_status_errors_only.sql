-- Nearly every record is a 200, and a filter on 200 finds its rows at once
-- by time: only other statuses are indexed; a filter on one of them says
-- `status <> 200` too (query.rs), which lets the planner use this partial
-- index. On the partitioned table the index is built again on every
-- partition.
DROP INDEX requests_status_time;
CREATE INDEX requests_status_time ON requests (status, time_ms)
    WHERE status IS NOT NULL AND status <> 200;
