# edge-registry (Kubernetes auth role edge-registry): its own secrets, its NATS password, the callout's
# issuer seed, and the K3s *agent* token it hands to enrolling nodes (never the server token).
path "secret/data/homestation/edge-registry" {
  capabilities = ["read"]
}
path "secret/data/homestation/nats/edge-registry" {
  capabilities = ["read"]
}
path "secret/data/homestation/nats/callout" {
  capabilities = ["read"]
}
path "secret/data/homestation/k3s" {
  capabilities = ["read"]
}
# The proxy proof's SHA-256 (never the proof): what the service checks HomeStation-Proxy-Proof against.
path "secret/data/homestation/proxy-digest" {
  capabilities = ["read"]
}
