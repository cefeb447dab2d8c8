//! Git push webhooks from GitHub, Gitea/Forgejo and GitLab: which provider sent it, who it claims to be
//! from, whether the signature (or token) proves it, and what changed. Parsing comes before verification
//! (the repository names the secret to verify with), so payloads are size-limited by the server first.

use std::collections::BTreeSet;

use axum::http::HeaderMap;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    Gitea,
    GitLab,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Gitea => "gitea",
            Provider::GitLab => "gitlab",
        }
    }
}

/// A push as the deployer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub provider: Provider,
    /// The provider's id of this delivery: a replay carries the same one.
    pub delivery: String,
    /// Every URL the repository is known by (HTTPS, SSH, web).
    pub repository_urls: Vec<String>,
    /// `main` for `refs/heads/main`.
    pub branch: String,
    /// The repository's default branch, which Argo CD's `HEAD` follows.
    pub default_branch: Option<String>,
    pub commit: String,
    pub committed_at: Option<String>,
    pub changed_paths: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("not a push webhook from GitHub, Gitea/Forgejo or GitLab (no event header)")]
    UnknownProvider,
    #[error("event {0:?} is not a push; only pushes deploy")]
    NotAPush(String),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("the payload does not parse: {0}")]
    Malformed(String),
    #[error("the signature does not match the repository's webhook secret")]
    BadSignature,
    #[error("a push of a tag or a deleted branch: nothing to deploy")]
    NotABranch,
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn provider(headers: &HeaderMap) -> Result<Provider, WebhookError> {
    let (provider, event) = if let Some(e) = header(headers, "x-github-event") {
        (Provider::GitHub, e)
    } else if let Some(e) = header(headers, "x-gitea-event").or(header(headers, "x-forgejo-event"))
    {
        (Provider::Gitea, e)
    } else if let Some(e) = header(headers, "x-gitlab-event") {
        (Provider::GitLab, e)
    } else {
        return Err(WebhookError::UnknownProvider);
    };
    match (provider, event) {
        (Provider::GitLab, "Push Hook") | (Provider::GitHub | Provider::Gitea, "push") => {
            Ok(provider)
        }
        _ => Err(WebhookError::NotAPush(event.to_owned())),
    }
}

