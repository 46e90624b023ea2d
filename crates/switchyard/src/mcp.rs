//! The MCP gateway (DESIGN §8): `POST /mcp` for agents, federating the
//! configured `[[mcp_servers]]` as `{server}__{tool}`, each call
//! classified, writes held for approval, tool definitions pinned.

pub mod pins;
