#!/usr/bin/env bash
# make security: every check that a change did not open a hole, each one failing the run.
#   1. cargo-deny: bans (crates we refuse, wildcard versions), licenses (deny.toml's allow list), sources
#      (crates.io only); advisories too when the RustSec database can be fetched (it lives on GitHub, which
#      this machine cannot reach: the run says it skipped them rather than passing them silently).
#   2. detect-secrets over every tracked file, against .secrets.baseline (what the pre-commit hook checks
#      on each commit, here over the whole tree).
#   3. checkov over every rendered chart (part of charts-check, with its reviewed skips).
#   4. schemathesis against each service's OpenAPI document on a running lab (the five service binaries on
#      real PostgreSQL, nats-server, OpenBao and SeaweedFS): EXAMPLES (default 25) examples per operation, every
#      5xx a failure. The deployer's sync and rollback are left out: they act on the Kubernetes API, which
#      cannot run here, and answer 503 saying so (their paths are tested against recorded exchanges).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
EXAMPLES=${EXAMPLES:-25}
say() { printf '\n== security: %s\n' "$*" >&2; }

say "cargo-deny (bans, licenses, sources)"
if ! command -v cargo-deny >/dev/null; then
  echo "installing cargo-deny from crates.io (a few minutes, once)" >&2
  cargo install --locked --quiet cargo-deny@0.20.2
fi
cargo deny --log-level error check bans licenses sources
if timeout 60 cargo deny fetch >/dev/null 2>&1; then
  say "cargo-deny advisories"
  cargo deny --log-level error check advisories
else
  echo "advisories: SKIPPED — the RustSec database (github.com/rustsec/advisory-db) cannot be fetched from here" >&2
fi

say "detect-secrets over every tracked file"
git ls-files -z | grep -zvE '(^|/)(node_modules|target)/|uv\.lock$|pnpm-lock\.yaml$|Cargo\.lock$|^\.secrets\.baseline$' |
  xargs -0 scripts/tools.sh run detect-secrets-hook --baseline .secrets.baseline \
    --exclude-lines '(?i)(existing[a-z]*secret|secretname|secretkeyref|secretref|secretpath|token_path|\.data\.data\.)'
echo "no credential found beyond the audited baseline" >&2

say "checkov over the rendered charts (charts-check)"
scripts/tools.sh charts-check

say "schemathesis against each service's OpenAPI document ($EXAMPLES examples per operation)"
scripts/tools.sh schemathesis --version >/dev/null
work=$(mktemp -d)
cargo build --quiet --locked -p e2e --bin lab
target/debug/lab "$work/lab.json" 2>"$work/lab.log" &
lab=$!
trap 'kill -TERM $lab 2>/dev/null; wait $lab 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 600); do
  [ -s "$work/lab.json" ] && break
  kill -0 $lab 2>/dev/null || { cat "$work/lab.log" >&2; echo "the lab did not start" >&2; exit 1; }
  sleep 0.5
done
[ -s "$work/lab.json" ] || { echo "the lab did not start within 5 minutes" >&2; exit 1; }
admin=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"])' "$work/lab.json")
failed=0
for service in inventory edge-registry backup secrets-rotator deployer; do
  base=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["services"][sys.argv[2]])' "$work/lab.json" "$service")
  exclude=()
  [ "$service" = deployer ] && exclude=(--exclude-path-regex '^/v1/apps/\{app\}/(sync|rollback)$')
  echo "-- $service ($base)" >&2
  if ! scripts/tools.sh schemathesis run "$base/v1/openapi.json" --url "$base" \
    -H "Authorization: Bearer $admin" --checks not_a_server_error --max-examples "$EXAMPLES" \
    --generation-deterministic --no-color "${exclude[@]}" >"$work/$service.out" 2>&1; then
    cat "$work/$service.out" >&2
    failed=1
  else
    grep -E '^(Test cases|API Operations|Test Phases|  ✅|  ⏭)|passed|generated' "$work/$service.out" | tail -4 >&2 || true
  fi
done
[ $failed = 0 ] || { echo "schemathesis found server errors (above)" >&2; exit 1; }
say "passed"
