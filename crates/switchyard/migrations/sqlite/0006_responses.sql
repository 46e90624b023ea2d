-- Stored Responses (`store: true` on /v1/responses): each response with its
-- owner (a key id, or 'anonymous'), the turn it continues, what served it,
-- and the Response object itself; its input and output items one row each,
-- for `previous_response_id`, `item_reference` and `/input_items`.
-- Written by the log writer from the spool, like the records; deleted by
-- DELETE /v1/responses/{id} and by retention (`expires_ms`).
CREATE TABLE responses (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    expires_ms      BIGINT NOT NULL,
    previous_id     TEXT,
    requested_model TEXT NOT NULL,
    provider        TEXT,
    model           TEXT,
    request_id      TEXT NOT NULL,
    response        TEXT NOT NULL
);
CREATE INDEX responses_expires ON responses (expires_ms);

CREATE TABLE response_items (
    response_id TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    item_id     TEXT NOT NULL,
    is_output   BOOLEAN NOT NULL,
    item        TEXT NOT NULL,
    PRIMARY KEY (response_id, seq)
);
CREATE INDEX response_items_item ON response_items (item_id);
