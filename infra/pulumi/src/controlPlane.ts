// control-plane: on a running K3s, what Argo CD cannot do for itself — the namespaces, Argo CD from its
// pinned chart and values, the root Application of argocd/, and the Job that bootstraps Vault.
import * as k8s from "@pulumi/kubernetes";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { platformComponent, REPO_ROOT, rootApplication } from "./repo";

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

/**
 * What the bootstrap Job mounts: infra/vault/bootstrap.py (idempotent: changes only what differs, tested
 * twice against a real OpenBao), lab.json and the policies make lab writes from lab.yaml, and each app's
 * policy. ConfigMap keys cannot hold "/": the Job copies them into the tree bootstrap.py expects.
 */
export function vaultBootstrapFiles(root = REPO_ROOT): Record<string, string> {
  const files: Record<string, string> = {
    "bootstrap.py": fs.readFileSync(path.join(root, "infra/vault/bootstrap.py"), "utf8"),
    "lab.json": fs.readFileSync(path.join(root, "infra/vault/lab.json"), "utf8"),
  };
  const policies = path.join(root, "infra/vault/policies");
  for (const name of fs.readdirSync(policies).filter((f) => f.endsWith(".hcl")).sort()) {
    files[`policy.${name}`] = fs.readFileSync(path.join(policies, name), "utf8");
  }
  const apps = path.join(root, "charts/apps");
  for (const app of fs.existsSync(apps) ? fs.readdirSync(apps).sort() : []) {
    const policy = path.join(apps, app, "vault/policy.hcl");
    if (fs.existsSync(policy)) files[`app.${app}.hcl`] = fs.readFileSync(policy, "utf8");
  }
  return files;
}

export const VAULT_BOOTSTRAP = `set -eu
mkdir -p /work/infra/vault/policies /work/charts/apps
cp /bootstrap/bootstrap.py /bootstrap/lab.json /work/infra/vault/
for f in /bootstrap/policy.*.hcl; do cp "$f" "/work/infra/vault/policies/\${f#/bootstrap/policy.}"; done
for f in /bootstrap/app.*.hcl; do [ -e "$f" ] || continue; app=\${f#/bootstrap/app.}; app=\${app%.hcl}
  mkdir -p "/work/charts/apps/$app/vault" && cp "$f" "/work/charts/apps/$app/vault/policy.hcl"; done
until wget -q -O /dev/null "$VAULT_ADDR/v1/sys/health"; do echo "waiting for an unsealed Vault at $VAULT_ADDR"; sleep 10; done
exec python3 /work/infra/vault/bootstrap.py --root /work --oidc-client-secret-env OIDC_CLIENT_SECRET
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
      { metadata: { name: "vault-bootstrap", namespace: "vault" }, data: { "bootstrap.sh": VAULT_BOOTSTRAP, ...vaultBootstrapFiles() } },
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
                  image: "python:3.12-alpine",
                  command: ["/bin/sh", "/bootstrap/bootstrap.sh"],
                  env: [
                    { name: "VAULT_ADDR", value: args.vaultAddress ?? "http://vault.vault.svc:8200" },
                    { name: "VAULT_TOKEN", valueFrom: { secretKeyRef: { name: token.metadata.name, key: "token" } } },
                    // Authelia's client secret for Vault's OIDC (the same Secret, key oidc-client-secret).
                    {
                      name: "OIDC_CLIENT_SECRET",
                      valueFrom: { secretKeyRef: { name: token.metadata.name, key: "oidc-client-secret", optional: true } },
                    },
                  ],
                  securityContext: {
                    allowPrivilegeEscalation: false,
                    readOnlyRootFilesystem: true,
                    capabilities: { drop: ["ALL"] },
                  },
                  volumeMounts: [
                    { name: "script", mountPath: "/bootstrap" },
                    { name: "work", mountPath: "/work" },
                  ],
                },
              ],
              volumes: [
                { name: "script", configMap: { name: script.metadata.name } },
                { name: "work", emptyDir: {} },
              ],
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
