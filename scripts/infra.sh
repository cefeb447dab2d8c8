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
[ -n "$target" ] || die "say which stack: TARGET=control-plane, TARGET=tunnels, TARGET=tailnet, or TARGET=vpc (the lab's network: tailnet, then tunnels)"
# vpc, the mission's name for the lab's network: the tailnet's ACL, then the Cloudflare tunnels and DNS.
if [ "$target" = vpc ]; then
  targets="tailnet tunnels"
  say "vpc is the lab's network: the tailnet stack (ACL), then the tunnels stack (Cloudflare tunnels and DNS)"
else
  case " $stacks " in *" $target "*) ;; *) die "no stack $target; the stacks are: $stacks (and vpc: tailnet, then tunnels)" ;; esac
  targets=$target
fi
# Everything every chosen stack needs is checked before any of them runs.
command -v pulumi >/dev/null || die "the pulumi CLI is not installed (it is not in any package registry this project installs from): see https://www.pulumi.com/docs/install/, then run this again"
for t in $targets; do
  case "$t" in
    tunnels) [ -n "${CLOUDFLARE_API_TOKEN:-}" ] || die "CLOUDFLARE_API_TOKEN is not set: the tunnels stack needs a Cloudflare API token (Zone DNS edit, Cloudflare Tunnel edit)" ;;
    tailnet) [ -n "${TAILSCALE_API_KEY:-}${TAILSCALE_OAUTH_CLIENT_ID:-}" ] || die "TAILSCALE_API_KEY (or TAILSCALE_OAUTH_CLIENT_ID/SECRET) is not set: the tailnet stack edits the tailnet's ACL" ;;
  esac
done
# The stacks' Node packages (the pnpm workspace), installed when missing.
"$ROOT/scripts/tools.sh" run true
cd "$ROOT/infra/pulumi"
for t in $targets; do
  pulumi stack select "$t" >/dev/null 2>&1 || die "no Pulumi stack $t here yet: pulumi login, then pulumi stack init $t (in infra/pulumi), and set its secrets (see Pulumi.$t.yaml)"
done
for t in $targets; do
  say "pulumi $action --stack $t"
  pulumi "$action" --stack "$t"
done
