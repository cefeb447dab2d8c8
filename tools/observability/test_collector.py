"""The OpenTelemetry Collector configurations in argocd/platform, checked as far as can be without a
collector binary (none is in any registry here): every pipeline names components that are defined (by
the values or by the chart presets they turn on), every component it defines is used, connectors are both
ends of a pipeline, memory_limiter comes first and batch last, tail sampling keeps every error trace,
each signal reaches its store, the edge agent's metrics go to InfluxDB, and every endpoint is the
Service of an Application in the same Argo CD tree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "argocd" / "platform"
APPS = yaml.safe_load((ROOT / "argocd/app-of-apps/values.yaml").read_text())["platform"]
COLLECTORS = [app["name"] for app in APPS if app.get("chart") == "opentelemetry-collector"]
# What the chart adds to the config when a preset is on.
PRESETS = {"kubernetesAttributes": ("processors", "k8sattributes"), "logsCollection": ("receivers", "filelog")}
# Environment the chart gives every collector pod.
CHART_ENV = {"MY_POD_IP"}


def values(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PLATFORM / f"{name}.yaml").read_text())
    return loaded


def defined(v: dict[str, Any], section: str) -> set[str]:
    names = set((v["config"].get(section) or {}).keys())
    for preset, (preset_section, component) in PRESETS.items():
        if preset_section == section and v.get("presets", {}).get(preset, {}).get("enabled"):
            names.add(component)
    return names


def pipelines(v: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return {k: p for k, p in v["config"]["service"]["pipelines"].items() if p is not None}


def test_both_collectors_are_in_the_tree() -> None:
    assert sorted(COLLECTORS) == ["opentelemetry-collector", "opentelemetry-collector-agent"]


@pytest.mark.parametrize("name", COLLECTORS)
def test_pipelines_use_defined_components_and_every_component_is_used(name: str) -> None:
    v = values(name)
    connectors = defined(v, "connectors")
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set(), "connectors": set()}
    for pipeline_name, pipeline in pipelines(v).items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                known = defined(v, section) | (connectors if section != "processors" else set())
                assert component in known, f"{name}: pipeline {pipeline_name} names undefined {section[:-1]} {component}"
                used["connectors" if component in connectors else section].add(component)
        processors = pipeline.get("processors", [])
        if "memory_limiter" in processors:
            assert processors[0] == "memory_limiter", f"{name}: {pipeline_name} must limit memory first"
        if "batch" in processors:
            assert processors[-1] == "batch", f"{name}: {pipeline_name} must batch last"
    for section in ("receivers", "processors", "exporters", "connectors"):
        own = set((v["config"].get(section) or {}).keys())
        assert own <= used[section], f"{name}: defined but unused {section}: {own - used[section]}"
    for connector in connectors:
        as_exporter = any(connector in p.get("exporters", []) for p in pipelines(v).values())
        as_receiver = any(connector in p.get("receivers", []) for p in pipelines(v).values())
        assert as_exporter and as_receiver, f"{name}: connector {connector} must end one pipeline and start another"


@pytest.mark.parametrize("name", COLLECTORS)
def test_environment_references_are_provided(name: str) -> None:
    v = values(name)
    text = yaml.safe_dump(v["config"])
    referenced = set(re.findall(r"\$\{env:([A-Z_]+)\}", text))
    provided = {e["name"] for e in v.get("extraEnvs", [])} | CHART_ENV
    assert referenced <= provided, referenced - provided


def exporter_endpoints(v: dict[str, Any]) -> dict[str, str]:
    return {name: e["endpoint"] for name, e in v["config"]["exporters"].items()}


@pytest.mark.parametrize("name", COLLECTORS)
def test_every_endpoint_is_a_service_of_an_application_in_the_tree(name: str) -> None:
    for exporter, endpoint in exporter_endpoints(values(name)).items():
        host = re.sub(r"^https?://", "", endpoint).split(":")[0].split("/")[0]
        service, namespace, svc = host.split(".")[:3]
        assert svc == "svc", f"{exporter}: {endpoint} is not a cluster Service address"
        owners = [a for a in APPS if a["namespace"] == namespace and service.startswith(a["name"])]
        assert owners, f"{name} {exporter}: no Application in {namespace} makes Service {service}"


def test_the_gateway_keeps_every_error_trace_and_sends_each_signal_to_its_store() -> None:
    v = values("opentelemetry-collector")
    assert v["mode"] == "deployment" and v["replicaCount"] == 1, "tail sampling needs every span of a trace in one place"
    policies = v["config"]["processors"]["tail_sampling"]["policies"]
    errors = [p for p in policies if p["type"] == "status_code"]
    assert errors and errors[0]["status_code"]["status_codes"] == ["ERROR"]
    p = pipelines(v)
    endpoints = exporter_endpoints(v)
    assert "tail_sampling" in p["traces"]["processors"]
    assert [endpoints[e] for e in p["traces"]["exporters"]] == ["jaeger.observability.svc:4317"]
    assert [endpoints[e] for e in p["logs"]["exporters"]] == ["http://loki.observability.svc:3100/otlp"]
    assert endpoints[p["metrics/prometheus"]["exporters"][0]].endswith("/api/v1/otlp")
    assert p["metrics/edge"]["exporters"] == ["influxdb/edge"]


def test_the_edge_agents_metrics_are_routed_to_influxdb_by_its_service_name() -> None:
    v = values("opentelemetry-collector")
    agent_name = re.search(r'telemetry::init\("([^"]+)"', (ROOT / "edge-agent/src/main.rs").read_text())
    assert agent_name is not None
    route = v["config"]["connectors"]["routing/metrics"]["table"][0]
    assert route["condition"] == f'attributes["service.name"] == "{agent_name.group(1)}"'
    assert route["pipelines"] == ["metrics/edge"]


def test_the_agent_reads_pod_logs_and_lifts_the_trace_ids_homestation_writes() -> None:
    v = values("opentelemetry-collector-agent")
    assert v["mode"] == "daemonset" and v["presets"]["logsCollection"]["enabled"]
    operators = v["config"]["receivers"]["filelog"]["operators"]
    parser = next(o for o in operators if o["type"] == "trace_parser")
    assert parser["trace_id"]["parse_from"] == "attributes.trace_id"
    # The services' JSON lines begin with trace_id (libs/runtime/src/telemetry.rs).
    condition = next(o for o in operators if o["type"] == "json_parser")["if"]
    assert re.search(r'\^\\\\\{\\"trace_id\\"', condition) or '"trace_id"' in condition
    assert pipelines(v)["logs"]["exporters"] == ["otlp/gateway"]
