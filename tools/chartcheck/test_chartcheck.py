"""make charts-check fails for each mistake it exists to catch: each test seeds one into a temp copy of charts/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import chartcheck
import lab  # tools/lab, on the path once chartcheck is imported

SERVICE_CHARTS = ["backup", "deployer", "edge-registry", "inventory", "secrets-rotator"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(chartcheck.ROOT / "charts", tmp_path / "charts", ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    for folder in ("e2e", "argocd", "dashboards", "infra/vault", "infra/ansible/inventory"):
        shutil.copytree(chartcheck.ROOT / folder, tmp_path / folder)
    for file in lab.READS:
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(chartcheck.ROOT / file, tmp_path / file)
    return tmp_path


def check(repo: Path, capsys: pytest.CaptureFixture[str], *charts: str, checkov: bool = False) -> tuple[int, str]:
    # Under a hidden folder, as `make charts-check` writes it (.dev/charts-rendered): checkov must still scan it.
    args = ["--root", str(repo), "--out", str(repo / ".dev" / "charts-rendered")]
    args += [a for c in charts for a in ("--chart", c)]
    if not checkov:
        args.append("--no-checkov")
    code = chartcheck.main(args)
    return code, capsys.readouterr().out


def add_template(repo: Path, chart: str, name: str, text: str) -> None:
    (repo / "charts" / chart / "templates" / name).write_text(text)


def test_the_charts_as_committed_pass(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(repo, capsys, *SERVICE_CHARTS, checkov=True)
    assert (code, out) == (0, "")


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_a_typo_in_values_fails_with_the_schema_error(repo: Path, capsys: pytest.CaptureFixture[str], chart: str) -> None:
    (repo / "charts" / chart / "ci" / "typo-values.yaml").write_text("replicaCont: 2\n")
    code, out = check(repo, capsys, chart)
    assert code == 1
    assert f"{chart} [typo]: helm lint --strict" in out and "Additional property replicaCont is not allowed" in out, out


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_a_wrong_type_in_the_service_config_fails(repo: Path, capsys: pytest.CaptureFixture[str], chart: str) -> None:
    (repo / "charts" / chart / "ci" / "type-values.yaml").write_text("config:\n  shutdown_grace_secs: soon\n")
    code, out = check(repo, capsys, chart)
    assert code == 1
    assert "config.shutdown_grace_secs: Invalid type. Expected: integer, given: string" in out, out


def test_a_credential_in_values_is_refused(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "charts" / "inventory" / "ci" / "leak-values.yaml").write_text(
        "config:\n  database:\n    url: postgres://inventory:hunter2@db/inventory\n"
    )
    code, out = check(repo, capsys, "inventory")
    assert code == 1 and "Additional property url is not allowed" in out, out


def test_an_object_of_a_removed_api_version_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_template(
        repo,
        "inventory",
        "old-pdb.yaml",
        """\
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: old}
spec: {maxUnavailable: 1}
""",
    )
    add_template(
        repo,
        "inventory",
        "old-cert.yaml",
        """\
apiVersion: cert-manager.io/v1alpha2
kind: Certificate
metadata: {name: old}
spec: {secretName: old-tls, dnsNames: [inventory.lab], issuerRef: {name: x}}
""",
    )
    code, out = check(repo, capsys, "inventory")
    assert code == 1
    assert "policy/v1beta1 PodDisruptionBudget is deprecated in v1.21+, unavailable in v1.25+" in out, "helm lint knows it"
    assert "PodDisruptionBudget/old: policy/v1beta1 PodDisruptionBudget is not served by Kubernetes 1.33.0" in out, out
    assert "Certificate/old: cert-manager.io/v1alpha2 Certificate is not served" in out, "nor is a CRD's old version"


def test_an_unknown_field_in_a_kubernetes_object_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_template(
        repo,
        "inventory",
        "svc.yaml",
        """\
