//! The backup binary: everything it does is in the library; see `backup::Application`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    service_kit::run::<backup::Application>(env!("CARGO_PKG_VERSION")).await
}
