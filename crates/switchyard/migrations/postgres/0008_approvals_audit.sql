-- Held writes of credentialed tools (DESIGN §8): one row per approval
-- request. `state` moves pending -> approved | denied | expired, and
-- approved -> executed exactly once (a conditional UPDATE).
CREATE TABLE approvals (
    id          TEXT PRIMARY KEY,
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    state       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    tool        TEXT NOT NULL,
    method      TEXT,
    path        TEXT,
    arguments   TEXT,
    body_digest TEXT NOT NULL,
    key_id      TEXT,
    tags        TEXT NOT NULL DEFAULT '{}',
    request_id  TEXT NOT NULL,
    decided_ms  BIGINT,
    decided_by  TEXT,
    reason      TEXT,
    executed_ms BIGINT
);
CREATE INDEX approvals_state ON approvals (state, created_ms);

-- The audit trail: every tool call, approval request and decision, each
-- record holding the SHA-256 of the one before. `audit_head` is the chain's
-- end, the one row writers lock in turn.
CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
    time_ms   BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    record    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
