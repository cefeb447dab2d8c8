//! Git push webhooks end to end against real PostgreSQL and NATS, with the Kubernetes API a FAKE
//! (tower-test) answering with recorded Argo CD Applications: the right apps get a sync operation, replays
//! and bad signatures get none.

use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use service_kit::HttpSettings;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const APPS: &str = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications";

fn recorded_apps() -> Value {
    let guestbook: Value =
        serde_saphyr::from_str(include_str!("fixtures/application-guestbook.yaml")).unwrap();
    let mut billing = guestbook.clone();
    billing["metadata"]["name"] = json!("billing");
    billing["spec"]["source"]["path"] = json!("apps/billing");
    let mut elsewhere = guestbook.clone();
    elsewhere["metadata"]["name"] = json!("elsewhere");
    elsewhere["spec"]["source"]["repoURL"] = json!("https://github.com/someone/else.git");
    json!({ "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationList", "metadata": { "resourceVersion": "48300" },
            "items": [guestbook, billing, elsewhere] })
}

struct Fake {
    handle: Handle,
}

impl Fake {
    /// Answers the next request, which must be `method` on `path`; returns the body it carried.
    async fn answer(&mut self, method: Method, path: &str, reply: Value) -> Value {
        let (request, send) =
            tokio::time::timeout(Duration::from_secs(5), self.handle.next_request())
                .await
                .expect("the deployer called the API")
                .expect("a request");
        assert_eq!((request.method(), request.uri().path()), (&method, path));
        let body = request.into_body().collect_bytes().await.unwrap();
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                .unwrap(),
        );
        if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        }
    }

    async fn no_call(&mut self) {
        let next =
            tokio::time::timeout(Duration::from_millis(300), self.handle.next_request()).await;
        assert!(next.is_err(), "the deployer must not call the API");
    }
}

const SECRET: &str = "a-webhook-secret-made-for-this-test";

fn github_push(delivery: &str, changed: &[&str]) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let body = serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "before": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
        "after": "77aa88bb99cc00dd11ee22ff3344556677889900",
        "repository": { "clone_url": "https://github.com/lab/gitops.git", "ssh_url": "git@github.com:lab/gitops.git",
                        "html_url": "https://github.com/lab/gitops", "default_branch": "main" },
        "commits": [{ "id": "77aa88bb", "timestamp": "2026-11-26T02:00:00+00:00", "added": [], "removed": [], "modified": changed }],
        "head_commit": { "id": "77aa88bb", "timestamp": "2026-11-26T02:00:00+00:00", "added": [], "removed": [], "modified": changed }
    }))
    .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let signature = format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, &body).as_ref())
    );
    (
        vec![
            ("x-github-event", "push".into()),
            ("x-github-delivery", delivery.into()),
            ("x-hub-signature-256", signature),
        ],
        body,
    )
}

async fn start() -> (String, testkit::TestEnv, Fake, testkit::RunningApp) {
    let env = testkit::TestEnv::new().await;
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "argocd");
    let config = deployer::Config {
        http: HttpSettings::with_port(0),
        database: env.database(),
        nats: env.nats("deployer"),
        auth: env.auth(),
        repositories: vec![deployer::Repository {
            url: "git@github.com:lab/gitops.git".into(),
            secret: secrecy::SecretString::from(SECRET),
        }],
        // The Application watcher has tests of its own (tests/watch.rs); here the fake sees webhook calls only.
        watch: false,
        ..Default::default()
    };
    let app = deployer::Application::with_kube_client(config, client)
        .await
        .unwrap();
    let base = format!("http://{}", app.http_addr());
    (base, env, Fake { handle }, testkit::spawn(app))
}

