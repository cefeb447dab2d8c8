"""The whole-lab check: what each part of the lab says about the others, held together.

  python tools/lab/labcheck.py [--root DIR]

Reads the Argo CD tree as charts-check walks it (this repository's charts rendered with their values;
each upstream chart's values files merged as helm merges them), lab.yaml, and what make lab writes for
Pulumi and Vault. Each rule has a name; a failure says which rule and where:
  hosts       a host of the lab's domain named anywhere (Homepage, Authelia's rules and OIDC redirects,
              the tunnel's ingress, Pulumi's DNS, Grafana's and Argo CD's URLs, …) that no route serves,
              or a wildcard host
  services    an in-cluster DNS name (<service>.<namespace>.svc) naming no Service the tree deploys
  secrets     a Secret a pod mounts or a values file references that nothing produces (a Vault Secrets
              Operator object, a chart, or cert-manager for a route's -tls)
  two-factor  a served host whose Authelia rule is not two_factor, a bypass not on the allow-list
              (the portal and lab.PUBLIC_PATHS), or Traefik's websecure entry point without Authelia
  viewers     viewers reaching anything but Grafana and Homepage
  homepage    an interface the mission names (Grafana, Argo CD, Guacamole, Vault, Traefik, Loki and
              Jaeger through Grafana, Vaultwarden) with no Homepage link
  roles       a role whose Authelia group, Argo CD role, Grafana role or Vault policy is not the one
              tools/lab/lab.py ROLES gives it
  budget      a component whose pods state no memory request and limit, or requests above the lab's
              budget (MEMORY_BUDGET_MI)
  vault       a Vault path a pod's Vault Agent reads that the policies of its Kubernetes auth role do
              not grant, or a role that does not admit the pod's ServiceAccount
With --write-readme it rewrites the README's component table (make lab does).
Upstream charts cannot be rendered here (no network): the Services they create and where their values
put a route's host are read from the pinned charts and written below (UPSTREAM_SERVICES, UPSTREAM_HOSTS).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "chartcheck"))

import lab as labfile  # noqa: E402
import walk  # noqa: E402

ROOT = labfile.ROOT
# The Services each upstream chart creates under its Application's name (its release), in its namespace.
UPSTREAM_SERVICES: dict[str, list[str]] = {
    "vault": ["vault", "vault-active", "vault-standby", "vault-internal", "vault-ui", "vault-agent-injector-svc"],
    "authelia": ["authelia"],
    "traefik": ["traefik"],
    "postgres": ["postgres-rw", "postgres-ro", "postgres-r"],
    "nats": ["nats", "nats-headless"],
    "seaweedfs": ["seaweedfs-all-in-one"],
    "kube-prometheus-stack": [
        "kube-prometheus-stack-prometheus",
        "kube-prometheus-stack-alertmanager",
        "kube-prometheus-stack-operator",
    ],
    "loki": ["loki", "loki-headless", "loki-memberlist"],
    "jaeger": ["jaeger", "jaeger-collector"],
    "influxdb": ["influxdb-influxdb2"],
    "opentelemetry-collector": ["opentelemetry-collector"],
    "grafana": ["grafana"],
    "argo-cd": ["argo-cd-argocd-server", "argo-cd-argocd-repo-server", "argo-cd-argocd-redis"],
    "harbor": ["harbor-core", "harbor-portal", "harbor-registry"],
    "vaultwarden": ["vaultwarden"],
    "homepage": ["homepage"],
}
BUILTIN_SERVICES = {("kubernetes", "default"), ("kube-dns", "kube-system")}


def _get(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _authelia_hosts(v: dict[str, Any]) -> list[str]:
    cookies = _get(v, "configMap.session.cookies") or []
    return (
        [f"{c.get('subdomain')}.{c.get('domain')}" for c in cookies if c.get("subdomain")] if _get(v, "ingress.enabled") else []
    )


# Where each upstream chart's values put the hosts it serves (only when its ingress is on).
UPSTREAM_HOSTS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "authelia": _authelia_hosts,
    "homepage": lambda v: [h["host"] for h in _get(v, "ingress.main.hosts") or []] if _get(v, "ingress.main.enabled") else [],
    "grafana": lambda v: list(_get(v, "ingress.hosts") or []) if _get(v, "ingress.enabled") else [],
    "argo-cd": lambda v: [_get(v, "server.ingress.hostname")] if _get(v, "server.ingress.enabled") else [],
    "vault": lambda v: [h["host"] for h in _get(v, "server.ingress.hosts") or []] if _get(v, "server.ingress.enabled") else [],
    "harbor": lambda v: [_get(v, "expose.ingress.hosts.core")] if _get(v, "expose.type") == "ingress" else [],
    "vaultwarden": lambda v: [_get(v, "ingress.hostname")] if _get(v, "ingress.enabled") else [],
    "traefik": lambda v: (
        re.findall(r"Host\(`([^`]+)`\)", _get(v, "ingressRoute.dashboard.matchRule") or "")
        if _get(v, "ingressRoute.dashboard.enabled")
        else []
    ),
}
# The interfaces the mission names, as Homepage must link them (route name, or a Grafana datasource).
MISSION_INTERFACES = {"grafana", "argocd", "guacamole", "vault", "traefik", "passwords"}
MISSION_DATASOURCES = {"loki", "jaeger"}


def merge(base: Any, over: Any) -> Any:
    """helm's merge of values files: maps key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = merge(base.get(key), value) if key in base else value
        return merged
    return over


