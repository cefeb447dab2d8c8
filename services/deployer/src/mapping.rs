//! Which Argo CD Applications a push concerns: a Git source of the app points at the pushed repository,
//! tracks the pushed branch (or HEAD, when the push is to the default branch), and its path holds a changed
//! file.

use std::collections::BTreeSet;

use crate::argo::{Application, Source};
use crate::webhook::{Push, normalize_repository};

fn tracks(source: &Source, push: &Push) -> bool {
    match source.target_revision.as_deref().map(str::trim) {
        None | Some("" | "HEAD") => push.default_branch.as_deref() == Some(push.branch.as_str()),
        Some(revision) => {
            revision == push.branch
                || revision.strip_prefix("refs/heads/") == Some(push.branch.as_str())
        }
    }
}

fn touched(source: &Source, changed: &BTreeSet<String>) -> bool {
    let path = source.path.as_deref().unwrap_or("").trim_matches('/');
    if path.is_empty() || path == "." {
        return !changed.is_empty();
    }
    changed.iter().any(|c| {
        c == path
            || c.strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The files a `ref` source provides to the app's other sources: `$values/platform/grafana/values.yaml`
/// in a Helm source's `valueFiles` names `platform/grafana/values.yaml` of the source with `ref: values`.
fn referenced_files(app: &Application, reference: &str) -> BTreeSet<String> {
    let prefix = format!("${reference}/");
    app.spec
        .source
        .iter()
        .chain(app.spec.sources.iter())
        .filter_map(|s| s.extra.get("helm")?.get("valueFiles")?.as_array())
        .flatten()
        .filter_map(|f| f.as_str()?.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

fn source_changed(app: &Application, source: &Source, changed: &BTreeSet<String>) -> bool {
    match source.extra.get("ref").and_then(|r| r.as_str()) {
        // A values-only source matters through the files other sources take from it.
        Some(reference) if source.path.is_none() => {
            let files = referenced_files(app, reference);
            changed.iter().any(|c| files.contains(c))
        }
        _ => touched(source, changed),
    }
}

/// The apps among `apps` that this push changes, each once.
pub fn affected<'a>(push: &Push, apps: &'a [Application]) -> Vec<&'a Application> {
    let repositories: BTreeSet<String> = push
        .repository_urls
        .iter()
        .map(|u| normalize_repository(u))
        .collect();
    apps.iter()
        .filter(|app| {
            app.git_sources().any(|s| {
                repositories.contains(&normalize_repository(&s.repo_url))
                    && tracks(s, push)
                    && source_changed(app, s, &push.changed_paths)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::Provider;

    fn app(name: &str, repo: &str, path: &str, revision: Option<&str>) -> Application {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": { "name": name, "namespace": "argocd" },
            "spec": { "source": { "repoURL": repo, "path": path, "targetRevision": revision } }
        }))
        .unwrap()
    }

    fn push(branch: &str, changed: &[&str]) -> Push {
        Push {
            provider: Provider::GitHub,
            delivery: "d1".into(),
            repository_urls: vec![
                "https://github.com/lab/gitops.git".into(),
                "git@github.com:lab/gitops.git".into(),
            ],
            branch: branch.into(),
            default_branch: Some("main".into()),
            commit: "abc".into(),
            committed_at: None,
            changed_paths: changed.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn only_apps_whose_path_changed_on_their_branch_are_affected() {
        let apps = vec![
            app(
                "shop",
                "git@github.com:lab/gitops.git",
                "apps/shop",
                Some("HEAD"),
            ),
            app(
                "shop-v2",
                "https://github.com/lab/gitops",
                "apps/shop-v2",
                Some("main"),
            ),
            app(
                "billing",
                "https://github.com/lab/gitops",
                "apps/billing",
                Some("refs/heads/main"),
            ),
            app(
                "staging",
                "https://github.com/lab/gitops",
                "apps/shop",
                Some("staging"),
            ),
            app(
                "other-repo",
                "https://github.com/lab/other",
                "apps/shop",
                None,
            ),
            app(
                "pinned",
                "https://github.com/lab/gitops",
                "apps/shop",
                Some("v1.2.0"),
            ),
        ];
        let names = |p: &Push| {
            affected(p, &apps)
                .iter()
                .map(|a| a.name().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&push("main", &["apps/shop/values.yaml"])),
            ["shop"],
            "apps/shop-v2 is not under apps/shop"
        );
        assert_eq!(
            names(&push(
                "main",
                &["apps/billing/Chart.yaml", "apps/shop-v2/x"]
            )),
            ["shop-v2", "billing"]
        );
        assert_eq!(
            names(&push("staging", &["apps/shop/values.yaml"])),
            ["staging"],
            "HEAD follows the default branch only"
        );
        assert!(names(&push("main", &["README.md"])).is_empty());
    }

    #[test]
    fn a_values_source_counts_only_through_the_files_a_chart_takes_from_it() {
        let grafana: Application = serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": { "name": "grafana", "namespace": "argocd" },
            "spec": { "sources": [
                { "repoURL": "https://grafana.github.io/helm-charts", "chart": "grafana", "targetRevision": "8.5.0",
                  "helm": { "valueFiles": ["$values/platform/grafana/values.yaml"] } },
                { "repoURL": "https://github.com/lab/gitops.git", "targetRevision": "main", "ref": "values" }
            ] }
        }))
        .unwrap();
        let apps = vec![grafana];
        assert_eq!(
            affected(&push("main", &["platform/grafana/values.yaml"]), &apps).len(),
            1
        );
        assert!(
            affected(&push("main", &["apps/shop/values.yaml"]), &apps).is_empty(),
            "another app's change"
        );
    }
}
