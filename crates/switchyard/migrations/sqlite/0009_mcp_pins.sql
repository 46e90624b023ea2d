-- MCP tool definitions pinned when first seen (rug-pull defence, DESIGN
-- §8): the SHA-256 of each tool's canonical definition. A tool whose
-- definition changes is withheld until the operator accepts the change.
CREATE TABLE mcp_pins (
    server        TEXT NOT NULL,
    tool          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    definition    TEXT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    PRIMARY KEY (server, tool)
);
CREATE TABLE mcp_changes (
    id          TEXT PRIMARY KEY,
    server      TEXT NOT NULL,
    tool        TEXT NOT NULL,
    old_digest  TEXT NOT NULL,
    new_digest  TEXT NOT NULL,
    definition  TEXT NOT NULL,
    seen_ms     BIGINT NOT NULL,
    state       TEXT NOT NULL,
    decided_ms  BIGINT,
    decided_by  TEXT,
    UNIQUE (server, tool, new_digest)
);
