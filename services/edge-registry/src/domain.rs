//! Edge enrolment's domain: join tokens, tailnet addresses, hardware facts, taints and the K3s agent configuration.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use service_kit::names::{Invalid, Labels, Name};
use utoipa::ToSchema;

/// A Tailscale address: 100.64.0.0/10 (CGNAT, IPv4) or fd7a:115c:a1e0::/48 (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailnetIp(IpAddr);

impl TailnetIp {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let ip: IpAddr = raw
            .parse()
            .map_err(|_| Invalid::new(field, format!("{raw:?} is not an IP address")))?;
        let inside = match ip {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                a == 100 && (64..=127).contains(&b)
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                s[0] == 0xfd7a && s[1] == 0x115c && s[2] == 0xa1e0
            }
        };
        if !inside {
            return Err(Invalid::new(
                field,
                format!(
                    "{ip} is not a Tailscale address (100.64.0.0/10 or fd7a:115c:a1e0::/48): is the node on the tailnet?"
                ),
            ));
        }
        Ok(Self(ip))
    }

    pub fn ip(self) -> IpAddr {
        self.0
    }
}

fn version(field: &str, raw: Option<String>) -> Result<Option<String>, Invalid> {
    match raw {
        None => Ok(None),
        Some(v)
            if !v.is_empty()
                && v.len() <= 32
                && v.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            Ok(Some(v))
        }
        Some(v) => Err(Invalid::new(
            field,
            format!("{v:?} is not a version like 36.3.0"),
        )),
    }
}

