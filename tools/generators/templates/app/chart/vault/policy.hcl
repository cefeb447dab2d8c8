# The Vault policy of @@crate@@'s Kubernetes auth role: read its own secrets (and its own NATS password),
# nothing else.
#   vault policy write @@crate@@ charts/apps/@@crate@@/vault/policy.hcl
#   vault write auth/kubernetes/role/@@crate@@ bound_service_account_names=@@crate@@ \
#     bound_service_account_namespaces=apps policies=@@crate@@ ttl=1h
path "secret/data/apps/@@crate@@" {
  capabilities = ["read"]
}
path "secret/metadata/apps/@@crate@@" {
  capabilities = ["read"]
}
path "secret/data/homestation/nats/@@crate@@" {
  capabilities = ["read"]
}
# The proxy proof's SHA-256 (never the proof): what the service checks HomeStation-Proxy-Proof against.
path "secret/data/homestation/proxy-digest" {
  capabilities = ["read"]
}
