# inventory (Kubernetes auth role inventory): its own secrets and its NATS password, nothing else.
path "secret/data/homestation/inventory" {
  capabilities = ["read"]
}
path "secret/data/homestation/nats/inventory" {
  capabilities = ["read"]
}
