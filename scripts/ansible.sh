#!/usr/bin/env bash
# make ansible-run PLAYBOOK=…: one playbook of infra/ansible with its inventory, saying plainly what is
# missing (the playbook, the encrypted vault.yml, its password) instead of failing inside Ansible.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
say() { printf '%s\n' "ansible: $*" >&2; }
die() { say "$*"; exit 1; }

playbook=${1:-}
dir="$ROOT/infra/ansible"
available=$(cd "$dir/playbooks" && ls *.yml | sed 's/\.yml$//' | tr '\n' ' ')
[ -n "$playbook" ] || die "say which playbook: PLAYBOOK=… (one of: $available)"
[ -f "$dir/playbooks/$playbook.yml" ] || die "no playbook $playbook (one of: $available)"
vault="$dir/inventory/group_vars/all/vault.yml"
[ -f "$vault" ] || die "no $vault: copy vault.yml.example beside it, fill it in, then ansible-vault encrypt it"
head -c 14 "$vault" | grep -q '^\$ANSIBLE_VAULT' || die "$vault is not encrypted: ansible-vault encrypt $vault (secrets never stay in plain text)"
vault_args=(--ask-vault-pass)
if [ -n "${ANSIBLE_VAULT_PASSWORD_FILE:-}" ]; then
  [ -r "$ANSIBLE_VAULT_PASSWORD_FILE" ] || die "ANSIBLE_VAULT_PASSWORD_FILE names $ANSIBLE_VAULT_PASSWORD_FILE, which cannot be read"
  vault_args=()
fi
"$ROOT/scripts/tools.sh" run true   # the Python tools (.venv), Ansible among them
cd "$dir"
exec "$ROOT/.venv/bin/ansible-playbook" "${vault_args[@]}" "playbooks/$playbook.yml" "${@:2}"
