"""Writes HomeStation's Grafana dashboards (dashboards/*.json) from the definitions below: the lab
overview, one per service, and the tracing view. Run it after changing a panel; make test runs it with
--check, which fails when a committed dashboard differs from what this writes.

Panels query only metrics the services export (e2e/tests/observability.rs scrapes them to prove it) and
the recording rules in dashboards/rules."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "dashboards"
PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
JAEGER = {"type": "jaeger", "uid": "jaeger"}
LOKI = {"type": "loki", "uid": "loki"}


@dataclass
class Panel:
    title: str
    exprs: list[str]
    kind: str = "timeseries"  # timeseries, stat, table, traces, logs
    unit: str = "short"
    legend: str = ""
    width: int = 12
    datasource: dict[str, str] = field(default_factory=lambda: PROMETHEUS)


def stat(title: str, expr: str, unit: str = "short") -> Panel:
    return Panel(title, [expr], kind="stat", unit=unit, width=6)


def red(service: str) -> list[Panel]:
    """Rate, errors and duration of one service's HTTP routes."""
    sel = f'service="{service}"'
    return [
        Panel(
            "Requests per second by route",
            [f"sum by (route) (rate(homestation_http_requests_total{{{sel}}}[5m]))"],
            legend="{{route}}",
        ),
        Panel(
            "Server errors (5xx share)",
            [
                f'sum(rate(homestation_http_requests_total{{{sel},status=~"5.."}}[5m]))'
                f" / sum(rate(homestation_http_requests_total{{{sel}}}[5m]))"
            ],
            unit="percentunit",
        ),
        Panel(
            "Latency p99 by route",
            [
                "histogram_quantile(0.99, sum by (le, route) "
                f"(rate(homestation_http_request_duration_seconds_bucket{{{sel}}}[5m])))"
            ],
            unit="s",
            legend="{{route}}",
        ),
        Panel(
            "Events published and consumed",
            [
                f"sum by (kind) (rate(homestation_bus_events_published_total{{{sel}}}[5m]))",
                f"sum by (consumer, outcome) (rate(homestation_bus_events_consumed_total{{{sel}}}[5m]))",
            ],
        ),
        Panel(
            "Event lag and handling p99",
            [
                f"histogram_quantile(0.99, sum by (le, consumer) (rate(homestation_bus_event_lag_seconds_bucket{{{sel}}}[5m])))",
                "histogram_quantile(0.99, sum by (le, consumer) "
                f"(rate(homestation_bus_event_handle_duration_seconds_bucket{{{sel}}}[5m])))",
            ],
            unit="s",
        ),
        Panel(
            f"{service} logs (click a trace_id to open its trace)",
            [f'{{app_kubernetes_io_name="{service}"}} | json'],
            kind="logs",
            width=24,
            datasource=LOKI,
        ),
    ]


