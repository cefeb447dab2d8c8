//! The Node reconciler against a FAKE Kubernetes API: tower-test's mock answers with a recorded Node object
//! (as a K3s agent on a Jetson reports it) and checks each request. PostgreSQL is real.

use std::time::Duration;

use edge_registry::kube_nodes::{Reconciler, Report};
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use uuid::Uuid;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const NODE_PATH: &str = "/api/v1/nodes/jetson-orin-1";

fn recorded_node() -> Value {
    serde_json::from_str(include_str!("fixtures/node-jetson-orin-1.json")).unwrap()
}

/// Answers the next request, which must be `method` on `path`; returns the request body.
async fn answer(
    handle: &mut Handle,
    method: Method,
    path: &str,
    status: u16,
    body: Value,
) -> Value {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("the reconciler called the API")
        .expect("a request");
    assert_eq!(request.method(), method);
    assert_eq!(request.uri().path(), path);
    if method == Method::PATCH {
        assert_eq!(
            request.headers()["content-type"],
            "application/merge-patch+json"
        );
        assert!(
            request
                .uri()
                .query()
                .unwrap_or_default()
                .contains("fieldManager=homestation-edge-registry")
        );
    }
    let sent = request.into_body().collect_bytes().await.unwrap();
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
    if sent.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&sent).unwrap()
    }
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "nodes \"jetson-orin-1\" not found", "reason": "NotFound", "code": 404})
}

async fn setup() -> (sqlx::PgPool, Reconciler, Handle, Uuid) {
    let db = testkit::database().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::migrate!("./migrations").run(&pool).await.unwrap();
    let token = Uuid::now_v7();
    sqlx::query("INSERT INTO join_tokens (id, sha256, created_by, expires_at) VALUES ($1, 'x', 'test', now())").bind(token).execute(&pool).await.unwrap();
    let node = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO edge_nodes (id, name, tailnet_ip, dns_name, facts, labels, taints, token_id)
         VALUES ($1, 'jetson-orin-1', '100.101.102.103', 'jetson-orin-1.tail1234.ts.net', '{}', $2, $3, $4)",
    )
    .bind(node)
    .bind(json!({"homestation.io/jetpack": "6.0", "nvidia.com/gpu.present": "true"}))
    .bind(json!(["nvidia.com/gpu=true:NoSchedule"]))
    .bind(token)
    .execute(&pool)
    .await
    .unwrap();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let reconciler = Reconciler::new(client, pool.clone(), true);
    (pool, reconciler, handle, node)
}

