"""What lab.yaml makes, file by file: the values each platform component, service and stack takes from it."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import yaml

from lab import (
    GENERATED_HEADER,
    PUBLIC_PATHS,
    ROLES,
    SEAWEEDFS_S3,
    SERVICES,
    audience_groups,
    control_host,
    host,
    people_in,
    routes,
    s3_endpoint,
    to_yaml,
    url,
)

Lab = dict[str, Any]
TLS_ISSUER = {"cert-manager.io/cluster-issuer": "homestation-vault"}


def root_application(lab: Lab) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "homestation", "namespace": "argocd", "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
        "spec": {
            "project": "default",
            "source": {
                "repoURL": lab["git"]["repoURL"],
                "targetRevision": lab["git"]["revision"],
                "path": "argocd/app-of-apps",
                "helm": {"valueFiles": ["values.yaml", "values-lab.yaml"]},
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "argocd"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }


def app_of_apps(lab: Lab, overlays: list[str]) -> dict[str, Any]:
    return {
        "repoURL": lab["git"]["repoURL"],
        "targetRevision": lab["git"]["revision"],
        "versions": dict(lab["charts"]),
        "labValues": overlays,
        "devNamespaces": list(lab["devNamespaces"]),
    }


def authelia_rules(lab: Lab) -> list[dict[str, Any]]:
    """Authelia's access control, first match wins, default deny: the portal, the allow-listed
    machine paths, then each route for its audience, always with two factors. No wildcard rule."""
    rules: list[dict[str, Any]] = [{"domain": host(lab, "auth"), "policy": "bypass"}]
    for name, (paths, methods, _why) in PUBLIC_PATHS.items():
        rule: dict[str, Any] = {"domain": host(lab, name), "resources": paths}
        if methods:
            rule["methods"] = methods
        rules.append({**rule, "policy": "bypass"})
    for role in ROLES:
        hosts = [host(lab, r.name) for r in routes(lab) if r.audience == role.name]
        if hosts:
            groups = [f"group:{g}" for g in audience_groups(role.name)]
            rules.append({"domain": hosts, "subject": groups, "policy": "two_factor"})
    return rules


def oidc_client(client_id: str, name: str, redirect_uris: list[str]) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "client_name": name,
        "client_secret": {"path": f"/secrets/oidc.client.{client_id}"},
        "redirect_uris": redirect_uris,
        "scopes": ["openid", "profile", "email", "groups"],
        "authorization_policy": "two_factor",
    }


def authelia(lab: Lab) -> dict[str, Any]:
    return {
        "configMap": {
            "authentication_backend": {
                # The people of lab.yaml, with their password hashes from Vault (platform-config's
                # authelia-users Secret), re-read when Vault changes them.
                "file": {"enabled": True, "path": "/users/users_database.yml", "watch": True},
            },
            "session": {"cookies": [{"domain": lab["domain"], "subdomain": "auth"}]},
            "notifier": {"smtp": {"enabled": True, "address": lab["smtp"]["address"], "sender": lab["smtp"]["sender"]}},
            "access_control": {"default_policy": "deny", "rules": authelia_rules(lab)},
            "identity_providers": {
                "oidc": {
                    "enabled": True,
                    "clients": [
                        oidc_client("argocd", "Argo CD", [url(lab, "argocd", "/auth/callback")]),
                        oidc_client("grafana", "Grafana", [url(lab, "grafana", "/login/generic_oauth")]),
                        oidc_client(
                            "vault",
                            "Vault",
                            [url(lab, "vault", "/ui/vault/auth/oidc/oidc/callback"), "http://localhost:8250/oidc/callback"],
                        ),
                    ],
                }
            },
        }
    }


def users_database(lab: Lab) -> str:
    """Authelia's users file as a Vault Secrets Operator template: people from lab.yaml, each password
    hash read from Vault (secret/platform/authelia-users, one key per user)."""
    users = {
        p["user"]: {
            "disabled": False,
            "displayname": p["name"],
            "email": p["email"],
            "password": f"@@{p['user']}@@",
            "groups": [next(r.group for r in ROLES if r.name == p["role"])],
        }
        for p in lab["people"]
    }
    text = yaml.safe_dump({"users": users}, sort_keys=False)
    for p in lab["people"]:
        text = text.replace(f"'@@{p['user']}@@'", f'{{{{ get .Secrets "{p["user"]}" | quote }}}}')
    return text


def platform_config(lab: Lab) -> dict[str, Any]:
    return {
        "devNamespaces": [{"name": ns, "group": "developers"} for ns in lab["devNamespaces"]],
        "labSecrets": [
            {
                "name": "authelia-users",
                "namespace": "authelia",
                "path": "platform/authelia-users",
                "rollout": [{"kind": "Deployment", "name": "authelia"}],
                "template": {"key": "users_database.yml", "text": users_database(lab)},
            }
        ],
    }


def homepage(lab: Lab) -> dict[str, Any]:
    """Every interface the mission names, one link each; Loki and Jaeger through Grafana's Explore.
    HomeStation's services add themselves by discovery (their IngressRoutes' gethomepage.dev labels)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in routes(lab):
        if r.app in SERVICES or r.app in lab["apps"] or r.name in ("auth", "home"):
            continue
        groups.setdefault(r.group, []).append({r.title: {"href": url(lab, r.name), "icon": r.icon, "description": r.description}})
    for uid, title in (("loki", "Loki (logs)"), ("jaeger", "Jaeger (traces)")):
        pane = json.dumps({"x": {"datasource": uid}}, separators=(",", ":"))
        groups["Observability"].append(
            {title: {"href": url(lab, "grafana", f"/explore?schemaVersion=1&panes={quote(pane)}"), "icon": f"{uid}.png"}}
        )
    groups["HomeStation"] = [
        {
            "Inventory export": {
                "href": url(lab, "inventory", "/v1/exports/homepage/services.yaml"),
                "description": "Every service the inventory knows, as a Homepage services.yaml",
            }
        }
    ]
    return {
        "config": {"services": [{name: links} for name, links in groups.items()]},
        "ingress": {
            "main": {
                "hosts": [{"host": host(lab, "home"), "paths": [{"path": "/", "pathType": "Prefix"}]}],
                "tls": [{"secretName": "homepage-tls", "hosts": [host(lab, "home")]}],
            }
        },
    }


