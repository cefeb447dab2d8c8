"""infra/harbor/robots.py: Harbor's projects and robots made once, each robot's secret only in Vault (a
real OpenBao). Harbor cannot run here: FakeHarbor below is a fake of Harbor's API v2.0 (the five calls the
script makes, shaped as Harbor documents them: projects by name, robots by `q=name=…`, robot creation
with its secret, a new secret by PATCH), named so."""

from __future__ import annotations

import base64
import json
import secrets
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from openbao import Bao

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "harbor"))
import robots  # noqa: E402


class FakeHarbor(BaseHTTPRequestHandler):
    """A FAKE of Harbor's API v2.0, as much as robots.py uses; state on the server object."""

    server: Any

    def answer(self, status: int, body: Any = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def authorized(self) -> bool:
        expected = "Basic " + base64.b64encode(f"admin:{self.server.password}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.answer(401, {"errors": [{"code": "UNAUTHORIZED"}]})
            return False
        return True

    def body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")

    def do_GET(self) -> None:
        if not self.authorized():
            return
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/api/v2.0/projects":
            self.answer(200, [p for p in self.server.projects if p["name"] == query.get("name", [""])[0]])
        elif url.path == "/api/v2.0/robots":
            name = unquote(query.get("q", [""])[0]).removeprefix("name=")
            self.answer(200, [{k: v for k, v in r.items() if k != "secret"} for r in self.server.robots if name in r["name"]])
        else:
            self.answer(404)

    def do_POST(self) -> None:
        if not self.authorized():
            return
        body = self.body()
        if self.path == "/api/v2.0/projects":
            self.server.projects.append({"name": body["project_name"], "metadata": body["metadata"]})
            self.answer(201)
        elif self.path == "/api/v2.0/robots":
            robot = {
                "id": len(self.server.robots) + 1,
                "name": f"robot${body['name']}",
                **{k: body[k] for k in ("secret", "level", "permissions")},
            }
            self.server.robots.append(robot)
            self.answer(201, {"id": robot["id"], "name": robot["name"], "secret": robot["secret"]})
        else:
            self.answer(404)

    def do_PATCH(self) -> None:
        if not self.authorized():
            return
        robot = next(r for r in self.server.robots if self.path == f"/api/v2.0/robots/{r['id']}")
        robot["secret"] = self.body()["secret"]
        self.answer(200)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def harbor() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHarbor)
    server.password, server.projects, server.robots = secrets.token_hex(8), [], []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def run(harbor: ThreadingHTTPServer, bao: Bao) -> list[str]:
    lab = json.loads((ROOT / "infra/vault/lab.json").read_text())
    url = f"http://127.0.0.1:{harbor.server_address[1]}"
    changes: list[str] = robots.apply(robots.Robots(url, "admin", harbor.password, bao.address, bao.root_token), lab)  # type: ignore[attr-defined]
    return changes


def test_projects_and_robots_are_made_once_with_their_secrets_in_vault_only(harbor: ThreadingHTTPServer, bao: Bao) -> None:
    first = run(harbor, bao)
    assert any(c.startswith("project homestation") for c in first) and any(c.startswith("robot nodes") for c in first)
    made = {r["name"]: r for r in harbor.robots}  # type: ignore[attr-defined]
    assert {p["name"]: p["metadata"]["public"] for p in harbor.projects} == {"homestation": "false", "apps": "false"}  # type: ignore[attr-defined]
    nodes = made["robot$nodes"]
    assert {a["action"] for p in nodes["permissions"] for a in p["access"]} == {"pull"}, "nodes only pull"
    assert {a["action"] for p in made["robot$ci"]["permissions"] for a in p["access"]} == {"pull", "push"}
    kept = bao.call("GET", "secret/data/platform/harbor-robots/nodes", bao.root_token)[1]["data"]["data"]
    assert kept == {"username": "robot$nodes", "password": nodes["secret"]}
    assert run(harbor, bao) == [], "a second run changes nothing"
    assert bao.call("GET", "secret/data/platform/harbor-robots/nodes", bao.root_token)[1]["data"]["metadata"]["version"] == 1


def test_a_robot_whose_secret_vault_lost_gets_a_new_one_and_no_other_changes(harbor: ThreadingHTTPServer, bao: Bao) -> None:
    run(harbor, bao)
    before = {r["name"]: r["secret"] for r in harbor.robots}  # type: ignore[attr-defined]
    assert bao.call("DELETE", "secret/metadata/platform/harbor-robots/ci", bao.root_token)[0] == 204
    assert run(harbor, bao) == ["robot ci: a new secret (Vault had none)"]
    after = {r["name"]: r["secret"] for r in harbor.robots}  # type: ignore[attr-defined]
    assert after["robot$nodes"] == before["robot$nodes"] and after["robot$ci"] != before["robot$ci"]
    kept = bao.call("GET", "secret/data/platform/harbor-robots/ci", bao.root_token)[1]["data"]["data"]
    assert kept["password"] == after["robot$ci"]
