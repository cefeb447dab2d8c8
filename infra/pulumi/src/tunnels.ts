// tunnels: outside access with no inbound port. One Cloudflare Tunnel (cloudflared runs in the cluster,
// argocd/platform/cloudflared.yaml) and a DNS record for each public route — only for routes behind
// Authelia; a route without it is refused, so nothing reaches Traefik without two factors.
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";

export interface Route {
  /** The public hostname, e.g. grafana.homestation.example.org. */
  host: string;
  /** Must be "authelia": Traefik's websecure entry point sends it through Authelia's forward-auth. */
  protectedBy: string;
}

export interface TunnelsArgs {
  accountId: string;
  zoneId: string;
  /** The tunnel's secret (32+ random bytes, base64), a Pulumi secret. */
  tunnelSecret: pulumi.Input<string>;
  routes: Route[];
  /** The tunnel's name (lab.yaml tunnel.name). */
  tunnelName?: string;
  /** Where cloudflared sends every request: Traefik's websecure entry point. */
  origin?: string;
}

export function publishable(routes: Route[]): { published: Route[]; refused: Route[] } {
  const published = routes.filter((r) => r.protectedBy === "authelia");
  return { published, refused: routes.filter((r) => !published.includes(r)) };
}

export function tunnels(args: TunnelsArgs) {
  const { published, refused } = publishable(args.routes);
  for (const r of refused) {
    pulumi.log.warn(`route ${r.host} is not behind Authelia (protectedBy: ${r.protectedBy}): not published`);
  }
  const origin = args.origin ?? "https://traefik.traefik.svc:443";
  const tunnel = new cloudflare.ZeroTrustTunnelCloudflared("homestation", {
    accountId: args.accountId,
    name: args.tunnelName ?? "homestation",
    configSrc: "cloudflare",
    tunnelSecret: args.tunnelSecret,
  });
  const ingress = new cloudflare.ZeroTrustTunnelCloudflaredConfig("homestation", {
    accountId: args.accountId,
    tunnelId: tunnel.id,
    config: {
      ingresses: [
        ...published.map((r) => ({ hostname: r.host, service: origin, originRequest: { originServerName: r.host } })),
        { service: "http_status:404" },
      ],
    },
  });
  const records = published.map(
    (r) =>
      new cloudflare.DnsRecord(r.host, {
        zoneId: args.zoneId,
        name: r.host,
        type: "CNAME",
        content: pulumi.interpolate`${tunnel.id}.cfargotunnel.com`,
        proxied: true,
        ttl: 1,
        comment: "HomeStation route behind Authelia (infra/pulumi tunnels)",
      }),
  );
  return {
    tunnelId: tunnel.id,
    tunnelConfig: ingress.id,
    published: published.map((r) => r.host),
    dnsRecords: pulumi.all(records.map((d) => d.name)),
  };
}
