# cert-manager's ClusterIssuer homestation-vault (Kubernetes auth role cert-manager): sign certificates
# for the lab's hosts with the homestation role of the intermediate CA, nothing else.
path "pki_int/sign/homestation" {
  capabilities = ["update"]
}
