# Vault Secrets Operator (Kubernetes auth role vault-secrets-operator): read the platform's secrets it
# syncs into Kubernetes Secrets (platform-config's VaultStaticSecrets), and the proxy's proof.
path "secret/data/platform/*" {
  capabilities = ["read"]
}
path "secret/data/homestation/proxy" {
  capabilities = ["read"]
}
path "secret/data/homestation/nats/*" {
  capabilities = ["read"]
}