def grafana(lab: Lab) -> dict[str, Any]:
    roles = " || ".join(f"contains(groups[*], '{r.group}') && '{r.grafana}'" for r in ROLES)
    return {
        "grafana.ini": {
            "server": {"root_url": url(lab, "grafana")},
            "auth.generic_oauth": {
                "auth_url": url(lab, "auth", "/api/oidc/authorization"),
                "token_url": url(lab, "auth", "/api/oidc/token"),
                "api_url": url(lab, "auth", "/api/oidc/userinfo"),
                # Nobody outside the three groups gets in (Authelia lets no one else through either).
                "role_attribute_path": roles,
                "role_attribute_strict": True,
            },
        },
        "ingress": {"hosts": [host(lab, "grafana")], "tls": [{"secretName": "grafana-tls", "hosts": [host(lab, "grafana")]}]},
    }


def vault_config(lab: Lab) -> str:
    """The cluster Vault's server configuration. Its seal is the unsealer on the control node, reached by
    the node's name (K3s's CoreDNS answers node names with their tailnet address)."""
    control = next(h["name"] for h in lab["hosts"] if h["kind"] == "control")
    port = str(lab["unsealer"]["vault_unsealer_listen"]).rpartition(":")[2]
    key = lab["unsealer"]["vault_unsealer_transit_key"]
    return f"""ui = true
listener "tcp" {{
  address = "[::]:8200"
  cluster_address = "[::]:8201"
  tls_disable = 1
  telemetry {{
    unauthenticated_metrics_access = true
  }}
}}
storage "raft" {{
  path = "/vault/data"
}}
# Transit auto-unseal; the token is VAULT_TOKEN, from the Secret vault-unseal.
seal "transit" {{
  address = "http://{control}:{port}"
  key_name = "{key}"
  mount_path = "transit/"
}}
service_registration "kubernetes" {{}}
telemetry {{
  prometheus_retention_time = "30s"
  disable_hostname = true
}}
"""


