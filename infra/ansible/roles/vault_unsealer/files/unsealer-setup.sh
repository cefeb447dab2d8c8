#!/bin/sh
# The unsealer's one-time setup, idempotent (the role runs it at every apply): initialise it (the
# recovery key and root token stay in STATE, 0400 root, never leaving this host), then a transit key
# for the cluster's Vault and a periodic token that may only encrypt and decrypt with it.
#   BAO_ADDR=http://…:8210 unsealer-setup.sh STATE_DIR TRANSIT_KEY
# Prints "changed" when it changed anything.
set -eu
state=$1 key=$2
umask 077
changed=""
if ! bao status -format=json | grep -q '"initialized": true'; then
  bao operator init -recovery-shares=1 -recovery-threshold=1 -format=json > "$state/init.json"
  changed=yes
fi
until bao status >/dev/null 2>&1; do sleep 0.5; done
BAO_TOKEN=$(sed -n 's/.*"root_token": "\([^"]*\)".*/\1/p' "$state/init.json")
export BAO_TOKEN
bao secrets list -format=json | grep -q '"transit/"' || { bao secrets enable transit >/dev/null; changed=yes; }
bao read "transit/keys/$key" >/dev/null 2>&1 || { bao write -f "transit/keys/$key" >/dev/null; changed=yes; }
policy="path \"transit/encrypt/$key\" { capabilities = [\"update\"] }
path \"transit/decrypt/$key\" { capabilities = [\"update\"] }"
if [ "$(bao policy read autounseal 2>/dev/null)" != "$policy" ]; then
  printf '%s' "$policy" | bao policy write autounseal - >/dev/null
  changed=yes
fi
if [ ! -s "$state/cluster-vault-token" ]; then
  bao token create -orphan -period=768h -policy=autounseal -field=token > "$state/cluster-vault-token"
  changed=yes
fi
[ -z "$changed" ] || echo changed
