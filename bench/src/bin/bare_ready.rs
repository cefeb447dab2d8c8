//! The recover-time baseline: an axum server whose `/readyz` answers 200 as soon as it listens, on
//! `127.0.0.1:$PORT`. What a service cannot beat; its own start (config, migrations, NATS, streams) is the gap.

#[tokio::main]
async fn main() {
    let listener = homestation_bench::listener().await;
    let app = axum::Router::new().route("/readyz", axum::routing::get(|| async { "ok" }));
    axum::serve(listener, app).await.expect("serving");
}
