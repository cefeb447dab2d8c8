//! Who may speak on the bus: each identity's NATS permissions, derived from the `events!` table (who
//! publishes each kind) and the streams' consumers, and the nats-server authorization granting exactly those.
//!
//! A service may publish its own events, acknowledge rotations under its own name, read the streams it
//! consumes through its own durable consumer, and hear replies on its own inbox only. An edge node may
//! publish its own heartbeat subject and nothing else. No identity may delete or purge a stream; only a
//! stream's owner may change its configuration.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::BusError;
use crate::events::{By, Kind};
use crate::subject::{DEAD_LETTER_ROOT, Namespace, Stream, StreamLimits};

/// The lab's services: each a NATS user of its own (its name), with the streams it reads through its
/// own durable consumer. What each publishes is said in the `events!` table. `make app` adds a row.
pub const SERVICES: &[(&str, &[Stream])] = &[
    (
        "inventory",
        &[
            Stream::Edge,
            Stream::Heartbeats,
            Stream::Deploy,
            Stream::Backup,
            Stream::Secrets,
        ],
    ),
    // edge-registry follows heartbeats on a live subscription (liveness needs every one, now).
    ("edge-registry", &[Stream::Heartbeats]),
    ("deployer", &[]),
    ("backup", &[]),
    ("secrets-rotator", &[Stream::Secrets]),
    // make app: new services are added above this line
];

/// Every service's name (its NATS user).
pub fn service_names() -> impl Iterator<Item = &'static str> {
    SERVICES.iter().map(|(name, _)| *name)
}

/// Whether `service` reads `stream` (so it may subscribe to its subjects and use its own consumer).
pub fn consumes(service: &str, stream: Stream) -> bool {
    SERVICES
        .iter()
        .any(|(name, streams)| *name == service && streams.contains(&stream))
}

/// The service that issues edge nodes' credentials (the auth callout) and speaks for their stream.
pub const EDGE_ISSUER: &str = "edge-registry";

/// Services that read every stream: backup exports streams (its `jetstream` source).
const STREAM_READERS: &[&str] = &["backup"];

/// The NATS account every HomeStation identity lives in, with JetStream.
pub const ACCOUNT: &str = "HOMESTATION";

/// The subject nats-server sends authorization requests to when an auth callout is configured.
pub const AUTH_CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// Someone who connects to the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Service(String),
    EdgeNode(Uuid),
}

impl Identity {
    /// The NATS user name: the service's name, or `node-<id>`.
    pub fn user(&self) -> String {
        match self {
            Identity::Service(name) => name.clone(),
            Identity::EdgeNode(id) => format!("node-{id}"),
        }
    }

    /// The prefix of this identity's reply subjects; nobody else may subscribe under it.
    pub fn inbox_prefix(&self) -> String {
        runtime::inbox_prefix(&self.user())
    }
}

/// Subjects an identity may publish to and subscribe to; everything else is refused by the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

impl Permissions {
    /// As nats-server writes them in a user's `permissions` (and in a user JWT's `pub`/`sub`).
    fn to_json(&self) -> Value {
        json!({
            "publish": { "allow": self.publish },
            "subscribe": { "allow": self.subscribe },
        })
    }
}

/// The stream's owner, the only service that may change its configuration: the service publishing its
/// events, or edge-registry for the edge nodes' stream. Streams every service writes have none.
pub fn owner(stream: Stream) -> Option<&'static str> {
    Kind::ALL
        .iter()
        .filter(|k| k.stream() == stream)
        .find_map(|k| match k.publisher() {
            By::Service(name) => Some(name),
            By::EachEdgeNode => Some(EDGE_ISSUER),
            By::EachService => None,
        })
}

/// Whether `service` owns `stream` (creates it and keeps its configuration current).
pub fn owns(service: &str, stream: Stream) -> bool {
    owner(stream) == Some(service)
}

fn consumes_any(service: &str) -> bool {
    Stream::ALL.iter().any(|s| consumes(service, *s))
}

/// Whether `service` publishes into or consumes `stream`, so it may create it when it is missing.
pub fn touches(service: &str, stream: Stream) -> bool {
    let publishes = Kind::ALL.iter().any(|k| {
        k.stream() == stream
            && match k.publisher() {
                By::Service(s) => s == service,
                By::EachService => true,
                By::EachEdgeNode => false,
            }
    });
    let dead_letters = stream == Stream::DeadLetter && consumes_any(service);
    owns(service, stream) || publishes || consumes(service, stream) || dead_letters
}

/// What `identity` may do on the bus in namespace `ns`.
pub fn permissions(identity: &Identity, ns: &Namespace) -> Permissions {
    match identity {
        Identity::Service(name) => service_permissions(name, ns),
        Identity::EdgeNode(id) => Permissions {
            publish: vec![ns.subject(&Kind::NodeHeartbeat.pattern().replacen(
                '*',
                &id.to_string(),
                1,
            ))],
            // Its JetStream publishes are acknowledged on its own inbox.
            subscribe: vec![format!("{}.>", identity.inbox_prefix())],
        },
    }
}