def argocd_policy() -> str:
    """Argo CD RBAC: admins everything; developers sync HomeStation's services and apps and own the dev
    project; viewers nothing (they never reach Argo CD); the deployer's account gets and syncs."""
    lines = [
        "p, role:developer, applications, get, homestation/*, allow",
        "p, role:developer, applications, get, apps/*, allow",
        "p, role:developer, applications, sync, homestation/*, allow",
        "p, role:developer, applications, sync, apps/*, allow",
        "p, role:developer, applications, *, dev/*, allow",
        "p, role:developer, logs, get, */*, allow",
        "p, role:developer, projects, get, *, allow",
        *(f"g, {r.group}, {r.argocd}" for r in ROLES if r.argocd),
        "p, deployer, applications, get, */*, allow",
        "p, deployer, applications, sync, */*, allow",
    ]
    return "\n".join(lines) + "\n"


def argo_cd(lab: Lab) -> dict[str, Any]:
    oidc = {
        "name": "Authelia",
        "issuer": url(lab, "auth"),
        "clientID": "argocd",
        "clientSecret": "$oidc.authelia.clientSecret",
        "requestedScopes": ["openid", "profile", "email", "groups"],
    }
    return {
        "configs": {
            "cm": {"url": url(lab, "argocd"), "oidc.config": yaml.safe_dump(oidc, sort_keys=False)},
            "rbac": {"policy.default": "", "scopes": "[groups]", "policy.csv": argocd_policy()},
        },
        "server": {"ingress": {"hostname": host(lab, "argocd")}},
    }


def platform(lab: Lab) -> dict[str, dict[str, Any]]:
    """The lab's values of each platform component, over argocd/platform/<name>.yaml."""
    s3 = lab["s3"]
    buckets = s3["buckets"]
    return {
        "argo-cd": argo_cd(lab),
        "authelia": authelia(lab),
        "cloudflared": {
            "cloudflare": {
                "tunnelName": lab["tunnel"]["name"],
                "ingress": [
                    {
                        "hostname": host(lab, r.name),
                        "service": "https://traefik.traefik.svc:443",
                        "originRequest": {"originServerName": host(lab, r.name)},
                    }
                    for r in routes(lab)
                ],
            }
        },
        "grafana": grafana(lab),
        "guacamole": {"host": host(lab, "guacamole")},
        "harbor": {"externalURL": url(lab, "harbor"), "expose": {"ingress": {"hosts": {"core": host(lab, "harbor")}}}},
        "homepage": homepage(lab),
        "platform-config": platform_config(lab),
        "postgres": {
            "backups": {
                "endpointURL": s3_endpoint(lab),
                "destinationPath": f"s3://{buckets['postgres']}/",
                "s3": {"region": s3["region"], "bucket": buckets["postgres"]},
            }
        },
        "seaweedfs": {
            "allInOne": {
                "s3": {
                    # Backups are written once and kept: object lock where retention matters.
                    "createBuckets": [
                        {"name": buckets["backups"], "objectLock": True, "versioning": "Enabled"},
                        {"name": buckets["velero"], "versioning": "Enabled"},
                        {"name": buckets["postgres"], "versioning": "Enabled"},
                    ]
                }
            }
        },
        "traefik": {"ingressRoute": {"dashboard": {"matchRule": f"Host(`{host(lab, 'traefik')}`)"}}},
        "vault": {
            "server": {
                "ha": {"raft": {"config": vault_config(lab)}},
                "ingress": {
                    "hosts": [{"host": host(lab, "vault")}],
                    "tls": [{"secretName": "vault-ui-tls", "hosts": [host(lab, "vault")]}],
                },
            }
        },
        "vaultwarden": {"domain": url(lab, "passwords"), "ingress": {"hostname": host(lab, "passwords")}},
        # Its Kubernetes login is allowed where it makes Secrets, and only there (Vault's role binds the same).
        "vault-secrets-operator": {"defaultAuthMethod": {"allowedNamespaces": list(lab["syncedNamespaces"])}},
        "velero": {
            "configuration": {
                "backupStorageLocation": [
                    {
                        "name": "default",
                        "provider": "aws",
                        "bucket": buckets["velero"],
                        "default": True,
                        "config": {"region": s3["region"], "s3ForcePathStyle": "true", "s3Url": s3_endpoint(lab)},
                    }
                ]
            }
        },
    }


