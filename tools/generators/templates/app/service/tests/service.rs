//! @@crate@@ against the real PostgreSQL and a nats-server of the test's own with the lab's authorization:
//! @@crate@@ reads the deploy stream as itself, the test publishes as deployer (the only one who may).

use bus::{Deployment, Event, Publisher};
use service_kit::{HttpSettings, Service};
use testkit::TestEnv;

async fn start() -> (TestEnv, String, testkit::RunningApp) {
    let env = TestEnv::new().await;
    let config = @@module@@::Config {
        http: HttpSettings::with_port(0),
        database: env.database(),
        nats: env.nats("@@crate@@"),
        auth: env.auth(),
        shutdown_grace_secs: 5,
        ..Default::default()
    };
    let app = @@module@@::Application::build(config)
        .await
        .expect("@@crate@@ builds");
    let base = format!("http://{}", app.http_addr());
    (env, base, testkit::spawn(app))
}

#[tokio::test]
async fn deployments_heard_on_the_bus_are_listed_once_for_viewers() {
    let (env, base, app) = start().await;
    let client = testkit::http_client();
    let deployer = bus::Connection::open(&env.nats("deployer"), "deployer")
        .await
        .unwrap();
    let publisher = Publisher::new(deployer.js, env.namespace.clone(), "deployer");
    let healthy = Event::DeployHealthy(Deployment {
        app: "@@crate@@".into(),
        namespace: "apps".into(),
        revision: "4f2a9c1".into(),
        reason: None,
    });
    let envelope = publisher.publish(healthy).await.unwrap();
    publisher.publish_envelope(&envelope).await.unwrap();

    let listed = testkit::eventually(
        "the deployment is listed",
        std::time::Duration::from_secs(10),
        || async {
            let rows: serde_json::Value = client
                .get(format!("{base}/v1/deployments"))
                .bearer_auth(&env.tokens.viewer)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (!rows.as_array().unwrap().is_empty()).then_some(rows)
        },
    )
    .await;
    assert_eq!(listed[0]["revision"], "4f2a9c1");
    assert_eq!(listed[0]["status"], "healthy");
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "a republished event is recorded once"
    );

    let anonymous = client
        .get(format!("{base}/v1/deployments"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let bad = client
        .get(format!("{base}/v1/deployments?limit=0"))
        .bearer_auth(&env.tokens.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Its API is described without an identity, and what it recorded is counted once.
    let doc: serde_json::Value = client
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/deployments"]["get"].is_object(), "{doc}");
    assert_eq!(
        doc["components"]["schemas"]["HeardStatus"]["enum"],
        serde_json::json!(["synced", "healthy", "degraded", "rolled_back"])
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("homestation_@@module@@_deployments_heard_total{service=\"@@crate@@\"} 1\n"),
        "{metrics}"
    );

    app.stop().await.expect("@@crate@@ stops cleanly");
}
