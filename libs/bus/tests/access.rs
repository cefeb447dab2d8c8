//! Who may speak on the bus, against a real nats-server (2.15) with the lab's authorization on: the users
//! and permissions `bus::access` derives from the `events!` table, and edge nodes admitted by the auth
//! callout (`bus::callout::serve`). `Nodes` below is this test's authorizer (the lab's is edge-registry's,
//! over its database); the server, the callout protocol and the JWTs are real.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::access::Identity;
use bus::callout::{Authorizer, Credentials, Issuer};
use bus::{Event, NodeHeartbeat, Publisher, Stream};
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use service_kit::Shutdown;
use testkit::{TestBus, connect_once as connect, fresh_namespace};
use uuid::Uuid;

/// The test's edge nodes: user name → (node id, password). Removing one refuses it from then on.
#[derive(Default)]
struct Nodes(Mutex<HashMap<String, (Uuid, String)>>);

impl Nodes {
    fn add(&self, id: Uuid) -> (String, String) {
        let user = Identity::EdgeNode(id).user();
        let password = Uuid::new_v4().simple().to_string();
        self.0
            .lock()
            .unwrap()
            .insert(user.clone(), (id, password.clone()));
        (user, password)
    }
}

impl Authorizer for Nodes {
    async fn authorize(&self, c: Credentials) -> Result<Identity, String> {
        match self.0.lock().unwrap().get(&c.user) {
            Some((id, password)) if password == c.password.expose_secret() => {
                Ok(Identity::EdgeNode(*id))
            }
            Some(_) => Err("wrong password".into()),
            None => Err(format!("no node {:?}", c.user)),
        }
    }
}

struct Lab {
    bus: TestBus,
    nodes: Arc<Nodes>,
    shutdown: Shutdown,
}

/// A nats-server with the lab's authorization and the auth callout answered for `nodes` (as edge-registry
/// answers it), its user JWTs living `ttl`.
async fn lab(ttl: Duration) -> Lab {
    let bus = TestBus::start(fresh_namespace()).await;
    let nodes = Arc::new(Nodes::default());
    let shutdown = Shutdown::new();
    let registry = bus
        .settings("edge-registry")
        .connect("edge-registry")
        .await
        .unwrap();
    let issuer = Arc::new(Issuer::from_seed(&bus.issuer_seed()).unwrap());
    let answering = bus::callout::start(
        registry,
        bus.namespace.clone(),
        issuer,
        nodes.clone(),
        ttl,
        shutdown.clone(),
    )
    .await
    .unwrap();
    tokio::spawn(answering);
    Lab {
        bus,
        nodes,
        shutdown,
    }
}

fn heartbeat(node_id: Uuid) -> Event {
    Event::NodeHeartbeat(NodeHeartbeat {
        node_id,
        load1: 0.5,
        gpu_utilization_pct: None,
        temperature_c: None,
        disk_free_bytes: None,
    })
}

/// Publishes through JetStream with a short ack timeout: a publish the server refuses is never acked.
fn publisher(client: async_nats::Client, ns: &bus::Namespace, source: &'static str) -> Publisher {
    let mut js = async_nats::jetstream::new(client);
    js.set_timeout(Duration::from_secs(2));
    Publisher::new(js, ns.clone(), source)
}

#[tokio::test]
async fn an_unauthenticated_or_wrongly_authenticated_connection_is_refused() {
    let lab = lab(Duration::from_secs(60)).await;
    let url = lab.bus.url();
    assert!(connect(&url, None).await.is_err(), "no credential");
    assert!(
        connect(&url, Some(("inventory", "not-its-password")))
            .await
            .is_err(),
        "a service's name with a wrong password"
    );
    let stranger = Identity::EdgeNode(Uuid::now_v7()).user();
    assert!(
        connect(&url, Some((&stranger, "guess"))).await.is_err(),
        "an unknown node"
    );
    // The right password is admitted, so the refusals above are the credentials' doing.
    let inventory = lab.bus.settings("inventory");
    let password = inventory
        .password
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    connect(&url, Some(("inventory", &password))).await.unwrap();
    lab.shutdown.trigger();
}

#[tokio::test]
async fn a_service_publishes_its_own_subjects_only_and_deletes_no_stream() {
    let lab = lab(Duration::from_secs(60)).await;
    let ns = &lab.bus.namespace;
    let deployer = bus::Connection::open(&lab.bus.settings("deployer"), "deployer")
        .await
        .unwrap();
    // edge-registry owns EDGE; it makes it as it starts.
    bus::Connection::open(&lab.bus.settings("edge-registry"), "edge-registry")
        .await
        .unwrap();
    let forged = Event::NodeEnrolled(bus::NodeEnrolled {
        node_id: Uuid::now_v7(),
        name: "control-plane".into(),
        tailnet_ip: "100.64.0.9".parse().unwrap(),
        dns_name: "control-plane.tailnet".into(),
        labels: Default::default(),
        facts: bus::HardwareFacts {
            model: "forged".into(),
            jetpack: None,
            l4t: None,
            cuda: None,
            gpu_name: None,
            memory_bytes: 0,
            architecture: "aarch64".into(),
        },
    });
    let as_deployer = publisher(deployer.client.clone(), ns, "deployer");
    assert!(
        as_deployer.publish(forged).await.is_err(),
        "deployer published edge-registry's event"
    );
    // Nor may it acknowledge a rotation in another service's name.
    let ack = Event::SecretAcknowledged(bus::SecretAcknowledged {
        path: "homestation/db".into(),
        version: 2,
        consumer: "inventory".into(),
    });
    bus::Connection::open(&lab.bus.settings("secrets-rotator"), "secrets-rotator")
        .await
        .unwrap();
    assert!(
        as_deployer.publish(ack).await.is_err(),
        "deployer acknowledged as inventory"
    );
    let own_ack = Event::SecretAcknowledged(bus::SecretAcknowledged {
        path: "homestation/db".into(),
        version: 2,
        consumer: "deployer".into(),
    });
    as_deployer
        .publish(own_ack)
        .await
        .expect("its own acknowledgement");
    let synced = Event::DeploySynced(bus::Deployment {
        app: "inventory".into(),
        namespace: "homestation".into(),
        revision: "abc".into(),
        reason: None,
    });
    as_deployer.publish(synced).await.expect("its own event");

    let js = lab.bus.jetstream().await;
    let mut edge = js.get_stream(Stream::Edge.name(ns)).await.unwrap();
    assert_eq!(
        edge.info().await.unwrap().state.messages,
        0,
        "the forged event was not stored"
    );
    let mut secrets = js.get_stream(Stream::Secrets.name(ns)).await.unwrap();
    assert_eq!(
        secrets.info().await.unwrap().state.messages,
        1,
        "only deployer's own acknowledgement"
    );

    let mut deployer_js = async_nats::jetstream::new(deployer.client.clone());
    deployer_js.set_timeout(Duration::from_secs(2));
    assert!(
        deployer_js
            .delete_stream(Stream::Edge.name(ns))
            .await
            .is_err()
    );
    assert!(
        deployer_js
            .delete_stream(Stream::Deploy.name(ns))
            .await
            .is_err(),
        "not even its own"
    );
    assert!(js.get_stream(Stream::Deploy.name(ns)).await.is_ok());
    lab.shutdown.trigger();
}

