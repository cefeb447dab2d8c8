"""make containerize: an image built without a container engine, pushed to a real registry (Debian's
docker-registry, the distribution server Harbor runs, started here), and read back from it."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("docker-registry") is None:
        if os.geteuid() != 0:
            pytest.fail("docker-registry is missing: apt-get install docker-registry")
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "docker-registry"],
            check=True,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    folder = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    config = folder / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\nhttp:\n  addr: {address}\n")
    log = (folder / "registry.log").open("w")
    server = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://{address}/v2/", timeout=1)
            break
        except OSError:
            assert time.monotonic() < deadline, (folder / "registry.log").read_text()
            time.sleep(0.2)
    yield address
    server.terminate()
    server.wait(10)


def skopeo(*args: str) -> str:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def layer_names(registry: str, digest: str) -> list[str]:
    blob = urllib.request.urlopen(f"http://{registry}/v2/homestation/inventory/blobs/{digest}").read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        return tar.getnames()


def test_make_containerize_pushes_a_non_root_image_whose_last_layer_is_the_binary(registry: str) -> None:
    env = {**os.environ, "REGISTRY_TLS_VERIFY": "false"}
    pushed = subprocess.run(
        ["make", "-s", "containerize", "PROJECT=inventory", f"REGISTRY={registry}", "TAG=test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    reference = f"docker://{registry}/homestation/inventory:test"
    assert pushed.stdout.strip().startswith(f"{registry}/homestation/inventory:test@sha256:")

    config = json.loads(skopeo("inspect", "--tls-verify=false", "--config", reference))
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/inventory"]
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert config["config"]["Labels"]["org.opencontainers.image.revision"].startswith(revision)
    history = [h.get("created_by", "") for h in config["history"]]
    assert "COPY target/release/inventory /usr/local/bin/inventory" in history

    manifest = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", reference))
    layers = [layer["digest"] for layer in manifest["layers"]]
    assert len(layers) == 2
    binary_layer = layer_names(registry, layers[-1])
    assert "usr/local/bin/inventory" in [n.lstrip("./") for n in binary_layer], binary_layer
    base = [n.lstrip("./") for n in layer_names(registry, layers[0])]
    assert "etc/passwd" in base and any(n.endswith("libc.so.6") for n in base), base


def test_the_pushed_image_runs_its_binary_with_only_what_the_image_holds(registry: str, tmp_path: Path) -> None:
    """Pulled back and unpacked, the binary starts inside the image's own root (its libraries suffice) as 65532."""
    reference = f"docker://{registry}/homestation/inventory:test"
    skopeo("copy", "--quiet", "--src-tls-verify=false", reference, f"oci:{tmp_path / 'oci'}:test")
    subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{tmp_path / 'oci'}:test", str(tmp_path / "bundle")],
        check=True,
        capture_output=True,
    )
    rootfs = tmp_path / "bundle" / "rootfs"
    chroot_bin = shutil.which("chroot") or "/usr/sbin/chroot"
    if os.geteuid() == 0:
        chroot = [chroot_bin, "--userspec=65532:65532", str(rootfs)]
    else:
        chroot = [shutil.which("unshare") or "/usr/bin/unshare", "-r", chroot_bin, str(rootfs)]
    started = subprocess.run(
        [*chroot, "/usr/local/bin/inventory"],
        env={"HOMESTATION_INVENTORY__HTTP__PORT": "not-a-port", "HOMESTATION_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    # It ran (no missing library or loader) and refused the bad port in its own words.
    assert started.returncode == 1, started.stderr
    assert started.stderr.startswith("inventory: invalid configuration") and "port" in started.stderr, started.stderr


def test_a_project_that_is_not_a_service_is_refused() -> None:
    refused = subprocess.run(["make", "-s", "containerize", "PROJECT=bus"], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode != 0
    assert "bus is not a service" in refused.stderr and "inventory" in refused.stderr, refused.stderr
