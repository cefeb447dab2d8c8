//! A test's own nats-server with authentication on, configured as the lab's is (`bus::access`): each
//! service a user of its own with the permissions the `events!` table gives it, everyone else sent to the
//! auth callout. Passwords and the callout's issuer key are made here for this test, never stored.
//!
//! Assertions read the streams as a `harness` user: a test-only identity with no limits, configured on
//! this server only (the lab has no such user).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::Restartable;

const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// Streams of test namespaces older than this are deleted by later runs on the shared server.
const STALE_STREAMS_AFTER: Duration = Duration::from_secs(20 * 60);
/// The test-only user of [`TestBus`], which reads every stream for assertions.
pub const HARNESS_USER: &str = "harness";

/// The shared, anonymous nats-server `make services` runs (benchmarks' bare rounds use it).
pub fn nats_url() -> String {
    std::env::var("HOMESTATION_TEST_NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.into())
}

/// The nats-server binary with auth callout (2.10+): `HOMESTATION_NATS_SERVER`, else the one
/// `make services` unpacks into `.dev/tools/bin`, else `nats-server` on PATH.
pub fn nats_server_binary() -> String {
    if let Ok(bin) = std::env::var("HOMESTATION_NATS_SERVER") {
        return bin;
    }
    let local =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.dev/tools/bin/nats-server");
    if local.exists() {
        return local.display().to_string();
    }
    "nats-server".into()
}

fn random_secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// A namespace no other test uses (streams and subjects of its own), named `t<seconds>-<random>`.
pub fn fresh_namespace() -> bus::Namespace {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let raw = format!("t{now}-{}", &Uuid::new_v4().simple().to_string()[..8]);
    bus::Namespace::parse(&raw).expect("test namespaces are valid")
}

/// A namespace of its own on the shared server, stale test streams deleted first (benchmarks).
pub async fn nats_namespace() -> bus::Namespace {
    let client = async_nats::connect(nats_url()).await.unwrap_or_else(|e| {
        panic!(
            "nats-server at {} is not reachable ({e}); run `make services`",
            nats_url()
        )
    });
    let js = async_nats::jetstream::new(client);
    delete_stale_streams(&js).await;
    fresh_namespace()
}

async fn delete_stale_streams(js: &async_nats::jetstream::Context) {
    use futures_util::TryStreamExt;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let Ok(names) = js.stream_names().try_collect::<Vec<String>>().await else {
        return;
    };
    for name in names {
        // Test streams are named T<seconds>_<random>_<STREAM>.
        let created = name
            .strip_prefix('T')
            .and_then(|rest| rest.split('_').next())
            .and_then(|t| t.parse::<u64>().ok());
        if created.is_some_and(|t| now.saturating_sub(t) > STALE_STREAMS_AFTER.as_secs()) {
            let _ = js.delete_stream(&name).await;
        }
    }
}

/// Deletes every stream of a namespace on the shared server (benchmarks, when done with it).
pub async fn drop_namespace(ns: &bus::Namespace) {
    let Ok(client) = async_nats::connect(nats_url()).await else {
        return;
    };
    let js = async_nats::jetstream::new(client);
    for stream in bus::Stream::ALL {
        let _ = js.delete_stream(stream.name(ns)).await;
    }
}

/// Connects once, without retrying, as `user` (with its own inbox prefix, as the bus requires) or
/// anonymously: a refusal is an error here rather than a retry loop.
pub async fn connect_once(
    url: &str,
    user: Option<(&str, &str)>,
) -> Result<async_nats::Client, String> {
    let options = match user {
        Some((u, p)) => async_nats::ConnectOptions::with_user_and_password(u.into(), p.into()),
        None => async_nats::ConnectOptions::new(),
    };
    options
        .custom_inbox_prefix(service_kit::inbox_prefix(
            user.map_or("anonymous", |(u, _)| u),
        ))
        .connection_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .map_err(|e| e.to_string())
}

/// What a [`TestBus`] is configured with besides the lab's users.
#[derive(Default)]
pub struct BusOptions {
    /// Services beyond `bus::access::SERVICES` (a generated app's test, a library's test publisher).
    pub extra_services: Vec<&'static str>,
}

/// A nats-server of the test's own, with the lab's authorization. Stopped and removed when dropped.
pub struct TestBus {
    pub server: Restartable,
    pub namespace: bus::Namespace,
    passwords: HashMap<String, String>,
    harness_password: String,
    issuer_seed: SecretString,
    issuer_public: String,
}

impl TestBus {
    pub async fn start(namespace: bus::Namespace) -> Self {
        Self::start_with(namespace, BusOptions::default()).await
    }

    pub async fn start_with(namespace: bus::Namespace, options: BusOptions) -> Self {
        let mut services: Vec<&str> = bus::access::service_names().collect();
        services.extend(options.extra_services);
        let passwords: HashMap<String, String> = services
            .iter()
            .map(|s| ((*s).to_owned(), random_secret()))
            .collect();
        let harness_password = random_secret();
        let (issuer, issuer_seed) = bus::callout::Issuer::generate();
        let issuer_public = issuer.public_key();
        let mut users = bus::access::service_users(&namespace, services.iter().copied(), |name| {
            passwords[name].clone()
        });
        users.push(bus::access::ConfiguredUser {
            user: HARNESS_USER.into(),
            password: harness_password.clone(),
            permissions: None,
        });
        let authorization = bus::access::server_authorization(&users, &issuer_public);
        let server =
            Restartable::nats_configured(HARNESS_USER, &harness_password, move |port, store| {
                let mut config = authorization.clone();
                config["listen"] = json!(format!("127.0.0.1:{port}"));
                config["jetstream"] = json!({ "store_dir": store });
                config
            })
            .await;
        Self {
            server,
            namespace,
            passwords,
            harness_password,
            issuer_seed,
            issuer_public,
        }
    }

    /// Where clients connect, without credentials.
    pub fn url(&self) -> String {
        self.server.url.clone()
    }

    /// `service`'s settings: its own user and password, this test's namespace.
    pub fn settings(&self, service: &str) -> service_kit::NatsSettings {
        let password = self.passwords.get(service).unwrap_or_else(|| {
            panic!(
                "{service} is not a user of this test's nats-server (BusOptions::extra_services)"
            )
        });
        service_kit::NatsSettings {
            url: self.url(),
            namespace: self.namespace.as_str().to_owned(),
            user: Some(service.to_owned()),
            password: Some(SecretString::from(password.clone())),
            ..Default::default()
        }
    }

    /// `service`'s bus settings as `HOMESTATION_<SERVICE>__NATS__*` variables, for a binary a test starts.
    pub fn env_vars(&self, service: &str) -> Vec<(String, String)> {
        let prefix = service_kit::config::env_prefix(service);
        let settings = self.settings(service);
        vec![
            (format!("{prefix}NATS__URL"), settings.url),
            (format!("{prefix}NATS__NAMESPACE"), settings.namespace),
            (format!("{prefix}NATS__USER"), service.to_owned()),
            (
                format!("{prefix}NATS__PASSWORD"),
                self.passwords[service].clone(),
            ),
        ]
    }

    /// The body of `service`'s `[nats]` table, for a config file a test writes.
    pub fn toml(&self, service: &str) -> String {
        let settings = self.settings(service);
        format!(
            "url = \"{}\"\nnamespace = \"{}\"\nuser = \"{service}\"\npassword = \"{}\"\n",
            settings.url, settings.namespace, self.passwords[service]
        )
    }

    /// The auth callout's issuer seed, for the edge-registry this test runs.
    pub fn issuer_seed(&self) -> SecretString {
        self.issuer_seed.clone()
    }

    pub fn issuer_public_key(&self) -> &str {
        &self.issuer_public
    }

    /// Settings connecting as the test-only harness user (which may read and write anything).
    pub fn harness_settings(&self) -> service_kit::NatsSettings {
        service_kit::NatsSettings {
            url: self.url(),
            namespace: self.namespace.as_str().to_owned(),
            user: Some(HARNESS_USER.into()),
            password: Some(SecretString::from(self.harness_password.clone())),
            ..Default::default()
        }
    }

    /// A client as the test-only harness user, which may read and write anything.
    pub async fn harness(&self) -> async_nats::Client {
        async_nats::ConnectOptions::with_user_and_password(
            HARNESS_USER.into(),
            self.harness_password.clone(),
        )
        .connect(self.url())
        .await
        .expect("the harness connects to the test's nats-server")
    }

    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.harness().await)
    }
}