@dataclass
class App:
    name: str
    namespace: str
    chart: str
    values: dict[str, Any]
    objects: list[dict[str, Any]]


@dataclass
class View:
    """The lab as the check reads it; tests change a copy to seed a mistake."""

    lab: dict[str, Any]
    apps: dict[str, App]
    pulumi_routes: list[str]
    vault: dict[str, Any]
    vault_policies: dict[str, str]
    walk_failures: list[str] = field(default_factory=list)


def collect(root: Path, tree: walk.Walk | None = None) -> View:
    """The lab from the tree charts-check walked (or a new walk)."""
    tree = tree or walk.walk_tree(root)
    apps = {}
    for v in tree.visited:
        values: dict[str, Any] = {}
        for f in v.values_files:
            values = merge(values, yaml.safe_load(f.read_text()) or {})
        # An upstream chart renders its values' extraResources verbatim (the NATS chart's Vault-synced Secrets).
        objects = v.objects + [o for o in values.get("extraResources") or [] if isinstance(o, dict)]
        apps[v.name] = App(v.name, v.namespace, v.chart, values, objects)
    tunnels = yaml.safe_load((root / "infra/pulumi/Pulumi.tunnels.yaml").read_text())["config"]
    return View(
        lab=labfile.load(root / "lab.yaml"),
        apps=apps,
        pulumi_routes=[r["host"] for r in tunnels.get("homestation:routes", [])],
        vault=json.loads((root / "infra/vault/lab.json").read_text()),
        vault_policies={p.stem: p.read_text() for p in sorted((root / "infra/vault/policies").glob("*.hcl"))}
        | {p.parent.parent.name: p.read_text() for p in sorted((root / "charts/apps").glob("*/vault/policy.hcl"))},
        walk_failures=tree.failures,
    )


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def served_hosts(view: View) -> dict[str, str]:
    """host → the Application serving it."""
    served: dict[str, str] = {}
    for app in view.apps.values():
        if app.chart:
            for h in (UPSTREAM_HOSTS.get(app.name) or (lambda _v: []))(app.values):
                if h:
                    served[h] = app.name
        for obj in app.objects:
            if obj.get("kind") == "IngressRoute":
                for route in obj["spec"].get("routes") or []:
                    for h in re.findall(r"Host\(`([^`]+)`\)", route.get("match", "")):
                        served[h] = app.name
            elif obj.get("kind") == "Ingress":
                for rule in obj["spec"].get("rules") or []:
                    served[rule.get("host", "")] = app.name
    return served


