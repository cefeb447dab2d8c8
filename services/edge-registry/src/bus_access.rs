//! Edge nodes on the bus: each enrolled node's own NATS credential, and the auth callout that admits
//! it (`bus::callout`), as `node-<id>` allowed to publish its own heartbeat subject only.
//!
//! Why an auth callout rather than user JWTs signed offline: the registry is asked at every connection,
//! so removing a node refuses it at once (no revocation list to push to nats-server), and nats-server
//! keeps its plain configuration (no operator mode, no resolver). A node's password is derived, never
//! stored: HMAC-SHA-256 over the node id under a key derived from the callout's issuer seed (from Vault).
//! A retried enrolment therefore answers with the same credential, and a database dump holds none.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bus::access::Identity;
use bus::callout::{Authorizer, Credentials, Issuer};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

/// `[callout]`: how edge nodes are admitted to the bus.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalloutSettings {
    /// The account seed (`SA…`) signing the answers; nats-server trusts its public key as the callout's
    /// `issuer`. From Vault (`homestation/nats` → `callout_issuer_seed`); never in Git.
    pub issuer_seed: Option<SecretString>,
    /// How long an admitted node's connection lives before the server asks again: the longest a removed
    /// node keeps a connection it already had.
    pub credential_ttl_secs: u64,
}

impl Default for CalloutSettings {
    fn default() -> Self {
        Self {
            issuer_seed: None,
            credential_ttl_secs: 300,
        }
    }
}

/// A node's bus credential, handed out at enrolment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BusCredential {
    /// `node-<id>`
    pub user: String,
    pub password: String,
}

/// Issues and checks nodes' credentials; the callout's [`Authorizer`].
pub struct NodeCredentials {
    pool: PgPool,
    key: ring::hmac::Key,
    pub issuer: Arc<Issuer>,
    pub ttl: Duration,
}

const KEY_LABEL: &[u8] = b"homestation edge-registry node bus credentials v1";

impl NodeCredentials {
    pub fn new(pool: PgPool, settings: &CalloutSettings) -> Result<Self, String> {
        let seed = settings.issuer_seed.as_ref().ok_or(
            "callout.issuer_seed is not set: edge nodes could not connect to the bus \
             (Vault homestation/nats holds it; `make dev` makes one)",
        )?;
        let issuer = Issuer::from_seed(seed).map_err(|e| format!("callout.issuer_seed: {e}"))?;
        // A key of its own, derived from the seed: the seed signs, this key only authenticates.
        let root = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, seed.expose_secret().as_bytes());
        let derived = ring::hmac::sign(&root, KEY_LABEL);
        Ok(Self {
            pool,
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref()),
            issuer: Arc::new(issuer),
            ttl: Duration::from_secs(settings.credential_ttl_secs.max(1)),
        })
    }

    pub fn issue(&self, node: Uuid) -> BusCredential {
        let tag = ring::hmac::sign(&self.key, node.as_bytes());
        BusCredential {
            user: Identity::EdgeNode(node).user(),
            password: URL_SAFE_NO_PAD.encode(tag.as_ref()),
        }
    }

    /// The node a credential belongs to, if it is one of ours (constant-time comparison).
    fn verify(&self, user: &str, password: &str) -> Result<Uuid, String> {
        let id = user
            .strip_prefix("node-")
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| format!("{user:?} is not an edge node's user"))?;
        let tag = URL_SAFE_NO_PAD
            .decode(password)
            .map_err(|_| "the password is not one edge-registry issued".to_owned())?;
        ring::hmac::verify(&self.key, id.as_bytes(), &tag)
            .map_err(|_| "wrong password".to_owned())?;
        Ok(id)
    }
}

impl Authorizer for NodeCredentials {
    async fn authorize(&self, credentials: Credentials) -> Result<Identity, String> {
        let id = self.verify(&credentials.user, credentials.password.expose_secret())?;
        // A node being removed is refused from the moment an admin asked.
        let enrolled: Option<(Uuid,)> =
            sqlx::query_as("SELECT id FROM edge_nodes WHERE id = $1 AND removing_since IS NULL")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| format!("looking the node up: {e}"))?;
        enrolled
            .map(|_| Identity::EdgeNode(id))
            .ok_or_else(|| format!("node {id} is not enrolled (or was removed)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> NodeCredentials {
        let (_, seed) = Issuer::generate();
        let pool = PgPool::connect_lazy("postgres://unused@127.0.0.1/unused").unwrap();
        NodeCredentials::new(
            pool,
            &CalloutSettings {
                issuer_seed: Some(seed),
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_credential_is_the_nodes_own_and_stable() {
        let c = credentials();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let issued = c.issue(a);
        assert_eq!(issued.user, format!("node-{a}"));
        assert_eq!(
            c.issue(a).password,
            issued.password,
            "the same on every enrolment answer"
        );
        assert_eq!(c.verify(&issued.user, &issued.password), Ok(a));
        assert!(
            c.verify(&format!("node-{b}"), &issued.password).is_err(),
            "A's password as B"
        );
        assert!(c.verify("inventory", &issued.password).is_err());
        assert!(
            credentials()
                .verify(&issued.user, &issued.password)
                .is_err(),
            "another lab's key"
        );
    }

    #[tokio::test]
    async fn no_seed_is_a_clear_error() {
        let pool = PgPool::connect_lazy("postgres://unused@127.0.0.1/unused").unwrap();
        let err = NodeCredentials::new(pool, &CalloutSettings::default())
            .err()
            .unwrap();
        assert!(err.contains("callout.issuer_seed"), "{err}");
    }
}
