"""lab.yaml and the whole-lab check: what make lab writes follows the lab file everywhere, a hand edit is
caught, a bad lab file is refused with its path, and every whole-lab rule fails on a mistake seeded into
the tree as committed."""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import lab
import labcheck

ROOT = lab.ROOT
GENERATED = ("argocd", "infra/vault", "infra/ansible/inventory", "infra/pulumi")


def copy_repo(target: Path) -> Path:
    """What the lab reads and make lab writes, and the charts the tree renders."""
    for folder in ("argocd", "charts", "dashboards", "infra/vault", "infra/ansible/inventory"):
        shutil.copytree(ROOT / folder, target / folder, ignore=shutil.ignore_patterns("charts", "Chart.lock", "node_modules"))
    for file in lab.READS:
        (target / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / file, target / file)
    return target


def test_the_committed_files_are_what_lab_yaml_makes(capsys: pytest.CaptureFixture[str]) -> None:
    assert lab.main(["check"]) == 0, capsys.readouterr().out
    assert "0 differ" in capsys.readouterr().err


def test_a_hand_edit_to_a_generated_file_is_caught_and_make_lab_restores_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = copy_repo(tmp_path)
    edited = repo / "argocd/lab/authelia.yaml"
    edited.write_text(edited.read_text().replace("policy: two_factor", "policy: one_factor", 1))
    assert lab.main(["check", "--root", str(repo)]) == 1
    assert "FAIL argocd/lab/authelia.yaml: differs from what lab.yaml makes" in capsys.readouterr().out
    stray = repo / "argocd/services/retired.yaml"
    stray.write_text(lab.GENERATED_HEADER)
    assert lab.main(["check", "--root", str(repo)]) == 1
    assert "argocd/services/retired.yaml: lab.yaml no longer makes it" in capsys.readouterr().out
    assert lab.main(["write", "--root", str(repo)]) == 0
    assert not stray.exists() and lab.main(["check", "--root", str(repo)]) == 0


