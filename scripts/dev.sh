#!/usr/bin/env bash
# `make dev`: the control plane on this machine against real local servers. Ctrl-C stops everything it started.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="$ROOT/.dev"
HTTP_PORT="${HOMESTATION_DEV_HTTP_PORT:-8080}"
GRPC_PORT="${HOMESTATION_DEV_GRPC_PORT:-8081}"
EDGE_PORT="${HOMESTATION_DEV_EDGE_PORT:-8082}"
ENROL_PORT="${HOMESTATION_DEV_ENROL_PORT:-8088}"
BAO_PORT="${HOMESTATION_DEV_BAO_PORT:-8200}"
BACKUP_PORT="${HOMESTATION_DEV_BACKUP_PORT:-8083}"
S3_PORT="${HOMESTATION_DEV_S3_PORT:-8084}"
SECRETS_PORT="${HOMESTATION_DEV_SECRETS_PORT:-8085}"
DEPLOY_PORT="${HOMESTATION_DEV_DEPLOY_PORT:-8086}"
OTLP_PORT="${HOMESTATION_DEV_OTLP_PORT:-4318}"
NATS_PORT="${HOMESTATION_DEV_NATS_PORT:-4223}"
DATABASE="${HOMESTATION_DEV_DATABASE:-homestation}"
EDGE_DATABASE="${HOMESTATION_DEV_EDGE_DATABASE:-edge_registry}"
cd "$ROOT"
mkdir -p "$STATE"

before=$(bash scripts/services.sh started)
bash scripts/services.sh up
bash scripts/services.sh tools
scripts/tools.sh run true   # the Python tools (.venv), oteltap among them

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Ten seconds to drain (SeaweedFS takes about twenty to stop on its own), then KILL what is left.
  for _ in $(seq 1 100); do
    alive=""; for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=yes; done
    [ -n "$alive" ] || break; sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  # Stop only the servers this run started, not ones that were already running.
  if [ -z "$before" ]; then bash scripts/services.sh down; fi
  echo "dev: stopped"
}
trap cleanup INT TERM EXIT

echo "dev: building (the first build takes a few minutes)"
cargo build --quiet --bin inventory --bin edge-registry --bin backup --bin secrets-rotator --bin deployer --bin homestation --bin homestation-edge-agent

for db in "$DATABASE" "$EDGE_DATABASE" backup secrets_rotator deployer; do
  psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $db" >/dev/null
done

# An admin token made on this machine, never committed: only its SHA-256 goes to the service.
token_file="$STATE/admin.token"
if [ ! -s "$token_file" ]; then
  (umask 077; head -c 32 /dev/urandom | base64 | tr -d '/+=\n' > "$token_file")
fi
token_sha=$(tr -d '\n' < "$token_file" | sha256sum | cut -d' ' -f1)

# NATS with the lab's authorization (libs/bus/src/access.rs): each service its own user and password
# (made here once, in .dev/nats-dev/passwords, readable by their owner only), edge nodes admitted by
# edge-registry's auth callout with the issuer seed made here. `homestation bus` writes the config.
nats_dir="$STATE/nats-dev"
issuer=$(./target/debug/homestation bus issuer --seed-file "$nats_dir/issuer.seed")
./target/debug/homestation bus server-config --issuer "$issuer" --password-dir "$nats_dir/passwords" \
  --listen "127.0.0.1:$NATS_PORT" --store-dir "$nats_dir/jetstream" > "$nats_dir/nats.json"
"$STATE/tools/bin/nats-server" -c "$nats_dir/nats.json" > "$STATE/nats-dev.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break; sleep 0.1; done
# Each service's bus settings: HOMESTATION_<SERVICE>__NATS__URL and __PASSWORD (the user is its name).
for service in inventory edge-registry backup secrets-rotator deployer; do
  prefix="HOMESTATION_$(printf '%s' "$service" | tr 'a-z-' 'A-Z_')__NATS__"
  export "${prefix}URL=nats://127.0.0.1:$NATS_PORT"
  export "${prefix}PASSWORD=$(cat "$nats_dir/passwords/$service")"
done

export HOMESTATION_INVENTORY__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$DATABASE"
export HOMESTATION_INVENTORY__HTTP__PORT="$HTTP_PORT"
export HOMESTATION_INVENTORY__GRPC__PORT="$GRPC_PORT"
export HOMESTATION_INVENTORY__AUTH__SERVICE_TOKENS="[{name=\"dev-admin\",sha256=\"$token_sha\",role=\"admin\"}]"
export RUST_LOG="${RUST_LOG:-info}"

# Traces: every service exports its spans over OTLP/HTTP to oteltap, which writes one span a line.
: > "$STATE/traces.ndjson"
"$ROOT/.venv/bin/oteltap" --port "$OTLP_PORT" >> "$STATE/traces.ndjson" 2> "$STATE/oteltap.log" &
pids+=($!)
for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$OTLP_PORT") 2>/dev/null && break; sleep 0.1; done
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT"
# Logs go through tee, so tell the service whether a person is watching.
if [ -t 2 ]; then export HOMESTATION_LOG_FORMAT="${HOMESTATION_LOG_FORMAT:-pretty}"; fi

