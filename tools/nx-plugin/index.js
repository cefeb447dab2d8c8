// Nx projects and their graph from the repository's own manifests, so nothing is written twice:
//   every crate        from `cargo metadata --no-deps` (name, path dependencies → graph edges)
//   every chart        from charts/**/Chart.yaml (file:// dependencies → graph edges), named chart-<name>
//   the Python tools   from pyproject.toml, named tools; the Pulumi stacks from infra/pulumi/Pulumi.yaml, named infra
// Targets call what make calls, so `nx affected -t test` and `make test` agree on what a target means.
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

let metadata;
function cargoMetadata(workspaceRoot) {
  if (!metadata) {
    const out = execFileSync("cargo", ["metadata", "--no-deps", "--format-version", "1"], {
      cwd: workspaceRoot,
      maxBuffer: 64 * 1024 * 1024,
    });
    metadata = JSON.parse(out.toString());
  }
  return metadata;
}

function relative(workspaceRoot, file) {
  return path.relative(workspaceRoot, file).split(path.sep).join("/");
}

function run(command) {
  return { executor: "nx:run-commands", options: { command, cwd: "{workspaceRoot}" }, cache: false };
}

function crateProject(pkg, root) {
  const name = pkg.name;
  const isService = root.startsWith("services/");
  const targets = {
    lint: run(`cargo fmt -p ${name} -- --check && cargo clippy -p ${name} --all-targets --locked -- -D warnings`),
    typecheck: run(`cargo check -p ${name} --all-targets --locked`),
    test: run(`cargo nextest run -p ${name} --locked --no-tests=pass`),
    build: run(`cargo build -p ${name} --release --locked`),
  };
  if (isService) targets.containerize = run(`make containerize PROJECT=${name}`);
  return {
    name,
    projectType: pkg.targets.some((t) => t.kind.includes("bin")) ? "application" : "library",
    tags: ["lang:rust", isService ? "type:service" : root.startsWith("libs/") ? "type:lib" : "type:tool"],
    targets,
  };
}

function chartName(chartYaml) {
  const found = fs.readFileSync(chartYaml, "utf8").match(/^name:\s*(\S+)/m);
  return found ? found[1] : path.basename(path.dirname(chartYaml));
}

function isLibraryChart(chartYaml) {
  return /^type:\s*library/m.test(fs.readFileSync(chartYaml, "utf8"));
}

const createNodes = [
  "{**/Cargo.toml,charts/**/Chart.yaml,argocd/*/Chart.yaml,pyproject.toml,infra/pulumi/Pulumi.yaml}",
  async (files, _options, context) => {
    const { workspaceRoot } = context;
    const byManifest = new Map(
      cargoMetadata(workspaceRoot).packages.map((p) => [relative(workspaceRoot, p.manifest_path), p]),
    );
    return files.flatMap((file) => {
      const root = path.dirname(file) === "." ? "." : path.dirname(file);
      if (file.endsWith("Cargo.toml")) {
        const pkg = byManifest.get(file);
        return pkg ? [[file, { projects: { [root]: crateProject(pkg, root) } }]] : [];
      }
      if (file.endsWith("Chart.yaml")) {
        const chart = chartName(path.join(workspaceRoot, file));
        const check = isLibraryChart(path.join(workspaceRoot, file)) ? "scripts/tools.sh charts-check" : `scripts/tools.sh charts-check --chart ${chart}`;
        return [[file, { projects: { [root]: { name: `chart-${chart}`, projectType: "library", tags: ["lang:helm"], targets: { lint: run(check), test: run(check) } } } }]];
      }
      if (file.endsWith("Pulumi.yaml")) {
        return [[file, { projects: { [root]: {
          name: "infra",
          projectType: "application",
          tags: ["lang:typescript"],
          targets: { typecheck: run("scripts/tools.sh infra-typecheck"), test: run("scripts/tools.sh infra-test") },
        } } }]];
      }
      // The Python tools live under tools/ (the root folder is the root package.json's project).
      return [[file, { projects: { tools: {
        name: "tools",
        projectType: "library",
        tags: ["lang:python"],
        targets: {
          lint: run("scripts/tools.sh lint"),
          typecheck: run("scripts/tools.sh typecheck"),
          test: run("scripts/tools.sh test"),
        },
      } } }]];
    });
  },
];

function createDependencies(_options, context) {
  const { workspaceRoot } = context;
  const packages = cargoMetadata(workspaceRoot).packages;
  const names = new Set(packages.map((p) => p.name));
  const edges = [];
  for (const pkg of packages) {
    for (const dep of pkg.dependencies) {
      if (dep.path && names.has(dep.name)) {
        edges.push({ source: pkg.name, target: dep.name, sourceFile: relative(workspaceRoot, pkg.manifest_path), type: "static" });
      }
    }
  }
  for (const project of Object.values(context.projects)) {
    const chartYaml = path.join(workspaceRoot, project.root, "Chart.yaml");
    if (!project.name || !project.name.startsWith("chart-") || !fs.existsSync(chartYaml)) continue;
    const text = fs.readFileSync(chartYaml, "utf8");
    for (const found of text.matchAll(/repository:\s*file:\/\/(\S+)/g)) {
      const target = chartName(path.join(workspaceRoot, project.root, found[1], "Chart.yaml"));
      edges.push({ source: project.name, target: `chart-${target}`, sourceFile: `${project.root}/Chart.yaml`, type: "static" });
    }
  }
  return edges;
}

module.exports = { name: "homestation", createNodes, createDependencies };
