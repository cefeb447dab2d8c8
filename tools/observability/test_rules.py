"""promtool over dashboards/rules: the PrometheusRule's groups pass `promtool check rules`, and the unit
tests in dashboards/rules/tests pass `promtool test rules` (promtool from Debian's prometheus, installed
by make setup)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "dashboards" / "rules"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: make setup installs it (apt-get install prometheus)")
    return found


@pytest.fixture
def plain_rules(tmp_path: Path) -> Path:
    """The rule groups of every PrometheusRule, as the plain rule files promtool reads, beside the tests."""
    for source in RULES.glob("*.yaml"):
        document = yaml.safe_load(source.read_text())
        assert document["kind"] == "PrometheusRule", source
        (tmp_path / source.name).write_text(yaml.safe_dump({"groups": document["spec"]["groups"]}))
    tests = tmp_path / "tests"
    shutil.copytree(RULES / "tests", tests)
    return tmp_path


def test_rules_pass_promtool_check(plain_rules: Path) -> None:
    files = sorted(str(p) for p in plain_rules.glob("*.yaml"))
    assert files, "no rule file in dashboards/rules"
    result = subprocess.run([promtool(), "check", "rules", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_pass(plain_rules: Path) -> None:
    tests = sorted(str(p) for p in (plain_rules / "tests").glob("*.yaml"))
    assert tests, "no promtool unit test in dashboards/rules/tests"
    result = subprocess.run([promtool(), "test", "rules", *tests], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_expectation_fails(plain_rules: Path) -> None:
    """The unit tests can fail: an alert expected at the wrong time is reported."""
    test = plain_rules / "tests" / "homestation.test.yaml"
    text = test.read_text()
    assert "alertname: HomestationBackupStale" in text
    test.write_text(
        text.replace("critical, service: backup, policy: postgres-nightly", "critical, service: backup, policy: other")
    )
    result = subprocess.run([promtool(), "test", "rules", str(test)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "HomestationBackupStale" in result.stdout + result.stderr
