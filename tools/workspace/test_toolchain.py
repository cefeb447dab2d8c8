"""The development workflow the mission names: Python 3.12.1 through pyenv with uv, pnpm for the Node workspace."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_tools_run_on_python_3_12_1() -> None:
    assert (ROOT / ".python-version").read_text().strip() == "3.12.1"
    # This test runs in the tools' environment (.venv), which scripts/tools.sh made with that interpreter.
    assert sys.version_info[:3] == (3, 12, 1), sys.version
    for project in ["pyproject.toml", "tools/checkov/pyproject.toml", "tools/schemathesis/pyproject.toml"]:
        assert 'requires-python = "==3.12.1"' in (ROOT / project).read_text(), project


def test_pnpm_is_the_node_workspace_s_one_package_manager() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert [f for f in tracked if f.endswith("package-lock.json")] == []
    assert "pnpm-lock.yaml" in tracked and "pnpm-workspace.yaml" in tracked
    # Every package.json of the tree is in the workspace, so the one lockfile covers it.
    lock = (ROOT / "pnpm-lock.yaml").read_text()
    for manifest in [f for f in tracked if f.endswith("package.json")]:
        folder = str(Path(manifest).parent)
        assert re.search(rf"^  {re.escape(folder)}:$", lock, re.M), f"{manifest} is not in pnpm-lock.yaml's importers"
    # The version scripts/tools.sh installs is the one package.json names.
    wanted = json.loads((ROOT / "package.json").read_text())["packageManager"]
    installed = re.search(r"^PNPM_VERSION=(\S+)", (ROOT / "scripts/tools.sh").read_text(), re.M)
    assert installed and wanted == f"pnpm@{installed.group(1)}"
    pnpm = ROOT / ".dev/tools/pnpm/node_modules/.bin/pnpm"
    assert subprocess.run([pnpm, "--version"], capture_output=True, text=True, check=True).stdout.strip() == installed.group(1)