fn service_permissions(name: &str, ns: &Namespace) -> Permissions {
    let inbox = Identity::Service(name.to_owned()).inbox_prefix();
    let mut publish = vec!["$JS.API.INFO".to_owned()];
    let mut subscribe = vec![format!("{inbox}.>")];
    for kind in Kind::ALL {
        match kind.publisher() {
            By::Service(s) if s == name => publish.push(ns.subject(kind.pattern())),
            By::EachService => publish.push(ns.subject(&kind.pattern().replacen('*', name, 1))),
            _ => {}
        }
    }
    // Every replica follows the rotations of the secrets it uses (libs/secrets-client).
    subscribe.push(ns.subject(Kind::SecretRotated.pattern()));
    for stream in Stream::ALL {
        let n = stream.name(ns);
        if touches(name, stream) {
            publish.push(format!("$JS.API.STREAM.INFO.{n}"));
            publish.push(format!("$JS.API.STREAM.CREATE.{n}"));
        }
        if owns(name, stream) {
            publish.push(format!("$JS.API.STREAM.UPDATE.{n}"));
        }
        if consumes(name, stream) {
            // Its own durable consumer (named after the service), and the stream's subjects live.
            publish.extend([
                format!("$JS.API.CONSUMER.INFO.{n}.{name}"),
                format!("$JS.API.CONSUMER.CREATE.{n}.{name}"),
                format!("$JS.API.CONSUMER.CREATE.{n}.{name}.>"),
                format!("$JS.API.CONSUMER.DURABLE.CREATE.{n}.{name}"),
                format!("$JS.API.CONSUMER.MSG.NEXT.{n}.{name}"),
                format!("$JS.ACK.{n}.{name}.>"),
            ]);
            subscribe.extend(stream.subjects(ns));
        }
    }
    if consumes_any(name) {
        publish.push(ns.subject(&format!("{DEAD_LETTER_ROOT}.{name}")));
    }
    if STREAM_READERS.contains(&name) {
        // Ordered consumers, named by the server, on any stream it is asked to export.
        publish.extend(
            [
                "STREAM.INFO.*",
                "CONSUMER.CREATE.*",
                "CONSUMER.CREATE.*.>",
                "CONSUMER.INFO.*.*",
                "CONSUMER.MSG.NEXT.*.*",
                "CONSUMER.DELETE.*.*",
            ]
            .map(|api| format!("$JS.API.{api}")),
        );
    }
    if name == EDGE_ISSUER {
        subscribe.push(AUTH_CALLOUT_SUBJECT.to_owned());
    }
    dedup(&mut publish);
    dedup(&mut subscribe);
    Permissions { publish, subscribe }
}

fn dedup(subjects: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    subjects.retain(|s| seen.insert(s.clone()));
}

/// A user nats-server knows from its configuration: a service, or (in tests only) one without limits.
pub struct ConfiguredUser {
    pub user: String,
    /// As written into the configuration: a literal in a test's own file, a `<< $VARIABLE >>`
    /// reference in the chart's values (the value comes from a Secret Vault fills, never from Git).
    pub password: String,
    /// None: may do anything. Only test harnesses are configured so.
    pub permissions: Option<Permissions>,
}

/// The users of the services `names` (the lab's are [`service_names`]), with the permissions
/// [`permissions`] gives each, and `password` for each name.
pub fn service_users<'a>(
    ns: &Namespace,
    names: impl IntoIterator<Item = &'a str>,
    password: impl Fn(&str) -> String,
) -> Vec<ConfiguredUser> {
    names
        .into_iter()
        .map(|name| ConfiguredUser {
            user: name.to_owned(),
            password: password(name),
            permissions: Some(permissions(&Identity::Service(name.to_owned()), ns)),
        })
        .collect()
}

/// nats-server's `accounts` and `authorization` for the lab: the configured users in [`ACCOUNT`] with
/// JetStream, and everyone else (edge nodes) sent to the auth callout, answered by edge-registry and
/// signed by `callout_issuer` (an account public key; its seed is edge-registry's, from Vault).
pub fn server_authorization(users: &[ConfiguredUser], callout_issuer: &str) -> Value {
    let rendered: Vec<Value> = users
        .iter()
        .map(|u| {
            let mut user = json!({ "user": u.user, "password": u.password });
            if let Some(p) = &u.permissions {
                user["permissions"] = p.to_json();
                if u.user == EDGE_ISSUER {
                    // It answers the server's authorization requests on their reply subjects.
                    user["permissions"]["allow_responses"] = json!(true);
                }
            }
            user
        })
        .collect();
    let names: Vec<&str> = users.iter().map(|u| u.user.as_str()).collect();
    json!({
        "accounts": { ACCOUNT: { "jetstream": "enabled", "users": rendered } },
        "authorization": {
            "auth_callout": {
                "issuer": callout_issuer,
                "account": ACCOUNT,
                "auth_users": names,
            }
        },
    })
}

/// The claims an edge node's user JWT carries (see `callout.rs`): its permissions in `pub`/`sub`.
#[cfg(feature = "server")]
pub(crate) fn jwt_permissions(p: &Permissions) -> Value {
    json!({
        "pub": { "allow": p.publish },
        "sub": { "allow": p.subscribe },
    })
}

