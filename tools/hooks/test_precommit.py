"""The pre-commit hooks (local only) refuse a committed credential, trailing whitespace and broken YAML."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in (".pre-commit-config.yaml", ".secrets.baseline", ".yamllint.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "scripts").mkdir()
    # The hooks call scripts/tools.sh; here it runs the tool straight from this repository's .venv.
    (tmp_path / "scripts" / "tools.sh").write_text(
        f'#!/bin/sh\n[ "$1" = run ] && shift\nexec env PATH="{ROOT / ".venv" / "bin"}:$PATH" "$@"\n'
    )
    (tmp_path / "scripts" / "tools.sh").chmod(0o755)
    git(tmp_path, "init", "-q")
    return tmp_path


def hook(repo: Path, hook_id: str, *files: str) -> subprocess.CompletedProcess[str]:
    git(repo, "add", "-A")
    env = {**os.environ, "PRE_COMMIT_HOME": str(repo / ".cache")}
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "pre-commit"), "run", hook_id, "--files", *files],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )


def test_a_committed_credential_is_refused(repo: Path) -> None:
    # A credential made by the test (none is written in the repository, not even a fake one).
    key = base64.b64encode(os.urandom(30)).decode()
    (repo / "values.yaml").write_text(f'aws_secret_access_key: "{key}"\n')
    refused = hook(repo, "detect-secrets", "values.yaml")
    assert refused.returncode == 1 and "values.yaml" in refused.stdout, refused.stdout
    (repo / "values.yaml").write_text("admin:\n  existingSecret: grafana-admin\n  tlsSecretName: grafana-tls\n")
    assert hook(repo, "detect-secrets", "values.yaml").returncode == 0


def test_trailing_whitespace_and_broken_yaml_are_refused(repo: Path) -> None:
    (repo / "notes.md").write_text("a line \n")
    assert hook(repo, "trailing-whitespace", "notes.md").returncode == 1
    (repo / "broken.yaml").write_text("a: [1, 2\n")
    result = hook(repo, "yamllint", "broken.yaml")
    assert result.returncode == 1 and "syntax error" in result.stdout, result.stdout
