"""The crates' walls, read from `cargo metadata` and `cargo tree`: what may depend on what."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def metadata() -> dict:
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--locked"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return json.loads(out)


def test_no_service_depends_on_another_even_for_tests() -> None:
    packages = metadata()["packages"]
    services = {p["name"] for p in packages if Path(p["manifest_path"]).relative_to(ROOT).parts[0] == "services"}
    assert {"inventory", "backup", "deployer"} <= services
    crossing = [
        f"{p['name']} → {d['name']} ({d['kind'] or 'normal'})"
        for p in packages
        if p["name"] in services
        for d in p["dependencies"]
        if d["name"] in services
    ]
    assert crossing == []


def test_the_edge_agent_links_no_server_library() -> None:
    # What runs on a Jetson: the runtime crate and the bus without its server feature, so no HTTP server,
    # database driver, gRPC or Vault client is linked into its binary.
    tree = subprocess.run(
        ["cargo", "tree", "-p", "edge-agent", "-e", "normal", "--prefix", "none", "--locked"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    linked = {line.split()[0] for line in tree.splitlines() if line.strip()}
    assert {"runtime", "bus", "async-nats"} <= linked
    assert linked.isdisjoint({"service-kit", "service-core", "axum", "sqlx", "tonic", "vaultrs", "utoipa"}), sorted(
        linked & {"service-kit", "service-core", "axum", "sqlx", "tonic", "vaultrs", "utoipa"}
    )
