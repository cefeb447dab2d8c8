//! Inventory's domain types; input becomes one of these once, at the edge, by parsing.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use service_kit::names::{Invalid, Labels, Name};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Control,
    Worker,
    Edge,
    Vm,
}

impl NodeKind {
    pub const ALL: [NodeKind; 4] = [Self::Control, Self::Worker, Self::Edge, Self::Vm];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Control => "control",
            Self::Worker => "worker",
            Self::Edge => "edge",
            Self::Vm => "vm",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Unknown,
    Healthy,
    Degraded,
    Offline,
}

impl Health {
    pub const ALL: [Health; 4] = [Self::Unknown, Self::Healthy, Self::Degraded, Self::Offline];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Offline => "offline",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == raw)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    pub cpu_millicores: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub gpus: Option<u32>,
}

/// GPU and platform facts, as reported by an edge node (JetPack, L4T, CUDA) or entered by hand: the bus's
/// type, the one the agent sends and edge-registry announces.
pub use bus::HardwareFacts;

/// The body of `POST /v1/nodes`, as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRequest {
    pub name: String,
    pub kind: NodeKind,
    #[serde(default)]
    #[schema(value_type = Vec<String>, example = json!(["100.64.0.10"]))]
    pub addresses: Vec<IpAddr>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub capacity: Capacity,
    pub gpu: Option<HardwareFacts>,
}

/// A node to record, valid by construction.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub name: Name,
    pub kind: NodeKind,
    pub addresses: Vec<IpAddr>,
    pub labels: Labels,
    pub capacity: Capacity,
    pub gpu: Option<HardwareFacts>,
}

impl TryFrom<NodeRequest> for NewNode {
    type Error = Invalid;

    fn try_from(r: NodeRequest) -> Result<Self, Invalid> {
        Ok(Self {
            name: Name::parse("name", &r.name)?,
            kind: r.kind,
            addresses: r.addresses,
            labels: Labels::parse(r.labels)?,
            capacity: r.capacity,
            gpu: r.gpu,
        })
    }
}

/// The body of `POST /v1/services`, as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRequest {
    pub name: String,
    pub namespace: String,
    /// URLs where the service answers, e.g. `http://inventory.homestation:8080`.
    #[serde(default)]
    pub endpoints: Vec<String>,
    pub owner: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewService {
    pub name: Name,
    pub namespace: Name,
    pub endpoints: Vec<Endpoint>,
    pub owner: Option<String>,
    pub description: Option<String>,
}

impl TryFrom<ServiceRequest> for NewService {
    type Error = Invalid;

    fn try_from(r: ServiceRequest) -> Result<Self, Invalid> {
        let endpoints = r
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| Endpoint::parse(&format!("endpoints[{i}]"), e))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: Name::parse("name", &r.name)?,
            namespace: Name::parse("namespace", &r.namespace)?,
            endpoints,
            owner: r.owner,
            description: r.description,
        })
    }
}

/// An `http(s)://host[:port][/path]` URL; the host and port are what Prometheus scrapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(value_type = String)]
pub struct Endpoint(String);

impl Endpoint {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let rest = raw
            .strip_prefix("http://")
            .or_else(|| raw.strip_prefix("https://"))
            .ok_or_else(|| {
                Invalid::new(
                    field,
                    format!("{raw:?} must start with http:// or https://"),
                )
            })?;
        let host_port = rest.split('/').next().unwrap_or_default();
        let valid_host = !host_port.is_empty()
            && host_port
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !valid_host {
            return Err(Invalid::new(field, format!("{raw:?} has no valid host")));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `host:port` with the scheme's default port filled in.
    pub fn target(&self) -> String {
        let (rest, default_port) = match self.0.strip_prefix("https://") {
            Some(rest) => (rest, 443),
            None => (self.0.strip_prefix("http://").unwrap_or(&self.0), 80),
        };
        let host_port = rest.split('/').next().unwrap_or_default();
        // "[fd00::1]" ends in "1]", which is no port; "[fd00::1]:9100" ends in one.
        let has_port = host_port
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        if has_port {
            host_port.to_owned()
        } else {
            format!("{host_port}:{default_port}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_scrape_targets() {
        let e = |s| Endpoint::parse("e", s).unwrap().target();
        assert_eq!(e("http://inventory:8080/metrics"), "inventory:8080");
        assert_eq!(e("https://grafana.lab"), "grafana.lab:443");
        assert_eq!(e("http://10.0.0.5"), "10.0.0.5:80");
        assert_eq!(e("http://[fd00::1]:9100"), "[fd00::1]:9100");
        assert!(Endpoint::parse("endpoints[0]", "ftp://x").is_err());
    }
}
