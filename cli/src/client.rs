//! The HTTP client of the CLI: identity from the environment, and errors that say what to do.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

pub const TOKEN_VAR: &str = "HOMESTATION_TOKEN";
pub const TOKEN_FILE_VAR: &str = "HOMESTATION_TOKEN_FILE";
/// How long a request may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// For requests that read a whole backup (verify, restore, drills).
pub const LONG_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "cannot reach {server} ({reason}).\n  Is the service running? `make dev` starts them; `homestation context show` says where each service is looked for, and a context (`homestation context use NAME`) or a --*-server flag points elsewhere."
    )]
    Unreachable { server: String, reason: String },
    #[error(
        "no identity: set {TOKEN_VAR} to a service token, or {TOKEN_FILE_VAR} to a file holding one, or give the context a token file (`homestation context set NAME --token-file FILE`); `make dev` writes .dev/admin.token"
    )]
    NoToken,
    #[error("cannot read the token file {path}: {reason}")]
    TokenFile { path: String, reason: String },
    #[error(
        "the server refused your identity: {0}\n  Check {TOKEN_VAR}; the token's SHA-256 must be in the server's auth.service_tokens."
    )]
    Unauthorized(String),
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Rejected(String),
    #[error("the server failed: {0}")]
    Server(String),
    /// The command ran, and what it found is a failure (a backup that does not verify, a failed drill).
    #[error("{0}")]
    Failed(String),
    #[error("{server} is not a valid server URL: {reason}")]
    BadServer { server: String, reason: String },
    /// A local command's input is wrong (a missing option, an unreadable file).
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::NotFound(_) | Self::Rejected(_) | Self::Failed(_) => 1,
            Self::NoToken | Self::TokenFile { .. } | Self::BadServer { .. } | Self::Usage(_) => 2,
            Self::Unreachable { .. } | Self::Server(_) => 3,
            Self::Unauthorized(_) | Self::Forbidden(_) => 4,
        })
    }
}

pub struct Client {
    http: reqwest::Client,
    server: String,
    token: String,
}

/// Escapes a value for use as one path segment.
pub fn segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

impl Client {
    /// A client of `server` with the identity of the environment, else of `context_token_file` (the
    /// context's).
    pub fn from_env(
        server: &str,
        timeout: Duration,
        context_token_file: Option<&std::path::Path>,
    ) -> Result<Self, CliError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bad = |reason: &str| CliError::BadServer {
            server: server.to_owned(),
            reason: reason.to_owned(),
        };
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(bad("it must start with http:// or https://"));
        }
        let token_file = std::env::var_os(TOKEN_FILE_VAR)
            .map(PathBuf::from)
            .or_else(|| context_token_file.map(std::path::Path::to_path_buf));
        let token = match (std::env::var(TOKEN_VAR), token_file) {
            (Ok(token), _) if !token.trim().is_empty() => token.trim().to_owned(),
            (_, Some(path)) => std::fs::read_to_string(&path)
                .map_err(|e| CliError::TokenFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?
                .trim()
                .to_owned(),
            _ => return Err(CliError::NoToken),
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            http,
            server: server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.delete(self.url(path))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let response =
            request
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| CliError::Unreachable {
                    server: self.server.clone(),
                    reason: root_cause(&e),
                })?;
        let status = response.status().as_u16();
        let body: Value = if status == 204 {
            Value::Null
        } else {
            response.json().await.unwrap_or(Value::Null)
        };
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = body["error"]["message"]
            .as_str()
            .map_or_else(|| format!("HTTP {status}"), str::to_owned);
        Err(match status {
            401 => CliError::Unauthorized(message),
            403 => CliError::Forbidden(message),
            404 => CliError::NotFound(message),
            400 | 409 | 422 => CliError::Rejected(message),
            _ => {
                let id = body["error"]["request_id"].as_str().unwrap_or("none");
                CliError::Server(format!("{message} (HTTP {status}, request id {id})"))
            }
        })
    }
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
