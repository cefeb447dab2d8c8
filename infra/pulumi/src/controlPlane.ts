// control-plane: on a running K3s, what Argo CD cannot do for itself — the namespaces, Argo CD from its
// pinned chart and values, the root Application of argocd/, and the Job that bootstraps Vault.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { platformComponent, rootApplication } from "./repo";

/** Namespaces and the Pod Security level each enforces (HomeStation's own run restricted pods). */
export const NAMESPACES: Record<string, "restricted" | "baseline" | "privileged"> = {
  argocd: "baseline",
  vault: "baseline",
  homestation: "restricted",
  apps: "restricted",
  observability: "baseline",
};

export interface ControlPlaneArgs {
  /** A kubeconfig for the K3s server (from the k3s-server role); the ambient one when unset. */
  kubeconfig?: pulumi.Input<string>;
  /** A Vault token allowed to configure mounts and auth (a Pulumi secret); no bootstrap Job without it. */
  vaultBootstrapToken?: pulumi.Input<string>;
  vaultAddress?: string;
}

/** What the bootstrap Job runs once Vault answers and is unsealed: idempotent `vault` commands. */
export const VAULT_BOOTSTRAP = `set -eu
until vault status >/dev/null 2>&1; do echo "waiting for an unsealed Vault at $VAULT_ADDR"; sleep 10; done
vault secrets list | grep -q '^secret/' || vault secrets enable -path=secret kv-v2
vault secrets list | grep -q '^transit/' || vault secrets enable transit
vault secrets list | grep -q '^pki/' || vault secrets enable pki
vault secrets list | grep -q '^pki_int/' || vault secrets enable -path=pki_int pki
vault auth list | grep -q '^kubernetes/' || vault auth enable kubernetes
vault write auth/kubernetes/config kubernetes_host=https://kubernetes.default.svc
vault write -f transit/keys/homestation-backup
echo "Vault bootstrapped: kv-v2 secret/, transit/, pki/, pki_int/, kubernetes auth"
`;

export function controlPlane(args: ControlPlaneArgs) {
  const provider = new k8s.Provider("k3s", { kubeconfig: args.kubeconfig });
  const namespaces = Object.entries(NAMESPACES).map(
    ([name, level]) =>
      new k8s.core.v1.Namespace(
        name,
        {
          metadata: {
            name,
            labels: {
              "pod-security.kubernetes.io/enforce": level,
              "pod-security.kubernetes.io/warn": "restricted",
              "app.kubernetes.io/managed-by": "pulumi",
            },
          },
        },
        { provider },
      ),
  );
  const byName = (name: string) => namespaces[Object.keys(NAMESPACES).indexOf(name)];

  const argo = platformComponent("argo-cd");
  const argoCd = new k8s.helm.v3.Release(
    "argo-cd",
    {
      name: "argo-cd",
      namespace: argo.namespace,
      chart: argo.chart,
      version: argo.version,
      repositoryOpts: { repo: argo.repoURL },
      valueYamlFiles: argo.valuesFiles.map((f) => new pulumi.asset.FileAsset(f)),
      atomic: true,
      timeout: 600,
    },
    { provider, dependsOn: [byName("argocd")] },
  );

  const root = rootApplication();
  const rootApp = new k8s.apiextensions.CustomResource(
    "homestation-root",
    { apiVersion: root.apiVersion, kind: root.kind, metadata: root.metadata, spec: root.spec },
    { provider, dependsOn: [argoCd] },
  );

  let bootstrap: k8s.batch.v1.Job | undefined;
  if (args.vaultBootstrapToken !== undefined) {
    const token = new k8s.core.v1.Secret(
      "vault-bootstrap-token",
      { metadata: { name: "vault-bootstrap-token", namespace: "vault" }, stringData: { token: args.vaultBootstrapToken } },
      { provider, dependsOn: [byName("vault")] },
    );
    const script = new k8s.core.v1.ConfigMap(
      "vault-bootstrap",
      { metadata: { name: "vault-bootstrap", namespace: "vault" }, data: { "bootstrap.sh": VAULT_BOOTSTRAP } },
      { provider, dependsOn: [byName("vault")] },
    );
    bootstrap = new k8s.batch.v1.Job(
      "vault-bootstrap",
      {
        metadata: { name: "vault-bootstrap", namespace: "vault" },
        spec: {
          backoffLimit: 30,
          ttlSecondsAfterFinished: 3600,
          template: {
            spec: {
              restartPolicy: "OnFailure",
              automountServiceAccountToken: false,
              securityContext: { runAsNonRoot: true, runAsUser: 100, seccompProfile: { type: "RuntimeDefault" } },
              containers: [
                {
                  name: "bootstrap",
                  image: "hashicorp/vault:1.20",
                  command: ["/bin/sh", "/bootstrap/bootstrap.sh"],
                  env: [
                    { name: "VAULT_ADDR", value: args.vaultAddress ?? "http://vault.vault.svc:8200" },
                    { name: "VAULT_TOKEN", valueFrom: { secretKeyRef: { name: token.metadata.name, key: "token" } } },
                  ],
                  securityContext: {
                    allowPrivilegeEscalation: false,
                    readOnlyRootFilesystem: true,
                    capabilities: { drop: ["ALL"] },
                  },
                  volumeMounts: [{ name: "script", mountPath: "/bootstrap" }],
                },
              ],
              volumes: [{ name: "script", configMap: { name: script.metadata.name } }],
            },
          },
        },
      },
      { provider },
    );
  }

  return {
    namespaces: namespaces.map((n) => n.metadata.name),
    argoCdChart: `${argo.chart} ${argo.version}`,
    rootApplication: rootApp.metadata.name,
    vaultBootstrap: bootstrap ? bootstrap.metadata.name : "skipped: set vaultBootstrapToken (pulumi config set --secret)",
  };
}
