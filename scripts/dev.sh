#!/usr/bin/env bash
# `make dev`: the control plane on this machine against real local servers. Ctrl-C stops everything it started.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="$ROOT/.dev"
HTTP_PORT="${HOMESTATION_DEV_HTTP_PORT:-8080}"
GRPC_PORT="${HOMESTATION_DEV_GRPC_PORT:-8081}"
DATABASE="${HOMESTATION_DEV_DATABASE:-homestation}"
cd "$ROOT"
mkdir -p "$STATE"

before=$(bash scripts/services.sh started)
bash scripts/services.sh up

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # Stop only the servers this run started, not ones that were already running.
  if [ -z "$before" ]; then bash scripts/services.sh down; fi
  echo "dev: stopped"
}
trap cleanup INT TERM EXIT

echo "dev: building (the first build takes a few minutes)"
cargo build --quiet --bin inventory --bin homestation

psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $DATABASE" >/dev/null

# An admin token made on this machine, never committed: only its SHA-256 goes to the service.
token_file="$STATE/admin.token"
if [ ! -s "$token_file" ]; then
  (umask 077; head -c 32 /dev/urandom | base64 | tr -d '/+=\n' > "$token_file")
fi
token_sha=$(tr -d '\n' < "$token_file" | sha256sum | cut -d' ' -f1)

export HOMESTATION_INVENTORY__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$DATABASE"
export HOMESTATION_INVENTORY__HTTP__PORT="$HTTP_PORT"
export HOMESTATION_INVENTORY__GRPC__PORT="$GRPC_PORT"
export HOMESTATION_INVENTORY__AUTH__SERVICE_TOKENS="[{name=\"dev-admin\",sha256=\"$token_sha\",role=\"admin\"}]"
export RUST_LOG="${RUST_LOG:-info}"
# Logs go through tee, so tell the service whether a person is watching.
if [ -t 2 ]; then export HOMESTATION_LOG_FORMAT="${HOMESTATION_LOG_FORMAT:-pretty}"; fi

./target/debug/inventory 2> >(tee -a "$STATE/inventory.log" >&2) &
pids+=($!)

for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "dev: inventory exited; see .dev/inventory.log" >&2; exit 1; }
  sleep 0.1
done

cat <<INFO

HomeStation is running:
  inventory REST   http://127.0.0.1:$HTTP_PORT/v1   (OpenAPI: /v1/openapi.json)
  inventory gRPC   127.0.0.1:$GRPC_PORT             (grpc.health.v1 included)
  health           http://127.0.0.1:$HTTP_PORT/healthz  /readyz  /metrics
  PostgreSQL       postgres://postgres@127.0.0.1:5432/$DATABASE
  NATS JetStream   nats://127.0.0.1:4222
  logs             .dev/inventory.log

In another shell:
  export PATH="$ROOT/target/debug:\$PATH" HOMESTATION_TOKEN_FILE="$token_file"
  homestation status

Ctrl-C stops everything this started.
INFO
wait "${pids[0]}"
