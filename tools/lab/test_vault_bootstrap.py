"""infra/vault/bootstrap.py against a real OpenBao (the Vault API): applied twice with nothing changed the
second time, and the per-role policies checked with real tokens from real logins. There is no Authelia
here: the JWT flavour of Vault's OIDC plugin stands in for it (a fake provider, named so) — the test signs
tokens with its own key (openssl), carrying the `groups` claim Authelia would send; the roles and policies
are the ones the lab uses."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "vault"))
import bootstrap  # noqa: E402

from openbao import Bao  # noqa: E402


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeProvider:
    """Signs ID tokens as Authelia would (RS256, `groups` claim): a fake of Authelia, key made here."""

    def __init__(self, folder: Path, issuer: str) -> None:
        self.key, self.issuer = folder / "key.pem", issuer
        subprocess.run(["openssl", "genrsa", "-out", str(self.key), "2048"], check=True, capture_output=True)
        self.public = subprocess.run(
            ["openssl", "rsa", "-in", str(self.key), "-pubout"], check=True, capture_output=True, text=True
        ).stdout

    def token(self, user: str, groups: list[str], audience: str = "vault") -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer, "sub": user, "preferred_username": user, "aud": audience, "groups": groups}
        claims |= {"iat": now, "nbf": now, "exp": now + 300}
        signing = f"{b64(json.dumps({'alg': 'RS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing.encode(), check=True, capture_output=True
        ).stdout
        return f"{signing}.{b64(signature)}"


def state(bao: Bao) -> dict[str, Any]:
    """What the bootstrap configures, as Vault reports it (what a second run must leave alone)."""
    root = bao.root_token

    def read(path: str) -> Any:
        return bao.call("GET", path, root)[1].get("data")

    found: dict[str, Any] = {
        "audit": sorted(read("sys/audit") or {}),
        "mounts": sorted(read("sys/mounts") or {}),
        "auth": sorted(read("sys/auth") or {}),
        "policies": {p: read(f"sys/policies/acl/{p}") for p in (read("sys/policies/acl?list=true") or {}).get("keys", [])},
        "pki_int": read("pki_int/issuers?list=true"),
        "pki_role": read("pki_int/roles/homestation"),
    }
    for mount in ("kubernetes", "oidc"):
        roles = (read(f"auth/{mount}/role?list=true") or {}).get("keys", [])
        found[mount] = {r: read(f"auth/{mount}/role/{r}") for r in roles}
    found["nats"] = {
        s: (read(f"secret/data/homestation/nats/{s}") or {}).get("metadata", {}).get("version")
        for s in ("inventory", "backup", "deployer", "edge-registry", "secrets-rotator")
    }
    return found


@pytest.fixture(scope="module")
def applied(bao: Bao, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str], FakeProvider, str]:
    lab = json.loads((ROOT / "infra/vault/lab.json").read_text())
    folder = tmp_path_factory.mktemp("provider")
    provider = FakeProvider(folder, lab["oidc"]["discovery_url"])
    # The cluster's CA, as a Vault outside the cluster is given it (no cluster here: a CA made by the test).
    key, cert = str(folder / "ca.key"), str(folder / "ca.crt")
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert]
    subprocess.run([*openssl, "-subj", "/CN=test-cluster-ca", "-days", "1"], check=True, capture_output=True)
    ca = (folder / "ca.crt").read_text()

    def run() -> list[str]:
        vault = bootstrap.Vault(bao.address, bao.root_token)
        changes: list[str] = bootstrap.bootstrap(vault, ROOT, jwt_keys=[provider.public], kubernetes_ca=ca)
        return changes

    first = run()
    before = state(bao)
    second = run()
    assert state(bao) == before, "the second run changed Vault"
    return first, second, provider, ca


def test_a_first_run_configures_vault_and_a_second_changes_nothing(
    applied: tuple[list[str], list[str], FakeProvider, str],
) -> None:
    first, second, _, _ = applied
    assert second == []
    for expected in (
        "transit key homestation-backup",
        "root CA of pki/",
        "intermediate CA of pki_int/",
        "policy role-admin",
        "policy svc-backup",
        "Kubernetes auth role backup",
        "Kubernetes auth role vault-secrets-operator",
        "OIDC role developer (group developers → role-developer)",
        "NATS password of inventory",
        "the proxy's proof",
    ):
        assert any(c.startswith(expected) for c in first), (expected, first)


def test_a_dry_run_on_a_configured_vault_changes_nothing(
    bao: Bao, applied: tuple[list[str], list[str], FakeProvider, str]
) -> None:
    before = state(bao)
    dry = bootstrap.Vault(bao.address, bao.root_token, dry_run=True)
    assert bootstrap.bootstrap(dry, ROOT, jwt_keys=[applied[2].public], kubernetes_ca=applied[3]) == []
    assert state(bao) == before


def login(bao: Bao, provider: FakeProvider, role: str, groups: list[str]) -> tuple[int, str]:
    status, answer = bao.call("POST", "auth/oidc/login", "", {"role": role, "jwt": provider.token(f"user-{role}", groups)})
    return status, (answer.get("auth") or {}).get("client_token", "")


def test_each_role_gets_its_own_policy_and_nothing_more(
    bao: Bao, applied: tuple[list[str], list[str], FakeProvider, str]
) -> None:
    provider = applied[2]
    root, made = bao.root_token, secrets.token_hex(8)
    assert bao.call("POST", "secret/data/platform/grafana", root, {"data": {"admin": made}})[0] == 200
    _, viewer = login(bao, provider, "viewer", ["viewers"])
    _, developer = login(bao, provider, "developer", ["developers"])
    _, admin = login(bao, provider, "admin", ["admins"])
    assert viewer and developer and admin

    # A Viewer cannot read a secret, not even a developer's.
    assert bao.call("GET", "secret/data/platform/grafana", viewer)[0] == 403
    assert bao.call("GET", "secret/data/dev/dev/app", viewer)[0] == 403
    # A Developer reads and writes the dev namespaces' secrets only.
    assert bao.call("POST", "secret/data/dev/dev/app", developer, {"data": {"key": made}})[0] == 200
    assert bao.call("GET", "secret/data/dev/dev/app", developer)[0] == 200
    assert bao.call("GET", "secret/data/platform/grafana", developer)[0] == 403
    assert bao.call("PUT", "sys/policies/acl/mine", developer, {"policy": 'path "*" { capabilities = ["sudo"] }'})[0] == 403
    # An Admin manages policies and reads every secret.
    assert (
        bao.call("PUT", "sys/policies/acl/made-by-admin", admin, {"policy": 'path "secret/data/x" { capabilities = ["read"] }'})[
            0
        ]
        == 204
    )
    assert bao.call("GET", "secret/data/platform/grafana", admin)[0] == 200
    assert bao.call("DELETE", "sys/policies/acl/made-by-admin", admin)[0] == 204


def test_a_token_of_one_group_cannot_log_in_as_another_role(
    bao: Bao, applied: tuple[list[str], list[str], FakeProvider, str]
) -> None:
    provider = applied[2]
    status, token = login(bao, provider, "admin", ["developers"])
    assert status in (400, 403) and token == ""
    status, token = login(bao, provider, "developer", ["viewers"])
    assert status in (400, 403) and token == ""


def test_every_request_is_audited_without_its_secrets(bao: Bao, applied: tuple[list[str], list[str], FakeProvider, str]) -> None:
    made = f"audited-{secrets.token_hex(8)}"
    status, _ = bao.call("POST", "secret/data/dev/dev/audited", bao.root_token, {"data": {"value": made}})
    assert status == 200
    time.sleep(0.2)
    # The audit device's lines are the JSON ones (the dev server prints its root token at start, apart).
    audited = "\n".join(line for line in bao.log.read_text().splitlines() if line.startswith("{"))
    entries = [json.loads(line) for line in audited.splitlines() if '"type":"response"' in line]
    assert any((e.get("request") or {}).get("path") == "secret/data/dev/dev/audited" for e in entries), audited[-2000:]
    assert made not in audited and bao.root_token not in audited, "the audit device HMACs values and tokens"


def test_the_services_read_the_proofs_digest_and_only_traefiks_operator_the_proof(
    bao: Bao, applied: tuple[list[str], list[str], FakeProvider, str]
) -> None:
    root = bao.root_token
    proof = bao.call("GET", "secret/data/homestation/proxy", root)[1]["data"]["data"]["proof"]
    digest = bao.call("GET", "secret/data/homestation/proxy-digest", root)[1]["data"]["data"]["proof_sha256"]
    assert digest == hashlib.sha256(proof.encode()).hexdigest()
    # A token with a service's policy reads the digest, never the proof.
    _, made = bao.call("POST", "auth/token/create", root, {"policies": ["svc-inventory"], "no_default_policy": True})
    token = made["auth"]["client_token"]
    assert bao.call("GET", "secret/data/homestation/proxy-digest", token)[0] == 200
    assert bao.call("GET", "secret/data/homestation/proxy", token)[0] == 403