async fn set_state(pool: &sqlx::PgPool, state: &str) {
    sqlx::query("UPDATE edge_nodes SET state = $1")
        .bind(state)
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn labels_once_registered_then_cordons_while_offline() {
    let (pool, reconciler, mut handle, _) = setup().await;

    // The agent has enrolled but k3s has not registered the node yet.
    let (report, _) = tokio::join!(
        reconciler.reconcile_once(),
        answer(&mut handle, Method::GET, NODE_PATH, 404, not_found())
    );
    assert_eq!(
        report.unwrap(),
        Report {
            not_registered: vec!["jetson-orin-1".into()],
            ..Default::default()
        }
    );

    // Registered: labels merge in; our taint joins the one an admin set.
    let exchange = async {
        answer(&mut handle, Method::GET, NODE_PATH, 200, recorded_node()).await;
        answer(&mut handle, Method::PATCH, NODE_PATH, 200, recorded_node()).await
    };
    let (report, patch) = tokio::join!(reconciler.reconcile_once(), exchange);
    assert_eq!(report.unwrap().labeled, ["jetson-orin-1"]);
    assert_eq!(
        patch["metadata"]["labels"],
        json!({"homestation.io/jetpack": "6.0", "nvidia.com/gpu.present": "true"})
    );
    assert_eq!(
        patch["spec"]["taints"],
        json!([{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}, {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}])
    );
    let labeled: bool = sqlx::query_scalar("SELECT kube_labeled_at IS NOT NULL FROM edge_nodes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(labeled);

    // Nothing to do: no API call at all (the mock would hang the reconcile if one were made).
    let quiet = tokio::time::timeout(Duration::from_secs(2), reconciler.reconcile_once())
        .await
        .expect("no API call")
        .unwrap();
    assert_eq!(quiet, Report::default());

    set_state(&pool, "offline").await;
    let exchange = async {
        answer(&mut handle, Method::GET, NODE_PATH, 200, recorded_node()).await;
        answer(&mut handle, Method::PATCH, NODE_PATH, 200, recorded_node()).await
    };
    let (report, patch) = tokio::join!(reconciler.reconcile_once(), exchange);
    assert_eq!(report.unwrap().cordoned, ["jetson-orin-1"]);
    assert_eq!(patch, json!({"spec": {"unschedulable": true}}));

    set_state(&pool, "online").await;
    let mut cordoned = recorded_node();
    cordoned["spec"]["unschedulable"] = json!(true);
    let exchange = async {
        answer(&mut handle, Method::GET, NODE_PATH, 200, cordoned.clone()).await;
        answer(&mut handle, Method::PATCH, NODE_PATH, 200, recorded_node()).await
    };
    let (report, patch) = tokio::join!(reconciler.reconcile_once(), exchange);
    assert_eq!(report.unwrap().uncordoned, ["jetson-orin-1"]);
    assert_eq!(patch, json!({"spec": {"unschedulable": false}}));
}

#[tokio::test]
async fn a_node_whose_addresses_lack_the_tailnet_ip_is_never_patched() {
    let (pool, reconciler, mut handle, _) = setup().await;
    set_state(&pool, "offline").await;
    // A machine of that name on another address: the control plane, say, whose name an enrolment took.
    let mut other = recorded_node();
    other["status"]["addresses"] = json!([
        {"type": "InternalIP", "address": "100.64.0.1"},
        {"type": "Hostname", "address": "jetson-orin-1"}
    ]);
    for _ in 0..2 {
        let (report, _) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(5), reconciler.reconcile_once()),
            // Only the GET is answered: a PATCH would wait for an answer until the timeout.
            answer(&mut handle, Method::GET, NODE_PATH, 200, other.clone())
        );
        assert_eq!(
            report.expect("no PATCH was attempted").unwrap(),
            Report {
                not_the_enrolled_machine: vec!["jetson-orin-1".into()],
                ..Default::default()
            }
        );
    }
    let (labeled, cordoned): (bool, bool) =
        sqlx::query_as("SELECT kube_labeled_at IS NOT NULL, kube_cordoned FROM edge_nodes")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!labeled && !cordoned, "neither labelled nor cordoned");
}

fn pod(namespace: &str, name: &str, owner: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": namespace,
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner, "name": "x", "uid": "u1"}]},
           "spec": {"nodeName": "jetson-orin-1", "containers": []},
           "status": {"phase": "Running"}})
}

fn pods_on_node(items: Vec<Value>) -> Value {
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
}

/// Answers the pod list of the node, checking it asks for the node's pods only.
async fn answer_pods(handle: &mut Handle, items: Vec<Value>) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("the reconciler listed the pods")
        .expect("a request");
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri().path(), "/api/v1/pods");
    let query = request.uri().query().unwrap_or_default().to_owned();
    assert!(
        query.contains("fieldSelector=spec.nodeName%3Djetson-orin-1"),
        "{query}"
    );
    send.send_response(
        Response::builder()
            .body(Body::from(
                serde_json::to_vec(&pods_on_node(items)).unwrap(),
            ))
            .unwrap(),
    );
}

const EVICTION: &str = "/api/v1/namespaces/ml/pods/infer-0/eviction";

