# deployer (Kubernetes auth role deployer): its own secrets and its NATS password, nothing else.
path "secret/data/homestation/deployer" {
  capabilities = ["read"]
}
path "secret/data/homestation/nats/deployer" {
  capabilities = ["read"]
}
# The proxy proof's SHA-256 (never the proof): what the service checks HomeStation-Proxy-Proof against.
path "secret/data/homestation/proxy-digest" {
  capabilities = ["read"]
}
