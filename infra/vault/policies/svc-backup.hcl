# backup (Kubernetes auth role backup): its own secrets and NATS password; data keys from the backup
# transit key (never the key itself); Vault's raft snapshots; reading what it backs up.
path "secret/data/homestation/backup" {
  capabilities = ["read"]
}
path "secret/data/homestation/nats/backup" {
  capabilities = ["read"]
}
path "transit/datakey/plaintext/homestation-backup" {
  capabilities = ["update"]
}
path "transit/decrypt/homestation-backup" {
  capabilities = ["update"]
}
path "sys/storage/raft/snapshot" {
  capabilities = ["read"]
}
# The proxy proof's SHA-256 (never the proof): what the service checks HomeStation-Proxy-Proof against.
path "secret/data/homestation/proxy-digest" {
  capabilities = ["read"]
}
