"""The traces `make dev` received (oteltap writes each span as one OTLP JSON line to .dev/traces.ndjson):
with no argument, the most recent traces, one line each; with a trace id, that trace as a tree, each span
with its kind and duration, so one request can be followed across services and NATS hops."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def load(path: Path) -> list[dict[str, Any]]:
    spans = []
    for line in path.read_text().splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue  # oteltap's own messages
        if isinstance(value, dict) and "spanId" in value:
            spans.append(value)
    return spans


def millis(span: dict[str, Any]) -> float:
    return (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6


def summary(spans: list[dict[str, Any]], limit: int) -> str:
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        traces[span["traceId"]].append(span)
    newest = sorted(traces.items(), key=lambda t: max(int(s["startTimeUnixNano"]) for s in t[1]), reverse=True)
    lines = []
    for trace_id, members in newest[:limit]:
        roots = [s for s in members if not s.get("parentSpanId")] or members
        hops = sum(1 for s in members if s.get("kind") == 5)
        lines.append(f"{trace_id}  {roots[0]['name']}  ({len(members)} spans, {hops} NATS hop(s))")
    return "\n".join(lines) or "no traces yet"


def tree(spans: list[dict[str, Any]], trace_id: str) -> str:
    members = [s for s in spans if s["traceId"] == trace_id]
    if not members:
        return f"no span of trace {trace_id}"
    ids = {s["spanId"] for s in members}
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in members:
        parent = span.get("parentSpanId") or ""
        children[parent if parent in ids else ""].append(span)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in sorted(children[parent], key=lambda s: int(s["startTimeUnixNano"])):
            kind = KINDS.get(span.get("kind", 0), "?")
            lines.append(f"{'  ' * depth}{span['name']}  [{kind}, {millis(span):.1f} ms]")
            walk(span["spanId"], depth + 1)

    walk("", 0)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace_id", nargs="?", help="show this trace as a tree")
    parser.add_argument("--file", type=Path, default=ROOT / ".dev/traces.ndjson", help="oteltap's output (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=20, help="how many recent traces to list (default: %(default)s)")
    args = parser.parse_args()
    if not args.file.exists():
        print(f"{args.file} does not exist: start `make dev` first", file=sys.stderr)
        return 1
    spans = load(args.file)
    print(tree(spans, args.trace_id) if args.trace_id else summary(spans, args.limit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
