"""make app / make lib: names refused with nothing written, plans applied whole or not at all, and a
generated service that passes lint, its tests and charts-check with no edit (in a copy of the repository)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import generate

ROOT = generate.ROOT


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    """What the generator reads and writes, without the build: crates' manifests, charts, dashboards."""
    for folder in ("charts", "dashboards", "tools/chartcheck", "tools/generators/templates"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("node_modules", "__pycache__", "charts"))
    for manifest in [
        *ROOT.glob("services/*/Cargo.toml"),
        *ROOT.glob("libs/*/Cargo.toml"),
        ROOT / "Cargo.toml",
        ROOT / "libs/bus/src/access.rs",
    ]:
        target = tmp_path / manifest.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(manifest, target)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("MyService", "is not a valid name"),
        ("my_service", "is not a valid name"),
        ("9lives", "is not a valid name"),
        ("trailing-", "is not a valid name"),
        ("double--dash", "is not a valid name"),
        ("x" * 41, "is 41 characters long; the limit is 40"),
        ("std", "is reserved"),
        ("kube-thing", "is reserved"),
        ("homestation-lib", "is reserved"),
        ("inventory", "is already taken: services/inventory and charts/inventory exist"),
        ("service-kit", "is already taken: libs/service-kit exists"),
    ],
)
def test_a_bad_name_is_refused_with_the_reason_and_nothing_written(
    small_repo: Path, capsys: pytest.CaptureFixture[str], name: str, reason: str
) -> None:
    before = files_under(small_repo)
    for kind in ("app", "lib"):
        assert generate.main([kind, name, "--no-cargo"], root=small_repo) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"make {kind}: ") and reason in err, err
    assert files_under(small_repo) == before


def test_an_app_is_planned_whole_and_a_second_run_finds_it_taken(small_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["app", "media-sync", "--no-cargo"], root=small_repo) == 0
    out = capsys.readouterr().out
    for path in (
        "services/media-sync/src/lib.rs",
        "services/media-sync/src/config.rs",
        "services/media-sync/src/api.rs",
        "services/media-sync/src/domain.rs",
        "services/media-sync/src/store.rs",
        "services/media-sync/src/events.rs",
        "services/media-sync/src/metrics.rs",
        "services/media-sync/tests/service.rs",
        "services/media-sync/migrations/20260101000001_init.sql",
        "services/media-sync/project.json",
        "charts/apps/media-sync/values.schema.json",
        "charts/apps/media-sync/vault/policy.hcl",
        "dashboards/apps/media-sync.json",
    ):
        assert (small_repo / path).is_file(), path
        assert f"created {path}" in out
    lib = (small_repo / "services/media-sync/src/lib.rs").read_text()
    config = (small_repo / "services/media-sync/src/config.rs").read_text()
    assert 'const NAME: &\'static str = "media-sync";' in lib and "@@" not in lib + config
    assert "media_sync" in config and "HOMESTATION_MEDIA_SYNC__" in config
    assert "apps/media-sync.json" in (small_repo / "dashboards/kustomization.yaml").read_text()
    assert 'service=\\"media-sync\\"' in (small_repo / "dashboards/apps/media-sync.json").read_text()
    access = (small_repo / "libs/bus/src/access.rs").read_text()
    assert '("media-sync", &[Stream::Deploy]),\n    // make app:' in access, "its NATS user, before the marker"
    assert "changed libs/bus/src/access.rs" in out

    assert generate.main(["app", "media-sync", "--no-cargo"], root=small_repo) == 2
    assert "is already taken" in capsys.readouterr().err


def test_a_failure_while_writing_leaves_the_repository_as_it_was(small_repo: Path) -> None:
    before = files_under(small_repo)
    plan = generate.plan_app("media-sync", small_repo)

    def fail() -> None:
        raise generate.GenerateError("cargo update --workspace failed: no network")

    with pytest.raises(generate.GenerateError):
        generate.apply(plan, fail)
    assert files_under(small_repo) == before
    assert not (small_repo / "services" / "media-sync").exists()
    assert not (small_repo / "charts" / "apps" / "media-sync").exists()


