"""`make app NAME=…` and `make lib NAME=…`: a new service or library, wired in at once and green as made.

  python tools/generators/generate.py app NAME     services/NAME (crate), charts/apps/NAME (chart),
                                                   dashboards/apps/NAME.json, an Nx project, its NATS
                                                   user in libs/bus/src/access.rs (and so in
                                                   argocd/platform/nats-accounts.yaml)
  python tools/generators/generate.py lib NAME     libs/NAME (crate), an Nx project

NAME is a DNS-1123 label (lower-case letters, digits and '-', starting with a letter, at most 40
characters), not a name already used by a crate, chart or folder, and not a reserved word. Every file
is planned first and written only when the whole plan is valid; a failure while writing removes what
was written, so a failed run leaves the repository as it was.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).resolve().parent / "templates"
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
MAX_LENGTH = 40
# Rust keywords and crates every build has, Kubernetes' own names, and the repository's own.
RESERVED = {
    "self",
    "super",
    "crate",
    "std",
    "core",
    "alloc",
    "test",
    "proc-macro",
    "build",
    "main",
    "lib",
    "src",
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "kubernetes",
    "homestation",
    "homestation-lib",
    "platform",
    "apps",
    "charts",
    "argocd",
    "dashboards",
    "tools",
    "target",
    "cli",
    "bench",
    "edge-agent",
}


class GenerateError(Exception):
    """A reason the generator refuses, said in one line to the person who ran it."""


def check_name(name: str, root: Path) -> None:
    if not NAME.match(name):
        raise GenerateError(
            f"{name!r} is not a valid name: use lower-case letters, digits and '-', starting with a letter "
            "and not ending with '-' (a DNS-1123 label, e.g. media-sync)"
        )
    if len(name) > MAX_LENGTH:
        raise GenerateError(f"{name!r} is {len(name)} characters long; the limit is {MAX_LENGTH}")
    if name in RESERVED or name.startswith("kube-"):
        raise GenerateError(f"{name!r} is reserved; pick another name")
    taken = [
        p.relative_to(root).as_posix()
        for p in (root / "services" / name, root / "libs" / name, root / "charts" / name, root / "charts" / "apps" / name)
        if p.exists()
    ]
    if taken:
        raise GenerateError(f"{name!r} is already taken: {' and '.join(taken)} {'exists' if len(taken) == 1 else 'exist'}")
    if name in workspace_packages(root):
        raise GenerateError(f"{name!r} is already the name of a crate in the workspace")


def workspace_packages(root: Path) -> set[str]:
    names = set()
    for manifest in [*root.glob("libs/*/Cargo.toml"), *root.glob("services/*/Cargo.toml"), *root.glob("*/Cargo.toml")]:
        found = re.search(r'(?m)^name\s*=\s*"([^"]+)"', manifest.read_text())
        if found:
            names.add(found.group(1))
    return names


@dataclass(frozen=True)
class Plan:
    """Files to create (path → text) and files to change (path → new text); nothing exists on disk yet."""

    create: dict[Path, str]
    change: dict[Path, str]


def substitutions(name: str) -> dict[str, str]:
    return {
        "@@crate@@": name,
        "@@module@@": name.replace("-", "_"),
        "@@env@@": name.replace("-", "_").upper(),
        "@@title@@": " ".join(word.capitalize() for word in name.split("-")),
    }


def render(template: Path, name: str) -> str:
    text = template.read_text()
    for token, value in substitutions(name).items():
        text = text.replace(token, value)
    leftover = re.search(r"@@[a-z]+@@", text)
    if leftover:
        raise GenerateError(f"template {template} has an unknown placeholder {leftover.group(0)}")
    return text


def tree(source: Path, target: Path, name: str) -> dict[Path, str]:
    return {target / path.relative_to(source): render(path, name) for path in sorted(source.rglob("*")) if path.is_file()}


def plan_app(name: str, root: Path) -> Plan:
    templates = TEMPLATES / "app"
    create = tree(templates / "service", root / "services" / name, name)
    create[root / "services" / name / "project.json"] = render(templates / "project.json", name)
    chart = root / "charts" / "apps" / name
    create.update(tree(templates / "chart", chart, name))
    create[chart / "values.schema.json"] = values_schema(root, create[chart / "schema" / "config.json"], name)
    dashboard = root / "dashboards" / "apps" / f"{name}.json"
    create[dashboard] = render(templates / "dashboard.json", name)
    kustomization = root / "dashboards" / "kustomization.yaml"
    access = root / "libs" / "bus" / "src" / "access.rs"
    accounts = root / NATS_ACCOUNTS
    change = {
        kustomization: with_dashboard(kustomization.read_text(), name),
        access: with_bus_user(access.read_text(), name),
    }
    if accounts.exists():
        # Rewritten by finish_crate from the new access.rs; listed so a failure restores it.
        change[accounts] = accounts.read_text()
    return Plan(create, change)


def plan_lib(name: str, root: Path) -> Plan:
    create = tree(TEMPLATES / "lib", root / "libs" / name, name)
    return Plan(create, {})


def values_schema(root: Path, config_schema: str, name: str) -> str:
    """The chart's values.schema.json, as `make charts-schemas` would write it."""
    sys.path.insert(0, str(root / "tools" / "chartcheck"))
    import schemas

    return schemas.compose(root / "charts", json.loads(config_schema), None, name)


