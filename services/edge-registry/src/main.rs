//! The edge-registry binary: everything it does is in the library; see `edge_registry::Application`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::run::<edge_registry::Application>(env!("CARGO_PKG_VERSION")).await
}
