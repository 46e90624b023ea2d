//! Routing: which provider and model a request's `model` names.
//!
//! `provider/model` names one target. (Named routes with failover come
//! with the routing issue and extend [`plan`].)

use std::sync::Arc;

use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::providers::Provider;

/// One provider and the model name it is sent.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: Arc<Provider>,
    pub model: String,
}

impl Target {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.provider.name(), self.model)
    }
}

/// The targets to try for one request, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub targets: Vec<Target>,
}

/// Resolves a request's `model` into a plan.
pub fn plan(gw: &Gateway, model: &str) -> Result<Plan, GatewayError> {
    let Some((provider, upstream_model)) = model.split_once('/') else {
        return Err(GatewayError::UnknownModel {
            model: model.to_owned(),
            message: format!(
                "unknown model `{model}`: expected `provider/model` (providers: {})",
                provider_names(gw)
            ),
        });
    };
    let Some(p) = gw.providers.get(provider) else {
        return Err(GatewayError::UnknownModel {
            model: model.to_owned(),
            message: format!(
                "unknown model `{model}`: no provider named `{provider}` (providers: {})",
                provider_names(gw)
            ),
        });
    };
    if upstream_model.is_empty() {
        return Err(GatewayError::UnknownModel {
            model: model.to_owned(),
            message: format!(
                "unknown model `{model}`: the model name after `{provider}/` is empty"
            ),
        });
    }
    Ok(Plan {
        targets: vec![Target {
            provider: p.clone(),
            model: upstream_model.to_owned(),
        }],
    })
}

fn provider_names(gw: &Gateway) -> String {
    let names: Vec<&str> = gw.providers.list.iter().map(|p| p.name()).collect();
    if names.is_empty() {
        "none configured".into()
    } else {
        names.join(", ")
    }
}