apiVersion: v1
kind: Service
metadata: {name: extra}
spec: {ports: [{port: 80}], selecter: {a: b}}
""",
    )
    code, out = check(repo, capsys, "inventory")
    assert code == 1 and "Service/extra: schema: Additional properties are not allowed ('selecter' was unexpected)" in out, out


def test_a_custom_resource_against_its_crd_schema(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_template(
        repo,
        "inventory",
        "cert.yaml",
        """\
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: wrong}
spec: {secretName: wrong-tls, dnsNames: inventory.lab, issuerRef: {name: x}}
""",
    )
    code, out = check(repo, capsys, "inventory")
    assert code == 1 and "Certificate/wrong: CRD schema: data/spec/dnsNames must be array" in out, out


def test_a_velero_schedule_with_an_unknown_field_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_template(
        repo,
        "backup",
        "schedule.yaml",
        """\
apiVersion: velero.io/v1
kind: Schedule
metadata: {name: daily}
spec: {schedule: "0 3 * * *", template: {ttl: 720h0m0s, includedNamespacess: [apps]}}
""",
    )
    code, out = check(repo, capsys, "backup")
    assert code == 1 and "Schedule/daily: Velero schema: unknown field /spec/template/includedNamespacess" in out, out


def test_a_pod_outside_the_restricted_profile_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "charts" / "deployer" / "ci" / "host-values.yaml").write_text(
        "extraVolumes: [{name: host, hostPath: {path: /var/run}}]\nextraVolumeMounts: [{name: host, mountPath: /host}]\n"
    )
    code, out = check(repo, capsys, "deployer")
    assert code == 1
    assert "Deployment/deployer: Pod Security restricted: volume 'host' is of a forbidden type ['hostPath']" in out, out


def test_a_service_without_a_network_policy_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "charts" / "edge-registry" / "ci" / "open-values.yaml").write_text("networkPolicy: {enabled: false}\n")
    code, out = check(repo, capsys, "edge-registry")
    assert code == 1 and "edge-registry [open] Deployment/edge-registry: no NetworkPolicy selects its pods" in out, out


def test_a_policy_admitting_the_tailnet_or_a_peer_service_to_the_human_port_fails(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The mistake issue 16 found: the tailnet (and a peer service) let in on every route.
    (repo / "charts" / "edge-registry" / "ci" / "door-values.yaml").write_text(
        "networkPolicy:\n  ingressFrom:\n    - {namespace: traefik}\n    - namespace: tailscale\n"
        "    - {namespace: homestation, to: [http, enrol]}\n"
    )
    code, out = check(repo, capsys, "edge-registry")
    assert code == 1
    assert "edge-registry [door] NetworkPolicy/edge-registry: admits the tailnet (namespace tailscale) to http" in out, out
    assert "admits a peer service (namespace homestation) to enrol, http" in out, out
    # The same peers on their own ports pass.
    (repo / "charts" / "edge-registry" / "ci" / "door-values.yaml").write_text(
        "networkPolicy:\n  ingressFrom:\n    - {namespace: traefik}\n    - {namespace: tailscale, to: [enrol]}\n"
    )
    assert check(repo, capsys, "edge-registry") == (0, "")


def test_checkov_findings_fail(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_template(
        repo,
        "inventory",
        "role.yaml",
        """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: everything}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]