#[derive(Deserialize)]
struct Commit {
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct GitHubRepository {
    #[serde(default)]
    clone_url: Option<String>,
    #[serde(default)]
    ssh_url: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct GitHubPush {
    #[serde(rename = "ref")]
    reference: String,
    after: String,
    repository: GitHubRepository,
    #[serde(default)]
    commits: Vec<Commit>,
    #[serde(default)]
    head_commit: Option<Commit>,
}

#[derive(Deserialize)]
struct GitLabProject {
    #[serde(default)]
    git_http_url: Option<String>,
    #[serde(default)]
    git_ssh_url: Option<String>,
    #[serde(default)]
    web_url: Option<String>,
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct GitLabPush {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default)]
    checkout_sha: Option<String>,
    after: String,
    project: GitLabProject,
    #[serde(default)]
    commits: Vec<Commit>,
}

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

fn branch(reference: &str, commit: &str) -> Result<String, WebhookError> {
    match reference.strip_prefix("refs/heads/") {
        Some(b) if commit != ZERO_SHA && !b.is_empty() => Ok(b.to_owned()),
        _ => Err(WebhookError::NotABranch),
    }
}

fn changed(commits: &[Commit]) -> BTreeSet<String> {
    commits
        .iter()
        .flat_map(|c| c.added.iter().chain(&c.modified).chain(&c.removed))
        .cloned()
        .collect()
}

/// Reads a push; the signature is checked afterwards, with [`verify`], against the repository's secret.
pub fn parse(provider: Provider, headers: &HeaderMap, body: &[u8]) -> Result<Push, WebhookError> {
    let malformed = |e: serde_json::Error| WebhookError::Malformed(e.to_string());
    match provider {
        Provider::GitHub | Provider::Gitea => {
            let delivery_header = match provider {
                Provider::GitHub => "x-github-delivery",
                _ => "x-gitea-delivery",
            };
            let delivery = header(headers, delivery_header)
                .or(header(headers, "x-forgejo-delivery"))
                .ok_or(WebhookError::MissingHeader(delivery_header))?;
            let p: GitHubPush = serde_json::from_slice(body).map_err(malformed)?;
            let r = p.repository;
            Ok(Push {
                provider,
                delivery: delivery.to_owned(),
                repository_urls: [r.clone_url, r.ssh_url, r.html_url]
                    .into_iter()
                    .flatten()
                    .collect(),
                default_branch: r.default_branch,
                branch: branch(&p.reference, &p.after)?,
                committed_at: p.head_commit.as_ref().and_then(|c| c.timestamp.clone()),
                changed_paths: changed(&p.commits),
                commit: p.after,
            })
        }
        Provider::GitLab => {
            let delivery = header(headers, "x-gitlab-event-uuid")
                .or(header(headers, "x-gitlab-webhook-uuid"))
                .or(header(headers, "idempotency-key"))
                .ok_or(WebhookError::MissingHeader("x-gitlab-event-uuid"))?;
            let p: GitLabPush = serde_json::from_slice(body).map_err(malformed)?;
            let r = p.project;
            let commit = p.checkout_sha.unwrap_or(p.after);
            Ok(Push {
                provider,
                delivery: delivery.to_owned(),
                repository_urls: [r.git_http_url, r.git_ssh_url, r.web_url]
                    .into_iter()
                    .flatten()
                    .collect(),
                default_branch: r.default_branch,
                branch: branch(&p.reference, &commit)?,
                committed_at: p.commits.last().and_then(|c| c.timestamp.clone()),
                changed_paths: changed(&p.commits),
                commit,
            })
        }
    }
}

/// Checks the delivery came from someone holding the repository's webhook secret: the HMAC-SHA256 of the
/// body (GitHub `X-Hub-Signature-256: sha256=<hex>`, Gitea/Forgejo `X-Gitea-Signature: <hex>`), or
/// GitLab's secret token (`X-Gitlab-Token`), compared in constant time.
pub fn verify(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secret: &SecretString,
) -> Result<(), WebhookError> {
    let secret = secret.expose_secret().as_bytes();
    match provider {
        Provider::GitHub | Provider::Gitea => {
            let given =
                match provider {
                    Provider::GitHub => header(headers, "x-hub-signature-256")
                        .and_then(|s| s.strip_prefix("sha256=")),
                    _ => header(headers, "x-gitea-signature")
                        .or(header(headers, "x-forgejo-signature")),
                }
                .ok_or(WebhookError::BadSignature)?;
            let tag = hex::decode(given).map_err(|_| WebhookError::BadSignature)?;
            hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, secret), body, &tag)
                .map_err(|_| WebhookError::BadSignature)
        }
        Provider::GitLab => {
            let given = header(headers, "x-gitlab-token").ok_or(WebhookError::BadSignature)?;
            // Equal HMACs of both under one key: a comparison whose time says nothing about the token.
            let key = hmac::Key::new(hmac::HMAC_SHA256, b"homestation-gitlab-token");
            let expected = hmac::sign(&key, secret);
            hmac::verify(&key, given.as_bytes(), expected.as_ref())
                .map_err(|_| WebhookError::BadSignature)
        }
    }
}

/// A repository URL in one form whatever its spelling: host and path, lowercase host, no scheme, user,
/// port-less SSH form or `.git`. `git@github.com:Lab/Apps.git` and `https://github.com/Lab/Apps` agree.
pub fn normalize_repository(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix(".git").unwrap_or(url);
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest.to_owned(),
        // scp-like SSH: git@host:owner/repo
        None => url.replacen(':', "/", 1),
    };
    let rest = rest.rsplit_once('@').map_or(rest.as_str(), |(_, r)| r);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    format!("{host}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls_agree_in_every_spelling() {
        let want = "github.com/Lab/Apps";
        for url in [
            "https://github.com/Lab/Apps.git",
            "https://GitHub.com/Lab/Apps/",
            "git@github.com:Lab/Apps.git",
            "ssh://git@github.com:22/Lab/Apps.git",
            "https://token@github.com/Lab/Apps",
        ] {
            assert_eq!(normalize_repository(url), want, "{url}");
        }
    }

    #[test]
    fn tags_and_deleted_branches_are_not_deployed() {
        assert_eq!(branch("refs/tags/v1", "abc"), Err(WebhookError::NotABranch));
        assert_eq!(
            branch("refs/heads/main", ZERO_SHA),
            Err(WebhookError::NotABranch)
        );
        assert_eq!(branch("refs/heads/feature/x", "abc").unwrap(), "feature/x");
    }
}

