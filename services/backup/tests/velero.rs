//! The Velero source against a FAKE Kubernetes API: tower-test's mock checks each request the source makes
//! and answers as a Velero server would, ending with a recorded, completed Backup object.

use std::io::Read;
use std::time::Duration;

use backup::sources::Source;
use backup::sources::velero::{Velero, VeleroSettings};
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const BACKUPS: &str = "/apis/velero.io/v1/namespaces/velero/backups";

fn recorded_completed() -> Value {
    serde_json::from_str(include_str!("fixtures/velero-backup-completed.json")).unwrap()
}

/// Answers the next request, which must be `method` on a path starting with `path`; returns (path, body sent).
async fn answer(handle: &mut Handle, method: Method, path: &str, body: Value) -> (String, Value) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("the source called the API")
        .expect("a request");
    assert_eq!(request.method(), method);
    let uri = request.uri().clone();
    assert!(uri.path().starts_with(path), "{uri}");
    let sent = request.into_body().collect_bytes().await.unwrap();
    let sent = if sent.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&sent).unwrap()
    };
    // A create is answered as the API server does: with the object as stored.
    let body = if body.is_null() && method == Method::POST {
        let mut stored = sent.clone();
        stored["metadata"]["uid"] = json!("4f1c2a9e-8d1b-4c55-9b0e-2f7a6c3d1e90");
        stored["metadata"]["resourceVersion"] = json!("918001");
        stored
    } else {
        body
    };
    send.send_response(
        Response::builder()
            .status(if method == Method::POST { 201 } else { 200 })
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
    (uri.to_string(), sent)
}

fn velero(settings: VeleroSettings) -> (Velero, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "velero");
    let settings = VeleroSettings {
        poll_secs: 0,
        ..settings
    };
    (
        Velero::new(client, "cluster", settings, chrono::Duration::days(30)),
        handle,
    )
}

fn with_phase(created: &Value, status: Value) -> Value {
    let mut object = created.clone();
    object["status"] = status;
    object
}

#[tokio::test]
async fn a_run_creates_a_backup_watches_it_complete_and_stores_the_finished_object() {
    let (source, mut handle) = velero(VeleroSettings {
        storage_location: Some("default".into()),
        excluded_namespaces: vec!["kube-system".into()],
        ..Default::default()
    });
    let api = tokio::spawn(async move {
        let (_, created) = answer(&mut handle, Method::POST, BACKUPS, Value::Null).await;
        let created_object = created.clone();
        let name = created["metadata"]["name"].as_str().unwrap().to_owned();
        let path = format!("{BACKUPS}/{name}");
        answer(
            &mut handle,
            Method::GET,
            &path,
            with_phase(&created_object, json!({})),
        )
        .await;
        answer(&mut handle, Method::GET, &path, with_phase(&created_object, json!({ "phase": "InProgress", "progress": { "itemsBackedUp": 100, "totalItems": 412 } }))).await;
        answer(&mut handle, Method::GET, &path, recorded_completed()).await;
        created
    });
    let mut stream = source.open().await.expect("the backup completes");
    let created = api.await.unwrap();

    assert_eq!(created["apiVersion"], "velero.io/v1");
    assert_eq!(created["kind"], "Backup");
    let name = created["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("hs-cluster-") && name.len() <= 63,
        "{name}"
    );
    assert_eq!(
        created["metadata"]["labels"]["homestation.io/policy"],
        "cluster"
    );
    assert_eq!(
        created["spec"],
        json!({ "includedNamespaces": ["*"], "excludedNamespaces": ["kube-system"], "storageLocation": "default", "ttl": "720h0m0s" })
    );
    let mut stored = String::new();
    stream.read_to_string(&mut stored).unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["status"]["phase"], "Completed");
    assert_eq!(stored["status"]["expiration"], "2026-12-26T01:02:03Z");
}

#[tokio::test]
async fn a_partially_failed_backup_fails_the_run_with_velero_s_reasons() {
    let (source, mut handle) = velero(VeleroSettings::default());
    let api = tokio::spawn(async move {
        let (_, created) = answer(&mut handle, Method::POST, BACKUPS, Value::Null).await;
        let name = created["metadata"]["name"].as_str().unwrap().to_owned();
        let failed = with_phase(
            &created,
            json!({ "phase": "PartiallyFailed", "errors": 2, "warnings": 1 }),
        );
        answer(
            &mut handle,
            Method::GET,
            &format!("{BACKUPS}/{name}"),
            failed,
        )
        .await;
    });
    let error = source
        .open()
        .await
        .err()
        .expect("the run fails")
        .to_string();
    api.await.unwrap();
    assert!(
        error.contains("PartiallyFailed")
            && error.contains("2 errors")
            && error.contains("velero backup logs"),
        "{error}"
    );
}

#[tokio::test]
async fn an_in_cluster_schedule_is_applied_with_the_policy_cron_and_ttl() {
    let (source, mut handle) = velero(VeleroSettings {
        in_cluster_schedule: Some("0 2 * * *".into()),
        ..Default::default()
    });
    let api = tokio::spawn(async move {
        let (uri, sent) = answer(
            &mut handle,
            Method::PATCH,
            "/apis/velero.io/v1/namespaces/velero/schedules/hs-cluster",
            json!({ "apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": { "name": "hs-cluster", "namespace": "velero" } }),
        )
        .await;
        (uri, sent)
    });
    assert_eq!(
        source.apply_schedule().await.unwrap().as_deref(),
        Some("hs-cluster")
    );
    let (uri, sent) = api.await.unwrap();
    assert!(
        uri.contains("fieldManager=homestation-backup") && uri.contains("force=true"),
        "{uri}"
    );
    assert_eq!(sent["spec"]["schedule"], "0 2 * * *");
    assert_eq!(sent["spec"]["template"]["ttl"], "720h0m0s");
    assert_eq!(sent["spec"]["useOwnerReferencesInBackup"], false);

    let (no_schedule, _handle) = velero(VeleroSettings::default());
    assert_eq!(
        no_schedule.apply_schedule().await.unwrap(),
        None,
        "nothing is applied without in_cluster_schedule"
    );
}
