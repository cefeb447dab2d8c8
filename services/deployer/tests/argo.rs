//! The Application types against Argo CD-shaped YAML: every field survives a read and a write.

use deployer::argo::Application;

#[test]
fn a_recorded_application_round_trips_without_losing_a_field() {
    let yaml = include_str!("fixtures/application-guestbook.yaml");
    let as_read: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    let app: Application = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(app.name(), "guestbook");
    assert!(app.auto_sync());
    let status = app.status.as_ref().unwrap();
    assert_eq!(status.health.as_ref().unwrap().status, "Healthy");
    assert_eq!(status.history.last().unwrap().id, 4);
    assert_eq!(
        app.git_sources().next().unwrap().path.as_deref(),
        Some("apps/guestbook")
    );
    assert_eq!(
        serde_json::to_value(&app).unwrap(),
        as_read,
        "written back, it is the object that was read"
    );
}

#[test]
fn multi_source_applications_list_their_git_sources_and_skip_helm_charts() {
    let app: Application = serde_saphyr::from_str(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: { name: grafana, namespace: argocd }
spec:
  project: default
  sources:
    - repoURL: https://grafana.github.io/helm-charts
      chart: grafana
      targetRevision: 8.5.0
      helm: { valueFiles: [ "$values/platform/grafana/values.yaml" ] }
    - repoURL: https://github.com/lab/gitops.git
      targetRevision: main
      ref: values
  destination: { server: https://kubernetes.default.svc, namespace: observability }
"#,
    )
    .unwrap();
    let repos: Vec<&str> = app.git_sources().map(|s| s.repo_url.as_str()).collect();
    assert_eq!(repos, ["https://github.com/lab/gitops.git"]);
    assert!(!app.auto_sync());
}
