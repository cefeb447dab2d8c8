// What each stack creates, with Pulumi's mocks standing in for the engine and the providers (a fake:
// no cluster, Cloudflare or Tailscale is called; resources are recorded with their inputs).
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";

interface Recorded {
  type: string;
  name: string;
  inputs: Record<string, any>;
}
const created: Recorded[] = [];

pulumi.runtime.setMocks(
  {
    newResource(args: pulumi.runtime.MockResourceArgs) {
      created.push({ type: args.type, name: args.name, inputs: args.inputs });
      return { id: `${args.name}-id`, state: args.inputs };
    },
    call(args: pulumi.runtime.MockCallArgs) {
      return args.inputs;
    },
  },
  "homestation",
  "test",
  false,
);

function resolve<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((done) => output.apply(done));
}

function ofType(type: string): Recorded[] {
  return created.filter((r) => r.type === type);
}

describe("control-plane", () => {
  before(async () => {
    const { controlPlane } = await import("../src/controlPlane");
    const out = controlPlane({ vaultBootstrapToken: pulumi.secret("test-token-made-here") });
    // Registration is asynchronous: wait for every output before looking at what was recorded.
    await resolve(pulumi.all([out.rootApplication, out.vaultBootstrap, ...out.namespaces]));
  });

  it("installs Argo CD from the chart and values argocd/ pins", async () => {
    const { platformComponent } = await import("../src/repo");
    const argo = platformComponent("argo-cd");
    const [release] = ofType("kubernetes:helm.sh/v3:Release");
    assert.equal(release.inputs.chart, "argo-cd");
    assert.equal(release.inputs.version, argo.version);
    // The lab's values (its hosts, its RBAC) come last, over the component's own.
    assert.deepEqual(argo.valuesFiles.map((f) => f.split("argocd/")[1]), ["platform/argo-cd.yaml", "lab/argo-cd.yaml"]);
    assert.equal(release.inputs.valueYamlFiles.length, 2);
    assert.equal(release.inputs.repositoryOpts.repo, "https://argoproj.github.io/argo-helm");
    assert.equal(release.inputs.namespace, "argocd");
  });

  it("applies the root Application of argocd/root.yaml", () => {
    const [root] = ofType("kubernetes:argoproj.io/v1alpha1:Application");
    assert.equal(root.inputs.metadata.name, "homestation");
    assert.equal(root.inputs.spec.source.path, "argocd/app-of-apps");
  });

  it("creates the namespaces, HomeStation's enforcing the restricted profile", () => {
    const namespaces = ofType("kubernetes:core/v1:Namespace").map((n) => n.inputs.metadata);
    assert.deepEqual(namespaces.map((m) => m.name).sort(), ["apps", "argocd", "homestation", "observability", "vault"]);
    const homestation = namespaces.find((m) => m.name === "homestation");
    assert.equal(homestation.labels["pod-security.kubernetes.io/enforce"], "restricted");
  });

  it("bootstraps Vault with a Job that reads its token from a Secret", () => {
    const [job] = ofType("kubernetes:batch/v1:Job");
    const env = job.inputs.spec.template.spec.containers[0].env;
    assert.deepEqual(env.find((e: any) => e.name === "VAULT_TOKEN").valueFrom.secretKeyRef.key, "token");
    assert.equal(ofType("kubernetes:core/v1:Secret")[0].inputs.metadata.name, "vault-bootstrap-token");
  });

  it("mounts the bootstrap, the lab's Vault file and every policy make lab and make app write", () => {
    const [configMap] = ofType("kubernetes:core/v1:ConfigMap");
    const keys = Object.keys(configMap.inputs.data);
    for (const key of ["bootstrap.sh", "bootstrap.py", "lab.json", "policy.role-admin.hcl", "policy.svc-backup.hcl"]) {
      assert.ok(keys.includes(key), `${key} in ${keys}`);
    }
    const [job] = ofType("kubernetes:batch/v1:Job");
    assert.equal(job.inputs.spec.template.spec.containers[0].image, "python:3.12-alpine");
  });
});

describe("tunnels", () => {
  it("publishes DNS records only for routes behind Authelia", async () => {
    const { tunnels } = await import("../src/tunnels");
    const out = tunnels({
      accountId: "acc",
      zoneId: "zone",
      tunnelSecret: pulumi.secret("made-by-the-test"),
      routes: [
        { host: "grafana.lab.example.org", protectedBy: "authelia" },
        { host: "raw.lab.example.org", protectedBy: "none" },
      ],
    });
    assert.deepEqual(out.published, ["grafana.lab.example.org"]);
    await resolve(pulumi.all([out.dnsRecords, out.tunnelConfig]));
    const records = ofType("cloudflare:index/dnsRecord:DnsRecord");
    assert.deepEqual(records.map((r) => r.inputs.name), ["grafana.lab.example.org"]);
    assert.equal(records[0].inputs.proxied, true);
    const [config] = ofType("cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig");
    const hosts = config.inputs.config.ingresses.map((i: any) => i.hostname);
    assert.deepEqual(hosts, ["grafana.lab.example.org", undefined], "the catch-all answers 404");
  });
});

describe("tailnet", () => {
  it("stops an edge node from reaching the Vault API, and says so in Tailscale's own ACL tests", async () => {
    const { tailnet, policy } = await import("../src/tailnet");
    await resolve(tailnet({ admins: ["a@lab"], developers: ["d@lab"] }).acl);
    const [acl] = ofType("tailscale:index/acl:Acl");
    const applied = JSON.parse(acl.inputs.acl);
    assert.deepEqual(applied, policy({ admins: ["a@lab"], developers: ["d@lab"] }));
    const edgeReaches = applied.acls.filter((r: any) => r.src.includes("tag:edge")).flatMap((r: any) => r.dst);
    assert.ok(edgeReaches.length > 0);
    for (const dst of edgeReaches) {
      assert.ok(!dst.startsWith("tag:vault") && !dst.startsWith("*") && !/[:,]8200(,|$)/.test(dst), dst);
    }
    const edgeTest: any = applied.tests.find((t: any) => t.src === "tag:edge");
    assert.ok(edgeTest.deny.includes("tag:vault:8200"));
  });
});
