// What the stacks read from this repository, so versions and routes are written once: the Argo CD chart
// (argocd/app-of-apps/values.yaml says which; lab.yaml pins its version, through values-lab.yaml), its
// values files (the component's own, then the lab's), and the root Application.
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
  /** argocd/platform/<name>.yaml, then argocd/lab/<name>.yaml when make lab writes one. */
  valuesFiles: string[];
}

export function platformComponent(name: string, root = REPO_ROOT): PlatformComponent {
  const values = YAML.parse(fs.readFileSync(path.join(root, "argocd/app-of-apps/values.yaml"), "utf8"));
  const lab = YAML.parse(fs.readFileSync(path.join(root, "argocd/app-of-apps/values-lab.yaml"), "utf8"));
  const found = (values.platform as Array<Record<string, string>>).find((c) => c.name === name);
  if (!found || !found.chart || !lab.versions[name]) {
    throw new Error(`argocd/app-of-apps/values.yaml has no upstream chart named ${name}`);
  }
  return {
    name,
    namespace: found.namespace,
    repoURL: found.repoURL,
    chart: found.chart,
    version: String(lab.versions[name]),
    valuesFiles: [
      path.join(root, "argocd/platform", `${name}.yaml`),
      ...((lab.labValues as string[]).includes(name) ? [path.join(root, "argocd/lab", `${name}.yaml`)] : []),
    ],
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
