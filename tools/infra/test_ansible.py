"""The Ansible roles: ansible-lint (production profile) and syntax checks on every playbook, then the
roles run for real against a Debian bookworm chroot (debootstrap), once to apply and once more to show
nothing changes. Tasks that need a real kernel, systemd as PID 1, Windows, the internet beyond Debian's
mirror or a running cluster carry the tags skipped here (kernel, windows, network, cluster)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "infra" / "ansible"
VENV = ROOT / ".venv" / "bin"
CACHED_CHROOT = ROOT / ".dev" / "chroot-bookworm"
SKIPPED_HERE = "windows,kernel,network,cluster"


def ansible(*args: str, cwd: Path = ANSIBLE) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{VENV}:{os.environ['PATH']}",
    }
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)


def test_ansible_lint_production_profile_and_syntax_of_every_playbook() -> None:
    lint = ansible(str(VENV / "ansible-lint"), "--profile", "production", "-p", "playbooks", "roles")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    playbooks = sorted((ANSIBLE / "playbooks").glob("*.yml"))
    assert {p.stem for p in playbooks} == {"bootstrap-wsl2", "control-plane", "cluster-secrets", "edge-node"}
    for playbook in playbooks:
        syntax = ansible(str(VENV / "ansible-playbook"), "--syntax-check", str(playbook))
        assert syntax.returncode == 0, syntax.stdout + syntax.stderr


def test_the_vault_example_holds_no_value() -> None:
    example = (ANSIBLE / "inventory" / "group_vars" / "all" / "vault.yml.example").read_text()
    values = re.findall(r'^(\w+):\s*"([^"]*)"', example, re.M)
    assert values and all(value == "" for _, value in values), values
    assert "inventory/group_vars/all/vault.yml" in (ANSIBLE / ".gitignore").read_text()


@pytest.fixture(scope="module")
def chroots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not (CACHED_CHROOT / "usr" / "bin" / "python3").exists():
        if os.geteuid() != 0:
            pytest.fail("making the bookworm chroot needs root (debootstrap); run as root or create .dev/chroot-bookworm")
        if shutil.which("debootstrap") is None:
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "debootstrap"],
                check=True,
                capture_output=True,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
        made = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,systemd",
                "bookworm",
                str(CACHED_CHROOT),
                "http://deb.debian.org/debian",
            ],
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    base = tmp_path_factory.mktemp("chroots")
    copies = {}
    for role in ("control", "edge"):
        subprocess.run(["cp", "-a", str(CACHED_CHROOT), str(base / role)], check=True)
        copies[role] = base / role
    return copies


def run_roles(chroots: dict[str, Path], work: Path) -> subprocess.CompletedProcess[str]:
    inventory = work / "inventory.yml"
    inventory.write_text(
        "all:\n  children:\n"
        f"    control:\n      hosts:\n        control-chroot:\n          ansible_host: {chroots['control']}\n"
        "          k3s_server_node_ip: 100.64.0.1\n"
        f"    edge:\n      hosts:\n        edge-chroot:\n          ansible_host: {chroots['edge']}\n"
        "          k3s_agent_node_ip: 100.64.0.7\n"
        "  vars:\n    ansible_connection: community.general.chroot\n    ansible_python_interpreter: /usr/bin/python3\n"
    )
    site = work / "site.yml"
    site.write_text(
        "- name: Control node\n  hosts: control\n  roles: [bootstrap_wsl2, tailscale, k3s_server]\n"
        "- name: Edge node\n  hosts: edge\n  roles: [tailscale, jetson_agent]\n"
    )
    return ansible(
        str(VENV / "ansible-playbook"),
        "-i",
        str(inventory),
        str(site),
        "-e",
        f"@{ANSIBLE / 'inventory' / 'group_vars' / 'all' / 'main.yml'}",
        "-e",
        f"@{ANSIBLE / 'inventory' / 'group_vars' / 'all' / 'lab.yml'}",
        "--skip-tags",
        SKIPPED_HERE,
    )


def recap(output: str) -> dict[str, dict[str, int]]:
    found = re.findall(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M)
    return {h: {"ok": int(o), "changed": int(c), "unreachable": int(u), "failed": int(f)} for h, o, c, u, f in found}


def test_the_roles_apply_in_a_chroot_and_a_second_run_changes_nothing(chroots: dict[str, Path], tmp_path: Path) -> None:
    first = run_roles(chroots, tmp_path)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    applied = recap(first.stdout)
    assert set(applied) == {"control-chroot", "edge-chroot"}
    assert all(h["changed"] > 0 and h["failed"] == 0 for h in applied.values()), applied

    control, edge = chroots["control"], chroots["edge"]
    assert "systemd=true" in (control / "etc" / "wsl.conf").read_text()
    server = (control / "etc" / "rancher" / "k3s" / "config.yaml").read_text()
    assert "node-ip: 100.64.0.1" in server and "flannel-iface: tailscale0" in server and "- traefik" in server
    # Agents join with an agent token of their own; the server token never leaves the server.
    assert "agent-token-file: /etc/rancher/k3s/agent-token" in server
    agent_token = control / "etc" / "rancher" / "k3s" / "agent-token"
    assert len(agent_token.read_text().strip()) == 48 and agent_token.stat().st_mode & 0o777 == 0o600
    # The server's install never talks to Vault (it runs before Vault exists); the agent token goes there
    # later, from playbooks/cluster-secrets.yml, and it alone.
    tasks = (ANSIBLE / "roles" / "k3s_server" / "tasks" / "main.yml").read_text()
    to_vault = (ANSIBLE / "roles" / "k3s_server" / "tasks" / "agent-token-to-vault.yml").read_text()
    assert "vault" not in tasks.lower(), "control-plane writes nothing to Vault"
    assert "server/node-token" not in to_vault and "agent_token:" in to_vault, "only the agent token is stored"
    assert "oidc-issuer-url=https://auth." in server and "oidc-groups-claim=groups" in server
    assert (control / "etc" / "systemd" / "system" / "multi-user.target.wants" / "k3s.service").is_symlink()
    assert "net.bridge.bridge-nf-call-iptables = 1" in (control / "etc" / "sysctl.d" / "90-k3s.conf").read_text()
    agent = (edge / "etc" / "rancher" / "k3s" / "config.yaml").read_text()
    assert "node-ip: 100.64.0.7" in agent and "nvidia.com/gpu.present=true" in agent and "token:" not in agent
    containerd = (edge / "var" / "lib" / "rancher" / "k3s" / "agent" / "etc" / "containerd" / "config-v3.toml.tmpl").read_text()
    assert 'default_runtime_name = "nvidia"' in containerd and '{{ template "base" . }}' in containerd

    made = agent_token.read_text()
    second = run_roles(chroots, tmp_path)
    assert second.returncode == 0, second.stdout[-4000:]
    assert agent_token.read_text() == made, "a re-run keeps the agent token"
    again = recap(second.stdout)
    assert all(h["changed"] == 0 and h["failed"] == 0 for h in again.values()), second.stdout[-4000:]