def check_hosts(view: View) -> list[str]:
    domain = re.escape(view.lab["domain"])
    pattern = re.compile(
        rf"(?<![\w.-])((?:\*|[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*\.{domain})(?![\w-])"
    )
    served = served_hosts(view)
    problems = []
    sources: list[tuple[str, Any]] = [(f"Application {a.name}", a.values) for a in view.apps.values()]
    sources += [(f"Application {a.name} (rendered)", a.objects) for a in view.apps.values()]
    sources.append(("infra/pulumi/Pulumi.tunnels.yaml", view.pulumi_routes))
    sources.append(("infra/vault/lab.json", view.vault))
    for where, node in sources:
        for text in strings(node):
            for h in sorted(set(pattern.findall(text))):
                if h.startswith("*."):
                    problems.append(f"hosts: {where} names the wildcard {h}: name each route's host")
                elif h not in served:
                    problems.append(f"hosts: {where} names {h}, which no route serves")
    return sorted(set(problems))


def check_services(view: View) -> list[str]:
    known = set(BUILTIN_SERVICES)
    for app in view.apps.values():
        known |= {(s, app.namespace) for s in UPSTREAM_SERVICES.get(app.name, [])}
        known |= {
            (o["metadata"]["name"], o["metadata"].get("namespace") or app.namespace)
            for o in app.objects
            if o.get("kind") == "Service"
        }
    pattern = re.compile(r"(?<![\w.-])([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.svc\b")
    problems = []
    for app in view.apps.values():
        for text in strings([app.values, app.objects]):
            for name, namespace in pattern.findall(text):
                if (name, namespace) not in known:
                    problems.append(
                        f"services: Application {app.name} names {name}.{namespace}.svc, a Service the tree does not deploy"
                    )
    return sorted(set(problems))


# Secrets made outside the tree, by what runs before it (each says who): they cannot come from Vault.
MADE_OUTSIDE = {
    ("vault-unseal", "vault"): "the unsealer's token for Vault's transit seal (Ansible, playbooks/cluster-secrets.yml)",
}
SECRET_KEY = re.compile(r"^(existingSecret\w*|existingConfigSecret|secretName)$")


def referenced_secrets(node: Any, parent: str = "") -> Iterator[str]:
    """Secret names a values file or an object refers to: existingSecret…, secretName, secretKeyRef and
    secretRef names, a `secret: {create: false, name}` block."""
    if isinstance(node, dict):
        for key, value in node.items():
            if (isinstance(value, str) and value and SECRET_KEY.match(str(key)) and not str(key).endswith("Key")) or (
                key == "name" and isinstance(value, str) and parent in ("secretKeyRef", "secretRef")
            ):
                yield value
            elif key == "secret" and isinstance(value, dict) and value.get("create") is False and value.get("name"):
                yield value["name"]
            yield from referenced_secrets(value, str(key))
    elif isinstance(node, list):
        for item in node:
            yield from referenced_secrets(item, parent)


