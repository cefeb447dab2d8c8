#!/usr/bin/env bash
# make infra-plan / infra-apply TARGET=…: `pulumi preview` / `pulumi up` of one stack of infra/pulumi,
# saying plainly what is missing rather than failing somewhere inside Pulumi.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
say() { printf '%s\n' "infra: $*" >&2; }
die() { say "$*"; exit 1; }

action=${1:?preview or up}
target=${2:-}
stacks="control-plane tunnels tailnet"
[ -n "$target" ] || die "say which stack: TARGET=control-plane, TARGET=tunnels or TARGET=tailnet"
case " $stacks " in *" $target "*) ;; *) die "no stack $target; the stacks are: $stacks" ;; esac
command -v pulumi >/dev/null || die "the pulumi CLI is not installed (it is not in any package registry this project installs from): see https://www.pulumi.com/docs/install/, then run this again"
case "$target" in
  tunnels) [ -n "${CLOUDFLARE_API_TOKEN:-}" ] || die "CLOUDFLARE_API_TOKEN is not set: the tunnels stack needs a Cloudflare API token (Zone DNS edit, Cloudflare Tunnel edit)" ;;
  tailnet) [ -n "${TAILSCALE_API_KEY:-}${TAILSCALE_OAUTH_CLIENT_ID:-}" ] || die "TAILSCALE_API_KEY (or TAILSCALE_OAUTH_CLIENT_ID/SECRET) is not set: the tailnet stack edits the tailnet's ACL" ;;
esac
cd "$ROOT/infra/pulumi"
[ -d node_modules ] || npm ci --silent --no-audit --no-fund
pulumi stack select "$target" >/dev/null 2>&1 || die "no Pulumi stack $target here yet: pulumi login, then pulumi stack init $target (in infra/pulumi), and set its secrets (see Pulumi.$target.yaml)"
exec pulumi "$action" --stack "$target"