/// Creates every stream `service` publishes into or reads, and updates those it owns (publishes into).
/// Idempotent, run by every service at start; a stream someone else owns is created if missing and
/// otherwise left as it is, since the bus lets only the owner change it (this file).
pub async fn ensure_streams(
    js: &async_nats::jetstream::Context,
    ns: &Namespace,
    service: &str,
    limits: &StreamLimits,
) -> crate::Result<()> {
    for stream in Stream::ALL {
        let config = stream.config(ns, limits);
        let result = if owns(service, stream) {
            js.create_or_update_stream(config).await.map(drop)
        } else if touches(service, stream) {
            js.get_or_create_stream(config).await.map(drop)
        } else {
            continue;
        };
        result.map_err(|e| {
            let mut reason = e.to_string();
            if reason.contains("timed out") {
                // nats-server answers a request its permissions refuse with nothing at all.
                reason.push_str(&format!(
                    " (the bus refuses requests outside a user's permissions this way: is this \
                     {service}'s own NATS user?)"
                ));
            }
            BusError::Stream {
                stream: stream.name(ns),
                reason,
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(name: &str) -> Permissions {
        permissions(
            &Identity::Service(name.to_owned()),
            &Namespace::production(),
        )
    }

    #[test]
    fn a_service_publishes_only_its_own_events() {
        let deployer = of("deployer");
        assert!(deployer.publish.contains(&"deploy.v1.synced".to_owned()));
        assert!(!deployer.publish.iter().any(|s| s.starts_with("edge.")));
        assert!(
            deployer
                .publish
                .contains(&"secrets.v1.acknowledged.deployer".to_owned())
        );
        assert!(
            !deployer
                .publish
                .iter()
                .any(|s| s.starts_with("secrets.v1.acknowledged.") && !s.ends_with(".deployer"))
        );
        assert!(
            !of("inventory")
                .publish
                .iter()
                .any(|s| s.starts_with("secrets.v1.rotated"))
        );
    }

    #[test]
    fn no_identity_may_delete_or_purge_and_only_owners_update() {
        for name in service_names() {
            for subject in &of(name).publish {
                for refused in ["DELETE", "PURGE", "MSG.DELETE"] {
                    let api = format!("$JS.API.STREAM.{refused}");
                    assert!(!subject.starts_with(&api), "{name} may {subject}");
                }
                assert!(
                    subject != ">" && !subject.starts_with("$JS.API.>"),
                    "{name}: {subject}"
                );
                if let Some(stream) = subject.strip_prefix("$JS.API.STREAM.UPDATE.") {
                    let owned = Stream::ALL
                        .iter()
                        .find(|s| s.name(&Namespace::production()) == stream);
                    assert!(
                        owned.is_some_and(|s| owns(name, *s)),
                        "{name} updates {stream}"
                    );
                }
            }
        }
        assert_eq!(owner(Stream::Heartbeats), Some("edge-registry"));
        assert_eq!(owner(Stream::Secrets), Some("secrets-rotator"));
        assert_eq!(owner(Stream::DeadLetter), None);
    }

    #[test]
    fn consumers_read_only_through_their_own_durable() {
        let rotator = of("secrets-rotator");
        assert!(
            rotator
                .publish
                .contains(&"$JS.API.CONSUMER.MSG.NEXT.SECRETS.secrets-rotator".to_owned())
        );
        assert!(!rotator.publish.iter().any(|s| s.contains(".inventory")));
        assert!(
            !of("deployer")
                .publish
                .iter()
                .any(|s| s.starts_with("$JS.API.CONSUMER"))
        );
    }

    #[test]
    fn every_publisher_and_consumer_is_a_known_service() {
        for kind in Kind::ALL {
            if let By::Service(name) = kind.publisher() {
                assert!(
                    service_names().any(|s| s == name),
                    "{name} publishes {kind:?}"
                );
            }
        }
        let mut names: Vec<&str> = service_names().collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SERVICES.len(), "a service is listed twice");
    }

    #[test]
    fn an_edge_node_publishes_its_own_heartbeat_only() {
        let id = Uuid::nil();
        let ns = Namespace::parse("t1").unwrap();
        let p = permissions(&Identity::EdgeNode(id), &ns);
        assert_eq!(p.publish, vec![format!("t1.edge.v1.node.{id}.heartbeat")]);
        assert_eq!(p.subscribe, vec![format!("_INBOX.node-{id}.>")]);
    }

    #[test]
    fn namespaced_permissions_name_namespaced_subjects_and_streams() {
        let ns = Namespace::parse("t9").unwrap();
        let p = permissions(&Identity::Service("inventory".into()), &ns);
        assert!(p.publish.contains(&"t9.inventory.v1.changed".to_owned()));
        assert!(
            p.publish
                .contains(&"$JS.API.STREAM.UPDATE.T9_INVENTORY".to_owned())
        );
        assert!(
            p.subscribe
                .contains(&"t9.edge.v1.node.*.heartbeat".to_owned())
        );
    }
}
