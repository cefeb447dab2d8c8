//! NATS auth callout: nats-server asks who every connection is that is not a configured user (an edge
//! node); an [`Authorizer`] names the identity or refuses, and this answers with a user JWT carrying that
//! identity's permissions (`access.rs`), signed by the callout issuer's account key.
//!
//! The wire format is nats-server's (ADR-26): the request is a JWT signed by the server, naming the
//! server, a user public key it made for this connection, and the client's connect options; the answer is
//! a JWT for that server and user key, wrapping the user JWT. JWTs here are NATS's: Ed25519 over
//! `header.claims`, keys as nkeys.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::Shutdown;

use crate::BusError;
use crate::access::{self, ACCOUNT, AUTH_CALLOUT_SUBJECT, Identity};
use crate::subject::Namespace;

/// What a connecting client presented.
#[derive(Debug)]
pub struct Credentials {
    pub user: String,
    pub password: SecretString,
    /// The client's address as the server saw it.
    pub host: String,
}

/// Decides who a connection is. Refusals are sent to the server (which refuses the client) and logged.
pub trait Authorizer: Send + Sync + 'static {
    fn authorize(
        &self,
        credentials: Credentials,
    ) -> impl Future<Output = Result<Identity, String>> + Send;
}

/// The callout's signing key: an nkey account seed (`SA…`); its public key is the `issuer` nats-server trusts.
pub struct Issuer(nkeys::KeyPair);

impl Issuer {
    pub fn from_seed(seed: &SecretString) -> Result<Self, BusError> {
        let pair = nkeys::KeyPair::from_seed(seed.expose_secret())
            .map_err(|e| BusError::Callout(format!("the issuer seed does not parse: {e}")))?;
        if pair.key_pair_type() != nkeys::KeyPairType::Account {
            return Err(BusError::Callout(
                "the issuer seed must be an account seed (SA…)".into(),
            ));
        }
        Ok(Self(pair))
    }

    /// A new issuer (a test's, or `homestation` making the lab's first).
    pub fn generate() -> (Self, SecretString) {
        let pair = nkeys::KeyPair::new_account();
        let seed = SecretString::from(pair.seed().expect("a new key pair has a seed"));
        (Self(pair), seed)
    }

    pub fn public_key(&self) -> String {
        self.0.public_key()
    }

