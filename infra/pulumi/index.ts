// One program per stack: `pulumi up --stack control-plane|tunnels|tailnet` (make infra-apply TARGET=…).
import * as pulumi from "@pulumi/pulumi";
import { controlPlane } from "./src/controlPlane";
import { tailnet } from "./src/tailnet";
import { Route, tunnels } from "./src/tunnels";

function program(stack: string): Record<string, unknown> {
  const config = new pulumi.Config();
  switch (stack) {
    case "control-plane":
      return controlPlane({
        kubeconfig: config.getSecret("kubeconfig"),
        vaultBootstrapToken: config.getSecret("vaultBootstrapToken"),
      });
    case "tunnels":
      return tunnels({
        accountId: config.require("accountId"),
        zoneId: config.require("zoneId"),
        tunnelSecret: config.requireSecret("tunnelSecret"),
        routes: config.requireObject<Route[]>("routes"),
        tunnelName: config.get("tunnelName"),
      });
    case "tailnet":
      return tailnet({
        admins: config.requireObject<string[]>("admins"),
        developers: config.requireObject<string[]>("developers"),
      });
    default:
      throw new Error(`unknown stack ${stack}: the stacks are control-plane, tunnels and tailnet`);
  }
}

export = program(pulumi.getStack());
