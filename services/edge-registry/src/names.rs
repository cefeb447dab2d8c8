//! A node's name is one machine's in the whole lab: before enrolling, edge-registry asks inventory (over
//! gRPC, with a service token of its own, never forwarded headers) whether the name is already a control,
//! worker or VM node's. An edge node a person added by hand ahead of its enrolment is adopted instead.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use service_kit::ApiError;
use tonic::transport::Channel;

use proto::inventory::v1::GetNodeRequest;
use proto::inventory::v1::inventory_client::InventoryClient;

/// `[inventory]`: where to check names. Unset `grpc_url`: names are checked against the edge fleet only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventorySettings {
    /// e.g. `http://inventory.homestation.svc:8081`
    pub grpc_url: Option<String>,
    /// A Viewer service token on inventory (from Vault).
    pub token: Option<SecretString>,
}

#[derive(Clone)]
pub struct NameCheck {
    client: InventoryClient<Channel>,
    /// `Bearer <token>`, checked once at start.
    bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl NameCheck {
    pub fn new(settings: &InventorySettings) -> Result<Option<Self>, String> {
        let Some(url) = &settings.grpc_url else {
            tracing::warn!(
                "inventory.grpc_url is not set: enrolment checks names against edge nodes only"
            );
            return Ok(None);
        };
        let token = settings
            .token
            .as_ref()
            .ok_or("inventory.token is needed with inventory.grpc_url (a Viewer service token)")?;
        let bearer = format!("Bearer {}", token.expose_secret())
            .parse()
            .map_err(|_| "inventory.token has characters a header cannot carry")?;
        let channel = Channel::from_shared(url.clone())
            .map_err(|e| format!("inventory.grpc_url {url}: {e}"))?
            .connect_lazy();
        Ok(Some(Self {
            client: InventoryClient::new(channel),
            bearer,
        }))
    }

    /// Refuses `name` when inventory has a node of that name that is not an edge node.
    pub async fn free_for_edge(&self, name: &str) -> Result<(), ApiError> {
        let mut request = tonic::Request::new(GetNodeRequest {
            id_or_name: name.to_owned(),
        });
        request
            .metadata_mut()
            .insert("authorization", self.bearer.clone());
        match self.client.clone().get_node(request).await {
            Ok(found) if found.get_ref().kind != "edge" => Err(ApiError::Conflict(format!(
                "the name {name} is a {} node's in inventory; choose another name (the token was not used)",
                found.get_ref().kind
            ))),
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(()),
            Err(status) => {
                tracing::error!(error = %status, "checking the name against inventory failed");
                Err(ApiError::Unavailable(
                    "the name cannot be checked against inventory right now; try again shortly"
                        .into(),
                ))
            }
        }
    }
}
