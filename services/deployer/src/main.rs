//! The deployer binary: everything it does is in the library; see `deployer::Application`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::run::<deployer::Application>(env!("CARGO_PKG_VERSION")).await
}
