//! The secrets-rotator binary: everything it does is in the library; see `secrets_rotator::Application`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::run::<secrets_rotator::Application>(env!("CARGO_PKG_VERSION")).await
}