def check_secrets(view: View) -> list[str]:
    produced: set[tuple[str, str]] = set()
    problems = []
    operator = set(_get(view.apps["vault-secrets-operator"].values, "defaultAuthMethod.allowedNamespaces") or [])
    for app in view.apps.values():
        for obj in app.objects:
            ns = (obj.get("metadata") or {}).get("namespace") or app.namespace
            if obj.get("kind") == "Secret":
                produced.add((obj["metadata"]["name"], ns))
            elif obj.get("kind") == "VaultStaticSecret" and ns not in operator:
                problems.append(
                    f"secrets: VaultStaticSecret {ns}/{obj['metadata']['name']} of Application {app.name}: Vault Secrets "
                    f"Operator may not log in to Vault from {ns} (defaultAuthMethod.allowedNamespaces)"
                )
            elif obj.get("kind") == "VaultStaticSecret":
                produced.add((obj["spec"]["destination"]["name"], ns))
    for app in view.apps.values():
        refs = {(s, app.namespace) for s in referenced_secrets(app.values)}
        for obj in app.objects:
            ns = (obj.get("metadata") or {}).get("namespace") or app.namespace
            refs |= {(s, ns) for s in referenced_secrets(obj.get("spec") or {})}
        for name, ns in sorted(refs):
            # Routes' certificates: cert-manager issues <route>-tls for every route (the ClusterIssuer annotation).
            if name.endswith("-tls") or (name, ns) in produced or (name, ns) in MADE_OUTSIDE:
                continue
            problems.append(
                f"secrets: Application {app.name} uses Secret {ns}/{name}, which nothing produces "
                "(a Vault Secrets Operator object of platform-config?)"
            )
    return problems


def authelia_rules(view: View) -> list[dict[str, Any]]:
    return list(_get(view.apps["authelia"].values, "configMap.access_control.rules") or [])


def domains(rule: dict[str, Any]) -> list[str]:
    d = rule.get("domain") or []
    return [d] if isinstance(d, str) else list(d)


def matches(rule: dict[str, Any], h: str) -> bool:
    return any(d == h or (d.startswith("*.") and h.endswith(d[1:])) for d in domains(rule))


def whole_host_rule(view: View, h: str, group: str | None = None) -> dict[str, Any] | None:
    """The rule Authelia applies to a request for any path of `h` (by `group`, or by anyone)."""
    for rule in authelia_rules(view):
        if rule.get("resources") or rule.get("methods") or not matches(rule, h):
            continue
        subjects = rule.get("subject")
        if group is not None and subjects and f"group:{group}" not in subjects:
            continue
        return rule
    return None


def check_two_factor(view: View) -> list[str]:
    problems = []
    portal = labfile.host(view.lab, "auth")
    allowed = {(labfile.host(view.lab, name), tuple(paths)) for name, (paths, _m, _why) in labfile.PUBLIC_PATHS.items()}
    for given in authelia_rules(view):
        if given.get("policy") in ("bypass", "one_factor"):
            scoped = tuple(given.get("resources") or ())
            for d in domains(given):
                if not (d == portal and not scoped) and (d, scoped) not in allowed:
                    problems.append(
                        f"two-factor: Authelia lets {d} {' '.join(scoped) or '(every path)'} through "
                        f"with {given['policy']}: not on the allow-list"
                    )
    for h in sorted(served_hosts(view)):
        if h == portal:
            continue
        rule = whole_host_rule(view, h)
        if rule is None or rule.get("policy") != "two_factor":
            problems.append(
                f"two-factor: {h} is served but Authelia's rule for it is "
                f"{(rule and rule.get('policy')) or 'none (default)'}, not two_factor"
            )
    entry = _get(view.apps["traefik"].values, "ports.websecure.http.middlewares") or []
    if "traefik-authelia@kubernetescrd" not in entry:
        problems.append(
            "two-factor: Traefik's websecure entry point does not send every request through Authelia "
            "(traefik-authelia@kubernetescrd)"
        )
    return problems


def check_viewers(view: View) -> list[str]:
    reach = {
        h
        for h in served_hosts(view)
        if h != labfile.host(view.lab, "auth") and (r := whole_host_rule(view, h, "viewers")) and r.get("policy") != "deny"
    }
    expected = {labfile.host(view.lab, "grafana"), labfile.host(view.lab, "home")}
    return [f"viewers: viewers reach {h}; they may reach Grafana and Homepage only" for h in sorted(reach - expected)] + [
        f"viewers: viewers cannot reach {h}" for h in sorted(expected - reach)
    ]


