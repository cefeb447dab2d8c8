"""Harbor's projects and robot accounts, idempotent, with each robot's secret kept in Vault only.

  HARBOR_URL=… HARBOR_USERNAME=admin HARBOR_PASSWORD=… VAULT_ADDR=… VAULT_TOKEN=… \
    python3 infra/harbor/robots.py [--dry-run]

Standard library only. Reads infra/vault/lab.json (`registry`, written by make lab from lab.yaml): the
projects (made private when missing) and the system robots with the repository actions each may take on
those projects (`nodes`: pull, for containerd; `ci`: pull and push). A robot's secret is made here, given
to Harbor when the robot is made, and written to Vault (secret/<vaultPath>/<robot>: username, password);
a robot whose secret Vault has lost gets a new one. A second run changes nothing. Secrets never reach the
output. The registry API these robots use (/v2/, /service/token) passes Authelia: Harbor's own auth
guards it (tools/lab/lab.py PUBLIC_PATHS).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "vault"))
from bootstrap import Vault, VaultError  # noqa: E402  (Vault's client, written once: infra/vault/bootstrap.py)


class ApiError(Exception):
    pass


def call(base: str, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    """The JSON answer, or None for 404."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method, headers=headers)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise ApiError(f"{method} {base}{path}: HTTP {e.code}: {e.read().decode(errors='replace')[:300]}") from None
    except urllib.error.URLError as e:
        raise ApiError(f"{method} {base}{path}: {e.reason}") from None
    return json.loads(text) if text else {}


class Robots:
    def __init__(self, harbor: str, user: str, password: str, vault: str, token: str, dry_run: bool = False) -> None:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.api, self.auth = harbor.rstrip("/") + "/api/v2.0", {"Authorization": f"Basic {basic}"}
        self.vault = Vault(vault, token)
        self.dry_run = dry_run
        self.changes: list[str] = []

    def harbor(self, method: str, path: str, body: Any = None) -> Any:
        return call(self.api, method, path, self.auth, body)

    def change(self, what: str) -> bool:
        self.changes.append(what)
        print(f"robots: {'would change' if self.dry_run else 'changed'}: {what}", flush=True)
        return not self.dry_run

    def project(self, name: str) -> None:
        found = self.harbor("GET", f"/projects?name={urllib.parse.quote(name)}") or []
        if not any(p.get("name") == name for p in found) and self.change(f"project {name} (private)"):
            self.harbor("POST", "/projects", {"project_name": name, "metadata": {"public": "false"}})

    def robot(self, spec: dict[str, Any], vault_path: str) -> None:
        query = urllib.parse.quote(f"name={spec['name']}")
        found = [r for r in self.harbor("GET", f"/robots?q={query}") or [] if r.get("name", "").endswith(f"${spec['name']}")]
        kept = self.vault.read(f"secret/data/{vault_path}/{spec['name']}")
        if found and kept is not None:
            return
        secret = secrets.token_urlsafe(24) + "A1"  # Harbor wants upper, lower and a digit
        if not found:
            body = {
                "name": spec["name"],
                "description": spec["description"],
                "level": "system",
                "duration": -1,
                "secret": secret,
                "permissions": [
                    {
                        "kind": "project",
                        "namespace": project,
                        "access": [{"resource": "repository", "action": action} for action in spec["actions"]],
                    }
                    for project in spec["projects"]
                ],
            }
            if not self.change(f"robot {spec['name']} ({', '.join(spec['actions'])} on {', '.join(spec['projects'])})"):
                return
            made = self.harbor("POST", "/robots", body) or {}
            username = made.get("name", f"robot${spec['name']}")
        else:
            if not self.change(f"robot {spec['name']}: a new secret (Vault had none)"):
                return
            self.harbor("PATCH", f"/robots/{found[0]['id']}", {"secret": secret})
            username = found[0]["name"]
        stored = {"data": {"username": username, "password": secret}}
        self.vault.call("POST", f"secret/data/{vault_path}/{spec['name']}", stored)


def apply(robots: Robots, lab: dict[str, Any]) -> list[str]:
    registry = lab["registry"]
    for project in registry["projects"]:
        robots.project(project)
    for spec in registry["robots"]:
        robots.robot(spec, registry["vaultPath"])
    return robots.changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--lab", type=Path, default=HERE.parent / "vault" / "lab.json", help="make lab's file (default: %(default)s)"
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    args = parser.parse_args(argv)
    lab = json.loads(args.lab.read_text())
    env = {k: os.environ.get(k, "") for k in ("HARBOR_USERNAME", "HARBOR_PASSWORD", "VAULT_ADDR", "VAULT_TOKEN")}
    missing = [k for k in ("HARBOR_PASSWORD", "VAULT_ADDR", "VAULT_TOKEN") if not env[k]]
    if missing:
        print(
            f"robots: set {', '.join(missing)} (Harbor's admin password is secret/platform/harbor HARBOR_ADMIN_PASSWORD)",
            file=sys.stderr,
        )
        return 2
    harbor = os.environ.get("HARBOR_URL") or lab["registry"]["url"]
    robots = Robots(
        harbor, env["HARBOR_USERNAME"] or "admin", env["HARBOR_PASSWORD"], env["VAULT_ADDR"], env["VAULT_TOKEN"], args.dry_run
    )
    try:
        changes = apply(robots, lab)
    except (ApiError, VaultError, KeyError) as e:
        print(f"robots: {e}", file=sys.stderr)
        return 1
    print(f"robots: {len(changes)} change(s){' (dry run)' if args.dry_run else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
