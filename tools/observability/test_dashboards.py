"""The dashboards: committed JSON is what dashboards.py writes, each ships through the kustomization, and
each panel query names only metrics the services export or the rules record (the scrape side of that
check is e2e/tests/observability.rs)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/observability/dashboards.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_dashboard_ships_through_the_kustomization() -> None:
    kustomization = yaml.safe_load((DASHBOARDS / "kustomization.yaml").read_text())
    shipped = {f for generator in kustomization["configMapGenerator"] for f in generator["files"]}
    written = {p.name for p in DASHBOARDS.glob("*.json")}
    assert len(written) == 7, written
    # `make app` adds its services' dashboards under apps/ (and to the kustomization).
    generated = {f"apps/{p.name}" for p in DASHBOARDS.glob("apps/*.json")}
    assert shipped == written | generated


def test_recording_rules_used_by_dashboards_are_defined() -> None:
    rules = yaml.safe_load((DASHBOARDS / "rules/homestation.rules.yaml").read_text())
    recorded = {r["record"] for g in rules["spec"]["groups"] for r in g["rules"] if "record" in r}
    used: set[str] = set()
    for path in DASHBOARDS.glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                used |= set(re.findall(r"homestation:[a-z0-9_:]+", target.get("expr", "")))
    assert used, "the dashboards use recording rules"
    assert used <= recorded, used - recorded
