//! Rolling Deployments against a FAKE Kubernetes API: tower-test's mock checks the merge patch the
//! rotator sends and answers with a recorded Deployment.

use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn recorded_deployment(version: &str) -> Value {
    let mut d: Value = serde_json::from_str(include_str!("fixtures/deployment-shop.json")).unwrap();
    d["spec"]["template"]["metadata"]["annotations"]["homestation.io/secret-shop-api"] =
        json!(version);
    d
}

async fn next(
    handle: &mut Handle,
) -> (
    Method,
    String,
    Vec<u8>,
    tower_test::mock::SendResponse<Response<Body>>,
) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("the rotator called the API")
        .expect("a request");
    let method = request.method().clone();
    let uri = request.uri().to_string();
    let content_type = request
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    let body = request.into_body().collect_bytes().await.unwrap().to_vec();
    (method, uri, body, send)
}

#[tokio::test]
async fn the_pod_template_gets_the_new_version_so_the_pods_roll() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let api = tokio::spawn(async move {
        let (method, uri, body, send) = next(&mut handle).await;
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(
                    serde_json::to_vec(&recorded_deployment("7")).unwrap(),
                ))
                .unwrap(),
        );
        (method, uri, serde_json::from_slice::<Value>(&body).unwrap())
    });
    secrets_rotator::rollout::annotate(client, "apps", "shop", "shop-api", 7)
        .await
        .expect("the patch applies");
    let (method, uri, body) = api.await.unwrap();
    assert_eq!(method, Method::PATCH);
    assert!(
        uri.starts_with("/apis/apps/v1/namespaces/apps/deployments/shop?"),
        "{uri}"
    );
    assert!(
        uri.contains("fieldManager=homestation-secrets-rotator"),
        "{uri}"
    );
    assert_eq!(
        body,
        json!({ "spec": { "template": { "metadata": { "annotations": { "homestation.io/secret-shop-api": "7" } } } } }),
        "only the annotation: nothing else of the Deployment is touched"
    );
}

#[tokio::test]
async fn a_missing_deployment_is_an_error_that_names_it() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    tokio::spawn(async move {
        let (_, _, _, send) = next(&mut handle).await;
        let status = json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "deployments.apps \"shop\" not found", "reason": "NotFound", "code": 404 });
        send.send_response(
            Response::builder()
                .status(404)
                .body(Body::from(serde_json::to_vec(&status).unwrap()))
                .unwrap(),
        );
    });
    let error = secrets_rotator::rollout::annotate(client, "apps", "shop", "shop-api", 7)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not found"), "{error}");
}