def services(lab: Lab) -> dict[str, dict[str, Any]]:
    """Each HomeStation service: its route on the lab's domain, images from the lab's registry."""
    found: dict[str, dict[str, Any]] = {}
    for r in routes(lab):
        if r.app in SERVICES or r.app in lab["apps"]:
            found[r.app] = {"image": {"registry": host(lab, "harbor")}, "ingress": {"enabled": True, "host": host(lab, r.name)}}
    found["edge-registry"]["config"] = {
        "agent_nats_url": f"nats://nats.{lab['tailnet']['domain']}:4222",
        "k3s": {"server_url": f"https://{control_host(lab)}:6443"},
    }
    found["backup"]["config"] = {
        "s3": {"endpoint": s3_endpoint(lab), "region": lab["s3"]["region"]},
        "bucket": lab["s3"]["buckets"]["backups"],
    }
    if lab["s3"].get("endpoint") and lab["s3"]["endpoint"] != SEAWEEDFS_S3:
        found["backup"]["networkPolicy"] = {"peers": {"s3": {"cidrs": list(lab["s3"]["cidrs"]), "ports": [{"port": 443}]}}}
    return found


def registry(lab: Lab) -> dict[str, Any]:
    """Harbor's robot accounts (infra/harbor/robots.py): the nodes' containerd pulls, CI pushes; each
    robot's secret is made by that script and kept in Vault, never shown."""
    projects = ["homestation", "apps"]
    return {
        "url": url(lab, "harbor"),
        "projects": projects,
        "robots": [
            {"name": "nodes", "description": "containerd on every node: pull", "projects": projects, "actions": ["pull"]},
            {
                "name": "ci",
                "description": "CI and make containerize: push and pull",
                "projects": projects,
                "actions": ["pull", "push"],
            },
        ],
        "vaultPath": "platform/harbor-robots",
    }


def kubernetes_roles(lab: Lab) -> list[dict[str, Any]]:
    """Who logs in to Vault with a Kubernetes ServiceAccount, and the policy each gets
    (infra/vault/policies/<policy>.hcl; an app's is charts/apps/<app>/vault/policy.hcl)."""
    issuer = lab["issuer"]
    found = [{"name": s, "serviceAccounts": [s], "namespaces": ["homestation"], "policies": [f"svc-{s}"]} for s in SERVICES]
    found += [{"name": a, "serviceAccounts": [a], "namespaces": ["apps"], "policies": [a]} for a in lab["apps"]]
    found.append(
        {
            "name": issuer["role"],
            "serviceAccounts": [issuer["serviceAccount"]],
            "namespaces": [issuer["certManagerNamespace"]],
            "policies": ["cert-manager"],
        }
    )
    found.append(
        {
            "name": "vault-secrets-operator",
            "serviceAccounts": ["default"],
            "namespaces": list(lab["syncedNamespaces"]),
            "policies": ["vault-secrets-operator"],
        }
    )
    return found


def vault_policies(lab: Lab) -> dict[str, str]:
    dev_paths = "\n".join(
        f'path "secret/data/dev/{ns}/*" {{\n  capabilities = ["create", "read", "update", "delete", "list"]\n}}\n'
        f'path "secret/metadata/dev/{ns}/*" {{\n  capabilities = ["read", "list", "delete"]\n}}'
        for ns in lab["devNamespaces"]
    )
    admin = "\n".join(
        f'path "{p}" {{\n  capabilities = [{", ".join(json.dumps(c) for c in caps)}]\n}}'
        for p, caps in (
            ("sys/policies/acl/*", ["create", "read", "update", "delete", "list"]),
            ("sys/policies/acl", ["list"]),
            ("sys/auth", ["read"]),
            ("sys/auth/*", ["create", "read", "update", "delete", "sudo"]),
            ("auth/*", ["create", "read", "update", "delete", "list"]),
            ("sys/mounts", ["read"]),
            ("sys/mounts/*", ["create", "read", "update", "delete"]),
            ("sys/audit", ["read", "sudo"]),
            ("sys/audit/*", ["create", "read", "update", "delete", "sudo"]),
            ("secret/*", ["create", "read", "update", "delete", "list"]),
            ("transit/keys/*", ["create", "read", "update", "list"]),
            ("pki/*", ["create", "read", "update", "list"]),
            ("pki_int/*", ["create", "read", "update", "list"]),
            ("sys/storage/raft/snapshot", ["read"]),
        )
    )
    return {
        "role-admin": "# Admins (Authelia group admins): manage policies, auth methods, mounts, audit and every secret.\n"
        + admin
        + "\n",
        "role-developer": "# Developers (Authelia group developers): the secrets of their dev namespaces, nothing else.\n"
        + dev_paths
        + "\n",
        "role-viewer": "# Viewers (Authelia group viewers): no secret at all; only their own token.\n"
        'path "auth/token/lookup-self" {\n  capabilities = ["read"]\n}\n',
    }