# The acceptance run: `make app` and `make lib` in a copy of the whole repository, then what CI runs on
# them. Dependencies compile once into this repository's target folder and are shared.


def run(cwd: Path, *command: str) -> str:
    env = {**os.environ, "CARGO_TARGET_DIR": str(ROOT / "target"), "CARGO_TERM_COLOR": "never"}
    # The copy has no .dev: its tests start this checkout's nats-server 2.15 (make services installs it).
    nats = ROOT / ".dev" / "tools" / "bin" / "nats-server"
    if nats.exists():
        env.setdefault("HOMESTATION_NATS_SERVER", str(nats))
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def repo_with_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    run(repo, "make", "app", "NAME=demo-svc")
    run(repo, "make", "lib", "NAME=demo-lib")
    return repo


def test_make_app_and_lib_pass_lint_with_no_edit(repo_with_demo: Path) -> None:
    run(repo_with_demo, "cargo", "fmt", "-p", "demo-svc", "-p", "demo-lib", "--", "--check")
    run(
        repo_with_demo, "cargo", "clippy", "-p", "demo-svc", "-p", "demo-lib", "--all-targets", "--locked", "--", "-D", "warnings"
    )


def test_make_app_and_lib_build_and_pass_their_tests(repo_with_demo: Path) -> None:
    run(repo_with_demo, "cargo", "build", "-p", "demo-svc", "--locked")
    out = run(repo_with_demo, "cargo", "nextest", "run", "-p", "demo-svc", "-p", "demo-lib", "--locked")
    assert "2 tests run: 2 passed" in out, out


def test_make_app_gives_the_service_its_own_nats_user_in_the_chart(repo_with_demo: Path) -> None:
    accounts = (repo_with_demo / "argocd/platform/nats-accounts.yaml").read_text()
    assert "<< $NATS_PASSWORD_DEMO_SVC >>" in accounts and "homestation/nats/demo-svc" in accounts
    # The chart test of the CLI holds the file to what libs/bus derives, in the copy as here.
    run(repo_with_demo, "cargo", "nextest", "run", "-p", "homestation", "--test", "bus", "--locked")


def test_make_app_chart_passes_charts_check_and_argo_cd_picks_it_up(repo_with_demo: Path) -> None:
    out = run(
        repo_with_demo,
        sys.executable,
        str(ROOT / "tools" / "chartcheck" / "chartcheck.py"),
        "--root",
        str(repo_with_demo),
        "--out",
        str(repo_with_demo / ".dev" / "charts-rendered"),
    )
    assert "passed:" in out, out
    tree = run(repo_with_demo, sys.executable, str(ROOT / "tools" / "chartcheck" / "walk.py"), "--root", str(repo_with_demo))
    assert "demo-svc → apps: charts/apps/demo-svc renders" in tree, tree
    # Its route is the lab's: on lab.yaml's domain, for developers, in Authelia's rules and the tunnel.
    route = (repo_with_demo / "argocd/apps/demo-svc.yaml").read_text()
    assert "host: demo-svc.homestation.example.org" in route and "enabled: true" in route, route
    assert "demo-svc.homestation.example.org" in (repo_with_demo / "argocd/lab/authelia.yaml").read_text()
    assert "demo-svc.homestation.example.org" in (repo_with_demo / "infra/pulumi/Pulumi.tunnels.yaml").read_text()


def test_make_app_is_an_nx_project_with_its_chart(repo_with_demo: Path) -> None:
    (repo_with_demo / "node_modules").symlink_to(ROOT / "node_modules")
    env = {**os.environ, "NX_DAEMON": "false", "NX_NO_CLOUD": "true"}
    shown = subprocess.run(
        [str(repo_with_demo / "node_modules/.bin/nx"), "show", "project", "demo-svc", "--json"],
        cwd=repo_with_demo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    project = json.loads(shown.stdout)
    assert {"lint", "test", "build", "containerize"} <= set(project["targets"])
    assert "type:app" in project["tags"], "the generated project.json's tags merge with the inferred project"
    projects = subprocess.run(
        [str(repo_with_demo / "node_modules/.bin/nx"), "show", "projects"],
        cwd=repo_with_demo,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert {"demo-svc", "chart-demo-svc", "demo-lib"} <= set(projects)
