# inventory (Kubernetes auth role inventory): its own secrets and its NATS password, nothing else.
path "secret/data/homestation/inventory" {
  capabilities = ["read"]
}
path "secret/data/homestation/nats/inventory" {
  capabilities = ["read"]
}
# The proxy proof's SHA-256 (never the proof): what the service checks HomeStation-Proxy-Proof against.
path "secret/data/homestation/proxy-digest" {
  capabilities = ["read"]
}