#[cfg(test)]
mod provider_tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        hex::encode(
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), body).as_ref(),
        )
    }

    #[test]
    fn each_provider_is_verified_its_own_way() {
        let secret = SecretString::from("made-for-this-test-0123456789");
        let body = br#"{"ref":"refs/heads/main"}"#;
        let github = headers(&[
            ("x-github-event", "push"),
            (
                "x-hub-signature-256",
                &format!("sha256={}", sign("made-for-this-test-0123456789", body)),
            ),
        ]);
        assert_eq!(provider(&github), Ok(Provider::GitHub));
        assert_eq!(verify(Provider::GitHub, &github, body, &secret), Ok(()));
        assert_eq!(
            verify(Provider::GitHub, &github, b"changed", &secret),
            Err(WebhookError::BadSignature)
        );

        let forgejo = headers(&[
            ("x-forgejo-event", "push"),
            (
                "x-forgejo-signature",
                &sign("made-for-this-test-0123456789", body),
            ),
        ]);
        assert_eq!(provider(&forgejo), Ok(Provider::Gitea));
        assert_eq!(verify(Provider::Gitea, &forgejo, body, &secret), Ok(()));
        let unsigned = headers(&[("x-gitea-event", "push")]);
        assert_eq!(
            verify(Provider::Gitea, &unsigned, body, &secret),
            Err(WebhookError::BadSignature)
        );

        let gitlab = headers(&[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", "made-for-this-test-0123456789"),
        ]);
        assert_eq!(provider(&gitlab), Ok(Provider::GitLab));
        assert_eq!(verify(Provider::GitLab, &gitlab, body, &secret), Ok(()));
        let wrong = headers(&[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", "made-for-this-test-012345678"),
        ]);
        assert_eq!(
            verify(Provider::GitLab, &wrong, body, &secret),
            Err(WebhookError::BadSignature)
        );

        assert_eq!(
            provider(&headers(&[("x-gitlab-event", "Tag Push Hook")])),
            Err(WebhookError::NotAPush("Tag Push Hook".into()))
        );
        assert_eq!(
            provider(&HeaderMap::new()),
            Err(WebhookError::UnknownProvider)
        );
    }

    #[test]
    fn a_gitlab_push_names_its_project_commit_and_changes() {
        let body = serde_json::json!({
            "object_kind": "push", "ref": "refs/heads/main", "after": "bb", "checkout_sha": "cc",
            "project": { "git_http_url": "https://gitlab.lab/infra/gitops.git", "git_ssh_url": "git@gitlab.lab:infra/gitops.git",
                         "web_url": "https://gitlab.lab/infra/gitops", "default_branch": "main" },
            "commits": [
                { "timestamp": "2026-11-26T01:00:00+00:00", "added": ["apps/a/x"], "modified": [], "removed": [] },
                { "timestamp": "2026-11-26T01:05:00+00:00", "added": [], "modified": ["apps/b/y"], "removed": ["apps/c/z"] }
            ]
        });
        let push = parse(
            Provider::GitLab,
            &headers(&[("x-gitlab-event-uuid", "u-1")]),
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (
                push.commit.as_str(),
                push.branch.as_str(),
                push.delivery.as_str()
            ),
            ("cc", "main", "u-1")
        );
        assert_eq!(
            push.committed_at.as_deref(),
            Some("2026-11-26T01:05:00+00:00"),
            "the newest commit's time"
        );
        assert_eq!(push.changed_paths.len(), 3);
        assert!(
            push.repository_urls
                .iter()
                .any(|u| normalize_repository(u) == "gitlab.lab/infra/gitops")
        );
        let missing = parse(
            Provider::GitLab,
            &HeaderMap::new(),
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap_err();
        assert_eq!(missing, WebhookError::MissingHeader("x-gitlab-event-uuid"));
    }
}
