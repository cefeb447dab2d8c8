//! The api-load baseline: inventory's two hot reads served by axum and a sqlx pool and nothing else — no
//! authentication, tracing, metrics, request ids or error mapping. Same queries (inventory's own `store`
//! functions), same pool size, same database. On `127.0.0.1:$PORT`, reading `$DATABASE_URL`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use inventory::domain::NodeKind;
use inventory::store::{self, CountColumn, Counted, Key};
use sqlx::PgPool;

async fn node(State(pool): State<PgPool>, Path(node): Path<String>) -> Response {
    match store::get_node(&pool, &Key::parse(&node)).await {
        Ok(Some(node)) => axum::Json(node).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The summary's reads in one read-only snapshot, returned as they come.
async fn summary(State(pool): State<PgPool>) -> Result<Response, StatusCode> {
    let fail = |_| StatusCode::INTERNAL_SERVER_ERROR;
    let mut tx = pool.begin().await.map_err(fail)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    let edge = store::list_nodes(&mut *tx, Some(NodeKind::Edge), None)
        .await
        .map_err(fail)?;
    let mut counts = Vec::new();
    for (table, column) in [
        (Counted::Nodes, CountColumn::Health),
        (Counted::Nodes, CountColumn::Kind),
        (Counted::Services, CountColumn::Health),
    ] {
        counts.push(
            store::count_by(&mut *tx, table, column)
                .await
                .map_err(fail)?,
        );
    }
    let mut activity = Vec::new();
    for kind in ["deploy", "backup", "drill", "secret"] {
        activity.push(store::latest_activity(&mut *tx, kind).await.map_err(fail)?);
    }
    tx.commit().await.map_err(fail)?;
    Ok(
        axum::Json(serde_json::json!({ "edge": edge, "counts": counts, "activity": activity }))
            .into_response(),
    )
}

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL names inventory's database");
    // inventory's default pool size (DatabaseSettings::max_connections).
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect(&url)
        .await
        .expect("the database answers");
    let listener = homestation_bench::listener().await;
    let app = axum::Router::new()
        .route("/v1/nodes/{node}", get(node))
        .route("/v1/summary", get(summary))
        .route("/readyz", get(|| async { "ok" }))
        .with_state(pool);
    axum::serve(listener, app).await.expect("serving");
}
