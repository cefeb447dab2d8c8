// tailnet: the Tailscale ACL separating admins, developers, edge nodes and services. Edge nodes reach
// only what joining and heartbeating need (the K3s API, NATS, flannel, enrolment); the Vault API is
// for admins alone. Tailscale runs the policy's own `tests` at every apply, so a change that lets an
// edge node reach Vault is refused by Tailscale itself.
import * as pulumi from "@pulumi/pulumi";
import * as tailscale from "@pulumi/tailscale";

export interface TailnetArgs {
  admins: string[];
  developers: string[];
}

export interface AclRule {
  action: "accept";
  src: string[];
  dst: string[];
  proto?: string;
}

export interface AclPolicy {
  groups: Record<string, string[]>;
  tagOwners: Record<string, string[]>;
  acls: AclRule[];
  tests: Array<{ src: string; accept?: string[]; deny?: string[] }>;
}

export function policy(args: TailnetArgs): AclPolicy {
  return {
    groups: { "group:admins": args.admins, "group:developers": args.developers },
    tagOwners: {
      "tag:k8s-control": ["group:admins"],
      "tag:edge": ["group:admins"],
      "tag:services": ["group:admins"],
      "tag:vault": ["group:admins"],
    },
    acls: [
      { action: "accept", src: ["group:admins"], dst: ["*:*"] },
      { action: "accept", src: ["group:developers"], dst: ["tag:services:443", "tag:k8s-control:6443"] },
      // Edge nodes: the K3s API, NATS heartbeats, enrolment through the Tailscale ingress.
      { action: "accept", src: ["tag:edge"], dst: ["tag:k8s-control:6443", "tag:services:443,4222"] },
      // Flannel VXLAN and the kubelet between the nodes of the cluster, both ways.
      { action: "accept", src: ["tag:edge", "tag:k8s-control"], dst: ["tag:edge:8472", "tag:k8s-control:8472"], proto: "udp" },
      { action: "accept", src: ["tag:k8s-control"], dst: ["tag:edge:10250"] },
    ],
    tests: [
      // …nor the unsealer of the cluster's Vault (infra/ansible/roles/vault_unsealer, port 8210).
      {
        src: "tag:edge",
        accept: ["tag:k8s-control:6443", "tag:services:4222"],
        deny: ["tag:vault:8200", "tag:k8s-control:22", "tag:k8s-control:8210"],
      },
      { src: "group:developers", accept: ["tag:services:443"], deny: ["tag:vault:8200"] },
    ],
  };
}

export function tailnet(args: TailnetArgs) {
  const acl = new tailscale.Acl("homestation", {
    acl: JSON.stringify(policy(args), null, 2),
    overwriteExistingContent: true,
  });
  return { acl: acl.id, policy: pulumi.output(policy(args)).apply((p) => Object.keys(p.tagOwners)) };
}
