"""scripts/infra.sh (make infra-plan / infra-apply): the stacks it accepts, `vpc` as the lab's network
(tailnet, then tunnels), and what it says when something is missing. The pulumi CLI is not installable
here, so a stand-in named FakePulumi records the calls it would make (its log is the assertion)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def infra(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "scripts" / "infra.sh"), *args], capture_output=True, text=True, env=env)


def fake_pulumi(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A FAKE pulumi on PATH: records each call, knows every stack."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    script = bin_dir / "pulumi"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "TAILSCALE_"))}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return env, log


def test_vpc_is_the_tailnet_then_the_tunnels_and_checks_both_credentials_first(tmp_path: Path) -> None:
    env, log = fake_pulumi(tmp_path)
    missing = infra(["preview", "vpc"], {**env, "TAILSCALE_API_KEY": "made-up-for-this-test"})
    assert missing.returncode == 1
    assert "CLOUDFLARE_API_TOKEN is not set" in missing.stderr, missing.stderr
    assert not log.exists(), "nothing ran while a credential was missing"
    ran = infra(["preview", "vpc"], {**env, "TAILSCALE_API_KEY": "made-up", "CLOUDFLARE_API_TOKEN": "made-up"})
    assert ran.returncode == 0, ran.stderr
    calls = log.read_text().splitlines()
    previews = [c for c in calls if c.startswith("preview")]
    assert previews == ["preview --stack tailnet", "preview --stack tunnels"], calls


def test_an_unknown_or_missing_target_names_the_stacks(tmp_path: Path) -> None:
    env, _ = fake_pulumi(tmp_path)
    for args in (["preview"], ["preview", "network"]):
        result = infra(args, env)
        assert result.returncode == 1
        assert "control-plane" in result.stderr and "vpc" in result.stderr, result.stderr
