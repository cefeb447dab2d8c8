//! Webhook received → sync operation written, with 100 Argo CD Applications, through the real deployer
//! (HMAC check, delivery ledger in PostgreSQL, listing and matching 100 Applications, the patch, the
//! deployment row), beside the floor: the same sync patch written directly by a client. The Kubernetes API is
//! an in-process fake answering at once, so both numbers are HomeStation's own time.
//! Goal (issue 6): p99 under 100 ms for 100 apps.
//!
//! `make bench-deploy` runs it in release mode. PUSHES overrides the count (default 500).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use deployer::argo::Application;
use homestation_bench::{append_result, quantile};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use service_kit::HttpSettings;

const APPS: usize = 100;
const SECRET: &str = "a-benchmark-webhook-secret-made-here";

fn applications() -> Value {
    let items: Vec<Value> = (0..APPS)
        .map(|i| {
            json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": { "name": format!("app-{i:03}"), "namespace": "argocd", "resourceVersion": "1" },
                "spec": { "project": "default",
                          "source": { "repoURL": "https://github.com/lab/gitops.git", "path": format!("apps/app-{i:03}"), "targetRevision": "HEAD" },
                          "destination": { "server": "https://kubernetes.default.svc", "namespace": format!("app-{i:03}") } },
                "status": { "sync": { "status": "Synced", "revision": "0" }, "health": { "status": "Healthy" } }
            })
        })
        .collect();
    json!({ "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationList", "metadata": { "resourceVersion": "1" }, "items": items })
}

/// A fake Kubernetes API: lists the apps, and notes when each app's sync operation arrives.
fn fake_api() -> (kube::Client, Arc<Mutex<HashMap<String, Instant>>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let patched: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = patched.clone();
    let list = serde_json::to_vec(&applications()).unwrap();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let name = request
                .uri()
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            if request.method() == http::Method::PATCH {
                seen.lock().unwrap().insert(name.clone(), Instant::now());
                let app = json!({ "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                    "metadata": { "name": name, "namespace": "argocd" }, "spec": {} });
                send.send_response(
                    Response::builder()
                        .body(Body::from(serde_json::to_vec(&app).unwrap()))
                        .unwrap(),
                );
            } else {
                send.send_response(Response::builder().body(Body::from(list.clone())).unwrap());
            }
        }
    });
    (kube::Client::new(service, "argocd"), patched)
}

fn push(i: usize) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let app = format!("app-{:03}", i % APPS);
    let body = serde_json::to_vec(&json!({
        "ref": "refs/heads/main", "after": format!("{:040x}", i + 1),
        "repository": { "clone_url": "https://github.com/lab/gitops.git", "default_branch": "main" },
        "commits": [{ "modified": [format!("apps/{app}/values.yaml")], "timestamp": "2026-11-26T00:00:00Z" }]
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
            ("x-github-delivery", format!("bench-{i}")),
            ("x-hub-signature-256", signature),
        ],
        body,
    )
}

#[tokio::main]
async fn main() {
    let pushes: usize = std::env::var("PUSHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let env = testkit::TestEnv::new().await;
    let (client, patched) = fake_api();
    let app = deployer::Application::with_kube_client(
        deployer::Config {
            http: HttpSettings::with_port(0),
            database: env.database(),
            nats: env.nats("deployer"),
            auth: env.auth(),
            repositories: vec![deployer::Repository {
                url: "https://github.com/lab/gitops".into(),
                secret: secrecy::SecretString::from(SECRET),
            }],
            watch: false,
            ..Default::default()
        },
        client.clone(),
    )
    .await
    .expect("the deployer builds");
    let base = format!("http://{}/v1/webhooks/git", app.http_addr());
    let running = testkit::spawn(app);
    let http = testkit::http_client();

    let mut full = Vec::with_capacity(pushes);
    for i in 0..pushes + 20 {
        let (headers, body) = push(i);
        let app = format!("app-{:03}", i % APPS);
        patched.lock().unwrap().remove(&app);
        let mut request = http.post(&base).body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let sent = Instant::now();
        let answer = request.send().await.expect("the webhook answers");
        assert_eq!(
            answer.status(),
            202,
            "{}",
            answer.text().await.unwrap_or_default()
        );
        let written = patched
            .lock()
            .unwrap()
            .get(&app)
            .copied()
            .expect("the sync operation was written");
        if i >= 20 {
            full.push(written.duration_since(sent).as_secs_f64() * 1000.0);
        }
    }

    let apps: kube::Api<Application> = kube::Api::namespaced(client, "argocd");
    let mut floor = Vec::with_capacity(pushes);
    for i in 0..pushes + 20 {
        let app = format!("app-{:03}", i % APPS);
        let sent = Instant::now();
        deployer::sync::request_sync(&apps, &app, &format!("{i:040x}"), "benchmark floor")
            .await
            .unwrap();
        if i >= 20 {
            floor.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
    }
    running.stop().await.unwrap();

    let (p50, p99) = (quantile(&mut full, 0.5), quantile(&mut full, 0.99));
    let (f50, f99) = (quantile(&mut floor, 0.5), quantile(&mut floor, 0.99));
    let table = format!(
        "\n## {} — {pushes} pushes, {APPS} Applications\n\n| path | p50 ms | p99 ms |\n|---|---|---|\n\
         | webhook → sync operation written (deployer) | {p50:.2} | {p99:.2} |\n\
         | the sync patch alone (floor) | {f50:.2} | {f99:.2} |\n\
         | ratio deployer / floor | {:.1} | {:.1} |\n\ngoal: p99 under 100 ms — {}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        p50 / f50,
        p99 / f99,
        if p99 < 100.0 { "met" } else { "NOT met" }
    );
    println!("{table}");
    append_result("deploy-webhook", &table);
}
