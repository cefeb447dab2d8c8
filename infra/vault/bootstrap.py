"""Vault's bootstrap, idempotent: make Vault what the lab needs, change only what differs, say what changed.

  VAULT_ADDR=… VAULT_TOKEN=… python3 infra/vault/bootstrap.py [--dry-run] [--oidc-client-secret-env NAME]

Standard library only: it runs as the control-plane stack's Job (python:3.12-alpine, this folder mounted)
and in tests against a real OpenBao. It reads infra/vault/lab.json and infra/vault/policies/*.hcl (both in
part written by make lab from lab.yaml) and charts/apps/*/vault/policy.hcl when the repository is beside it.
  audit      a file audit device on stdout: every request, HMAC'd, in the pod's log → Loki
  mounts     KV v2 `secret/`, `transit/`, `pki/` (root CA), `pki_int/` (intermediate CA)
  keys       the backup transit key (homestation-backup), never exportable
  pki        a root CA and an intermediate signed by it, once; role `homestation` for the lab's domain
  policies   every .hcl file, by its name (role-admin, svc-backup, …)
  kubernetes the Kubernetes auth method and one role per ServiceAccount that logs in (lab.json)
  oidc       Vault's OIDC auth against Authelia, one role per human role: a token's `groups` claim
             picks the policy (role-admin, role-developer, role-viewer)
  nats       a password for each service's NATS user, made once (secret/homestation/nats/<service>)
  proxy      the proxy's proof (Traefik's) and its SHA-256 apart (the services'), made once
A second run changes nothing and says `0 change(s)`. Secrets never reach the output.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TRANSIT_KEY = "homestation-backup"


class VaultError(Exception):
    pass


class Vault:
    def __init__(self, address: str, token: str, dry_run: bool = False) -> None:
        self.address, self.token, self.dry_run = address.rstrip("/"), token, dry_run
        self.changes: list[str] = []

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The API's answer, or None for 404."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.address}/v1/{path}", data=data, method=method)
        request.add_header("X-Vault-Token", self.token)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for attempt in range(20):
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    text = response.read()
                break
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    return None
                detail = e.read().decode(errors="replace")[:300]
                # A KV v2 mount answers "Upgrading…" for a moment after it is enabled.
                if "upgrading" in detail.lower() and attempt < 19:
                    time.sleep(0.5)
                    continue
                raise VaultError(f"{method} {path}: HTTP {e.code}: {detail}") from None
            except urllib.error.URLError as e:
                raise VaultError(f"{method} {path}: {e.reason} (is Vault at {self.address} up and unsealed?)") from None
        return json.loads(text) if text else {}

    def read(self, path: str) -> dict[str, Any] | None:
        answer = self.call("GET", path)
        return None if answer is None else answer.get("data", answer)

    def change(self, what: str, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        self.changes.append(what)
        print(f"bootstrap: {'would change' if self.dry_run else 'changed'}: {what}", flush=True)
        if not self.dry_run:
            self.call(method, path, body)


def differs(current: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Whether Vault's answer lacks a wanted value (lists compared as sets: Vault reorders some; PEM
    blocks compared without the trailing newline Vault drops)."""
    if current is None:
        return True
    for key, value in wanted.items():
        have = current.get(key)
        if isinstance(value, list) and isinstance(have, list):
            if sorted(str(v).strip() for v in value) != sorted(str(h).strip() for h in have):
                return True
        elif isinstance(value, str) and isinstance(have, str):
            if value.strip() != have.strip():
                return True
        elif isinstance(value, dict) and isinstance(have, dict):
            if differs(have, value):
                return True
        elif have != value:
            return True
    return False


def audit(vault: Vault) -> None:
    """Vault enables it here; OpenBao takes audit devices from its server configuration only (the lab's
    declares it: argocd/lab/vault.yaml, the unsealer's template): then it must already be there."""
    devices = vault.read("sys/audit") or {}
    if "stdout/" in devices:
        return
    try:
        vault.change(
            "audit device stdout/ (file → stdout → Loki)",
            "PUT",
            "sys/audit/stdout",
            {"type": "file", "options": {"file_path": "stdout"}},
        )
    except VaultError as e:
        if "declarative" not in str(e):
            raise
        raise VaultError(
            "no audit device stdout/: this server takes audit devices from its configuration; declare "
            'audit "file" "stdout" { options = { file_path = "stdout" } } there'
        ) from None


def mounts(vault: Vault) -> None:
    present = vault.read("sys/mounts") or {}
    wanted: dict[str, dict[str, Any]] = {
        "secret/": {"type": "kv", "options": {"version": "2"}, "description": "HomeStation's secrets (KV v2)"},
        "transit/": {"type": "transit", "description": "backup data keys"},
        "pki/": {"type": "pki", "config": {"max_lease_ttl": "87600h"}, "description": "the lab's root CA"},
        "pki_int/": {"type": "pki", "config": {"max_lease_ttl": "43800h"}, "description": "the lab's issuing CA"},
    }
    for path, body in wanted.items():
        if path not in present:
            vault.change(f"secrets engine {path} ({body['type']})", "POST", f"sys/mounts/{path.rstrip('/')}", body)


