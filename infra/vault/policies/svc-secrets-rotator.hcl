# secrets-rotator (Kubernetes auth role secrets-rotator): its own secrets and NATS password; the secrets
# it rotates (KV v2 under platform/, homestation/ and apps/) and database credentials.
path "secret/data/homestation/secrets-rotator" {
  capabilities = ["read"]
}
path "secret/data/homestation/nats/secrets-rotator" {
  capabilities = ["read"]
}
path "secret/data/platform/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/platform/*" {
  capabilities = ["read", "list"]
}
path "secret/data/apps/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/apps/*" {
  capabilities = ["read", "list"]
}
path "database/creds/*" {
  capabilities = ["read"]
}
# The proxy proof's SHA-256 (never the proof): what the service checks HomeStation-Proxy-Proof against.
path "secret/data/homestation/proxy-digest" {
  capabilities = ["read"]
}