DASHBOARDS: dict[str, tuple[str, list[Panel]]] = {
    "homestation-overview": (
        "HomeStation lab overview",
        [
            stat("Services down (scrape)", 'count(up{job=~"homestation-.*"} == 0) or vector(0)'),
            stat("Services unhealthy", 'sum(homestation_inventory_services{health=~"degraded|offline"})'),
            stat("Edge nodes online", 'sum(homestation_edge_nodes{state="online"})'),
            stat("Edge nodes offline", 'sum(homestation_edge_nodes{state="offline"})'),
            stat("Recover time p99 (24 h, goal 2 min)", "max(homestation:service_recovery_seconds:p99_1d)", unit="s"),
            stat("Commit to live p95 (24 h, goal 5 min)", "homestation:deploy_commit_to_live_seconds:p95_1d", unit="s"),
            stat("Oldest last good backup", "max(homestation:backup_age_seconds)", unit="s"),
            stat("Oldest passed restore drill", "max(homestation:backup_drill_age_seconds)", unit="s"),
            Panel(
                "Nodes by kind and health", ["sum by (kind, health) (homestation_inventory_nodes)"], legend="{{kind}} {{health}}"
            ),
            Panel("Services by health", ["sum by (health) (homestation_inventory_services)"], legend="{{health}}"),
            Panel(
                "Edge fleet: GPU facts",
                ["homestation_inventory_edge_node_info"],
                kind="table",
                width=24,
            ),
            Panel("Backup age by policy", ["homestation:backup_age_seconds"], unit="s", legend="{{policy}}"),
            Panel("Secret age by policy", ["homestation:secret_rotation_age_seconds"], unit="s", legend="{{policy}}"),
            Panel("5xx share by service", ["homestation:http_errors:ratio_rate5m"], unit="percentunit", legend="{{service}}"),
            Panel("Event lag p99 by consumer", ["homestation:bus_event_lag_seconds:p99_5m"], unit="s", legend="{{consumer}}"),
        ],
    ),
    "homestation-inventory": (
        "HomeStation: inventory",
        [
            Panel(
                "Recovery time by service (p99, 24 h)",
                ["homestation:service_recovery_seconds:p99_1d"],
                unit="s",
                legend="{{namespace}}/{{name}}",
            ),
            Panel(
                "Node recoveries (per hour)",
                ["sum(increase(homestation_inventory_node_recovery_seconds_count[1h]))"],
            ),
            *red("inventory"),
        ],
    ),
    "homestation-edge-registry": (
        "HomeStation: edge-registry",
        [
            Panel("Edge nodes by state", ["sum by (state) (homestation_edge_nodes)"], legend="{{state}}"),
            Panel(
                "Heartbeats by outcome", ["sum by (outcome) (rate(homestation_edge_heartbeats_total[5m]))"], legend="{{outcome}}"
            ),
            Panel(
                "Heartbeat lag p50 / p99",
                [
                    "histogram_quantile(0.5, sum by (le) (rate(homestation_edge_heartbeat_lag_seconds_bucket[5m])))",
                    "histogram_quantile(0.99, sum by (le) (rate(homestation_edge_heartbeat_lag_seconds_bucket[5m])))",
                ],
                unit="s",
            ),
            *red("edge-registry"),
        ],
    ),
    "homestation-deployer": (
        "HomeStation: deployer",
        [
            Panel(
                "Commit to live p50 / p95",
                [
                    "histogram_quantile(0.5, sum by (le) (rate(homestation_deploy_commit_to_live_seconds_bucket[1h])))",
                    "histogram_quantile(0.95, sum by (le) (rate(homestation_deploy_commit_to_live_seconds_bucket[1h])))",
                ],
                unit="s",
            ),
            Panel(
                "Deployments by outcome (per hour)",
                ["sum by (outcome) (increase(homestation_deploy_deployments_total[1h]))"],
                legend="{{outcome}}",
            ),
            *red("deployer"),
        ],
    ),
    "homestation-backup": (
        "HomeStation: backup",
        [
            Panel("Age of the last good backup", ["homestation:backup_age_seconds"], unit="s", legend="{{policy}}"),
            Panel("Age of the last passed drill", ["homestation:backup_drill_age_seconds"], unit="s", legend="{{policy}}"),
            Panel("Size of the last backup", ["homestation_backup_last_bytes"], unit="bytes", legend="{{policy}}"),
            Panel("Duration of the last backup", ["homestation_backup_last_duration_seconds"], unit="s", legend="{{policy}}"),
            Panel(
                "Runs and drills by outcome (per day)",
                [
                    "sum by (policy, outcome) (increase(homestation_backup_runs_total[1d]))",
                    "sum by (policy, outcome) (increase(homestation_backup_drills_total[1d]))",
                ],
            ),
            *red("backup"),
        ],
    ),
    "homestation-secrets-rotator": (
        "HomeStation: secrets-rotator",
        [
            Panel("Age of each secret", ["homestation:secret_rotation_age_seconds"], unit="s", legend="{{policy}}"),
            Panel(
                "Rotations by outcome (per day)",
                ["sum by (policy, outcome) (increase(homestation_secrets_rotations_total[1d]))"],
                legend="{{policy}} {{outcome}}",
            ),
            *red("secrets-rotator"),
        ],
    ),
    "homestation-tracing": (
        "HomeStation: traces across the control plane",
        [
            Panel(
                "Traces of the control plane (enrolment, backup, deploy)",
                ['{"service": "$service", "limit": 20}'],
                kind="traces",
                width=24,
                datasource=JAEGER,
            ),
            Panel(
                "Logs of the selected trace",
                ['{app_kubernetes_io_part_of="homestation"} | json | trace_id = "$trace_id"'],
                kind="logs",
                width=24,
                datasource=LOKI,
            ),
            Panel(
                "Slowest routes (p99, with exemplars linking to traces)",
                ["homestation:http_request_duration_seconds:p99_5m"],
                unit="s",
                legend="{{service}}",
                width=24,
            ),
        ],
    ),
}

SERVICES = ["inventory", "edge-registry", "deployer", "backup", "secrets-rotator"]


def target(panel: Panel, expr: str, index: int) -> dict[str, Any]:
    ref = chr(ord("A") + index)
    if panel.datasource is JAEGER:
        return {"refId": ref, "datasource": JAEGER, "queryType": "search", "service": "$service", "limit": 20}
    return {"refId": ref, "datasource": panel.datasource, "expr": expr, "legendFormat": panel.legend}


def render(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    x = y = row_height = 0
    out = []
    for number, panel in enumerate(panels, start=1):
        height = 4 if panel.kind == "stat" else 8
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        out.append(
            {
                "id": number,
                "title": panel.title,
                "type": panel.kind,
                "datasource": panel.datasource,
                "gridPos": {"x": x, "y": y, "w": panel.width, "h": height},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "targets": [target(panel, e, i) for i, e in enumerate(panel.exprs)],
            }
        )
        x += panel.width
        row_height = max(row_height, height)
    templating: list[dict[str, Any]] = []
    if uid == "homestation-tracing":
        templating = [
            {"name": "service", "type": "custom", "query": ",".join([*SERVICES, "edge-agent"]), "current": {}},
            {"name": "trace_id", "type": "textbox", "query": ""},
        ]
    return {
        "uid": uid,
        "title": title,
        "tags": ["homestation"],
        "editable": False,
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": templating},
        "panels": out,
    }


def documents() -> dict[Path, str]:
    return {
        OUT / f"{uid}.json": json.dumps(render(uid, title, panels), indent=2) + "\n"
        for uid, (title, panels) in DASHBOARDS.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if a committed dashboard differs from what this writes")
    args = parser.parse_args()
    stale = []
    for path, text in documents().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"dashboards out of date: {', '.join(stale)}; run python3 tools/observability/dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
