"""`make charts-check`: every chart linted, rendered for every scenario, and each object checked for real.

For each chart under charts/ (and charts/apps/*), with its default values, each ci/*-values.yaml and
the e2e run's values (e2e/values), and for the plain manifests of PLAIN_MANIFESTS and the platform values
files' `extraResources` (schemas only):
  1. helm lint --strict (values.schema.json included), then helm template;
  2. every object against the Kubernetes 1.33 schemas in strict mode (kubernetes-validate); a kind
     Kubernetes does not have fails unless CRD_KINDS lists it (so a removed API version fails);
  3. custom resources against their CRDs' schemas (@kubernetes-models for Argo CD, cert-manager,
     Traefik and Prometheus operator objects; cloudcoil-models-velero for Velero and our own strict
     schemas in crd-schemas/ for Vault Secrets Operator, unknown fields refused in both);
  4. every pod against the Pod Security "restricted" profile, with a read-only root file system,
     every Deployment selected by a NetworkPolicy, and no NetworkPolicy admitting the tailnet or a
     peer service to a port that takes a human's identity (http);
  5. checkov over everything rendered, with the reviewed skips in checkov-skips.yaml;
  6. the GitOps tree walked from argocd/root.yaml (walk.py): projects allow what their apps render,
     values files exist and hold no literal credential;
  7. lab.yaml: the files make lab writes are what it makes (no hand edit), and the whole-lab check
     (tools/lab/labcheck.py) passes over the tree.
The rendered manifests are kept under --out for reading.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import podsecurity
import schemas
import walk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
import lab as labfile
import labcheck

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
KUBERNETES_VERSION = "1.33.0"
NAMESPACE = "homestation"

# Custom resources HomeStation renders, by apiVersion, and who validates them. Anything else that
# Kubernetes 1.33 does not serve is an error.
CRD_KINDS: dict[str, tuple[str, set[str]]] = {
    "argoproj.io/v1alpha1": ("models", {"Application", "AppProject", "ApplicationSet"}),
    "cert-manager.io/v1": ("models", {"Certificate", "ClusterIssuer", "Issuer"}),
    "traefik.io/v1alpha1": ("models", {"IngressRoute", "Middleware", "TLSOption"}),
    "monitoring.coreos.com/v1": ("models", {"ServiceMonitor", "PodMonitor", "PrometheusRule"}),
    "velero.io/v1": ("velero", {"Backup", "Schedule", "BackupStorageLocation"}),
    # No validator package exists for Vault Secrets Operator: crd-schemas/ holds our own, strict.
    "secrets.hashicorp.com/v1beta1": ("jsonschema", {"VaultStaticSecret"}),
}


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    objects: int = 0
    renders: int = 0

    def fail(self, where: str, what: str) -> None:
        self.failures.append(f"{where}: {what}")


def say(message: str) -> None:
    print(f"charts-check: {message}", file=sys.stderr, flush=True)


def helm(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([os.environ.get("HELM", "helm"), *args], cwd=cwd, capture_output=True, text=True)


def charts(root: Path) -> list[Path]:
    found = [
        *root.glob("charts/*/Chart.yaml"),
        *root.glob("charts/apps/*/Chart.yaml"),
        *root.glob("charts/platform/*/Chart.yaml"),
        *root.glob("argocd/*/Chart.yaml"),
    ]
    return [chart_yaml.parent for chart_yaml in sorted(found) if "type: library" not in chart_yaml.read_text()]


def scenarios(root: Path, chart: Path) -> list[tuple[str, list[Path]]]:
    """(name, values files) to render: the defaults, each ci/*-values.yaml, and the e2e run's values. A
    chart's values-lab.yaml (make lab writes the app-of-apps' one) comes first in every scenario, as
    root.yaml gives it to Argo CD."""
    lab = [chart / "values-lab.yaml"] if (chart / "values-lab.yaml").exists() else []
    found: list[tuple[str, list[Path]]] = [("default", lab)]
    found += [(v.name.removesuffix("-values.yaml"), [*lab, v]) for v in sorted((chart / "ci").glob("*-values.yaml"))]
    e2e = root / "e2e" / "values"
    if (e2e / f"{chart.name}.yaml").exists():
        found.append(("e2e", [e2e / "common.yaml", e2e / f"{chart.name}.yaml"]))
    return found


def render(chart: Path, name: str, values: list[Path], report: Report, out: Path) -> list[tuple[str, dict[str, Any]]]:
    """helm lint --strict and helm template of one scenario; the objects, each with where it came from."""
    where = f"{chart.name} [{name}]"
    extra = [a for v in values for a in ("-f", str(v))]
    lint = helm("lint", "--strict", str(chart), "--namespace", NAMESPACE, *extra)
    if lint.returncode != 0:
        detail = [line for line in (lint.stdout + lint.stderr).splitlines() if line.strip() and not line.startswith("==>")]
        report.fail(where, "helm lint --strict: " + " | ".join(detail[:8]))
    template = helm("template", chart.name, str(chart), "--namespace", NAMESPACE, *extra)
    if template.returncode != 0:
        report.fail(where, "helm template: " + template.stderr.strip())
        return []
    report.renders += 1
    target = out / chart.name / f"{name}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(template.stdout)
    objects = []
    for doc in yaml.safe_load_all(template.stdout):
        if doc:
            meta = doc.get("metadata") or {}
            objects.append((f"{where} {doc.get('kind')}/{meta.get('name')}", doc))
    return objects


# Manifests applied as they are (not rendered from a chart): schemas only. The e2e stand-ins for
# PostgreSQL, NATS and Gitea run their upstream images as those expect, outside the restricted profile.
PLAIN_MANIFESTS = ["e2e/cluster/*.yaml", "e2e/apps/*.yaml", "argocd/*.yaml"]


def plain_manifests(root: Path, report: Report) -> list[tuple[str, dict[str, Any]]]:
    objects = []
    for pattern in PLAIN_MANIFESTS:
        for path in sorted(root.glob(pattern)):
            source = path.relative_to(root).as_posix()
            try:
                docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
            except yaml.YAMLError as e:
                report.fail(source, f"YAML: {e}".replace("\n", " "))
                continue
            for doc in docs:
                meta = doc.get("metadata") or {}
                objects.append((f"{source} {doc.get('kind')}/{meta.get('name')}", doc))
    return objects


def platform_extra_resources(root: Path, report: Report) -> list[tuple[str, dict[str, Any]]]:
    """The objects upstream charts render verbatim from a platform values file's `extraResources`
    (the NATS chart's tailnet Service and Vault-synced Secrets): checked like plain manifests."""
    objects = []
    for path in sorted(root.glob("argocd/platform/*.yaml")):
        source = path.relative_to(root).as_posix()
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            continue  # the tree walk reports it
        for doc in values.get("extraResources") or []:
            meta = doc.get("metadata") or {}
            objects.append((f"{source} extraResources {doc.get('kind')}/{meta.get('name')}", doc))
    return objects


def check_kubernetes(where: str, obj: dict[str, Any], report: Report, custom: list[tuple[str, str, dict[str, Any]]]) -> None:
    import kubernetes_validate

    api, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    validator, kinds = CRD_KINDS.get(api, ("", set()))
    if kind in kinds:
        custom.append((validator, where, obj))
        return
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        report.fail(
            where,
            f"{api} {kind} is not served by Kubernetes {KUBERNETES_VERSION} "
            "(a removed or misspelt API version?) and is not in chartcheck's CRD_KINDS",
        )
    except kubernetes_validate.ValidationError as e:
        path = "/".join(str(p) for p in e.path)
        report.fail(where, f"schema: {e.message} (at {path or 'the top'})")


def check_custom(custom: list[tuple[str, str, dict[str, Any]]], report: Report) -> None:
    batch = [{"where": where, "object": obj} for validator, where, obj in custom if validator == "models"]
    if batch:
        node = subprocess.run(
            ["node", str(HERE / "validate-crds.mjs")], input=json.dumps(batch), capture_output=True, text=True, cwd=HERE
        )
        if node.returncode != 0:
            report.fail("validate-crds.mjs", node.stderr.strip()[-2000:])
        else:
            for e in json.loads(node.stdout):
                report.fail(e["where"], f"CRD schema: {e['error']}")
    for validator, where, obj in custom:
        if validator == "velero":
            for problem in velero_problems(obj):
                report.fail(where, f"Velero schema: {problem}")
        elif validator == "jsonschema":
            for problem in own_schema_problems(obj):
                report.fail(where, f"CRD schema: {problem}")


def own_schema_problems(obj: dict[str, Any]) -> list[str]:
    import jsonschema

    group_version = obj["apiVersion"].replace("/", "_")
    schema = json.loads((HERE / "crd-schemas" / f"{group_version}_{obj['kind']}.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{e.message} (at /{'/'.join(map(str, e.path))})" for e in validator.iter_errors(obj)]


def velero_problems(obj: dict[str, Any]) -> list[str]:
    """Validates with cloudcoil's Velero models, and refuses fields they do not have (pydantic ignores them)."""
    import pydantic
    from cloudcoil.models.velero import v1

    model = getattr(v1, obj["kind"])
    try:
        model.model_validate(obj)
    except pydantic.ValidationError as e:
        return [f"{'/'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
    return unknown_fields(model, obj, "")


def unknown_fields(model: Any, data: Any, path: str) -> list[str]:
    import typing

    import pydantic

    if not isinstance(data, dict):
        return []
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    problems = []
    for key, value in data.items():
        if key not in fields:
            problems.append(f"unknown field {path}/{key}")
            continue
        candidates = [fields[key].annotation]
        while candidates:
            t = candidates.pop()
            if isinstance(t, type) and issubclass(t, pydantic.BaseModel):
                if t.__name__ == "ObjectMeta":
                    break
                if isinstance(value, list):
                    problems += [p for i, v in enumerate(value) for p in unknown_fields(t, v, f"{path}/{key}/{i}")]
                else:
                    problems += unknown_fields(t, value, f"{path}/{key}")
                break
            candidates += list(typing.get_args(t))
    return problems


VELERO_MIN_TTL_HOURS = 720  # the rule we were given: Velero backups kept at least 30 days


def check_velero_schedules(root: Path, report: Report) -> int:
    """The Schedules the Velero chart makes from argocd/platform/velero.yaml, as Velero objects.

    The chart itself cannot be downloaded here, but its `schedules` map becomes Schedule objects one
    to one (schedule, template, useOwnerReferencesInBackup), so they are validated with the
    cloudcoil Velero models and held to the 30-day floor."""
    values_file = root / "argocd" / "platform" / "velero.yaml"
    if not values_file.exists():
        return 0
    schedules = (yaml.safe_load(values_file.read_text()) or {}).get("schedules") or {}
    for name, entry in schedules.items():
        where = f"argocd/platform/velero.yaml schedules.{name}"
        spec = {k: v for k, v in entry.items() if k not in ("labels", "annotations", "disabled")}
        obj = {"apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": {"name": name, "namespace": "velero"}, "spec": spec}
        for problem in velero_problems(obj):
            report.fail(where, f"Velero schema: {problem}")
        ttl = ((entry.get("template") or {}).get("ttl")) or ""
        if hours(ttl) < VELERO_MIN_TTL_HOURS:
            report.fail(where, f"ttl {ttl or 'unset'} keeps backups less than {VELERO_MIN_TTL_HOURS}h (30 days)")
    return len(schedules)


def hours(duration: str) -> float:
    """A Go duration (720h0m0s, 90m) in hours; 0 when it does not parse."""
    import re

    parts = re.findall(r"([0-9.]+)(h|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        return 0
    return sum(float(n) * {"h": 1, "m": 1 / 60, "s": 1 / 3600}[u] for n, u in parts)


# Who must never reach a port that takes a human's identity (Remote-User from the proxy): the tailnet
# (the Tailscale operator's proxies) and the peer services (HomeStation's, the apps').
UNTRUSTED_FOR_HUMAN_PORTS = {"tailscale": "the tailnet", "homestation": "a peer service", "apps": "a peer service"}
HUMAN_PORTS = {"http"}


def check_human_ports(objects: list[tuple[str, dict[str, Any]]], report: Report) -> None:
    """A NetworkPolicy may admit the tailnet or a peer service only to a port of its own (enrolment's,
    gRPC with service tokens), never to http, where the service takes a human's identity."""
    for where, obj in objects:
        if obj.get("kind") != "NetworkPolicy":
            continue
        for rule in (obj.get("spec") or {}).get("ingress") or []:
            ports = {str(p.get("port")) for p in rule.get("ports") or []}
            reaches_human = not ports or bool(ports & HUMAN_PORTS)
            for peer in rule.get("from") or []:
                namespace = ((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name")
                who = UNTRUSTED_FOR_HUMAN_PORTS.get(str(namespace))
                if who and reaches_human:
                    shown = ", ".join(sorted(ports)) or "every port"
                    report.fail(
                        where,
                        f"admits {who} (namespace {namespace}) to {shown}: http takes a human's identity; "
                        "give it a port of its own (networkPolicy.ingressFrom[].to)",
                    )


def check_pods(objects: list[tuple[str, dict[str, Any]]], report: Report) -> None:
    policies = [o for _, o in objects if o.get("kind") == "NetworkPolicy"]
    for where, obj in objects:
        spec = podsecurity.pod_spec(obj)
        if spec is None:
            continue
        for problem in podsecurity.violations(spec):
            report.fail(where, f"Pod Security restricted: {problem}")
        for c in spec.get("containers") or []:
            if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
                report.fail(where, f"container {c.get('name')!r} has a writable root file system")
        if obj["kind"] == "Deployment":
            labels = ((obj["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not any(selects(p, labels) for p in policies):
                report.fail(where, "no NetworkPolicy selects its pods")


def selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = ((policy.get("spec") or {}).get("podSelector") or {}).get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def check_lab(root: Path, tree: walk.Walk, report: Report) -> None:
    """lab.yaml: what make lab writes is what is committed, and the whole lab holds together (labcheck)."""
    try:
        lab = labfile.load(root / "lab.yaml")
    except labfile.LabError as e:
        report.fail("lab.yaml", str(e))
        return
    for problem in labfile.differences(root, labfile.render(lab)):
        report.fail("make lab", problem)
    view = labcheck.collect(root, tree)
    problems = labcheck.check(view)
    for problem in problems:
        report.fail("whole lab", problem)
    say(f"lab.yaml: generated files compared; whole-lab check: {len(labcheck.RULES)} rule(s), {len(problems)} problem(s)")
    readme = root / "README.md"
    if readme.exists():
        text = readme.read_text()
        if labcheck.readme_with_table(text, view) != text:
            report.fail("README.md", "the component table differs from what the tree deploys (make lab rewrites it)")
    sizes = [labcheck.memory(a) for a in view.apps.values() if labcheck.has_pods(a)]
    requested, limited = sum(s[0] for s in sizes), sum(s[1] for s in sizes)
    say(
        f"memory: the lab requests {requested / 1024:.1f} GiB (limits {limited / 1024:.1f} GiB) "
        f"of a {labcheck.MEMORY_BUDGET_MI / 1024:.0f} GiB budget"
    )


def run_checkov(out: Path, report: Report) -> None:
    skips = yaml.safe_load((HERE / "checkov-skips.yaml").read_text())["skips"]
    started = time.monotonic()
    # Run from inside the folder: given a path under a hidden folder (.dev/…), checkov scans nothing
    # and says nothing, so it also has to report what it checked.
    result = subprocess.run(
        [
            os.environ.get("CHECKOV", "checkov"),
            "--directory",
            ".",
            "--framework",
            "kubernetes",
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
            "--skip-check",
            ",".join(s["id"] for s in skips),
        ],
        capture_output=True,
        text=True,
        cwd=out,
    )
    try:
        parsed = json.loads(result.stdout)
    except json.JSONDecodeError:
        report.fail("checkov", (result.stderr or result.stdout).strip()[-2000:] or f"exit {result.returncode}")
        return
    checked = 0
    for run in parsed if isinstance(parsed, list) else [parsed]:
        checked += (run.get("summary") or {}).get("resource_count") or 0
        for failed in (run.get("results") or {}).get("failed_checks") or []:
            source = Path(failed["file_path"]).as_posix().lstrip("/")
            report.fail(f"checkov {source} {failed['resource']}", f"{failed['check_id']} {failed['check_name']}")
    if checked == 0:
        report.fail("checkov", f"checked no resource in {out}")
    say(f"checkov checked {checked} resource(s) in {time.monotonic() - started:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository to check (default: %(default)s)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / ".dev" / "charts-rendered",
        help="where rendered manifests are written (default: %(default)s)",
    )
    parser.add_argument("--chart", action="append", default=[], help="check only this chart (repeatable)")
    parser.add_argument("--no-checkov", action="store_true", help="skip checkov (the slowest step)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = Report()

    if schemas.main(["--check", "--charts", str(args.root / "charts")]) != 0:
        report.fail("values.schema.json", "generated schemas are out of date")

    selected = [c for c in charts(args.root) if not args.chart or c.name in args.chart]
    if args.chart and len(selected) != len(args.chart):
        parser.error(f"no such chart among {[c.name for c in charts(args.root)]}")
    for old in args.out.glob("**/*.yaml"):
        old.unlink()
    custom: list[tuple[str, str, dict[str, Any]]] = []
    for chart in selected:
        try:
            meta = yaml.safe_load((chart / "Chart.yaml").read_text())
        except yaml.YAMLError as e:
            report.fail(chart.name, f"Chart.yaml: {e}".replace("\n", " "))
            continue
        if meta.get("dependencies"):
            build = helm("dependency", "build", str(chart))
            if build.returncode != 0:
                report.fail(chart.name, "helm dependency build: " + build.stderr.strip())
                continue
        chart_scenarios = scenarios(args.root, chart)
        for values_file in {chart / "values.yaml", *(f for _, files in chart_scenarios for f in files)}:
            if values_file.exists():
                for key in walk.credentials_in(yaml.safe_load(values_file.read_text())):
                    report.fail(str(values_file.relative_to(args.root)), f"{key} holds a literal credential (take it from Vault)")
        for name, values in chart_scenarios:
            objects = render(chart, name, values, report, args.out)
            for where, obj in objects:
                report.objects += 1
                check_kubernetes(where, obj, report, custom)
            check_pods(objects, report)
            check_human_ports(objects, report)
        say(f"{chart.name}: {len(chart_scenarios)} scenario(s) rendered and checked")
    if not args.chart:
        manifests = plain_manifests(args.root, report) + platform_extra_resources(args.root, report)
        for where, obj in manifests:
            report.objects += 1
            check_kubernetes(where, obj, report, custom)
        say(f"{len(manifests)} object(s) from plain manifests and platform extraResources checked")
        schedules = check_velero_schedules(args.root, report)
        say(f"{schedules} Velero schedule(s) of argocd/platform/velero.yaml checked")
        tree = walk.walk_tree(args.root)
        for failure in tree.failures:
            report.fail("argocd tree", failure)
        say(f"argocd tree walked from argocd/root.yaml: {tree.applications} Application(s) (`make argocd-tree` lists them)")
        check_lab(args.root, tree, report)
    check_custom(custom, report)
    if not args.no_checkov and report.renders:
        run_checkov(args.out, report)

    for failure in report.failures:
        print(f"FAIL {failure}")
    verdict = "failed" if report.failures else "passed"
    say(
        f"{verdict}: {len(selected)} chart(s), {report.renders} render(s), {report.objects} object(s), "
        f"{len(report.failures)} problem(s) in {time.monotonic() - started:.0f} s; rendered under {args.out}"
    )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
