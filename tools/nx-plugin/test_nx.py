"""Nx's projects and graph come from the manifests (tools/nx-plugin): every crate, chart and the tools, nothing written twice."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def nx(*args: str) -> str:
    env = {**os.environ, "NX_DAEMON": "false", "NX_NO_CLOUD": "true"}
    result = subprocess.run([str(ROOT / "node_modules/.bin/nx"), *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_every_crate_chart_and_the_tools_is_a_project_with_the_make_targets() -> None:
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    )
    crates = {p["name"] for p in metadata["packages"]}
    charts = {
        "chart-" + next(line.split(":", 1)[1].strip() for line in p.read_text().splitlines() if line.startswith("name:"))
        for p in [*ROOT.glob("charts/**/Chart.yaml"), *ROOT.glob("argocd/*/Chart.yaml")]
    }
    projects = set(json.loads(nx("show", "projects", "--json")))
    assert projects == crates | charts | {"tools", "infra"}

    deployer = json.loads(nx("show", "project", "deployer", "--json"))
    assert set(deployer["targets"]) == {"lint", "typecheck", "test", "build", "containerize"}
    assert deployer["targets"]["test"]["options"]["command"].startswith("cargo nextest run -p deployer")


def test_the_graph_follows_cargo_and_chart_dependencies() -> None:
    graph_file = ROOT / ".dev" / "nx-graph.json"
    graph_file.parent.mkdir(exist_ok=True)
    nx("graph", f"--file={graph_file}")
    edges = {k: {d["target"] for d in v} for k, v in json.loads(graph_file.read_text())["graph"]["dependencies"].items()}
    assert {"bus", "service-kit"} <= edges["deployer"]
    assert "service-kit" in edges["bus"]
    assert edges["chart-inventory"] == {"chart-homestation-lib"}
    # The kit builds on the runtime crate (what the edge agent links alone); libs depend on no service.
    assert edges["service-kit"] == {"runtime"} and edges["runtime"] == set()
