//! Application status transitions → the deployment timeline, events and metrics, and automatic rollback,
//! against real PostgreSQL with the Kubernetes API a FAKE (tower-test) answering with recorded Applications.

use std::sync::Arc;
use std::time::Duration;

use deployer::argo::Application;
use deployer::metrics::DeployMetrics;
use deployer::watch::Watcher;
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const APP: &str = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/guestbook";
/// A revision in the recorded app's Argo CD history.
const GOOD: &str = "5f1c2d3e4a5b6c7d8e9f00112233445566778899";
const BAD: &str = "77aa88bb99cc00dd11ee22ff3344556677889900";
/// Another revision in the recorded history.
const OLDER: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";

fn recorded() -> Value {
    serde_saphyr::from_str(include_str!("fixtures/application-guestbook.yaml")).unwrap()
}

fn at(revision: &str, health: &str) -> Application {
    let mut app = recorded();
    app["status"]["sync"]["revision"] = json!(revision);
    app["status"]["health"] = json!({ "status": health, "message": if health == "Degraded" { "Deployment guestbook-ui exceeded its progress deadline" } else { "" } });
    serde_json::from_value(app).unwrap()
}

async fn answer(handle: &mut Handle, method: Method, path: &str) -> Value {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("the watcher called the API")
        .expect("a request");
    assert_eq!((request.method(), request.uri().path()), (&method, path));
    let body = request.into_body().collect_bytes().await.unwrap();
    send.send_response(
        Response::builder()
            .status(200)
            .body(Body::from(serde_json::to_vec(&recorded()).unwrap()))
            .unwrap(),
    );
    if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    }
}

async fn setup() -> (
    Arc<Watcher>,
    Handle,
    service_kit::metrics::Metrics,
    sqlx::PgPool,
) {
    let db = testkit::database().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::migrate!("./migrations").run(&pool).await.unwrap();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let metrics = service_kit::metrics::Metrics::new("deployer");
    let applications = kube::Api::namespaced(kube::Client::new(service, "argocd"), "argocd");
    let watcher = Arc::new(Watcher {
        pool: pool.clone(),
        syncer: deployer::sync::Syncer::Kube(Box::new(applications.clone())),
        applications,
        outbox: Default::default(),
        metrics: DeployMetrics::new(&metrics),
        health_deadline: Duration::from_secs(1),
    });
    (watcher, handle, metrics, pool)
}

async fn subjects(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT subject FROM outbox ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_degraded_deployment_is_rolled_back_once_to_the_last_healthy_revision() {
    let (watcher, mut handle, metrics, pool) = setup().await;
    watcher.observe(&at(GOOD, "Healthy")).await.unwrap();
    // A webhook asked for BAD three seconds ago.
    sqlx::query(
        "INSERT INTO deployments (id, namespace, app, commit, webhook_at, sync_requested_at, status)
         VALUES ($1, 'argocd', 'guestbook', $2, now() - interval '3 seconds', now(), 'requested')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(BAD)
    .execute(&pool)
    .await
    .unwrap();
    watcher.observe(&at(BAD, "Progressing")).await.unwrap();

    let degraded = tokio::spawn({
        let w = watcher.clone();
        async move { w.observe(&at(BAD, "Degraded")).await }
    });
    let suspend = answer(&mut handle, Method::PATCH, APP).await;
    assert_eq!(
        suspend,
        json!({ "spec": { "syncPolicy": { "automated": null } } }),
        "auto-sync suspended first"
    );
    let rollback = answer(&mut handle, Method::PATCH, APP).await;
    assert_eq!(rollback["operation"]["sync"]["revision"], GOOD);
    degraded.await.unwrap().unwrap();

    // Still Degraded: nothing more is done.
    watcher.observe(&at(BAD, "Degraded")).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), handle.next_request())
            .await
            .is_err(),
        "one rollback"
    );

    // The rollback syncs and is healthy.
    watcher.observe(&at(GOOD, "Healthy")).await.unwrap();
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT commit, status, reason FROM deployments ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows[0].1, "healthy");
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str()),
        (BAD, "rolled_back")
    );
    let reason = rows[1].2.as_deref().unwrap();
    assert!(
        reason.contains("progress deadline") && reason.contains("auto-sync is suspended"),
        "{reason}"
    );
    assert_eq!(
        (rows[2].0.as_str(), rows[2].1.as_str()),
        (GOOD, "healthy"),
        "the rollback itself"
    );
    assert_eq!(
        subjects(&pool).await,
        [
            "deploy.v1.synced",
            "deploy.v1.healthy",
            "deploy.v1.synced",
            "deploy.v1.degraded",
            "deploy.v1.rolled_back",
            "deploy.v1.synced",
            "deploy.v1.healthy"
        ]
    );
    let text = metrics.encode();
    assert!(
        text.contains(
            r#"homestation_deploy_deployments_total{service="deployer",outcome="rolled_back"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn commit_to_live_is_measured_from_the_commit_and_a_missed_deadline_rolls_back() {
    let (watcher, mut handle, metrics, pool) = setup().await;
    watcher.observe(&at(GOOD, "Healthy")).await.unwrap();
    sqlx::query(
        "INSERT INTO deployments (id, namespace, app, commit, committed_at, webhook_at, status)
         VALUES ($1, 'argocd', 'guestbook', $2, now() - interval '40 seconds', now() - interval '30 seconds', 'requested')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(OLDER)
    .execute(&pool)
    .await
    .unwrap();
    watcher.observe(&at(OLDER, "Healthy")).await.unwrap();
    let text = metrics.encode();
    assert!(
        text.contains("homestation_deploy_commit_to_live_seconds_count{service=\"deployer\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "homestation_deploy_commit_to_live_seconds_bucket{le=\"60.0\",service=\"deployer\"} 1"
        ) || text.contains("le=\"60.0\""),
        "{text}"
    );

    // Synced, then stuck Progressing past the deadline (1 s here).
    sqlx::query("INSERT INTO deployments (id, namespace, app, commit, webhook_at, status) VALUES ($1, 'argocd', 'guestbook', $2, now(), 'requested')")
        .bind(uuid::Uuid::now_v7())
        .bind(BAD)
        .execute(&pool)
        .await
        .unwrap();
    watcher.observe(&at(BAD, "Progressing")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The fake answers every request with the recorded app and keeps what it was sent.
    let (sent, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (method, path) = (request.method().clone(), request.uri().path().to_owned());
            let body = request.into_body().collect_bytes().await.unwrap();
            send.send_response(
                Response::builder()
                    .status(200)
                    .body(Body::from(serde_json::to_vec(&recorded()).unwrap()))
                    .unwrap(),
            );
            let body: Value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).unwrap()
            };
            let _ = sent.send((method, path, body));
        }
    });
    assert_eq!(watcher.deadlines_passed().await.unwrap(), 1);
    let mut requests = Vec::new();
    while let Ok(r) = seen.try_recv() {
        requests.push(r);
    }
    let methods: Vec<&Method> = requests.iter().map(|(m, _, _)| m).collect();
    assert_eq!(
        methods,
        [&Method::GET, &Method::PATCH, &Method::PATCH],
        "read the app, suspend auto-sync, roll back"
    );
    assert_eq!(
        requests[2].2["operation"]["sync"]["revision"], OLDER,
        "the newest healthy revision in Argo CD's history"
    );
    let late: String = sqlx::query_scalar("SELECT reason FROM deployments WHERE commit = $1")
        .bind(BAD)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(late.contains("not Healthy 1 s after the sync"), "{late}");
}
