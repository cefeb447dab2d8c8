"""The crates' walls, read from `cargo metadata` and `cargo tree`: what may depend on what."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def metadata() -> dict[str, Any]:
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


def module_edges(src: Path) -> dict[str, set[str]]:
    """Which top-level modules of a crate each one names (`crate::x`), tests left out."""
    edges: dict[str, set[str]] = {}
    for file in src.rglob("*.rs"):
        parts = file.relative_to(src).with_suffix("").parts
        if parts[0] in ("lib", "main", "bin"):
            continue
        text = file.read_text().split("#[cfg(test)]")[0]
        named = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)\b", text))
        for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
            named |= {name.strip().split("::")[0] for name in group.split(",")}
        edges.setdefault(parts[0], set()).update(named - {parts[0]})
    return {module: {n for n in named if n in edges or (src / f"{n}.rs").exists()} for module, named in edges.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, if there is any."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for next_node in sorted(edges.get(node, ())):
            if state.get(next_node) == "open":
                return [*path[path.index(next_node) :], node, next_node] if next_node in path else [node, next_node]
            if next_node not in state and (found := visit(next_node, [*path, node])):
                return found
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_no_import_cycle_between_the_modules_of_a_crate() -> None:
    crates = [Path(p["manifest_path"]).parent for p in metadata()["packages"]]
    assert len(crates) > 10
    cycles = {}
    for crate in crates:
        if (found := cycle(module_edges(crate / "src"))) is not None:
            cycles[crate.name] = " → ".join(found)
    assert cycles == {}


def test_the_cycle_finder_finds_one() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_rust_file_outside_the_tests_is_over_600_lines() -> None:
    files = [
        f for crate in (Path(p["manifest_path"]).parent for p in metadata()["packages"]) for f in (crate / "src").rglob("*.rs")
    ]
    assert len(files) > 50
    long = {str(f.relative_to(ROOT)): n for f in files if (n := len(f.read_text().splitlines())) > 600}
    assert long == {}