def homepage_links(view: View) -> set[str]:
    links = {s for s in strings(_get(view.apps["homepage"].values, "config.services")) if s.startswith("https://")}
    for app in view.apps.values():
        for obj in app.objects:
            href = ((obj.get("metadata") or {}).get("annotations") or {}).get("gethomepage.dev/href")
            if href:
                links.add(href)
    return links


def check_homepage(view: View) -> list[str]:
    links = homepage_links(view)
    hosts = {urlparse(u).hostname for u in links}
    problems = [
        f"homepage: no Homepage link to {labfile.host(view.lab, r)}"
        for r in sorted(MISSION_INTERFACES)
        if labfile.host(view.lab, r) not in hosts
    ]
    datasources = {
        d["uid"]
        for file in (_get(view.apps["grafana"].values, "datasources") or {}).values()
        for d in (file or {}).get("datasources") or []
    }
    for uid in sorted(MISSION_DATASOURCES):
        if not any(
            urlparse(u).hostname == labfile.host(view.lab, "grafana") and f'"datasource":"{uid}"' in unquote(u) for u in links
        ):
            problems.append(f"homepage: no Homepage link to {uid} through Grafana's Explore")
        if uid not in datasources:
            problems.append(f"homepage: Grafana has no datasource {uid} for Homepage's link")
    return problems


def check_roles(view: View) -> list[str]:
    problems = []
    rbac = _get(view.apps["argo-cd"].values, "configs.rbac") or {}
    policy = rbac.get("policy.csv", "")
    mapped = dict(re.findall(r"^g, (\S+), (\S+)$", policy, re.M))
    grafana = view.apps["grafana"].values.get("grafana.ini") or {}
    path = (grafana.get("auth.generic_oauth") or {}).get("role_attribute_path", "")
    vault_roles = {r["group"]: r["policy"] for r in view.vault.get("roles", [])}
    reachable_groups = {s.removeprefix("group:") for rule in authelia_rules(view) for s in rule.get("subject") or []}
    for role in labfile.ROLES:
        if role.group not in reachable_groups:
            problems.append(f"roles: {role.name}: Authelia's rules never name group {role.group}")
        if mapped.get(role.group, "") != role.argocd:
            problems.append(
                f"roles: {role.name}: Argo CD maps group {role.group} to {mapped.get(role.group) or 'nothing'}, "
                f"not {role.argocd or 'nothing'}"
            )
        if f"contains(groups[*], '{role.group}') && '{role.grafana}'" not in path:
            problems.append(f"roles: {role.name}: Grafana does not give group {role.group} the role {role.grafana}")
        if vault_roles.get(role.group) != role.vault_policy or role.vault_policy not in view.vault_policies:
            problems.append(
                f"roles: {role.name}: Vault's OIDC role for group {role.group} is not policy {role.vault_policy} (infra/vault)"
            )
    if rbac.get("policy.default"):
        problems.append("roles: Argo CD gives everyone a default role (policy.default): viewers would reach it")
    return problems


# The platform's memory requests must fit beside workloads on the mission's 32 GB control node: 12 GiB
# for everything Argo CD deploys leaves 20 GB for Windows, WSL2, K3s itself and the lab's own workloads.
MEMORY_BUDGET_MI = 12 * 1024
UNITS = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1 / 1024, "M": 1, "G": 1000}


def mebibytes(quantity: str) -> float:
    number = re.match(r"^([0-9.]+)([A-Za-z]*)$", str(quantity))
    if number is None or number.group(2) not in (*UNITS, ""):
        raise ValueError(f"not a memory quantity: {quantity}")
    return float(number.group(1)) * UNITS.get(number.group(2), 1 / 1024 / 1024)