    fn sign_jwt(&self, claims: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{body}");
        let signature = self.0.sign(input.as_bytes()).expect("signing with a seed");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

#[derive(Deserialize)]
struct RequestClaims {
    iss: String,
    aud: Option<String>,
    nats: Request,
}

#[derive(Deserialize)]
struct Request {
    server_id: ServerId,
    user_nkey: String,
    #[serde(default)]
    client_info: ClientInfo,
    #[serde(default)]
    connect_opts: ConnectOpts,
}

#[derive(Deserialize)]
struct ServerId {
    id: String,
}

#[derive(Deserialize, Default)]
struct ClientInfo {
    #[serde(default)]
    host: String,
}

#[derive(Deserialize, Default)]
struct ConnectOpts {
    #[serde(default)]
    user: String,
    #[serde(default)]
    pass: String,
}

/// Reads a request JWT, checking it is signed by the key it names and addressed to the callout.
fn parse_request(jwt: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(jwt).map_err(|_| "the request is not text")?;
    let mut parts = text.split('.');
    let (Some(header), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the request is not a JWT".into());
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string());
    let claims: RequestClaims =
        serde_json::from_slice(&decode(body)?).map_err(|e| format!("request claims: {e}"))?;
    let server = nkeys::KeyPair::from_public_key(&claims.iss).map_err(|e| e.to_string())?;
    server
        .verify(format!("{header}.{body}").as_bytes(), &decode(signature)?)
        .map_err(|_| "the request's signature does not verify")?;
    if claims.aud.as_deref() != Some("nats-authorization-request") {
        return Err("the request is not an authorization request".into());
    }
    Ok(claims.nats)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn jti() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase()
}

/// The answer to one request: the user JWT for `identity`, valid for `ttl`, or the refusal.
fn respond(
    issuer: &Issuer,
    ns: &Namespace,
    request: &Request,
    outcome: Result<Identity, String>,
    ttl: Duration,
) -> String {
    let iat = now();
    let mut nats = json!({ "type": "authorization_response", "version": 2 });
    match outcome {
        Ok(identity) => {
            let mut user = access::jwt_permissions(&access::permissions(&identity, ns));
            user["subs"] = json!(-1);
            user["data"] = json!(-1);
            user["payload"] = json!(-1);
            user["type"] = json!("user");
            user["version"] = json!(2);
            let claims = json!({
                "jti": jti(),
                "iat": iat,
                "exp": iat + i64::try_from(ttl.as_secs()).unwrap_or(3600),
                "iss": issuer.public_key(),
                "name": identity.user(),
                "sub": request.user_nkey,
                "aud": ACCOUNT,
                "nats": user,
            });
            nats["jwt"] = json!(issuer.sign_jwt(&claims));
        }
        Err(reason) => nats["error"] = json!(reason),
    }
    issuer.sign_jwt(&json!({
        "jti": jti(),
        "iat": iat,
        "iss": issuer.public_key(),
        "sub": request.user_nkey,
        "aud": request.server_id.id,
        "nats": nats,
    }))
}

/// Answers nats-server's authorization requests until shutdown. Each answer's user JWT expires after
/// `ttl`: the server then disconnects the client, whose reconnection is asked about again, so a revoked
/// node loses a connection it already had within `ttl` and is refused at once when it connects.
///
/// Returns once the subscription is in place (the server asks from then on), with the work of answering
/// for the caller to run as one of its tasks.
pub async fn start<A: Authorizer>(
    client: async_nats::Client,
    ns: Namespace,
    issuer: Arc<Issuer>,
    authorizer: Arc<A>,
    ttl: Duration,
    shutdown: Shutdown,
) -> crate::Result<impl Future<Output = crate::Result<()>> + Send + 'static> {
    let requests = client
        .queue_subscribe(AUTH_CALLOUT_SUBJECT, "homestation-auth".into())
        .await
        .map_err(|e| BusError::Callout(format!("subscribing: {e}")))?;
    client
        .flush()
        .await
        .map_err(|e| BusError::Callout(format!("subscribing: {e}")))?;
    Ok(serve(
        client, requests, ns, issuer, authorizer, ttl, shutdown,
    ))
}

async fn serve<A: Authorizer>(
    client: async_nats::Client,
    mut requests: async_nats::Subscriber,
    ns: Namespace,
    issuer: Arc<Issuer>,
    authorizer: Arc<A>,
    ttl: Duration,
    shutdown: Shutdown,
) -> crate::Result<()> {
    loop {
        let message = tokio::select! {
            m = requests.next() => match m {
                Some(m) => m,
                None => return Err(BusError::Callout("the subscription ended".into())),
            },
            () = shutdown.wait() => return Ok(()),
        };
        let Some(reply) = message.reply.clone() else {
            continue;
        };
        let request = match parse_request(&message.payload) {
            Ok(r) => r,
            Err(reason) => {
                tracing::warn!(%reason, "an authorization request was ignored");
                continue;
            }
        };
        let credentials = Credentials {
            user: request.connect_opts.user.clone(),
            password: SecretString::from(request.connect_opts.pass.clone()),
            host: request.client_info.host.clone(),
        };
        let (issuer, ns, authorizer, client) = (
            issuer.clone(),
            ns.clone(),
            authorizer.clone(),
            client.clone(),
        );
        // Each request on its own task: a slow database answer must not hold up other connections.
        tokio::spawn(async move {
            let user = credentials.user.clone();
            let host = credentials.host.clone();
            let outcome = authorizer.authorize(credentials).await;
            match &outcome {
                Ok(identity) => {
                    tracing::info!(user = %identity.user(), %host, "bus connection admitted")
                }
                Err(reason) => tracing::warn!(%user, %host, %reason, "bus connection refused"),
            }
            let answer = respond(&issuer, &ns, &request, outcome, ttl);
            if let Err(e) = client.publish(reply, answer.into()).await {
                tracing::warn!(error = %e, "answering an authorization request failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(jwt: &str) -> Value {
        let body = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
    }

    #[test]
    fn a_request_signed_by_its_server_parses_and_a_forged_one_does_not() {
        let server = nkeys::KeyPair::new_server();
        let claims = json!({
            "iss": server.public_key(), "aud": "nats-authorization-request",
            "nats": { "server_id": { "id": "S1" }, "user_nkey": "UKEY",
                      "connect_opts": { "user": "node-1", "pass": "p" } }
        });
        let header = URL_SAFE_NO_PAD.encode(b"{}");
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{body}");
        let good = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(server.sign(input.as_bytes()).unwrap())
        );
        let request = parse_request(good.as_bytes()).unwrap();
        assert_eq!(request.connect_opts.user, "node-1");
        let other = nkeys::KeyPair::new_server();
        let forged = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(other.sign(input.as_bytes()).unwrap())
        );
        assert!(parse_request(forged.as_bytes()).is_err());
        assert!(parse_request(b"not.a-jwt").is_err());
    }

    #[test]
    fn an_answer_names_the_server_user_key_and_the_identitys_permissions() {
        let (issuer, _) = Issuer::generate();
        let request = Request {
            server_id: ServerId { id: "S1".into() },
            user_nkey: "UKEY".into(),
            client_info: ClientInfo::default(),
            connect_opts: ConnectOpts::default(),
        };
        let node = uuid::Uuid::nil();
        let ns = Namespace::production();
        let answer = decode(&respond(
            &issuer,
            &ns,
            &request,
            Ok(Identity::EdgeNode(node)),
            Duration::from_secs(60),
        ));
        assert_eq!(answer["aud"], "S1");
        assert_eq!(answer["sub"], "UKEY");
        assert_eq!(answer["iss"], issuer.public_key());
        let user = decode(answer["nats"]["jwt"].as_str().unwrap());
        assert_eq!(user["aud"], ACCOUNT);
        assert_eq!(
            user["nats"]["pub"]["allow"],
            json!([format!("edge.v1.node.{node}.heartbeat")])
        );
        let refused = decode(&respond(
            &issuer,
            &ns,
            &request,
            Err("unknown node".into()),
            Duration::from_secs(60),
        ));
        assert_eq!(refused["nats"]["error"], "unknown node");
        assert!(refused["nats"]["jwt"].is_null());
    }
}