def test_a_new_domain_moves_every_host_and_the_whole_lab_still_holds(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path)
    lab_file = repo / "lab.yaml"
    lab_file.write_text(lab_file.read_text().replace("domain: homestation.example.org", "domain: lab.example.net"))
    assert lab.main(["write", "--root", str(repo)]) == 0
    generated = lab.render(lab.load(lab_file))
    hosts = set()
    for rel, text in generated.items():
        assert "homestation.example.org" not in text, f"{rel} still names the old domain"
        hosts |= set(re.findall(r"\b[a-z0-9-]+\.lab\.example\.net\b", text))
    assert {f"{r.name}.lab.example.net" for r in lab.ROUTES} <= hosts
    problems = labcheck.check(labcheck.collect(repo))
    assert problems == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(domain="Not A Domain"), "lab.yaml: domain: 'Not A Domain' does not match"),
        (lambda d: d["people"][0].update(role="root"), "lab.yaml: people.0.role: 'root' is not one of"),
        (lambda d: d["hosts"].append({"name": "second", "kind": "control"}), "exactly one host must be of kind control"),
        (lambda d: d["people"].append(dict(d["people"][0])), "user admin appears twice"),
        (lambda d: d.update(people=[p for p in d["people"] if p["role"] != "admin"]), "nobody has role admin"),
        (lambda d: d["charts"].update(vault=">=0.30"), "lab.yaml: charts.vault: '>=0.30' does not match"),
        (lambda d: d["s3"].update(endpoint="https://s3.example.net"), "lab.yaml: s3: 'cidrs' is a dependency of 'endpoint'"),
    ],
)
def test_a_bad_lab_file_is_refused_with_where_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    repo = copy_repo(tmp_path)
    data = yaml.safe_load((repo / "lab.yaml").read_text())
    edit(data)
    (repo / "lab.yaml").write_text(yaml.safe_dump(data))
    before = {p: p.read_bytes() for folder in GENERATED for p in (repo / folder).rglob("*") if p.is_file()}
    assert lab.main(["write", "--root", str(repo)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert {p: p.read_bytes() for p in before} == before


# The whole-lab rules, each against one mistake seeded into the tree as committed.


@pytest.fixture(scope="module")
def committed() -> labcheck.View:
    view = labcheck.collect(ROOT)
    assert labcheck.check(view) == [], "the tree as committed passes"
    return view


def values(view: labcheck.View, app: str) -> dict[str, Any]:
    return view.apps[app].values


def rules_of(view: labcheck.View) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = values(view, "authelia")["configMap"]["access_control"]["rules"]
    return rules


def rule_for(view: labcheck.View, route: str) -> dict[str, Any]:
    return next(r for r in rules_of(view) if f"{route}.homestation.example.org" in labcheck.domains(r) and not r.get("resources"))


def homepage_links(view: labcheck.View) -> list[dict[str, Any]]:
    """The first group's links (the list itself, to change)."""
    links: list[dict[str, Any]] = next(iter(values(view, "homepage")["config"]["services"][0].values()))
    return links


def drop_link(view: labcheck.View, title: str) -> None:
    for group in values(view, "homepage")["config"]["services"]:
        for name, links in group.items():
            group[name] = [link for link in links if title not in link]


def drop_secret(view: labcheck.View, name: str) -> None:
    app = view.apps["platform-config"]
    app.objects = [o for o in app.objects if not (o["kind"] == "VaultStaticSecret" and o["metadata"]["name"] == name)]


def catch_all(view: labcheck.View) -> None:
    """Argo CD's host left to a wildcard rule with no subject: everyone signed in reaches it."""
    rule_for(view, "argocd")["domain"].remove("argocd.homestation.example.org")
    rules_of(view).append({"domain": "*.homestation.example.org", "policy": "two_factor"})


def set_policy_csv(view: labcheck.View, extra: str) -> None:
    rbac = values(view, "argo-cd")["configs"]["rbac"]
    rbac["policy.csv"] += extra


SEEDED: dict[str, tuple[Callable[[labcheck.View], None], str]] = {
    "hosts: a Homepage link to a host no route serves": (
        lambda v: homepage_links(v).append({"Wiki": {"href": "https://wiki.homestation.example.org"}}),
        "hosts: Application homepage names wiki.homestation.example.org, which no route serves",
    ),
    "hosts: a wildcard tunnel hostname": (
        lambda v: values(v, "cloudflared")["cloudflare"]["ingress"].append({"hostname": "*.homestation.example.org"}),
        "hosts: Application cloudflared names the wildcard *.homestation.example.org",
    ),
    "hosts: a Pulumi DNS record for a route that is gone": (
        lambda v: v.pulumi_routes.append("minio.homestation.example.org"),
        "hosts: infra/pulumi/Pulumi.tunnels.yaml names minio.homestation.example.org, which no route serves",
    ),
    "services: an S3 endpoint no Service answers": (
        lambda v: values(v, "velero")["configuration"]["backupStorageLocation"][0]["config"].update(
            s3Url="http://minio.minio.svc:9000"
        ),
        "services: Application velero names minio.minio.svc, a Service the tree does not deploy",
    ),
    "services: a Grafana datasource on a Service that does not exist": (
        lambda v: values(v, "grafana")["datasources"]["datasources.yaml"]["datasources"][2].update(
            url="http://tempo.observability.svc:3200"
        ),
        "services: Application grafana names tempo.observability.svc",
    ),
    "secrets: a Secret an upstream chart references, never synced from Vault": (
        lambda v: drop_secret(v, "seaweedfs-s3"),
        "secrets: Application seaweedfs uses Secret seaweedfs/seaweedfs-s3, which nothing produces",
    ),
    "secrets: a Secret a rendered pod mounts, never made": (
        lambda v: drop_secret(v, "guacamole-db"),
        "secrets: Application guacamole uses Secret guacamole/guacamole-db, which nothing produces",
    ),
    "secrets: a Secret synced where Vault Secrets Operator may not log in": (
        lambda v: values(v, "vault-secrets-operator")["defaultAuthMethod"]["allowedNamespaces"].remove("traefik"),
        "secrets: VaultStaticSecret traefik/traefik-proxy-proof of Application platform-config: Vault Secrets Operator may not",
    ),
    "two-factor: one factor for an outside route": (
        lambda v: rule_for(v, "grafana").update(policy="one_factor"),
        "two-factor: Authelia lets home.homestation.example.org (every path) through with one_factor",
    ),
    "two-factor: a bypass that is not on the allow-list": (
        lambda v: rules_of(v).insert(
            1, {"domain": "inventory.homestation.example.org", "resources": ["^/v1/"], "policy": "bypass"}
        ),
        "two-factor: Authelia lets inventory.homestation.example.org ^/v1/ through with bypass: not on the allow-list",
    ),
    "two-factor: a route with no rule of its own": (
        lambda v: rule_for(v, "vault")["domain"].remove("vault.homestation.example.org"),
        "two-factor: vault.homestation.example.org is served but Authelia's rule for it is none (default), not two_factor",
    ),
    "two-factor: Traefik's entry point without Authelia": (
        lambda v: values(v, "traefik")["ports"]["websecure"]["http"].update(middlewares=["homestation-proxy-proof@file"]),
        "two-factor: Traefik's websecure entry point does not send every request through Authelia",
    ),
    "viewers: viewers let into an admin tool": (
        lambda v: rule_for(v, "vault")["subject"].append("group:viewers"),
        "viewers: viewers reach vault.homestation.example.org; they may reach Grafana and Homepage only",
    ),
    "viewers: a catch-all rule for everyone": (
        catch_all,
        "viewers: viewers reach argocd.homestation.example.org",
    ),
    "homepage: the Vault UI not linked": (
        lambda v: drop_link(v, "Vault"),
        "homepage: no Homepage link to vault.homestation.example.org",
    ),
    "homepage: Jaeger not linked through Grafana": (
        lambda v: drop_link(v, "Jaeger (traces)"),
        "homepage: no Homepage link to jaeger through Grafana's Explore",
    ),
    "roles: viewers given an Argo CD role": (
        lambda v: set_policy_csv(v, "g, viewers, role:readonly\n"),
        "roles: viewer: Argo CD maps group viewers to role:readonly, not nothing",
    ),
    "roles: Grafana makes developers admins": (
        lambda v: values(v, "grafana")["grafana.ini"]["auth.generic_oauth"].update(
            role_attribute_path="contains(groups[*], 'developers') && 'Admin' || 'Viewer'"
        ),
        "roles: developer: Grafana does not give group developers the role Editor",
    ),
    "roles: the Vault OIDC role of developers holding the admin policy": (
        lambda v: v.vault["roles"][1].update(policy="role-admin"),
        "roles: developer: Vault's OIDC role for group developers is not policy role-developer",
    ),
    "roles: Argo CD's default role": (
        lambda v: values(v, "argo-cd")["configs"]["rbac"].update({"policy.default": "role:readonly"}),
        "roles: Argo CD gives everyone a default role",
    ),
    "budget: a component with no memory request": (
        lambda v: values(v, "grafana").pop("resources"),
        "budget: Application grafana runs pods without a memory request and limit",
    ),
    "budget: more than the control node can give": (
        lambda v: values(v, "kube-prometheus-stack")["prometheus"]["prometheusSpec"]["resources"]["requests"].update(
            memory="16Gi"
        ),
        "budget: the lab requests 21.",
    ),
    "vault: a service's policy without a path its Vault Agent reads": (
        lambda v: v.vault_policies.update({"svc-backup": v.vault_policies["svc-backup"].replace("homestation/nats/backup", "x")}),
        "vault: Application backup Deployment/backup reads secret/data/homestation/nats/backup, which role backup's policies",
    ),
    "vault: a Kubernetes auth role bound to another ServiceAccount": (
        lambda v: v.vault["kubernetesRoles"][0].update(serviceAccounts=["someone-else"]),
        "vault: Application inventory Deployment/inventory: role inventory does not admit ServiceAccount homestation/inventory",
    ),
}


def test_the_readme_table_is_what_the_tree_deploys(committed: labcheck.View) -> None:
    readme = (ROOT / "README.md").read_text()
    assert labcheck.readme_with_table(readme, committed) == readme, "make lab rewrites the README's component table"
    view = copy.deepcopy(committed)
    values(view, "grafana")["resources"]["requests"]["memory"] = "1Gi"
    assert "| grafana | grafana 12.11.1 | grafana.homestation.example.org | admins, developers, viewers | 1024 / 512 Mi |" in (
        labcheck.readme_with_table(readme, view)
    )


@pytest.mark.parametrize("mistake", sorted(SEEDED))
def test_every_whole_lab_rule_fails_on_a_seeded_mistake(committed: labcheck.View, mistake: str) -> None:
    seed, expected = SEEDED[mistake]
    view = copy.deepcopy(committed)
    seed(view)
    problems = labcheck.check(view)
    assert any(expected in p for p in problems), problems


def test_every_rule_has_a_seeded_mistake() -> None:
    assert {m.split(":")[0] for m in SEEDED} == set(labcheck.RULES)
