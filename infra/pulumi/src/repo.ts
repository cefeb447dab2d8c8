// What the stacks read from this repository, so versions and routes are written once: the Argo CD chart
// pinned in argocd/app-of-apps/values.yaml, its values file, and the root Application.
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";

export const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");

export interface PlatformComponent {
  name: string;
  namespace: string;
  repoURL: string;
  chart: string;
  version: string;
  valuesFile: string;
}

export function platformComponent(name: string, root = REPO_ROOT): PlatformComponent {
  const values = YAML.parse(fs.readFileSync(path.join(root, "argocd/app-of-apps/values.yaml"), "utf8"));
  const found = (values.platform as Array<Record<string, string>>).find((c) => c.name === name);
  if (!found || !found.chart) {
    throw new Error(`argocd/app-of-apps/values.yaml has no upstream chart named ${name}`);
  }
  return {
    name,
    namespace: found.namespace,
    repoURL: found.repoURL,
    chart: found.chart,
    version: String(found.version),
    valuesFile: path.join(root, "argocd/platform", `${name}.yaml`),
  };
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  spec?: unknown;
}

export function rootApplication(root = REPO_ROOT): KubeObject {
  return YAML.parse(fs.readFileSync(path.join(root, "argocd/root.yaml"), "utf8"));
}
