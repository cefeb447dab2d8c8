"""The proxy's proof, on a real Traefik (3.7, `make setup` unpacks it into .dev/tools/bin): the file-provider
middleware argocd/platform/traefik.yaml ships, behind the forward-auth middleware every websecure request
passes, with the secret in Traefik's environment as the chart gives it.

Authelia cannot run here: FakeAuthelia below stands in for it (named as the fake it is), answering the
forward-auth request with the access rules make lab generates (argocd/lab/authelia.yaml: the allow-list of
public paths, each route's audience, two factors). The backend is a plain server echoing the headers it
received, as a service would see them."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TRAEFIK = ROOT / ".dev" / "tools" / "bin" / "traefik"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LAB_RULES = yaml.safe_load((ROOT / "argocd" / "lab" / "authelia.yaml").read_text())["configMap"]["access_control"]
DOMAIN = yaml.safe_load((ROOT / "lab.yaml").read_text())["domain"]
SESSIONS = {"ana": ["admins"], "dev": ["developers"], "guest": ["viewers"]}


def decide(host: str, method: str, uri: str, groups: list[str] | None) -> int:
    """Authelia's access control as the lab generates it (argocd/lab/authelia.yaml): the first rule whose
    domain, resources, methods and subject match decides; no rule, the default policy. 200 lets the
    request through, 401 asks to sign in, 403 refuses a signed-in user."""
    path = uri.split("?")[0]
    for rule in LAB_RULES["rules"]:
        domains = [rule["domain"]] if isinstance(rule["domain"], str) else rule["domain"]
        if host not in domains:
            continue
        if rule.get("resources") and not any(re.search(r, path) for r in rule["resources"]):
            continue
        if rule.get("methods") and method not in rule["methods"]:
            continue
        subjects = rule.get("subject")
        if subjects and groups is not None and not any(f"group:{g}" in subjects for g in groups):
            continue
        if rule["policy"] == "bypass":
            return 200
        if groups is None:
            return 401
        if subjects is None or any(f"group:{g}" in subjects for g in groups):
            return 200 if rule["policy"] in ("one_factor", "two_factor") else 403
    return 401 if groups is None else 403


class FakeAuthelia(BaseHTTPRequestHandler):
    """A FAKE of Authelia's forward-auth endpoint: a session cookie `session=<user>` is that user with the
    groups of SESSIONS (signed in with two factors); the decision is the lab's generated rules' (decide)."""

    def do_GET(self) -> None:
        cookie = self.headers.get("Cookie", "")
        user = cookie.removeprefix("session=") if cookie.startswith("session=") else None
        groups = SESSIONS.get(user) if user else None
        status = decide(
            self.headers.get("X-Forwarded-Host", ""),
            self.headers.get("X-Forwarded-Method", "GET"),
            self.headers.get("X-Forwarded-Uri", "/"),
            groups,
        )
        self.send_response(status)
        if status == 200 and user and groups:
            self.send_header("Remote-User", user)
            self.send_header("Remote-Groups", ",".join(groups))
        self.end_headers()

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


class Echo(BaseHTTPRequestHandler):
    """The backend: answers with the request headers it got, lower-cased."""

    def do_GET(self) -> None:
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


def shipped() -> dict[str, object]:
    return dict(yaml.safe_load((ROOT / "argocd" / "platform" / "traefik.yaml").read_text()))


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    if not TRAEFIK.exists():
        pytest.fail("traefik is missing from .dev/tools/bin: run `make setup`")
    values = shipped()
    providers = values["providers"]
    assert isinstance(providers, dict)
    ports = values["ports"]
    assert isinstance(ports, dict)
    chain = ports["websecure"]["http"]["middlewares"]
    assert chain == ["traefik-authelia@kubernetescrd", "homestation-proxy-proof@file"], chain
    auth, auth_port = serve(FakeAuthelia)
    echo, echo_port = serve(Echo)
    work = tmp_path_factory.mktemp("traefik")
    dynamic = work / "dynamic"
    dynamic.mkdir()
    # What the chart puts in the file provider's ConfigMap, byte for byte.
    (dynamic / "homestation.yml").write_text(providers["file"]["content"])
    # The test's routes, and the forward-auth middleware as charts/platform/platform-config declares it.
    rendered = subprocess.run(
        [
            str(ROOT / ".dev/tools/bin/helm"),
            "template",
            "pc",
            str(ROOT / "charts/platform/platform-config"),
            "--show-only",
            "templates/authelia.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    authelia = yaml.safe_load(rendered)["spec"]
    forward = dict(authelia["forwardAuth"], address=f"http://127.0.0.1:{auth_port}/api/authz/forward-auth")
    (dynamic / "test.yml").write_text(
        yaml.safe_dump(
            {
                "http": {
                    "middlewares": {"fake-authelia": {"forwardAuth": forward}},
                    "routers": {"all": {"rule": "PathPrefix(`/`)", "service": "echo", "entryPoints": ["websecure"]}},
                    "services": {"echo": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{echo_port}"}]}}},
                }
            }
        )
    )
    port = free_port()
    entry_chain = ["fake-authelia@file" if m.endswith("@kubernetescrd") else m for m in chain]
    static = {
        "entryPoints": {"websecure": {"address": f"127.0.0.1:{port}", "http": {"middlewares": entry_chain}}},
        "providers": {"file": {"directory": str(dynamic), "watch": False}},
        "log": {"level": "ERROR"},
    }
    (work / "traefik.yml").write_text(yaml.safe_dump(static))
    secret = secrets.token_hex(32)
    env = {**os.environ, "HOMESTATION_PROXY_PROOF": secret}
    log = (work / "traefik.log").open("w")
    process = subprocess.Popen([str(TRAEFIK), f"--configFile={work / 'traefik.yml'}"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(urllib.request.Request(f"{base}/healthz", headers={"Host": f"auth.{DOMAIN}"}), timeout=1)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            pytest.fail("traefik did not route: " + (work / "traefik.log").read_text()[-2000:])
        yield base, secret
    finally:
        process.terminate()
        process.wait()
        auth.shutdown()
        echo.shutdown()


def get(url: str, headers: dict[str, str], host: str = "inventory", method: str = "GET") -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers={**headers, "Host": f"{host}.{DOMAIN}"}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(json.loads(response.read()))
    except urllib.error.HTTPError as e:
        return e.code, {}


FORGED = {"Remote-User": "mallory", "Remote-Groups": "admins", "HomeStation-Proxy-Proof": "guessed"}


def test_a_signed_in_request_reaches_the_service_with_the_proof_and_authelias_identity(proxy: tuple[str, str]) -> None:
    base, secret = proxy
    status, seen = get(f"{base}/v1/nodes", {**FORGED, "Cookie": "session=ana"})
    assert status == 200
    assert seen["homestation-proxy-proof"] == secret, "Traefik's proof replaces the client's"
    assert seen["remote-user"] == "ana" and seen["remote-groups"] == "admins", "Authelia's identity, not the client's"


def test_a_request_authelia_refuses_never_reaches_the_service(proxy: tuple[str, str]) -> None:
    base, _ = proxy
    status, _ = get(f"{base}/v1/join-tokens", FORGED)
    assert status == 401


def test_on_a_bypassed_path_forged_identity_headers_do_not_reach_the_service(proxy: tuple[str, str]) -> None:
    base, secret = proxy
    status, seen = get(f"{base}/v1/webhooks/git", FORGED, host="deploy", method="POST")
    assert status == 200
    assert seen["homestation-proxy-proof"] == secret
    # Authelia answered without an identity: Traefik drops the client's Remote-* headers, so the proof
    # never vouches for a forged identity.
    assert "remote-user" not in seen and "remote-groups" not in seen, seen


def test_the_allow_list_passes_without_a_session_and_nothing_else_does(proxy: tuple[str, str]) -> None:
    base, _ = proxy
    # Harbor's registry API: Harbor's own robot accounts answer for it.
    assert get(f"{base}/v2/", {}, host="harbor")[0] == 200
    assert get(f"{base}/service/token", {}, host="harbor")[0] == 200
    # Harbor's UI, and the webhook path with another method, need a session.
    assert get(f"{base}/harbor/projects", {}, host="harbor")[0] == 401
    assert get(f"{base}/v1/webhooks/git", {}, host="deploy", method="GET")[0] == 401


def test_viewers_reach_grafana_and_homepage_and_nothing_else(proxy: tuple[str, str]) -> None:
    base, _ = proxy
    viewer = {"Cookie": "session=guest"}
    assert get(f"{base}/", viewer, host="grafana")[0] == 200
    assert get(f"{base}/", viewer, host="home")[0] == 200
    for host in ("argocd", "vault", "inventory", "passwords", "traefik"):
        assert get(f"{base}/", viewer, host=host)[0] == 403, host
    assert get(f"{base}/", {"Cookie": "session=dev"}, host="vault")[0] == 403, "the Vault UI is for admins"
    assert get(f"{base}/", {"Cookie": "session=ana"}, host="vault")[0] == 200
