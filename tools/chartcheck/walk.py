"""Walks HomeStation's GitOps tree from argocd/root.yaml with real helm, as Argo CD would.

  python tools/chartcheck/walk.py [--root DIR]

Prints every Application (the root's app-of-apps, its platform Applications, and those its
ApplicationSets generate from this repository's folders) with what it deploys, and fails when:
  - an Application's AppProject does not exist, or does not allow its source repository, its
    destination namespace, or a kind or namespace among the objects its chart renders;
  - a values file it names is missing, is not YAML, or holds a literal credential;
  - root.yaml and the app-of-apps values (values.yaml, then values-lab.yaml) name different repositories;
  - a values file make lab wrote (argocd/lab, argocd/services) is used by no Application.
Upstream charts cannot be downloaded here (no network): their Applications and values files are
checked, their objects are not. Charts and folders of this repository are rendered and checked.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ClusterIssuer",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "IngressClass",
    "PriorityClass",
    "StorageClass",
    "PersistentVolume",
    "APIService",
    "GatewayClass",
}
CREDENTIAL_KEY = re.compile(r"(password|passwd|secret|token|apikey|api_key|private_?key|client_?secret|secret_?key)$", re.I)


@dataclass
class Visited:
    """One Application as the walk saw it: for the whole-lab check (tools/lab/labcheck.py)."""

    name: str
    namespace: str
    chart: str  # the upstream chart's name, or "" for this repository's chart or folder
    values_files: list[Path]
    objects: list[dict[str, Any]]  # what it renders (this repository's charts only)


@dataclass
class Walk:
    root: Path
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    applications: int = 0
    values_used: set[Path] = field(default_factory=set)
    visited: list[Visited] = field(default_factory=list)

    def fail(self, where: str, what: str) -> None:
        self.failures.append(f"{where}: {what}")


def credentials_in(node: Any, path: str = "") -> list[str]:
    """Key paths holding a literal credential: a non-empty string under a key named like one.

    References are fine: a Secret's name (existingSecret…, tlsSecret, …Name, …Ref), a key inside a
    Secret (…Key), an environment reference ($VAR, or the NATS chart's unquoted `<< $VAR >>`), or a
    structure (secretKeyRef, path: …)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            skey = str(key)
            if (
                isinstance(value, str)
                and value
                and CREDENTIAL_KEY.search(skey)
                and not skey.lower().startswith(("existing", "tls"))
                and not path.lower().endswith("tls")  # a TLS block's `secret` names a Secret
                and "secretName" not in node  # {secretName, secretKey}: a key of a named Secret
                and not value.startswith(("$", "<< $"))
            ):
                found.append(here)
            found += credentials_in(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found += credentials_in(item, f"{path}[{i}]")
    return found


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([os.environ.get("HELM", "helm"), *args], capture_output=True, text=True)


def parse_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def allowed(patterns: list[dict[str, str]], group: str, kind: str) -> bool:
    return any(fnmatch(group, p.get("group", "")) and fnmatch(kind, p.get("kind", "")) for p in patterns)


def destination_allowed(project: dict[str, Any], namespace: str) -> bool:
    return any(fnmatch(namespace, d.get("namespace", "")) for d in project.get("destinations") or [])


def values_files(walk: Walk, where: str, source: dict[str, Any]) -> list[Path]:
    files = []
    helm_spec = source.get("helm") or {}
    for name in helm_spec.get("valueFiles") or []:
        if not name.startswith("$values/"):
            walk.fail(where, f"values file {name} is not taken from this repository ($values/…)")
            continue
        path = walk.root / name.removeprefix("$values/")
        if not path.exists():
            if not helm_spec.get("ignoreMissingValueFiles"):
                walk.fail(where, f"values file {name.removeprefix('$values/')} does not exist")
            continue
        try:
            values = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            walk.fail(where, f"{path.relative_to(walk.root)} is not YAML: {e}".replace("\n", " "))
            continue
        for key in credentials_in(values):
            walk.fail(where, f"{path.relative_to(walk.root)}: {key} holds a literal credential (take it from Vault)")
        files.append(path)
    walk.values_used.update(files)
    return files


def render_source(
    walk: Walk, where: str, app: dict[str, Any], source: dict[str, Any], files: list[Path]
) -> list[dict[str, Any]] | None:
    path = walk.root / source["path"]
    namespace = app["spec"]["destination"]["namespace"]
    if (path / "Chart.yaml").exists():
        extra = [a for f in files for a in ("-f", str(f))]
        if yaml.safe_load((path / "Chart.yaml").read_text()).get("dependencies"):
            helm("dependency", "build", str(path))
        release = (source.get("helm") or {}).get("releaseName") or app["metadata"]["name"]
        out = helm("template", release, str(path), "--namespace", namespace, *extra)
    elif (path / "kustomization.yaml").exists():
        out = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True)
    else:
        walk.fail(where, f"{source['path']} is neither a chart nor a Kustomize folder")
        return None
    if out.returncode != 0:
        walk.fail(where, f"rendering {source['path']}: {out.stderr.strip()[-500:]}")
        return None
    return parse_docs(out.stdout)


def visit(walk: Walk, app: dict[str, Any], projects: dict[str, dict[str, Any]], repo: str, depth: int) -> list[dict[str, Any]]:
    """Checks one Application and returns what it renders from this repository (empty for upstream charts)."""
    walk.applications += 1
    name, spec = app["metadata"]["name"], app["spec"]
    where = f"Application {name}"
    wave = (app["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave", "0")
    namespace = spec["destination"].get("namespace", "")
    project = projects.get(spec.get("project", ""))
    if spec.get("project") != "default" and project is None:
        walk.fail(where, f"AppProject {spec.get('project')!r} does not exist")
    if project is not None and not destination_allowed(project, namespace):
        walk.fail(where, f"AppProject {spec['project']} does not allow namespace {namespace}")
    sources = spec.get("sources") or [spec["source"]]
    main = [s for s in sources if "ref" not in s]
    if len(main) != 1:
        walk.fail(where, f"expected one source besides $values refs, found {len(main)}")
        return []
    source = main[0]
    if (
        project is not None
        and source["repoURL"] not in (project.get("sourceRepos") or [])
        and "*" not in (project.get("sourceRepos") or [])
    ):
        walk.fail(where, f"AppProject {spec['project']} does not allow repository {source['repoURL']}")
    indent = "  " * depth
    if "chart" in source:
        files = values_files(walk, where, source)
        shown = ", ".join(str(f.relative_to(walk.root)) for f in files) or "no values file"
        walk.lines.append(
            f"{indent}[wave {wave:>2}] {name} → {namespace}: upstream {source['chart']} {source['targetRevision']} "
            f"from {source['repoURL']} with {shown} (not rendered here: no network)"
        )
        walk.visited.append(Visited(name, namespace, source["chart"], files, []))
        return []
    if source["repoURL"] != repo:
        walk.fail(where, f"source {source['repoURL']} is neither this repository ({repo}) nor a chart")
        return []
    files = values_files(walk, where, source)
    objects = render_source(walk, where, app, source, files) or []
    walk.visited.append(Visited(name, namespace, "", files, objects))
    kinds = Counter(o.get("kind") for o in objects)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "nothing"
    walk.lines.append(f"{indent}[wave {wave:>2}] {name} → {namespace}: {source['path']} renders {summary}")
    if project is not None:
        for obj in objects:
            group = obj.get("apiVersion", "").rpartition("/")[0]
            kind = obj.get("kind", "")
            what = f"{kind}/{(obj.get('metadata') or {}).get('name')}"
            if kind in CLUSTER_SCOPED:
                if not allowed(project.get("clusterResourceWhitelist") or [], group, kind):
                    walk.fail(where, f"{what}: AppProject {spec['project']} does not allow cluster-scoped {kind}")
                continue
            listed = project.get("namespaceResourceWhitelist")
            if listed is not None and not allowed(listed, group, kind):
                walk.fail(where, f"{what}: AppProject {spec['project']} does not allow {kind}")
            target = (obj.get("metadata") or {}).get("namespace") or namespace
            if not destination_allowed(project, target):
                walk.fail(where, f"{what}: AppProject {spec['project']} does not allow namespace {target}")
    return objects


def expand(walk: Walk, appset: dict[str, Any]) -> list[dict[str, Any]]:
    """The Applications a git-directory ApplicationSet makes from this repository's folders."""
    apps = []
    for generator in appset["spec"]["generators"]:
        directories = (generator.get("git") or {}).get("directories")
        if directories is None:
            walk.fail(
                f"ApplicationSet {appset['metadata']['name']}", f"generator {sorted(generator)} is not expanded by this walk"
            )
            continue
        include = [d["path"] for d in directories if not d.get("exclude")]
        exclude = [d["path"] for d in directories if d.get("exclude")]
        found = sorted(
            {p.relative_to(walk.root).as_posix() for pattern in include for p in walk.root.glob(pattern) if p.is_dir()}
        )
        template = yaml.safe_dump(appset["spec"]["template"], sort_keys=False)
        for folder in found:
            if any(fnmatch(folder, e) for e in exclude):
                continue
            text = template.replace("{{ .path.basename }}", Path(folder).name).replace("{{ .path.path }}", folder)
            app = yaml.safe_load(text)
            app["metadata"].setdefault("annotations", {})["argocd.argoproj.io/sync-wave"] = (
                appset["metadata"].get("annotations") or {}
            ).get("argocd.argoproj.io/sync-wave", "0")
            apps.append(app)
    return apps


def walk_tree(root: Path) -> Walk:
    walk = Walk(root)
    root_file = root / "argocd" / "root.yaml"
    root_app = yaml.safe_load(root_file.read_text())
    repo = root_app["spec"]["source"]["repoURL"]
    app_of_apps = root / root_app["spec"]["source"]["path"]
    value_files = [app_of_apps / f for f in (root_app["spec"]["source"].get("helm") or {}).get("valueFiles") or []]
    declared = [(yaml.safe_load(f.read_text()) or {}).get("repoURL") for f in value_files if f.exists()]
    if repo not in declared[-1:]:
        walk.fail("argocd/root.yaml", f"syncs {repo} but its app-of-apps values say {declared[-1:] or 'nothing'}")
    walk.applications += 1
    files = [a for f in value_files for a in ("-f", str(f))]
    out = helm("template", root_app["metadata"]["name"], str(app_of_apps), "--namespace", "argocd", *files)
    if out.returncode != 0:
        walk.fail("argocd/root.yaml", f"rendering {app_of_apps.relative_to(root)}: {out.stderr.strip()}")
        return walk
    objects = parse_docs(out.stdout)
    kinds = Counter(o["kind"] for o in objects)
    walk.lines.append(
        f"{root_app['metadata']['name']} (argocd/root.yaml) → {app_of_apps.relative_to(root)} renders "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    )
    projects = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "AppProject"}

    def wave(o: dict[str, Any]) -> int:
        return int((o["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave", "0"))

    for obj in sorted(
        (o for o in objects if o["kind"] in ("Application", "ApplicationSet")), key=lambda o: (wave(o), o["metadata"]["name"])
    ):
        if obj["kind"] == "Application":
            visit(walk, obj, projects, repo, 1)
            continue
        generated = expand(walk, obj)
        walk.lines.append(
            f"  [wave {wave(obj):>2}] ApplicationSet {obj['metadata']['name']}: "
            f"{len(generated)} Application(s) from this repository's folders"
        )
        for app in generated:
            visit(walk, app, projects, repo, 2)
    made = {p for folder in ("lab", "services", "apps") for p in (root / "argocd" / folder).glob("*.yaml")}
    for unused in sorted(set((root / "argocd" / "platform").glob("*.yaml")) - walk.values_used):
        walk.fail(str(unused.relative_to(root)), "no Application uses this values file")
    for unused in sorted(made - walk.values_used):
        walk.fail(str(unused.relative_to(root)), "no Application uses this values file (make lab wrote it)")
    return walk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: %(default)s)")
    args = parser.parse_args(argv)
    walk = walk_tree(args.root)
    print("\n".join(walk.lines))
    for failure in walk.failures:
        print(f"FAIL {failure}")
    print(f"{walk.applications} Application(s); {len(walk.failures)} problem(s)", file=sys.stderr)
    return 1 if walk.failures else 0


if __name__ == "__main__":
    sys.exit(main())
