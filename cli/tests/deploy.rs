//! `homestation deploy` against a running deployer (real PostgreSQL and NATS; the Kubernetes API a FAKE
//! that knows no Application).

use std::process::Output;

use http::{Request, Response};
use kube::client::Body;
use service_kit::HttpSettings;

async fn homestation(server: &str, token: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_homestation"))
        .args(args)
        .env("HOMESTATION_DEPLOY_SERVER", server)
        .env("HOMESTATION_TOKEN", token)
        // No contexts of whoever runs the tests: an absent config file.
        .env("HOMESTATION_CONFIG", "/nonexistent/homestation/config.toml")
        .env_remove("HOMESTATION_TOKEN_FILE")
        .output()
        .await
        .expect("the CLI runs")
}

#[tokio::test]
async fn status_history_and_a_sync_of_an_unknown_app() {
    let env = testkit::TestEnv::new().await;
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((_, send)) = handle.next_request().await {
            let status = serde_json::json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "applications.argoproj.io \"nope\" not found", "reason": "NotFound", "code": 404 });
            send.send_response(
                Response::builder()
                    .status(404)
                    .body(Body::from(serde_json::to_vec(&status).unwrap()))
                    .unwrap(),
            );
        }
    });
    let app = deployer::Application::with_kube_client(
        deployer::Config {
            http: HttpSettings::with_port(0),
            database: env.database(),
            nats: env.nats("deployer"),
            auth: env.auth(),
            watch: false,
            ..Default::default()
        },
        kube::Client::new(service, "argocd"),
    )
    .await
    .unwrap();
    let server = format!("http://{}", app.http_addr());
    let running = testkit::spawn(app);
    let pool = sqlx::PgPool::connect(&env.db.url).await.unwrap();
    for (commit, status) in [
        ("aaaaaaaaaaaa1111", "healthy"),
        ("bbbbbbbbbbbb2222", "rolled_back"),
    ] {
        sqlx::query("INSERT INTO deployments (id, namespace, app, commit, webhook_at, status) VALUES ($1, 'argocd', 'shop', $2, now(), $3)")
            .bind(uuid::Uuid::now_v7())
            .bind(commit)
            .bind(status)
            .execute(&pool)
            .await
            .unwrap();
    }
    let viewer = env.tokens.viewer.as_str();
    let history = String::from_utf8(
        homestation(&server, viewer, &["deploy", "history", "shop"])
            .await
            .stdout,
    )
    .unwrap();
    assert!(
        history.contains("aaaaaaaaaaaa") && history.contains("rolled_back"),
        "{history}"
    );
    let status = String::from_utf8(
        homestation(&server, viewer, &["deploy", "status"])
            .await
            .stdout,
    )
    .unwrap();
    assert_eq!(
        status.lines().count(),
        2,
        "a header and the newest deployment of shop: {status}"
    );
    assert!(status.contains("bbbbbbbbbbbb"));
    let unknown = homestation(&server, &env.tokens.developer, &["deploy", "sync", "nope"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no Argo CD Application nope"));
    running.stop().await.unwrap();
}