def transit(vault: Vault) -> None:
    if vault.read(f"transit/keys/{TRANSIT_KEY}") is None:
        vault.change(
            f"transit key {TRANSIT_KEY}", "POST", f"transit/keys/{TRANSIT_KEY}", {"type": "aes256-gcm96", "exportable": False}
        )


def pki(vault: Vault, domain: str) -> None:
    if vault.dry_run and "pki/" not in (vault.read("sys/mounts") or {}):
        return
    if not (vault.read("pki/issuers?list=true") or {}).get("keys"):
        vault.change(
            "root CA of pki/", "POST", "pki/root/generate/internal", {"common_name": "HomeStation Root CA", "ttl": "87600h"}
        )
    if not (vault.read("pki_int/issuers?list=true") or {}).get("keys") and not vault.dry_run:
        csr = vault.call("POST", "pki_int/intermediate/generate/internal", {"common_name": "HomeStation Issuing CA"}) or {}
        signed = (
            vault.call("POST", "pki/root/sign-intermediate", {"csr": csr["data"]["csr"], "format": "pem_bundle", "ttl": "43800h"})
            or {}
        )
        vault.change(
            "intermediate CA of pki_int/, signed by pki/",
            "POST",
            "pki_int/intermediate/set-signed",
            {"certificate": signed["data"]["certificate"]},
        )
    role = {"allowed_domains": [domain], "allow_subdomains": True, "allow_bare_domains": False, "max_ttl": "2160h"}
    current = vault.read("pki_int/roles/homestation")
    if current is not None:
        current = {
            **current,
            "max_ttl": f"{current.get('max_ttl', 0) // 3600}h"
            if isinstance(current.get("max_ttl"), int)
            else current.get("max_ttl"),
        }
    if differs(current, role):
        vault.change(f"PKI role homestation (*.{domain})", "POST", "pki_int/roles/homestation", role)


def policies(vault: Vault, files: dict[str, str]) -> None:
    for name, text in sorted(files.items()):
        current = vault.read(f"sys/policies/acl/{name}")
        if current is None or current.get("policy") != text:
            vault.change(f"policy {name}", "PUT", f"sys/policies/acl/{name}", {"policy": text})


def auth_method(vault: Vault, path: str, kind: str) -> None:
    if f"{path}/" not in (vault.read("sys/auth") or {}):
        vault.change(f"auth method {path}/ ({kind})", "POST", f"sys/auth/{path}", {"type": kind})


def kubernetes(vault: Vault, roles: list[dict[str, Any]], ca_cert: str | None) -> None:
    """In the cluster Vault reviews ServiceAccount tokens with its own pod's CA and token; a Vault outside
    (a test) is given the cluster's CA."""
    auth_method(vault, "kubernetes", "kubernetes")
    config: dict[str, Any] = {"kubernetes_host": "https://kubernetes.default.svc"}
    if ca_cert is not None:
        config |= {"kubernetes_ca_cert": ca_cert, "disable_local_ca_jwt": True}
    if not vault.dry_run and differs(vault.read("auth/kubernetes/config"), config):
        vault.change("Kubernetes auth: the cluster's API", "POST", "auth/kubernetes/config", config)
    for role in roles:
        wanted = {
            "bound_service_account_names": role["serviceAccounts"],
            "bound_service_account_namespaces": role["namespaces"],
            "token_policies": role["policies"],
            "token_ttl": 3600,
            "audience": "vault",
        }
        if differs(vault.read(f"auth/kubernetes/role/{role['name']}"), wanted):
            vault.change(f"Kubernetes auth role {role['name']}", "POST", f"auth/kubernetes/role/{role['name']}", wanted)


