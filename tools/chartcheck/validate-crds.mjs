// Validates custom resources with the @kubernetes-models validators (the CRDs' own OpenAPI schemas).
// stdin: a JSON array of {where, object}; stdout: a JSON array of {where, error}; exit 0 either way,
// 2 when an object's kind has no validator here (the caller keeps the CRD list and this in step).
import * as argo from "@kubernetes-models/argo-cd";
import * as certManager from "@kubernetes-models/cert-manager";
import * as traefik from "@kubernetes-models/traefik";
import * as prometheus from "@kubernetes-models/prometheus-operator";

const models = new Map();
for (const pkg of [argo, certManager, traefik, prometheus]) {
  for (const group of Object.values(pkg)) {
    for (const version of Object.values(group)) {
      for (const model of Object.values(version)) {
        if (model && model.apiVersion && model.kind) models.set(`${model.apiVersion}/${model.kind}`, model);
      }
    }
  }
}

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
}));

if (process.argv[2] === "--kinds") {
  process.stdout.write(JSON.stringify([...models.keys()].sort()));
  process.exit(0);
}

const errors = [];
for (const { where, object } of input) {
  const model = models.get(`${object.apiVersion}/${object.kind}`);
  if (!model) {
    errors.push({ where, error: `no validator for ${object.apiVersion} ${object.kind}` });
    continue;
  }
  try {
    new model(object).validate();
  } catch (e) {
    errors.push({ where, error: String(e.message || e) });
  }
}
process.stdout.write(JSON.stringify(errors));