def with_dashboard(kustomization: str, name: str) -> str:
    """kustomization.yaml with one more ConfigMap for dashboards/apps/NAME.json (text appended: comments kept)."""
    if not kustomization.rstrip().endswith(".json"):
        raise GenerateError(
            "dashboards/kustomization.yaml does not end with its configMapGenerator list; add the dashboard by hand"
        )
    entry = f"  - name: dashboard-app-{name}\n    files:\n      - apps/{name}.json\n"
    return kustomization.rstrip("\n") + "\n" + entry


NATS_ACCOUNTS = "argocd/platform/nats-accounts.yaml"
BUS_MARKER = "    // make app: new services are added above this line\n"


def with_bus_user(access: str, name: str) -> str:
    """libs/bus/src/access.rs with NAME in SERVICES: its own NATS user, reading the deploy stream (as the
    template's consumer does); the bus derives its permissions from that row and the `events!` table."""
    if BUS_MARKER not in access:
        raise GenerateError("libs/bus/src/access.rs has lost its `make app` marker in SERVICES; add the service there by hand")
    return access.replace(BUS_MARKER, f'    ("{name}", &[Stream::Deploy]),\n{BUS_MARKER}', 1)


def apply(plan: Plan, after: Callable[[], None] | None = None) -> list[Path]:
    """Writes the plan; on any failure (including `after`), removes what it created and restores what it changed."""
    clash = [p for p in plan.create if p.exists()]
    if clash:
        raise GenerateError(f"{clash[0]} exists; nothing was written")
    created: list[Path] = []
    made_dirs: list[Path] = []
    originals = {path: path.read_text() for path in plan.change}
    try:
        for path, text in plan.create.items():
            for parent in reversed(path.parents):
                if not parent.exists():
                    parent.mkdir()
                    made_dirs.append(parent)
            path.write_text(text)
            created.append(path)
        for path, text in plan.change.items():
            path.write_text(text)
        if after is not None:
            after()
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        for directory in reversed(made_dirs):
            if directory.exists() and not any(directory.iterdir()):
                directory.rmdir()
        for path, text in originals.items():
            path.write_text(text)
        raise
    return created


def cargo(root: Path, *args: str) -> None:
    result = subprocess.run(["cargo", *args], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise GenerateError(f"cargo {' '.join(args)} failed: " + (result.stderr.strip().splitlines() or ["?"])[-1])


def finish_crate(root: Path, name: str, app: bool) -> None:
    """Records the new crate in Cargo.lock (other packages keep their versions), formats it as rustfmt would,
    and for a service rewrites the NATS chart's accounts from libs/bus (its new user among them) and the
    lab's generated values (its route: make lab)."""
    cargo(root, "update", "--workspace")
    cargo(root, "fmt", "-p", name)
    if app:
        result = subprocess.run(
            ["cargo", "run", "--quiet", "-p", "homestation", "--", "bus", "chart-values"],
            cwd=root,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise GenerateError("homestation bus chart-values failed: " + (result.stderr.strip().splitlines() or ["?"])[-1])
        (root / NATS_ACCOUNTS).write_text(result.stdout)
        # Its route on the lab's domain, behind Authelia for developers, in every place that names routes
        # (argocd/apps/<name>.yaml, Authelia's rules, the tunnel, Pulumi's DNS): make lab, from lab.yaml.
        lab = subprocess.run(
            [sys.executable, str(root / "tools" / "lab" / "lab.py"), "write", "--root", str(root)], capture_output=True, text=True
        )
        if lab.returncode != 0:
            raise GenerateError("make lab failed: " + (lab.stderr.strip().splitlines() or ["?"])[-1])


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(
        prog="generate.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["app", "lib"], help="a service (app) or a library crate (lib)")
    parser.add_argument("name", help="the new project's name (DNS-1123 label)")
    parser.add_argument("--no-cargo", action="store_true", help="do not touch Cargo.lock or run rustfmt (tests of the plan only)")
    args = parser.parse_args(argv)
    try:
        check_name(args.name, root)
        plan = plan_app(args.name, root) if args.kind == "app" else plan_lib(args.name, root)
        created = apply(plan, None if args.no_cargo else lambda: finish_crate(root, args.name, args.kind == "app"))
    except GenerateError as e:
        print(f"make {args.kind}: {e}", file=sys.stderr)
        return 2
    for path in created:
        print(f"  created {path.relative_to(root)}")
    for path in plan.change:
        print(f"  changed {path.relative_to(root)}")
    if args.kind == "app":
        print(
            f"\n{args.name} is wired in: `cargo nextest run -p {args.name}` tests it, `make charts-check` checks its chart,"
            f"\nand once pushed Argo CD's homestation-apps ApplicationSet deploys charts/apps/{args.name} into `apps`."
        )
    else:
        print(f"\n{args.name} is a workspace crate: `cargo nextest run -p {args.name}` tests it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