def oidc(vault: Vault, lab: dict[str, Any], client_secret: str | None, jwt_keys: list[str] | None) -> None:
    """Authelia's OIDC (discovery at the portal); with jwt_keys (tests: no Authelia here), the same
    plugin validates tokens against those keys and the roles are of type jwt, identical otherwise."""
    spec = lab["oidc"]
    auth_method(vault, "oidc", "oidc")
    if jwt_keys is not None:
        config: dict[str, Any] = {"jwt_validation_pubkeys": jwt_keys, "bound_issuer": spec["discovery_url"]}
    elif client_secret is not None:
        config = {
            "oidc_discovery_url": spec["discovery_url"],
            "oidc_client_id": spec["client_id"],
            "oidc_client_secret": client_secret,
        }
    else:
        print("bootstrap: OIDC config skipped: no client secret given (--oidc-client-secret-env)", flush=True)
        config = {}
    if config and not vault.dry_run:
        current = vault.read("auth/oidc/config") or {}
        # The client secret is write-only: compare the rest.
        if differs(current, {k: v for k, v in config.items() if k != "oidc_client_secret"}):
            vault.change("OIDC auth: Authelia as the provider", "POST", "auth/oidc/config", config)
    for role in lab["roles"]:
        wanted: dict[str, Any] = {
            "role_type": "jwt" if jwt_keys is not None else "oidc",
            "user_claim": "preferred_username",
            "groups_claim": "groups",
            "bound_claims": {"groups": [role["group"]]},
            "bound_audiences": [spec["client_id"]],
            "token_policies": [role["policy"]],
            "token_ttl": 3600,
        }
        if jwt_keys is None:
            wanted |= {"allowed_redirect_uris": spec["redirect_uris"], "oidc_scopes": ["openid", "profile", "email", "groups"]}
        if differs(vault.read(f"auth/oidc/role/{role['name']}"), wanted):
            vault.change(
                f"OIDC role {role['name']} (group {role['group']} → {role['policy']})",
                "POST",
                f"auth/oidc/role/{role['name']}",
                wanted,
            )


def nats_passwords(vault: Vault, services: list[str]) -> None:
    for service in services:
        if vault.read(f"secret/data/homestation/nats/{service}") is None:
            body = {"data": {"password": secrets.token_urlsafe(32)}}
            vault.change(
                f"NATS password of {service} (made here, never shown)", "POST", f"secret/data/homestation/nats/{service}", body
            )


def proxy_proof(vault: Vault) -> None:
    """The proof Traefik adds to requests that passed Authelia (homestation/proxy, key proof: Traefik's
    only, through Vault Secrets Operator) and its SHA-256 apart (homestation/proxy-digest, key
    proof_sha256: what the services read), made once, together."""
    if vault.read("secret/data/homestation/proxy") is not None and vault.read("secret/data/homestation/proxy-digest") is not None:
        return
    proof = secrets.token_hex(32)
    vault.change(
        "the proxy's proof (made here, never shown)", "POST", "secret/data/homestation/proxy", {"data": {"proof": proof}}
    )
    digest = {"data": {"proof_sha256": hashlib.sha256(proof.encode()).hexdigest()}}
    vault.change("the proxy proof's SHA-256", "POST", "secret/data/homestation/proxy-digest", digest)


def policy_files(root: Path) -> dict[str, str]:
    files = {p.stem: p.read_text() for p in sorted((root / "infra" / "vault" / "policies").glob("*.hcl"))}
    files |= {p.parent.parent.name: p.read_text() for p in sorted((root / "charts" / "apps").glob("*/vault/policy.hcl"))}
    return files


def bootstrap(
    vault: Vault,
    root: Path,
    client_secret: str | None = None,
    jwt_keys: list[str] | None = None,
    kubernetes_ca: str | None = None,
) -> list[str]:
    lab = json.loads((root / "infra" / "vault" / "lab.json").read_text())
    audit(vault)
    mounts(vault)
    transit(vault)
    pki(vault, lab["domain"])
    policies(vault, policy_files(root))
    kubernetes(vault, lab["kubernetesRoles"], kubernetes_ca)
    oidc(vault, lab, client_secret, jwt_keys)
    proxy_proof(vault)
    nats_passwords(vault, [r["name"] for r in lab["kubernetesRoles"] if r["namespaces"] in (["homestation"], ["apps"])])
    return vault.changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--root", type=Path, default=HERE.parents[1], help="the repository, or the folder mounted as it (default: %(default)s)"
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    parser.add_argument("--kubernetes-ca-file", type=Path, help="the cluster's CA, for a Vault outside the cluster")
    parser.add_argument(
        "--oidc-client-secret-env", metavar="NAME", help="the environment variable holding Authelia's client secret for Vault"
    )
    args = parser.parse_args(argv)
    address, token = os.environ.get("VAULT_ADDR"), os.environ.get("VAULT_TOKEN")
    if not address or not token:
        print(
            "bootstrap: set VAULT_ADDR and VAULT_TOKEN (a token allowed to configure mounts, auth and policies)", file=sys.stderr
        )
        return 2
    secret = os.environ.get(args.oidc_client_secret_env) if args.oidc_client_secret_env else None
    try:
        ca = args.kubernetes_ca_file.read_text() if args.kubernetes_ca_file else None
        changes = bootstrap(Vault(address, token, args.dry_run), args.root, client_secret=secret, kubernetes_ca=ca)
    except (VaultError, OSError, KeyError) as e:
        print(f"bootstrap: {e}", file=sys.stderr)
        return 1
    print(f"bootstrap: {len(changes)} change(s){' (dry run)' if args.dry_run else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