fn text(field: &str, raw: String, max: usize) -> Result<String, Invalid> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.len() > max || trimmed.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            format!("must be 1-{max} printable characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// The hardware facts an agent reports (the bus's type, the one inventory keeps), each field checked.
pub fn facts(raw: bus::HardwareFacts) -> Result<bus::HardwareFacts, Invalid> {
    const ARCHITECTURES: [&str; 2] = ["aarch64", "x86_64"];
    if !ARCHITECTURES.contains(&raw.architecture.as_str()) {
        return Err(Invalid::new(
            "facts.architecture",
            format!("{:?} is not one of aarch64, x86_64", raw.architecture),
        ));
    }
    if raw.memory_bytes == 0 {
        return Err(Invalid::new("facts.memory_bytes", "must be more than 0"));
    }
    Ok(bus::HardwareFacts {
        model: text("facts.model", raw.model, 200)?,
        jetpack: version("facts.jetpack", raw.jetpack)?,
        l4t: version("facts.l4t", raw.l4t)?,
        cuda: version("facts.cuda", raw.cuda)?,
        gpu_name: raw
            .gpu_name
            .map(|g| text("facts.gpu_name", g, 100))
            .transpose()?,
        memory_bytes: raw.memory_bytes,
        architecture: raw.architecture,
    })
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TailscaleIdentity {
    /// The node's tailnet address, e.g. 100.101.102.103.
    pub ip: String,
    /// Its MagicDNS name, e.g. jetson-1.tail1234.ts.net.
    pub dns_name: String,
}

/// The body of `POST /v1/enroll`, as the agent sends it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The one-time join token.
    pub token: String,
    pub name: String,
    pub tailscale: TailscaleIdentity,
    pub facts: bus::HardwareFacts,
    /// The node's Ed25519 public key, base64url without padding; the agent made it and keeps the private half.
    pub public_key: String,
    /// The key's signature (base64url) over [`enrolment_message`]: only its holder can enrol or retry.
    pub proof: String,
}

/// What the node's key signs to enrol (the agent's `key::enrolment_message` makes the same bytes).
pub fn enrolment_message(token: &str, name: &str) -> String {
    format!("homestation enrolment v1\n{token}\n{name}")
}

/// A node's public key whose holder signed this enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeKey(String);

impl NodeKey {
    fn verify(public_key: &str, proof: &str, message: &str) -> Result<Self, Invalid> {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let key = URL_SAFE_NO_PAD
            .decode(public_key)
            .ok()
            .filter(|k| k.len() == 32)
            .ok_or_else(|| {
                Invalid::new(
                    "public_key",
                    "is not an Ed25519 public key (32 bytes, base64url)",
                )
            })?;
        let signature = URL_SAFE_NO_PAD
            .decode(proof)
            .map_err(|_| Invalid::new("proof", "is not base64url"))?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(message.as_bytes(), &signature)
            .map_err(|_| {
                Invalid::new("proof", "is not this key's signature of the token and name")
            })?;
        Ok(Self(public_key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An enrolment request, valid by construction; the token is not yet checked.
pub struct Enrollment {
    pub token: String,
    pub name: Name,
    pub tailnet_ip: TailnetIp,
    pub dns_name: String,
    pub facts: bus::HardwareFacts,
    pub key: NodeKey,
}

impl TryFrom<EnrollRequest> for Enrollment {
    type Error = Invalid;

    fn try_from(r: EnrollRequest) -> Result<Self, Invalid> {
        if r.token.is_empty() || r.token.len() > 200 {
            return Err(Invalid::new("token", "is missing or too long"));
        }
        let dns_name = r.tailscale.dns_name.trim_end_matches('.').to_owned();
        let dns_ok = !dns_name.is_empty()
            && dns_name.len() <= 253
            && dns_name
                .split('.')
                .all(|part| Name::parse("", part).is_ok());
        if !dns_ok {
            return Err(Invalid::new(
                "tailscale.dns_name",
                format!("{:?} is not a DNS name", r.tailscale.dns_name),
            ));
        }
        let key = NodeKey::verify(
            &r.public_key,
            &r.proof,
            &enrolment_message(&r.token, &r.name),
        )?;
        Ok(Self {
            key,
            token: r.token,
            name: Name::parse("name", &r.name)?,
            tailnet_ip: TailnetIp::parse("tailscale.ip", &r.tailscale.ip)?,
            dns_name,
            facts: facts(r.facts)?,
        })
    }
}

/// A Kubernetes taint, `key[=value]:Effect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Taint(String);

impl Taint {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
        let (kv, effect) = raw
            .rsplit_once(':')
            .ok_or_else(|| Invalid::new(field, format!("{raw:?} is not key[=value]:Effect")))?;
        if !EFFECTS.contains(&effect) {
            return Err(Invalid::new(
                field,
                format!("effect {effect:?} is not one of NoSchedule, PreferNoSchedule, NoExecute"),
            ));
        }
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        Labels::parse(BTreeMap::from([(key.to_owned(), value.to_owned())]))
            .map_err(|e| Invalid::new(field, format!("{raw:?}: {}", e.message)))?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `90s`, `15m`, `1h`, `7d`, or plain seconds.
pub fn parse_ttl(field: &str, raw: &str) -> Result<Duration, Invalid> {
    let bad = || {
        Invalid::new(
            field,
            format!("{raw:?} is not a duration like 15m, 1h or 7d"),
        )
    };
    let (digits, unit) = raw
        .find(|c: char| !c.is_ascii_digit())
        .map_or((raw, ""), |i| raw.split_at(i));
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit_secs: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    // Unchecked, `99999999999999d` overflowed: a panic in a debug build, a wrapped (short) TTL in release.
    let seconds = n.checked_mul(unit_secs).ok_or_else(bad)?;
    if seconds == 0 {
        return Err(Invalid::new(field, "must be longer than zero"));
    }
    Ok(Duration::from_secs(seconds))
}

/// The body of `POST /v1/join-tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenRequest {
    /// How long the token is valid: `15m`, `1h`, `7d` (default 1h).
    pub ttl: Option<String>,
    /// Node labels applied to the node that enrols with it.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints, `key[=value]:Effect`.
    #[serde(default)]
    pub taints: Vec<String>,
    pub description: Option<String>,
}

/// A one-time join token: `hsj_` and 64 hex digits of randomness. Only its SHA-256 is stored.
pub struct JoinToken(String);

impl JoinToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source works");
        Self(format!("hsj_{}", hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn sha256(token: &str) -> String {
        service_kit::auth::token_sha256(token)
    }
}

/// Whether `token` is a K3s server token: K3s writes them `K10<CA hash>::server:<secret>`, and whoever holds
/// one may join as a server (cluster-admin in effect). Agent tokens say `::node:` or carry no prefix.
pub fn is_server_token(token: &str) -> bool {
    token.trim().contains("::server:")
}

/// What an agent writes to `/etc/rancher/k3s/config.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct K3sAgentConfig {
    pub server: String,
    /// The cluster's agent token, read from Vault at enrolment; never stored by the registry, never the
    /// server token.
    pub token: String,
    /// The tailnet address: k3s must not pick the LAN address, the usual k3s-over-Tailscale failure.
    pub node_ip: String,
    pub flannel_iface: String,
    pub node_labels: Vec<String>,
    pub node_taints: Vec<String>,
}

/// The labels every enrolled node gets from its facts, then the token's own.
pub fn node_labels(
    facts: &bus::HardwareFacts,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("homestation.io/edge".to_owned(), "true".to_owned()),
        (
            "nvidia.com/gpu.present".to_owned(),
            facts.gpu_name.is_some().to_string(),
        ),
        (
            "kubernetes.io/arch".to_owned(),
            if facts.architecture == "aarch64" {
                "arm64"
            } else {
                "amd64"
            }
            .to_owned(),
        ),
    ]);
    for (key, value) in [
        ("homestation.io/jetpack", &facts.jetpack),
        ("homestation.io/l4t", &facts.l4t),
        ("homestation.io/cuda", &facts.cuda),
    ] {
        if let Some(v) = value {
            labels.insert(key.to_owned(), v.clone());
        }
    }
    labels.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// A node's liveness: online, stale (heartbeats missed, shown only) or offline (announced, cordoned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Online,
    Stale,
    Offline,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Online => "online",
            State::Stale => "stale",
            State::Offline => "offline",
        }
    }

    pub fn parse(raw: &str) -> Self {
        match raw {
            "offline" => State::Offline,
            "stale" => State::Stale,
            _ => State::Online,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_token_is_told_from_an_agent_token() {
        assert!(is_server_token("K10abc::server:s3cr3t"));
        assert!(!is_server_token("K10abc::node:s3cr3t"));
        assert!(!is_server_token("Hx9q2mVt7LcP"));
    }

    #[test]
    fn tailnet_addresses_only() {
        assert!(TailnetIp::parse("ip", "100.64.0.1").is_ok());
        assert!(TailnetIp::parse("ip", "100.127.255.254").is_ok());
        assert!(TailnetIp::parse("ip", "fd7a:115c:a1e0::1").is_ok());
        for bad in [
            "100.128.0.1",
            "100.63.255.255",
            "192.168.1.10",
            "10.0.0.1",
            "fd7a:115c:a1e1::1",
            "nope",
        ] {
            let err = TailnetIp::parse("tailscale.ip", bad).unwrap_err();
            assert_eq!(err.field, "tailscale.ip", "{bad}");
        }
    }

    #[test]
    fn facts_are_checked_field_by_field() {
        let good = bus::HardwareFacts {
            model: "NVIDIA Jetson Orin Nano Developer Kit".into(),
            jetpack: Some("6.1".into()),
            l4t: Some("36.4.0".into()),
            cuda: Some("12.6".into()),
            gpu_name: Some("Orin (nvgpu)".into()),
            memory_bytes: 8 << 30,
            architecture: "aarch64".into(),
        };
        assert!(facts(good.clone()).is_ok());
        let bad_version = bus::HardwareFacts {
            cuda: Some("12.x".into()),
            ..good.clone()
        };
        assert_eq!(facts(bad_version).unwrap_err().field, "facts.cuda");
        let bad_arch = bus::HardwareFacts {
            architecture: "riscv".into(),
            ..good.clone()
        };
        assert_eq!(facts(bad_arch).unwrap_err().field, "facts.architecture");
        let no_memory = bus::HardwareFacts {
            memory_bytes: 0,
            ..good
        };
        assert_eq!(facts(no_memory).unwrap_err().field, "facts.memory_bytes");
    }

    #[test]
    fn taints_and_ttls() {
        assert!(Taint::parse("t", "nvidia.com/gpu=true:NoSchedule").is_ok());
        assert!(Taint::parse("t", "edge:PreferNoSchedule").is_ok());
        assert!(Taint::parse("t", "edge:Sometimes").is_err());
        assert!(Taint::parse("t", "no effect").is_err());
        assert_eq!(parse_ttl("ttl", "1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("ttl", "90").unwrap(), Duration::from_secs(90));
        assert!(parse_ttl("ttl", "0m").is_err());
        assert!(parse_ttl("ttl", "1w").is_err());
    }

    #[test]
    fn tokens_are_random_and_prefixed() {
        let (a, b) = (JoinToken::generate(), JoinToken::generate());
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.as_str().starts_with("hsj_") && a.as_str().len() == 68);
    }
}
