//! Who is calling: Authelia forward-auth headers or a bearer service token, mapped to Admin, Developer or Viewer.

use std::collections::BTreeSet;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Authelia sets these after a successful forward-auth check at Traefik.
pub const REMOTE_USER: &str = "remote-user";
pub const REMOTE_GROUPS: &str = "remote-groups";
/// Traefik adds this to every request that passed Authelia (its `homestation-proxy-proof` middleware,
/// the value from Vault): without it, Remote-User/Remote-Groups are anyone's words and are refused.
pub const PROXY_PROOF: &str = "homestation-proxy-proof";

/// Roles, ordered: each one may do what the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Developer,
    Admin,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Admin => "admin",
        })
    }
}

/// The caller of a request, put in the request's extensions by [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub role: Role,
}

impl Identity {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{} is a {}; this needs the {role} role",
                self.subject, self.role
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("no identity on this route".into()))
    }
}

/// A service token: only the SHA-256 of the token is configured, never the token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceToken {
    pub name: String,
    /// Hex SHA-256 of the bearer token.
    pub sha256: String,
    pub role: Role,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Trust `Remote-User`/`Remote-Groups` on requests that carry the proxy's proof ([`PROXY_PROOF`]).
    pub trust_forward_auth: bool,
    /// Hex SHA-256 of the secret Traefik sends as `HomeStation-Proxy-Proof`. Unset: forwarded headers
    /// are refused from everyone (service tokens still work).
    pub proxy_proof_sha256: Option<String>,
    pub admin_groups: BTreeSet<String>,
    pub developer_groups: BTreeSet<String>,
    pub viewer_groups: BTreeSet<String>,
    pub service_tokens: Vec<ServiceToken>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        let set = |s: &str| BTreeSet::from([s.to_owned()]);
        Self {
            trust_forward_auth: true,
            proxy_proof_sha256: None,
            admin_groups: set("admins"),
            developer_groups: set("developers"),
            viewer_groups: set("viewers"),
            service_tokens: Vec::new(),
        }
    }
}

/// Hex SHA-256 of a token, the form in which tokens are configured.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Turns request headers into an [`Identity`]; shared by the HTTP middleware and gRPC interceptors.
#[derive(Debug, Clone)]
pub struct Authenticator {
    settings: AuthSettings,
}

impl Authenticator {
    pub fn new(settings: AuthSettings) -> Result<Self, String> {
        if let Some(proof) = &settings.proxy_proof_sha256
            && !(proof.len() == 64 && proof.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err("auth.proxy_proof_sha256 must be 64 hex digits".into());
        }
        for token in &settings.service_tokens {
            let valid =
                token.sha256.len() == 64 && token.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !valid {
                return Err(format!(
                    "auth.service_tokens: {}: sha256 must be 64 hex digits",
                    token.name
                ));
            }
        }
        Ok(Self { settings })
    }

    pub fn identify(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    ApiError::Unauthorized("Authorization must be `Bearer <token>`".into())
                })?;
            return self.token_identity(token.trim());
        }
        if let Some(user) = headers.get(REMOTE_USER).and_then(|v| v.to_str().ok()) {
            if !self.carries_proxy_proof(headers) {
                return Err(ApiError::Unauthorized(
                    "forwarded identity headers are accepted only from the proxy (Traefik, after Authelia); \
                     a service sends `Authorization: Bearer <token>`"
                        .into(),
                ));
            }
            let groups = headers
                .get(REMOTE_GROUPS)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            return self.forward_auth_identity(user, groups);
        }
        Err(ApiError::Unauthorized(
            "no identity: sign in through Authelia or send `Authorization: Bearer <token>`".into(),
        ))
    }

    /// Whether the request carries the proxy's proof (compared in constant time).
    fn carries_proxy_proof(&self, headers: &HeaderMap) -> bool {
        let (true, Some(expected), Some(sent)) = (
            self.settings.trust_forward_auth,
            self.settings.proxy_proof_sha256.as_deref(),
            headers.get(PROXY_PROOF).and_then(|v| v.to_str().ok()),
        ) else {
            return false;
        };
        let (Ok(expected), sent) = (hex::decode(expected), Sha256::digest(sent.as_bytes())) else {
            return false;
        };
        expected.len() == sent.len()
            && expected
                .iter()
                .zip(sent.iter())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }

    fn token_identity(&self, token: &str) -> Result<Identity, ApiError> {
        let digest = token_sha256(token);
        self.settings
            .service_tokens
            .iter()
            .find(|t| t.sha256.eq_ignore_ascii_case(&digest))
            .map(|t| Identity {
                subject: format!("token:{}", t.name),
                role: t.role,
            })
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked token".into()))
    }

    fn forward_auth_identity(&self, user: &str, groups: &str) -> Result<Identity, ApiError> {
        let s = &self.settings;
        let role = groups
            .split(',')
            .map(str::trim)
            .filter_map(|g| {
                if s.admin_groups.contains(g) {
                    Some(Role::Admin)
                } else if s.developer_groups.contains(g) {
                    Some(Role::Developer)
                } else if s.viewer_groups.contains(g) {
                    Some(Role::Viewer)
                } else {
                    None
                }
            })
            .max()
            .ok_or_else(|| {
                ApiError::Forbidden(format!("{user} is in no HomeStation group ({groups})"))
            })?;
        Ok(Identity {
            subject: user.to_owned(),
            role,
        })
    }
}