def memory(app: App) -> tuple[float, float, int]:
    """(requests, limits) in MiB of an Application's pods, and how many containers state none: upstream
    charts by their values' `resources` blocks (one replica each), this repository's by what renders."""
    requested = limited = 0.0
    missing = 0
    if app.chart:
        blocks = [r for _path, r in resource_blocks(app.values)]
    else:
        blocks = []
        for obj in app.objects:
            spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
            replicas = int((obj.get("spec") or {}).get("replicas") or 1)
            for c in spec.get("containers") or []:
                blocks += [c.get("resources") or {}] * replicas
    for r in blocks:
        request, limit = (r.get("requests") or {}).get("memory"), (r.get("limits") or {}).get("memory")
        if request is None or limit is None:
            missing += 1
        requested += mebibytes(request) if request else 0
        limited += mebibytes(limit) if limit else 0
    return requested, limited, missing


def resource_blocks(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            # A volume claim's `resources` asks for storage, not memory.
            if key == "resources" and isinstance(value, dict) and "storage" not in (value.get("requests") or {}):
                yield here, value
            else:
                yield from resource_blocks(value, here)
    elif isinstance(node, list):
        for item in node:
            yield from resource_blocks(item, path)


def has_pods(app: App) -> bool:
    return bool(app.chart) or any(o.get("kind") in ("Deployment", "StatefulSet", "DaemonSet") for o in app.objects)


def check_budget(view: View) -> list[str]:
    problems = []
    total = 0.0
    for app in view.apps.values():
        if not has_pods(app):
            continue
        requested, _limited, missing = memory(app)
        total += requested
        if requested == 0 or missing:
            problems.append(
                f"budget: Application {app.name} runs pods without a memory request and limit ({missing or 'all'} unset)"
            )
    if total > MEMORY_BUDGET_MI:
        problems.append(
            f"budget: the lab requests {total / 1024:.1f} GiB of memory, over its {MEMORY_BUDGET_MI / 1024:.0f} GiB budget"
        )
    return problems


def components(view: View) -> list[dict[str, str]]:
    """One row per platform component and HomeStation service with pods: the README's component table
    (services `make app` adds are not in it: they count in the budget only)."""
    served: dict[str, list[str]] = {}
    for h, serving in served_hosts(view).items():
        served.setdefault(serving, []).append(h)
    audience = {r.app: r.audience for r in labfile.routes(view.lab)}
    rows = []
    for app in view.apps.values():
        if not has_pods(app) or app.name in view.lab["apps"]:
            continue
        requested, limited, _ = memory(app)
        who = audience.get(app.name, "")
        rows.append(
            {
                "component": app.name,
                "chart": f"{app.chart} {view.lab['charts'].get(app.name, '')}" if app.chart else "this repository's",
                "route": ", ".join(sorted(served.get(app.name, []))) or "none (in-cluster only)",
                "who": "anyone (sign-in portal)" if who == "portal" else ", ".join(labfile.audience_groups(who)) if who else "—",
                "memory": f"{requested:.0f} / {limited:.0f} Mi",
            }
        )
    return rows


def readme_table(view: View) -> str:
    rows = components(view)
    total = sum(memory(a)[0] for a in view.apps.values() if has_pods(a) and a.name not in view.lab["apps"])
    lines = [
        "| component | chart | route | who may reach it | memory request / limit |",
        "|---|---|---|---|---|",
        *(f"| {r['component']} | {r['chart']} | {r['route']} | {r['who']} | {r['memory']} |" for r in rows),
        "",
        f"Memory requested by the platform and HomeStation's services: {total / 1024:.1f} GiB "
        f"of a {MEMORY_BUDGET_MI / 1024:.0f} GiB budget "
        "(the mission's 32 GB control node, with 20 GB left for Windows, WSL2, K3s and workloads); "
        "`make charts-check` prints it with the services `make app` added, and fails above the budget.",
    ]
    return "\n".join(lines) + "\n"


README_BEGIN, README_END = "<!-- components: written by make lab from the tree; do not edit -->\n", "<!-- /components -->\n"


def readme_with_table(readme: str, view: View) -> str:
    start, end = readme.index(README_BEGIN) + len(README_BEGIN), readme.index(README_END)
    return readme[:start] + readme_table(view) + readme[end:]


# What Vault's built-in `default` policy, attached to every token, already grants.
DEFAULT_POLICY_PATHS = {"auth/token/lookup-self", "auth/token/renew-self", "auth/token/revoke-self"}


def granted(policies: list[str], path: str) -> bool:
    """Whether one of these HCL policies grants `read` on `path` (Vault's globs: a trailing `*` is a
    prefix, `+` one segment)."""
    for text in policies:
        for glob, caps in re.findall(r'path "([^"]+)"\s*\{[^}]*capabilities\s*=\s*\[([^\]]*)\]', text):
            if '"read"' not in caps:
                continue
            pattern = "^" + re.escape(glob.rstrip("*")).replace(r"\+", "[^/]+") + (".*" if glob.endswith("*") else "") + "$"
            if re.match(pattern, path):
                return True
    return False


def check_vault_paths(view: View) -> list[str]:
    """Every Vault path a pod's Vault Agent reads is granted by the policies of the Kubernetes auth role it
    logs in with, and that role admits the pod's ServiceAccount and namespace (infra/vault, make lab)."""
    roles = {r["name"]: r for r in view.vault.get("kubernetesRoles", [])}
    problems = []
    for app in view.apps.values():
        for obj in app.objects:
            template = (obj.get("spec") or {}).get("template") or {}
            notes = (template.get("metadata") or {}).get("annotations") or {}
            role_name = notes.get("vault.hashicorp.com/role")
            if notes.get("vault.hashicorp.com/agent-inject") != "true" or not role_name:
                continue
            where = f"Application {app.name} {obj['kind']}/{obj['metadata']['name']}"
            role = roles.get(role_name)
            if role is None:
                problems.append(
                    f"vault: {where} logs in as Kubernetes auth role {role_name}, which Vault's bootstrap does not make"
                )
                continue
            account = (template.get("spec") or {}).get("serviceAccountName", "default")
            namespace = obj["metadata"].get("namespace") or app.namespace
            if account not in role["serviceAccounts"] or namespace not in role["namespaces"]:
                problems.append(f"vault: {where}: role {role_name} does not admit ServiceAccount {namespace}/{account}")
            policies = [view.vault_policies.get(p, "") for p in role["policies"]]
            paths = {v for k, v in notes.items() if k.startswith("vault.hashicorp.com/agent-inject-secret-")}
            for k, v in notes.items():
                if k.startswith("vault.hashicorp.com/agent-inject-template-"):
                    paths |= set(re.findall(r'secret "([^"]+)"', v))
            for path in sorted(paths - DEFAULT_POLICY_PATHS):
                if not granted(policies, path):
                    problems.append(
                        f"vault: {where} reads {path}, which role {role_name}'s policies {role['policies']} do not grant"
                    )
    return problems


RULES: dict[str, Callable[[View], list[str]]] = {
    "hosts": check_hosts,
    "services": check_services,
    "secrets": check_secrets,
    "two-factor": check_two_factor,
    "viewers": check_viewers,
    "homepage": check_homepage,
    "roles": check_roles,
    "budget": check_budget,
    "vault": check_vault_paths,
}


def check(view: View) -> list[str]:
    return [p for rule in RULES.values() for p in rule(view)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: %(default)s)")
    parser.add_argument("--write-readme", action="store_true", help="rewrite the README's component table (make lab)")
    args = parser.parse_args(argv)
    try:
        view = collect(args.root)
    except labfile.LabError as e:
        print(f"labcheck: {e}", file=sys.stderr)
        return 2
    if args.write_readme:
        readme = args.root / "README.md"
        readme.write_text(readme_with_table(readme.read_text(), view))
    problems = check(view)
    for p in problems:
        print(f"FAIL {p}")
    print(f"labcheck: {len(RULES)} rule(s) over {len(view.apps)} Application(s): {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