def infra(lab: Lab) -> dict[str, str]:
    """The Pulumi stacks' config, the Ansible inventory and group vars, and what Vault's bootstrap reads."""
    files: dict[str, str] = {}

    def stack(name: str, config: dict[str, Any], about: str) -> None:
        files[f"infra/pulumi/Pulumi.{name}.yaml"] = (
            GENERATED_HEADER + about + to_yaml({"config": {f"homestation:{k}": v for k, v in config.items()}})
        )

    stack(
        "tunnels",
        {
            "accountId": lab["tunnel"]["accountId"],
            "zoneId": lab["tunnel"]["zoneId"],
            "tunnelName": lab["tunnel"]["name"],
            "routes": [{"host": host(lab, r.name), "protectedBy": "authelia"} for r in routes(lab)],
        },
        "# The tunnel's secret: pulumi config set --secret homestation:tunnelSecret <32+ random bytes, base64>.\n",
    )
    stack(
        "tailnet",
        {
            role: [p.get("tailscale", p["email"]) for p in people_in(lab, name)]
            for role, name in (("admins", "admin"), ("developers", "developer"))
        },
        "# Tailnet logins of the people of lab.yaml (viewers have no tailnet access).\n",
    )
    kinds = {"control": "control", "jetson": "edge", "vm": "workers"}
    groups: dict[str, dict[str, Any]] = {g: {"hosts": {}} for g in kinds.values()}
    for h in lab["hosts"]:
        if h["kind"] == "control":
            entry: dict[str, Any] = {"ansible_connection": "local"}
        else:
            entry = {"ansible_host": f"{h['name']}.{lab['tailnet']['domain']}", "ansible_user": h.get("user", "homestation")}
        groups[kinds[h["kind"]]]["hosts"][h["name"]] = entry
    files["infra/ansible/inventory/hosts.yml"] = GENERATED_HEADER + to_yaml({"all": {"children": groups}})
    files["infra/ansible/inventory/group_vars/all/lab.yml"] = GENERATED_HEADER + to_yaml(
        {
            "k3s_version": lab["k3s"],
            "tailnet_domain": lab["tailnet"]["domain"],
            "vault_address": url(lab, "vault"),
            "harbor_host": host(lab, "harbor"),
            # kube-apiserver trusts Authelia's tokens: the groups claim is the Kubernetes group
            # (developers edit the dev namespaces).
            "k3s_oidc_issuer_url": url(lab, "auth"),
            "k3s_oidc_client_id": "kubernetes",
        },
    )
    for name, text in vault_policies(lab).items():
        files[f"infra/vault/policies/{name}.hcl"] = GENERATED_HEADER + text
    files["infra/vault/lab.json"] = (
        json.dumps(
            {
                "_generated": GENERATED_HEADER.strip("# \n"),
                "oidc": {
                    "discovery_url": url(lab, "auth"),
                    "client_id": "vault",
                    "redirect_uris": [
                        url(lab, "vault", "/ui/vault/auth/oidc/oidc/callback"),
                        "http://localhost:8250/oidc/callback",
                    ],
                },
                "roles": [{"name": r.name, "group": r.group, "policy": r.vault_policy} for r in ROLES],
                "devNamespaces": list(lab["devNamespaces"]),
                "domain": lab["domain"],
                "kubernetesRoles": kubernetes_roles(lab),
                "registry": registry(lab),
            },
            indent=2,
        )
        + "\n"
    )
    return files
