//! The inventory binary: everything it does is in the library; see `inventory::Application`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::run::<inventory::Application>(env!("CARGO_PKG_VERSION")).await
}
