-- Credentialed tools (DESIGN §8): which HTTP tools and MCP tools a key may
-- call, as globs (`github`, `jira__search_*`); none when empty.
ALTER TABLE keys ADD COLUMN tools TEXT NOT NULL DEFAULT '[]';