async fn deliver(base: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
    let mut request = testkit::http_client()
        .post(format!("{base}/v1/webhooks/git"))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_push_syncs_exactly_the_apps_it_changed_and_a_replay_syncs_nothing() {
    let (base, env, mut fake, running) = start().await;
    let (headers, body) = github_push("delivery-1", &["apps/guestbook/deployment.yaml"]);
    let sent = tokio::spawn({
        let (base, headers, body) = (base.clone(), headers.clone(), body.clone());
        async move { deliver(&base, &headers, body).await }
    });
    fake.answer(Method::GET, APPS, recorded_apps()).await;
    let patch = fake
        .answer(
            Method::PATCH,
            &format!("{APPS}/guestbook"),
            recorded_apps()["items"][0].clone(),
        )
        .await;
    let (status, outcome) = sent.await.unwrap();
    assert_eq!(status, 202, "{outcome}");
    assert_eq!(outcome["synced"], json!(["argocd/guestbook"]));
    assert_eq!(
        patch["operation"]["sync"]["revision"],
        "77aa88bb99cc00dd11ee22ff3344556677889900"
    );
    assert_eq!(
        patch["operation"]["initiatedBy"]["username"],
        "homestation-deployer"
    );
    assert_eq!(
        patch["metadata"]["annotations"]["argocd.argoproj.io/refresh"],
        "normal"
    );

    let (status, replay) = deliver(&base, &headers, body).await;
    assert_eq!((status, &replay["replayed"]), (200, &json!(true)));
    fake.no_call().await;

    let deployments: Value = testkit::http_client()
        .get(format!("{base}/v1/deployments?app=guestbook"))
        .bearer_auth(&env.tokens.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deployments.as_array().unwrap().len(), 1);
    assert_eq!(deployments[0]["status"], "requested");
    assert_eq!(deployments[0]["committed_at"], "2026-11-26T02:00:00Z");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn bad_signatures_unknown_repositories_and_malformed_payloads_are_refused_without_a_sync() {
    let (base, _env, mut fake, running) = start().await;
    let (mut headers, body) = github_push("delivery-2", &["apps/guestbook/x"]);
    headers[2].1 = format!("sha256={}", "00".repeat(32));
    let (status, refused) = deliver(&base, &headers, body.clone()).await;
    assert_eq!(status, 401, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature")
    );

    let other = String::from_utf8(body)
        .unwrap()
        .replace("lab/gitops", "lab/unknown");
    let (headers, _) = github_push("delivery-3", &[]);
    let (status, refused) = deliver(&base, &headers, other.into_bytes()).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown repository"),
        "{refused}"
    );

    let (status, refused) = deliver(&base, &headers, b"{not json".to_vec()).await;
    assert_eq!(status, 400, "{refused}");
    let (status, _) = deliver(
        &base,
        &[("x-github-event", "issues".into())],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "only pushes deploy");
    fake.no_call().await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn sync_and_rollback_on_request_with_roles_and_auto_sync_respected() {
    let (base, env, mut fake, running) = start().await;
    let post = |path: &str, token: &str| {
        testkit::http_client()
            .post(format!("{base}{path}"))
            .bearer_auth(token.to_owned())
            .json(&json!({}))
            .send()
    };
    let viewer = post("/v1/apps/guestbook/sync", &env.tokens.viewer)
        .await
        .unwrap();
    assert_eq!(viewer.status(), 403);
    fake.no_call().await;

    let guestbook = recorded_apps()["items"][0].clone();
    let sent = tokio::spawn(post("/v1/apps/guestbook/sync", &env.tokens.developer));
    fake.answer(Method::GET, &format!("{APPS}/guestbook"), guestbook.clone())
        .await;
    let patch = fake
        .answer(
            Method::PATCH,
            &format!("{APPS}/guestbook"),
            guestbook.clone(),
        )
        .await;
    let accepted: Value = sent.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(
        accepted["revision"], "HEAD",
        "the app's own target revision"
    );
    assert_eq!(patch["operation"]["sync"]["revision"], "HEAD");

    // The recorded app has auto-sync: a rollback would be undone at once, so it is refused.
    let sent = tokio::spawn(post("/v1/apps/guestbook/rollback", &env.tokens.admin));
    fake.answer(Method::GET, &format!("{APPS}/guestbook"), guestbook.clone())
        .await;
    let refused = sent.await.unwrap().unwrap();
    assert_eq!(refused.status(), 409);

    // Without auto-sync it goes to the newest earlier revision in the history.
    let mut manual = guestbook.clone();
    manual["spec"]["syncPolicy"] = json!({ "syncOptions": ["CreateNamespace=true"] });
    let sent = tokio::spawn(post("/v1/apps/guestbook/rollback", &env.tokens.admin));
    fake.answer(Method::GET, &format!("{APPS}/guestbook"), manual.clone())
        .await;
    let patch = fake
        .answer(Method::PATCH, &format!("{APPS}/guestbook"), manual)
        .await;
    let accepted: Value = sent.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(
        accepted["revision"],
        "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
    );
    assert_eq!(
        patch["operation"]["sync"]["revision"],
        "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn with_argo_cd_s_rest_api_configured_syncs_go_there_with_its_token() {
    // A FAKE Argo CD API server: it records what it is asked.
    let asked: std::sync::Arc<std::sync::Mutex<Vec<(String, String, Value)>>> = Default::default();
    let record = asked.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let argocd = format!("http://{}", listener.local_addr().unwrap());
    let fake_argocd = axum::Router::new().route(
        "/api/v1/applications/{name}/sync",
        axum::routing::post(
            move |axum::extract::Path(name): axum::extract::Path<String>,
                  headers: axum::http::HeaderMap,
                  body: axum::Json<Value>| {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                record.lock().unwrap().push((name, auth, body.0));
                async { axum::Json(json!({})) }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, fake_argocd).await });

    let env = testkit::TestEnv::new().await;
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let mut fake = Fake { handle };
    let config = deployer::Config {
        http: HttpSettings::with_port(0),
        database: env.database(),
        nats: env.nats("deployer"),
        auth: env.auth(),
        repositories: vec![deployer::Repository {
            url: "https://github.com/lab/gitops".into(),
            secret: secrecy::SecretString::from(SECRET),
        }],
        argocd_api: Some(deployer::ArgoApiSettings {
            url: argocd,
            token: secrecy::SecretString::from("argocd-token-made-for-this-test"),
        }),
        watch: false,
        ..Default::default()
    };
    let app = deployer::Application::with_kube_client(config, kube::Client::new(service, "argocd"))
        .await
        .unwrap();
    let base = format!("http://{}", app.http_addr());
    let running = testkit::spawn(app);
    let (headers, body) = github_push("delivery-rest", &["apps/billing/values.yaml"]);
    let sent = tokio::spawn(async move { deliver(&base, &headers, body).await });
    fake.answer(Method::GET, APPS, recorded_apps()).await;
    let (status, outcome) = sent.await.unwrap();
    assert_eq!(status, 202, "{outcome}");
    assert_eq!(outcome["synced"], json!(["argocd/billing"]));
    fake.no_call().await;
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].0, "billing");
    assert_eq!(asked[0].1, "Bearer argocd-token-made-for-this-test");
    assert_eq!(
        asked[0].2["revision"],
        "77aa88bb99cc00dd11ee22ff3344556677889900"
    );
    running.stop().await.unwrap();
}