./target/debug/inventory 2> >(tee -a "$STATE/inventory.log" >&2) &
pids+=($!)

# OpenBao in dev mode (in memory) for edge-registry, with a root token made now, and a K3s agent token made
# now too: there is no K3s here, so it only lets a simulated agent enrol.
bao_token="dev-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
(umask 077; printf '%s' "$bao_token" > "$STATE/openbao.token")
bao server -dev -dev-root-token-id="$bao_token" -dev-listen-address="127.0.0.1:$BAO_PORT" > "$STATE/openbao.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$BAO_PORT/v1/sys/health" >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 1 50); do
  curl -sf -H "X-Vault-Token: $bao_token" -d "{\"data\":{\"agent_token\":\"K10dev$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')::node:dev\"}}" \
    "http://127.0.0.1:$BAO_PORT/v1/secret/data/homestation/k3s" >/dev/null && break
  sleep 0.2
done

HOMESTATION_EDGE_REGISTRY__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$EDGE_DATABASE" \
HOMESTATION_EDGE_REGISTRY__HTTP__PORT="$EDGE_PORT" \
HOMESTATION_EDGE_REGISTRY__ENROL__PORT="$ENROL_PORT" \
HOMESTATION_EDGE_REGISTRY__INVENTORY__GRPC_URL="http://127.0.0.1:$GRPC_PORT" \
HOMESTATION_EDGE_REGISTRY__INVENTORY__TOKEN="$(cat "$token_file")" \
HOMESTATION_EDGE_REGISTRY__VAULT__ADDRESS="http://127.0.0.1:$BAO_PORT" \
HOMESTATION_EDGE_REGISTRY__VAULT__TOKEN="$bao_token" \
HOMESTATION_EDGE_REGISTRY__AUTH__SERVICE_TOKENS="$HOMESTATION_INVENTORY__AUTH__SERVICE_TOKENS" \
HOMESTATION_EDGE_REGISTRY__CALLOUT__ISSUER_SEED="$(cat "$nats_dir/issuer.seed")" \
  ./target/debug/edge-registry 2> >(tee -a "$STATE/edge-registry.log" >&2) &
pids+=($!)

# S3 for backups: SeaweedFS on disk in .dev/seaweedfs (backups made here survive a restart of make dev), the
# server the lab runs in the cluster; its inner ports are S3_PORT+10001… (the services take 8080–8088).
mkdir -p "$STATE/seaweedfs"
"$STATE/tools/bin/weed" server -dir="$STATE/seaweedfs" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
  -s3 -s3.port="$S3_PORT" -s3.port.grpc=$((S3_PORT + 10001)) -s3.port.iceberg=0 -s3.port.lance=0 -master.port=$((S3_PORT + 10002)) -master.port.grpc=$((S3_PORT + 10003)) \
  -volume.port=$((S3_PORT + 10004)) -volume.port.grpc=$((S3_PORT + 10005)) -filer.port=$((S3_PORT + 10006)) -filer.port.grpc=$((S3_PORT + 10007)) \
  > "$STATE/seaweedfs.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do curl -sf -X PUT "http://127.0.0.1:$S3_PORT/homestation-backups" >/dev/null 2>&1 && break; sleep 0.1; done
# The key-encryption key of backups, made on this machine and never committed.
backup_key="$STATE/backup.key"
[ -s "$backup_key" ] || (umask 077; head -c 32 /dev/urandom > "$backup_key")
cat > "$STATE/backup.toml" <<TOML
bucket = "homestation-backups"
scratch_dir = "$STATE/backup-scratch"
[http]
port = $BACKUP_PORT
[database]
url = "postgres://postgres@127.0.0.1:5432/backup"
[s3]
endpoint = "http://127.0.0.1:$S3_PORT"
access_key_id = "dev"
secret_access_key = "dev"
[encryption]
key_file = "$backup_key"
key_id = "dev-key-file"
[[auth.service_tokens]]
name = "dev-admin"
sha256 = "$token_sha"
role = "admin"
[[policies]]
name = "inventory-db"
schedule = "0 3 * * *"
[policies.source]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/$DATABASE"
[policies.drill]
schedule = "0 4 * * 0"
checks = [{ kind = "query", sql = "SELECT count(*) FROM nodes", min = 0 }]
[[policies]]
name = "edge-registry-db"
schedule = "15 3 * * *"
[policies.source]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/$EDGE_DATABASE"
TOML
HOMESTATION_CONFIG_FILE="$STATE/backup.toml" ./target/debug/backup 2> >(tee -a "$STATE/backup.log" >&2) &
pids+=($!)

# secrets-rotator against the dev OpenBao, with one policy over a demo secret made now.
curl -sf -H "X-Vault-Token: $bao_token" -d "{\"data\":{\"token\":\"demo-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')\"}}" \
  "http://127.0.0.1:$BAO_PORT/v1/secret/data/homestation/demo/api" >/dev/null