/// Middleware: every request gets an identity or a 401; a Viewer can never change anything.
pub async fn authenticate(
    State(auth): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let identity = auth.identify(request.headers())?;
    let reads_only = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !reads_only {
        identity.require(Role::Developer)?;
    }
    request.extensions_mut().insert(identity);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_with_token(token: &str, role: Role) -> Authenticator {
        Authenticator::new(AuthSettings {
            service_tokens: vec![ServiceToken {
                name: "ci".into(),
                sha256: token_sha256(token),
                role,
            }],
            ..Default::default()
        })
        .unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bearer_token_maps_to_its_role() {
        let auth = auth_with_token("tok-generated-in-test", Role::Developer);
        let id = auth
            .identify(&headers(&[(
                "authorization",
                "Bearer tok-generated-in-test",
            )]))
            .unwrap();
        assert_eq!(id.role, Role::Developer);
        assert_eq!(id.subject, "token:ci");
        let wrong = auth.identify(&headers(&[("authorization", "Bearer nope")]));
        assert!(matches!(wrong, Err(ApiError::Unauthorized(_))));
    }

    const PROOF: &str = "proof-made-in-this-test";

    fn behind_proxy() -> Authenticator {
        Authenticator::new(AuthSettings {
            proxy_proof_sha256: Some(token_sha256(PROOF)),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn groups_take_the_highest_role_and_unknown_groups_are_forbidden() {
        let auth = behind_proxy();
        let id = auth
            .identify(&headers(&[
                ("remote-user", "ana"),
                ("remote-groups", "viewers, admins"),
                (PROXY_PROOF, PROOF),
            ]))
            .unwrap();
        assert_eq!(id.role, Role::Admin);
        let none = auth.identify(&headers(&[
            ("remote-user", "bob"),
            ("remote-groups", "cats"),
            (PROXY_PROOF, PROOF),
        ]));
        assert!(matches!(none, Err(ApiError::Forbidden(_))));
    }

    #[test]
    fn forwarded_headers_without_the_proxys_proof_are_refused() {
        let forged = |proof: Option<&'static str>| {
            let mut h = headers(&[("remote-user", "mallory"), ("remote-groups", "admins")]);
            if let Some(p) = proof {
                h.insert(PROXY_PROOF, p.parse().unwrap());
            }
            h
        };
        let auth = behind_proxy();
        for refused in [None, Some("guessed"), Some("")] {
            let id = auth.identify(&forged(refused));
            assert!(
                matches!(id, Err(ApiError::Unauthorized(_))),
                "{refused:?}: {id:?}"
            );
        }
        // No proof configured, or forward-auth off: nobody's headers are trusted, proof or not.
        let unconfigured = Authenticator::new(AuthSettings::default()).unwrap();
        assert!(unconfigured.identify(&forged(Some(PROOF))).is_err());
        let off = Authenticator::new(AuthSettings {
            trust_forward_auth: false,
            proxy_proof_sha256: Some(token_sha256(PROOF)),
            ..Default::default()
        })
        .unwrap();
        assert!(off.identify(&forged(Some(PROOF))).is_err());
        assert!(auth.identify(&forged(Some(PROOF))).is_ok());
    }

    #[test]
    fn malformed_token_hashes_are_a_config_error() {
        let err = Authenticator::new(AuthSettings {
            service_tokens: vec![ServiceToken {
                name: "bad".into(),
                sha256: "xyz".into(),
                role: Role::Admin,
            }],
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("64 hex"), "{err}");
    }
}
