"""traces.py over oteltap's real output format: a trace crossing a NATS hop prints as one tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "traces.py"


def span(trace: str, span_id: str, parent: str, name: str, kind: int, start: int) -> str:
    return json.dumps(
        {
            "traceId": trace,
            "spanId": span_id,
            "parentSpanId": parent,
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 2_000_000),
        }
    )


def test_a_trace_prints_as_a_tree_and_is_listed(tmp_path: Path) -> None:
    trace = "ab" * 16
    lines = [
        "Listening for OTLP/HTTP telemetry on port 4318",
        span(trace, "1" * 16, "", "edge-agent.enroll", 3, 10),
        span(trace, "2" * 16, "1" * 16, "POST /v1/enroll", 2, 20),
        span(trace, "3" * 16, "2" * 16, "edge.v1.node.enrolled publish", 4, 30),
        span(trace, "4" * 16, "3" * 16, "lab.edge.v1.node.enrolled process", 5, 40),
    ]
    file = tmp_path / "traces.ndjson"
    file.write_text("\n".join(lines) + "\n")
    shown = subprocess.run([sys.executable, str(SCRIPT), "--file", str(file), trace], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "edge-agent.enroll  [client, 2.0 ms]",
        "  POST /v1/enroll  [server, 2.0 ms]",
        "    edge.v1.node.enrolled publish  [producer, 2.0 ms]",
        "      lab.edge.v1.node.enrolled process  [consumer, 2.0 ms]",
    ]
    listed = subprocess.run([sys.executable, str(SCRIPT), "--file", str(file)], capture_output=True, text=True)
    assert listed.stdout.strip() == f"{trace}  edge-agent.enroll  (4 spans, 1 NATS hop(s))"
