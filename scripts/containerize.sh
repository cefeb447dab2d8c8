#!/usr/bin/env bash
# `make containerize PROJECT=<service> [REGISTRY=host:port] [TAG=…]`: an OCI image of a service, built
# without a container engine, pushed to the registry (Harbor in the cluster).
#   1. cargo build --release --locked -p PROJECT
#   2. umoci: a base layer with the binary's runtime libraries (from ldd), CA certificates and a
#      passwd/group naming the non-root user 65532; then a layer with the binary alone
#   3. umoci config: user 65532:65532, entrypoint, OCI labels (title, Git revision, source, created)
#   4. skopeo copy to docker://REGISTRY/homestation/PROJECT:TAG
# REGISTRY defaults to $HOMESTATION_REGISTRY or the lab's Harbor (harbor.<domain of lab.yaml>); TAG to the
# Git revision.
# REGISTRY_TLS_VERIFY=false for a plain-HTTP registry (a local one in tests).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
say() { printf '%s\n' "containerize: $*" >&2; }
die() { say "$*"; exit 1; }

PROJECT=${PROJECT:-${1:-}}
[ -n "$PROJECT" ] || die "usage: make containerize PROJECT=<service> [REGISTRY=host:port] [TAG=tag]"
[ -f "$ROOT/services/$PROJECT/Cargo.toml" ] || die "$PROJECT is not a service (no services/$PROJECT/Cargo.toml); services: $(ls "$ROOT/services" | tr '\n' ' ')"
LAB_DOMAIN=$(sed -n 's/^domain: *//p' "$ROOT/lab.yaml")
LAB_GIT=$(sed -n 's/^  repoURL: *//p' "$ROOT/lab.yaml")
REGISTRY=${REGISTRY:-${HOMESTATION_REGISTRY:-harbor.$LAB_DOMAIN}}
REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$REVISION" != unknown ] && [ -n "$(git -C "$ROOT" status --porcelain -- services libs Cargo.lock 2>/dev/null)" ]; then REVISION="$REVISION-dirty"; fi
TAG=${TAG:-${REVISION:0:12}}
IMAGE="$REGISTRY/homestation/$PROJECT:$TAG"
TLS_VERIFY=${REGISTRY_TLS_VERIFY:-true}
USER_ID=65532

"$ROOT/scripts/services.sh" image-tools

say "building $PROJECT (release)"
cargo build --release --locked -p "$PROJECT" --manifest-path "$ROOT/Cargo.toml" >&2
binary="${CARGO_TARGET_DIR:-$ROOT/target}/release/$PROJECT"
[ -x "$binary" ] || die "cargo built no binary at $binary"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layout="$work/oci"
umoci init --layout "$layout"
umoci new --image "$layout:$TAG"

say "layer 1: runtime libraries, CA certificates, user $USER_ID"
umoci unpack --rootless --image "$layout:$TAG" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/usr/local/bin"
chmod 1777 "$rootfs/tmp"
# Every shared library the binary loads, and the dynamic loader, at the paths the binary expects.
ldd "$binary" | awk '/=> \//{print $3} /^\s*\/[^ ]+/{print $1}' | sort -u | while read -r lib; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' "$USER_ID" "$USER_ID" > "$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$USER_ID" > "$rootfs/etc/group"
umoci repack --image "$layout:$TAG" --history.created_by "runtime libraries of $PROJECT (ldd), CA certificates, user nonroot ($USER_ID)" "$work/bundle"
rm -rf "$work/bundle"

say "layer 2: /usr/local/bin/$PROJECT"
umoci unpack --rootless --image "$layout:$TAG" "$work/bundle" >/dev/null
install -m 0755 "$binary" "$work/bundle/rootfs/usr/local/bin/$PROJECT"
umoci repack --image "$layout:$TAG" --history.created_by "COPY target/release/$PROJECT /usr/local/bin/$PROJECT" "$work/bundle"

created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
umoci config --image "$layout:$TAG" \
  --os linux --architecture amd64 \
  --config.user "$USER_ID:$USER_ID" \
  --config.entrypoint "/usr/local/bin/$PROJECT" \
  --config.workingdir / \
  --config.env "HOMESTATION_LOG_FORMAT=json" \
  --config.label "org.opencontainers.image.title=$PROJECT" \
  --config.label "org.opencontainers.image.revision=$REVISION" \
  --config.label "org.opencontainers.image.source=${LAB_GIT%.git}" \
  --config.label "org.opencontainers.image.created=$created" \
  --config.label "org.opencontainers.image.version=$TAG" \
  --history.created_by "umoci config: user $USER_ID, entrypoint /usr/local/bin/$PROJECT"

say "pushing $IMAGE"
skopeo copy --quiet --dest-tls-verify="$TLS_VERIFY" "oci:$layout:$TAG" "docker://$IMAGE" >&2
digest=$(skopeo inspect --tls-verify="$TLS_VERIFY" --format '{{.Digest}}' "docker://$IMAGE")
say "pushed $IMAGE@$digest"
printf '%s@%s\n' "$IMAGE" "$digest"
