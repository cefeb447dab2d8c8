//! The @@crate@@ binary: everything it does is in the library; see `@@module@@::Application`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::run::<@@module@@::Application>(env!("CARGO_PKG_VERSION")).await
}