#[tokio::test]
async fn a_node_publishes_its_own_heartbeat_only() {
    let lab = lab(Duration::from_secs(60)).await;
    let ns = &lab.bus.namespace;
    bus::Connection::open(&lab.bus.settings("edge-registry"), "edge-registry")
        .await
        .unwrap();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let (user, password) = lab.nodes.add(a);
    lab.nodes.add(b);
    let node_a = connect(&lab.bus.url(), Some((&user, &password)))
        .await
        .unwrap();
    let mut heard = lab
        .bus
        .harness()
        .await
        .subscribe(ns.subject("edge.v1.node.*.heartbeat"))
        .await
        .unwrap();
    let as_a = publisher(node_a, ns, "edge-agent");
    assert!(
        as_a.publish(heartbeat(b)).await.is_err(),
        "node A spoke for node B"
    );
    as_a.publish(heartbeat(a)).await.expect("its own heartbeat");
    let first = tokio::time::timeout(Duration::from_secs(5), heard.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.subject.as_str(),
        ns.subject(&format!("edge.v1.node.{a}.heartbeat"))
    );
    let js = lab.bus.jetstream().await;
    let mut beats = js.get_stream(Stream::Heartbeats.name(ns)).await.unwrap();
    assert_eq!(beats.info().await.unwrap().state.messages, 1);
    lab.shutdown.trigger();
}

#[tokio::test]
async fn a_removed_node_is_refused_at_once_and_loses_its_connection_within_the_ttl() {
    let ttl = Duration::from_secs(3);
    let lab = lab(ttl).await;
    let id = Uuid::now_v7();
    let (user, password) = lab.nodes.add(id);
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let connected =
        async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            .custom_inbox_prefix(runtime::inbox_prefix(&user))
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(event.to_string());
                }
            })
            .connect(lab.bus.url())
            .await
            .expect("an enrolled node is admitted");

    lab.nodes.0.lock().unwrap().remove(&user);
    assert!(
        connect(&lab.bus.url(), Some((&user, &password)))
            .await
            .is_err(),
        "a new connection with the removed node's credential"
    );
    // Its user JWT expires within the ttl; the server then closes the connection and, asked again,
    // the callout refuses the reconnection.
    let disconnected = tokio::time::timeout(ttl * 4, async {
        while let Some(event) = events.recv().await {
            if event.contains("disconnected") {
                return;
            }
        }
    })
    .await;
    assert!(
        disconnected.is_ok(),
        "the removed node kept its connection past the ttl"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_ne!(
        connected.connection_state(),
        async_nats::connection::State::Connected,
        "the removed node reconnected"
    );
    lab.shutdown.trigger();
}

#[tokio::test]
async fn a_full_stream_refuses_new_events_and_keeps_the_ones_it_has() {
    let bus = TestBus::start(fresh_namespace()).await;
    let mut settings = bus.settings("deployer");
    settings.stream_max_bytes = Some(4096);
    let deployer = bus::Connection::open(&settings, "deployer").await.unwrap();
    let publish = publisher(deployer.client.clone(), &bus.namespace, "deployer");
    let mut accepted = 0u64;
    let mut refusal = None;
    for i in 0..200 {
        let event = Event::DeploySynced(bus::Deployment {
            app: format!("app-{i}"),
            namespace: "homestation".into(),
            revision: "0123456789abcdef".into(),
            reason: None,
        });
        match publish.publish(event).await {
            Ok(_) => accepted += 1,
            Err(e) => {
                refusal = Some(e.to_string());
                break;
            }
        }
    }
    let refusal = refusal.expect("the stream refused an event past 4096 bytes");
    assert!(refusal.contains("maximum bytes"), "{refusal}");
    assert!(accepted > 0);
    let js = bus.jetstream().await;
    let mut stream = js
        .get_stream(Stream::Deploy.name(&bus.namespace))
        .await
        .unwrap();
    let state = stream.info().await.unwrap().state.clone();
    assert_eq!(
        state.messages, accepted,
        "every accepted event is still there"
    );
    assert_eq!(
        state.first_sequence, 1,
        "the oldest event was not dropped for the new one"
    );
}
