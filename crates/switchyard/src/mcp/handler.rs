//! The MCP server agents talk to: `tools/list` (the tools of every
//! upstream the caller's key may use, each annotated with the gateway's
//! decision) and `tools/call` ([`super::call`]). One handler per legacy
//! session or per 2026-07-28 request; the caller comes from the HTTP
//! request rmcp hands over with each message.

use std::borrow::Cow;
use std::sync::Arc;

use http::request::Parts;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler};
use serde_json::json;

use super::pins::Pin;
use super::upstream::Listed;
use crate::auth::Caller;
use crate::config::tools::Approval as Policy;
use crate::gateway::Gateway;

#[derive(Clone)]
pub struct Handler {
    gw: Arc<Gateway>,
}

impl Handler {
    pub fn new(gw: Arc<Gateway>) -> Handler {
        Handler { gw }
    }
}

/// The HTTP request a message came in (its headers and our [`Caller`]).
pub fn parts(ctx: &RequestContext<RoleServer>) -> Result<&Parts, ErrorData> {
    ctx.extensions
        .get::<Parts>()
        .ok_or_else(|| ErrorData::internal_error("the request's HTTP parts are missing", None))
}

pub fn caller(ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    Ok(parts(ctx)?
        .extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or_default())
}

/// Whether the key may use the tool named so on the gateway.
pub fn allowed(caller: &Caller, name: &str) -> bool {
    caller.key.as_ref().is_none_or(|k| k.allows_tool(name))
}

/// What `_meta["switchyard/approval"]` says of a tool's calls.
pub fn approval_word(listed: &Listed, policy: Policy) -> &'static str {
    if !listed.class.is_write() {
        return "none";
    }
    match policy {
        Policy::Required => "required",
        Policy::None => "none",
        Policy::Deny => "denied",
    }
}

/// A tool as the caller is shown it: its gateway name, `readOnlyHint` as
/// decided, and the gateway's decision in `_meta`.
fn shown(server: &str, listed: &Listed, policy: Policy) -> Tool {
    let mut t = listed.tool.clone();
    t.name = super::federated(server, &listed.tool.name).into();
    let mut a = t.annotations.take().unwrap_or_default();
    a.read_only_hint = Some(!listed.class.is_write());
    t.annotations = Some(a);
    let mut meta = t.meta.take().unwrap_or_default();
    meta.insert(
        "switchyard/approval".into(),
        json!(approval_word(listed, policy)),
    );
    meta.insert("switchyard/class".into(), json!(listed.class.as_str()));
    meta.insert(
        "switchyard/class_reason".into(),
        json!(listed.class.reason()),
    );
    t.meta = Some(meta);
    t
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("switchyard", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tools of the MCP servers this gateway federates, as {server}__{tool}. \
                 Reads run at once; writes may wait for a person's approval.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        // 2024-11-05 is the older HTTP+SSE transport, not this one.
        Cow::Borrowed(&[
            ProtocolVersion::V_2025_03_26,
            ProtocolVersion::V_2025_06_18,
            ProtocolVersion::V_2025_11_25,
            ProtocolVersion::V_2026_07_28,
        ])
    }

    /// A tool by its gateway name, from the lists as last read (rmcp reads
    /// `x-mcp-header` parameters from its schema).
    fn get_tool(&self, name: &str) -> Option<Tool> {
        let (server, tool) = super::split(name)?;
        let gw = self.gw.current();
        let up = gw.mcp.servers.get(server)?;
        let listed = up.last_listed()?;
        let l = listed.iter().find(|l| l.tool.name == tool)?;
        (l.pin == Pin::Trusted).then(|| shown(server, l, up.config.approval))
    }

    async fn list_tools(
        &self,
        _page: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller(&ctx)?;
        let headers = &parts(&ctx)?.headers;
        let mut out = Vec::new();
        // The newest configuration's servers: the session outlives reloads.
        let gw = self.gw.current();
        for up in gw.mcp.servers.iter() {
            let server = up.config.name.as_str();
            let reachable = crate::tools::jurisdiction_allows(
                headers,
                &caller,
                server,
                up.config.jurisdiction.as_deref(),
            );
            if reachable.is_err() {
                continue;
            }
            let listed = match up.tools(&gw.storage, false).await {
                Ok(l) => l,
                Err(e) => {
                    // One server down leaves the others listed.
                    tracing::warn!(server, error = %e, "An MCP server's tools could not be listed");
                    continue;
                }
            };
            for l in listed.iter() {
                let name = super::federated(server, &l.tool.name);
                if l.pin == Pin::Trusted && allowed(&caller, &name) {
                    out.push(shown(server, l, up.config.approval));
                }
            }
        }
        let mut r = ListToolsResult::with_all_items(out);
        // The list depends on the key: never shared, never kept.
        r.cache_scope = Some(CacheScope::Private);
        r.ttl_ms = Some(0);
        Ok(r)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        super::call::call(self.gw.current(), request, ctx).await
    }
}
