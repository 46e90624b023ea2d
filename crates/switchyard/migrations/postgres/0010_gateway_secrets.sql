-- Keys the gateway generates for itself and every replica sharing this
-- database must agree on (the key that seals MCP request states). Made
-- once, by whichever replica starts first; never sent anywhere.
CREATE TABLE gateway_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
