# deployer (Kubernetes auth role deployer): its own secrets and its NATS password, nothing else.
path "secret/data/homestation/deployer" {
  capabilities = ["read"]
}
path "secret/data/homestation/nats/deployer" {
  capabilities = ["read"]
}