#[tokio::test]
async fn a_removed_node_is_cordoned_drained_through_evictions_and_deleted() {
    let (pool, reconciler, mut handle, _) = setup().await;
    sqlx::query("UPDATE edge_nodes SET kube_labeled_at = now(), removing_since = now(), removed_by = 'admin'")
        .execute(&pool)
        .await
        .unwrap();
    let running = vec![
        pod("ml", "infer-0", "StatefulSet"),
        pod("kube-system", "flannel-x", "DaemonSet"),
    ];
    let pdb = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "TooManyRequests", "code": 429,
        "message": "Cannot evict pod as it would violate the pod's disruption budget."});
    let evicted = json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201});

    // Tick 1: cordon, then the eviction a PodDisruptionBudget refuses; the DaemonSet's pod is left alone.
    let exchange = async {
        answer(&mut handle, Method::GET, NODE_PATH, 200, recorded_node()).await;
        let cordon = answer(&mut handle, Method::PATCH, NODE_PATH, 200, recorded_node()).await;
        answer_pods(&mut handle, running.clone()).await;
        let eviction = answer(&mut handle, Method::POST, EVICTION, 429, pdb.clone()).await;
        (cordon, eviction)
    };
    let (report, (cordon, eviction)) = tokio::join!(reconciler.reconcile_once(), exchange);
    assert_eq!(report.unwrap().draining, ["jetson-orin-1"]);
    assert_eq!(cordon, json!({"spec": {"unschedulable": true}}));
    // kube-rs posts the Eviction body as the API server accepts it: metadata.name (and delete options).
    assert_eq!(eviction["metadata"]["name"], "infer-0");

    // Tick 2: the budget allows it now.
    let mut cordoned = recorded_node();
    cordoned["spec"]["unschedulable"] = json!(true);
    let exchange = async {
        answer(&mut handle, Method::GET, NODE_PATH, 200, cordoned.clone()).await;
        answer_pods(&mut handle, running.clone()).await;
        answer(&mut handle, Method::POST, EVICTION, 201, evicted.clone()).await
    };
    let (report, _) = tokio::join!(reconciler.reconcile_once(), exchange);
    assert_eq!(
        report.unwrap().draining,
        ["jetson-orin-1"],
        "gone only once the pod is"
    );

    // Tick 3: only the DaemonSet's pod is left: the Node is deleted, and the row with it.
    let exchange = async {
        answer(&mut handle, Method::GET, NODE_PATH, 200, cordoned.clone()).await;
        answer_pods(
            &mut handle,
            vec![pod("kube-system", "flannel-x", "DaemonSet")],
        )
        .await;
        answer(
            &mut handle,
            Method::DELETE,
            NODE_PATH,
            200,
            cordoned.clone(),
        )
        .await
    };
    let (report, _) = tokio::join!(reconciler.reconcile_once(), exchange);
    assert_eq!(report.unwrap().removed, ["jetson-orin-1"]);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM edge_nodes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "the name is free again");
    let quiet = tokio::time::timeout(Duration::from_secs(2), reconciler.reconcile_once())
        .await
        .expect("no API call")
        .unwrap();
    assert_eq!(quiet, Report::default());
}

#[tokio::test]
async fn a_node_an_admin_cordoned_is_never_uncordoned() {
    let (pool, reconciler, mut handle, _) = setup().await;
    sqlx::query("UPDATE edge_nodes SET kube_labeled_at = now(), state = 'offline'")
        .execute(&pool)
        .await
        .unwrap();
    let mut cordoned = recorded_node();
    cordoned["spec"]["unschedulable"] = json!(true);
    let (report, _) = tokio::join!(
        reconciler.reconcile_once(),
        answer(&mut handle, Method::GET, NODE_PATH, 200, cordoned)
    );
    assert_eq!(
        report.unwrap(),
        Report::default(),
        "already cordoned by someone else: no patch"
    );
    set_state(&pool, "online").await;
    let quiet = tokio::time::timeout(Duration::from_secs(2), reconciler.reconcile_once())
        .await
        .expect("no API call")
        .unwrap();
    assert_eq!(quiet, Report::default(), "not ours to uncordon");
}

#[tokio::test]
async fn an_api_error_leaves_the_change_for_the_next_tick() {
    let (pool, reconciler, mut handle, _) = setup().await;
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "nodes \"jetson-orin-1\" is forbidden: User \"system:serviceaccount:homestation:edge-registry\" cannot patch resource \"nodes\""});
    let exchange = async {
        answer(&mut handle, Method::GET, NODE_PATH, 200, recorded_node()).await;
        answer(&mut handle, Method::PATCH, NODE_PATH, 403, forbidden).await
    };
    let (result, _) = tokio::join!(reconciler.reconcile_once(), exchange);
    assert!(result.unwrap_err().to_string().contains("forbidden"));
    let labeled: bool = sqlx::query_scalar("SELECT kube_labeled_at IS NOT NULL FROM edge_nodes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!labeled, "still pending, tried again next tick");
}
