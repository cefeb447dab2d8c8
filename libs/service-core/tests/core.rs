//! The shared service body against the real PostgreSQL and nats-server: what it serves, how it reports a
//! failed start or a failed task, and that it stops cleanly.

use axum::Router;
use axum::routing::get;
use service_core::{Core, Error, Settings};
use service_kit::auth::AuthSettings;
use service_kit::{HttpSettings, Shutdown};
use testkit::TestEnv;

/// The service these tests open a core for: a NATS user of the test's nats-server like any other.
const SERVICE: &str = "core-test";

/// A TestEnv whose nats-server knows [`SERVICE`].
async fn env() -> TestEnv {
    TestEnv::with_bus(testkit::BusOptions {
        extra_services: vec![SERVICE],
    })
    .await
}

const NO_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;

async fn open(env: &TestEnv, http: &HttpSettings, auth: &AuthSettings) -> Result<Core, Error> {
    let (database, nats) = (env.database(), env.nats(SERVICE));
    let settings = Settings {
        http,
        database: &database,
        nats: &nats,
        auth,
        shutdown_grace_secs: 5,
    };
    Core::open(SERVICE, settings, &NO_MIGRATIONS).await
}

#[tokio::test]
async fn serves_api_routes_behind_auth_beside_health_and_metrics_then_stops_on_shutdown() {
    let env = env().await;
    let core = open(&env, &HttpSettings::with_port(0), &env.auth())
        .await
        .expect("core opens");
    let base = format!("http://{}", core.http_addr());
    let api = Router::new().route("/v1/ping", get(|| async { "pong" }));
    let shutdown = Shutdown::new();
    let running = core.serve(api, Router::new(), &shutdown);
    let http = testkit::http_client();

    let status = |path: &'static str, token: Option<String>| {
        let request = http.get(format!("{base}{path}"));
        let request = match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        async move { request.send().await.expect("request").status().as_u16() }
    };
    assert_eq!(status("/healthz", None).await, 200);
    assert_eq!(
        status("/readyz", None).await,
        200,
        "database and NATS answer"
    );
    assert_eq!(
        status("/v1/ping", None).await,
        401,
        "the API needs an identity"
    );
    assert_eq!(
        status("/v1/ping", Some(env.tokens.viewer.clone())).await,
        200
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("service=\"core-test\""),
        "metrics carry the service's label:\n{metrics}"
    );

    shutdown.trigger();
    running.until_stopped().await.expect("a clean stop");
}

#[tokio::test]
async fn a_failing_task_stops_the_service_and_is_named() {
    let env = env().await;
    let core = open(&env, &HttpSettings::with_port(0), &env.auth())
        .await
        .expect("core opens");
    let shutdown = Shutdown::new();
    let mut running = core.serve(Router::new(), Router::new(), &shutdown);
    running.spawn("scheduler", async { Err::<(), _>("policy table vanished") });
    let error = running.until_stopped().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "scheduler stopped: policy table vanished"
    );
    assert!(shutdown.is_triggered(), "the other tasks were told to stop");
}

#[tokio::test]
async fn a_taken_port_and_a_malformed_token_hash_are_named_at_start() {
    let env = env().await;
    let first = open(&env, &HttpSettings::with_port(0), &env.auth())
        .await
        .expect("core opens");
    let taken = HttpSettings::with_port(first.http_addr().port());
    let error = open(&env, &taken, &env.auth())
        .await
        .err()
        .expect("port in use");
    assert!(
        matches!(error, Error::Bind { what: "http", .. }),
        "{error:?}"
    );

    let mut auth = env.auth();
    auth.service_tokens[0].sha256 = "not-a-digest".into();
    let error = open(&env, &HttpSettings::with_port(0), &auth)
        .await
        .err()
        .expect("bad hash refused");
    assert!(
        error.to_string().contains("sha256 must be 64 hex digits"),
        "{error}"
    );
}