cat > "$STATE/secrets-rotator.toml" <<TOML
[http]
port = $SECRETS_PORT
[database]
url = "postgres://postgres@127.0.0.1:5432/secrets_rotator"
[vault]
address = "http://127.0.0.1:$BAO_PORT"
token = "$bao_token"
[[auth.service_tokens]]
name = "dev-admin"
sha256 = "$token_sha"
role = "admin"
[[policies]]
name = "demo-api"
schedule = "0 4 * * *"
[policies.target]
kind = "kv"
path = "homestation/demo/api"
[policies.target.generator]
kind = "api_token"
prefix = "hs_"
key = "token"
TOML
HOMESTATION_CONFIG_FILE="$STATE/secrets-rotator.toml" ./target/debug/secrets-rotator 2> >(tee -a "$STATE/secrets-rotator.log" >&2) &
pids+=($!)

# deployer: deployments, their history and syncs. It does not watch Applications (no Argo CD here); a sync
# goes to the cluster KUBECONFIG names, and without one to a kubeconfig on paper that names none.
kubeconfig="${KUBECONFIG:-}"
if [ -z "$kubeconfig" ]; then
  kubeconfig="$STATE/deployer.kubeconfig"
  cat > "$kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
users: [{name: none, user: {}}]
YAML
fi
KUBECONFIG="$kubeconfig" \
HOMESTATION_DEPLOYER__WATCH=false \
HOMESTATION_DEPLOYER__HTTP__PORT="$DEPLOY_PORT" \
HOMESTATION_DEPLOYER__DATABASE__URL="postgres://postgres@127.0.0.1:5432/deployer" \
HOMESTATION_DEPLOYER__AUTH__SERVICE_TOKENS="$HOMESTATION_INVENTORY__AUTH__SERVICE_TOKENS" \
  ./target/debug/deployer 2> >(tee -a "$STATE/deployer.log" >&2) &
pids+=($!)

for port in "$HTTP_PORT" "$EDGE_PORT" "$BACKUP_PORT" "$SECRETS_PORT" "$DEPLOY_PORT"; do
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "dev: a service exited; see the logs in .dev/" >&2; exit 1; }
    done
    sleep 0.1
  done
done

cat <<INFO

HomeStation is running:
  inventory REST   http://127.0.0.1:$HTTP_PORT/v1   (OpenAPI: /v1/openapi.json)
  inventory gRPC   127.0.0.1:$GRPC_PORT             (grpc.health.v1 included)
  edge-registry    http://127.0.0.1:$EDGE_PORT/v1   (OpenAPI: /v1/openapi.json); agents enrol at http://127.0.0.1:$ENROL_PORT
  backup           http://127.0.0.1:$BACKUP_PORT/v1   (OpenAPI: /v1/openapi.json; policies in .dev/backup.toml)
  S3 (SeaweedFS)   http://127.0.0.1:$S3_PORT        (on disk in .dev/seaweedfs; bucket homestation-backups)
  secrets-rotator  http://127.0.0.1:$SECRETS_PORT/v1   (OpenAPI: /v1/openapi.json; policies in .dev/secrets-rotator.toml)
  deployer         http://127.0.0.1:$DEPLOY_PORT/v1   (OpenAPI: /v1/openapi.json; does not watch: no Argo CD here)
  OpenBao          http://127.0.0.1:$BAO_PORT       (dev mode, root token in .dev/openbao.token)
  health           http://127.0.0.1:$HTTP_PORT/healthz  /readyz  /metrics
  PostgreSQL       postgres://postgres@127.0.0.1:5432/$DATABASE
  NATS JetStream   nats://127.0.0.1:$NATS_PORT  (authentication on: each service its own user, passwords in
                   .dev/nats-dev/passwords; an enrolled agent gets its own credential from edge-registry)
  traces           OTLP/HTTP http://127.0.0.1:$OTLP_PORT (oteltap) → .dev/traces.ndjson, one span a line;
                   the recent traces: scripts/tools.sh trace    one as a tree across services: scripts/tools.sh trace <trace_id>
  logs             .dev/inventory.log, .dev/edge-registry.log, .dev/backup.log, .dev/secrets-rotator.log, .dev/deployer.log,
                   .dev/openbao.log, .dev/nats-dev.log

In another shell:
  export PATH="$ROOT/target/debug:\$PATH" HOMESTATION_TOKEN_FILE="$token_file"
  homestation status
  homestation backup run inventory-db && homestation backup drills --run inventory-db
  homestation secrets rotate homestation/demo/api && homestation secrets history
  homestation deploy status
  homestation edge token create --ttl 1h        # then enrol a simulated Jetson (recorded AGX Orin facts):
  HOMESTATION_JOIN_TOKEN=<token> homestation-edge-agent --registry http://127.0.0.1:$ENROL_PORT \\
    --recorded edge-agent/tests/fixtures/agx-orin-jp6 --root .dev/edge-root --state-dir .dev/edge-root/state

Ctrl-C stops everything this started.
INFO
wait -n "${pids[@]}"
