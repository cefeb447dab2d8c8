"""The proxy's proof, on a real Traefik (3.7, `make setup` unpacks it into .dev/tools/bin): the file-provider
middleware argocd/platform/traefik.yaml ships, behind the forward-auth middleware every websecure request
passes, with the secret in Traefik's environment as the chart gives it.

Authelia cannot run here: FakeAuthelia below stands in for it (named as the fake it is), answering the
forward-auth request as Authelia's rules would (a session → its user and groups; the Git webhook → bypass;
otherwise 401). The backend is a plain server echoing the headers it received, as a service would see them."""

from __future__ import annotations

import json
import os
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


class FakeAuthelia(BaseHTTPRequestHandler):
    """A FAKE of Authelia's forward-auth endpoint: a session cookie is user ana in admins; /v1/webhooks/git is
    bypassed (as authelia.yaml's rules do for the signed Git webhook); anything else is 401."""

    def do_GET(self) -> None:
        uri = self.headers.get("X-Forwarded-Uri", "")
        if uri.startswith("/v1/webhooks/git"):
            self.send_response(200)
        elif "session=ana" in self.headers.get("Cookie", ""):
            self.send_response(200)
            self.send_header("Remote-User", "ana")
            self.send_header("Remote-Groups", "admins")
        else:
            self.send_response(401)
        self.end_headers()

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
                urllib.request.urlopen(f"{base}/v1/webhooks/git", timeout=1)
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


def get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
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
    status, seen = get(f"{base}/v1/webhooks/git", FORGED)
    assert status == 200
    assert seen["homestation-proxy-proof"] == secret
    # Authelia answered without an identity: Traefik drops the client's Remote-* headers, so the proof
    # never vouches for a forged identity.
    assert "remote-user" not in seen and "remote-groups" not in seen, seen