""",
    )
    code, out = check(repo, capsys, "inventory", checkov=True)
    assert code == 1 and "ClusterRole.default.everything" in out and "CKV_K8S_49" in out, out


def test_a_stale_generated_schema_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = repo / "charts" / "homestation-lib" / "common.schema.json"
    schema = json.loads(common.read_text())
    schema["properties"]["replicaCount"]["minimum"] = 1
    common.write_text(json.dumps(schema, indent=2) + "\n")
    code, out = check(repo, capsys, "inventory")
    assert code == 1 and "values.schema.json: generated schemas are out of date" in out, out


def test_an_application_against_argo_cds_schema(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = repo / "e2e" / "apps" / "inventory.yaml"
    app.write_text(app.read_text().replace("project: default", "project: [default]"))
    code, out = check(repo, capsys)
    assert code == 1 and "e2e/apps/inventory.yaml Application/inventory: CRD schema: data/spec/project must be string" in out, out


def test_the_e2e_workflow_names_only_files_that_exist() -> None:
    workflow = chartcheck.ROOT / ".github" / "workflows" / "e2e-k3s.yml"
    text = workflow.read_text()
    import yaml

    steps = yaml.safe_load(text)["jobs"]["commit-to-live"]["steps"]
    assert any("commit-to-live" in (s.get("name") or "") for s in steps)
    import re

    named = {p.rstrip(".") for p in re.findall(r"(?<![\w/:])((?:e2e|charts)/[\w./-]+)", text)}
    assert named, "the workflow uses the e2e manifests and the charts"
    missing = [p for p in named if not (chartcheck.ROOT / p.rstrip("/")).exists()]
    assert not missing, missing


def test_a_literal_credential_in_any_values_file_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grafana = repo / "argocd" / "platform" / "grafana.yaml"
    grafana.write_text(
        grafana.read_text().replace(
            "admin:\n  existingSecret: grafana-admin", "adminPassword: hunter2\nadmin:\n  existingSecret: grafana-admin"
        )
    )
    chart_values = repo / "charts" / "deployer" / "values.yaml"
    chart_values.write_text(chart_values.read_text() + "extraSecrets:\n  webhook_secret: abc123\n")
    code, out = check(repo, capsys)
    assert code == 1
    assert "argocd/platform/grafana.yaml: adminPassword holds a literal credential" in out, out
    assert "charts/deployer/values.yaml: extraSecrets.webhook_secret holds a literal credential" in out, out


def test_an_app_rendering_what_its_project_forbids_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_template(
        repo,
        "inventory",
        "pv.yaml",
        """\
apiVersion: v1
kind: PersistentVolume
metadata: {name: disk}
spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], hostPath: {path: /data}}
""",
    )
    add_template(
        repo,
        "edge-registry",
        "elsewhere.yaml",
        """\
apiVersion: v1
kind: ConfigMap
metadata: {name: elsewhere, namespace: kube-system}
""",
    )
    code, out = check(repo, capsys)
    assert code == 1
    assert (
        "Application inventory: PersistentVolume/disk: AppProject homestation does not allow cluster-scoped PersistentVolume"
        in out
    ), out
    assert "Application edge-registry: ConfigMap/elsewhere: AppProject homestation does not allow namespace kube-system" in out, (
        out
    )


def test_a_platform_component_without_its_values_file_or_a_stray_one_fails(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "argocd" / "platform" / "loki.yaml").rename(repo / "argocd" / "platform" / "lokki.yaml")
    code, out = check(repo, capsys)
    assert code == 1
    assert "Application loki: values file argocd/platform/loki.yaml does not exist" in out, out
    assert "argocd/platform/lokki.yaml: no Application uses this values file" in out, out


def test_root_and_app_of_apps_must_name_one_repository(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = repo / "argocd" / "root.yaml"
    root.write_text(root.read_text().replace("git.homestation.internal", "git.elsewhere.example"))
    code, out = check(repo, capsys)
    assert code == 1 and "argocd/root.yaml: syncs https://git.elsewhere.example/homestation/homestation.git" in out, out


def test_a_chart_version_range_is_refused(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = repo / "argocd" / "app-of-apps" / "values-lab.yaml"
    values.write_text(values.read_text().replace("vault: 0.34.1", "vault: '>=0.30'"))
    code, out = check(repo, capsys, "app-of-apps")
    assert code == 1 and "app-of-apps [default]: helm lint --strict" in out and "versions.vault" in out, out


def test_velero_schedules_are_velero_objects_kept_30_days(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    velero = repo / "argocd" / "platform" / "velero.yaml"
    daily_ttl = "      ttl: 720h0m0s\n      storageLocation: default\n      excludedNamespaces: [kube-system]\n"
    text = velero.read_text().replace(daily_ttl, daily_ttl.replace("720h", "168h"), 1)
    text = text.replace('    schedule: "0 3 * * 0"', '    schedule: "0 3 * * 0"\n    paused: maybe')
    assert text != velero.read_text()
    velero.write_text(text)
    code, out = check(repo, capsys)
    assert code == 1
    assert "schedules.daily: ttl 168h0m0s keeps backups less than 720h (30 days)" in out, out
    assert "schedules.weekly: Velero schema: spec/paused" in out, out
