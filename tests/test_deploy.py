"""Deployment files: units parse, the compose file and Dockerfile refer only to files that exist,
the example configs are read by the real loaders and document every option."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from coordinator.config import load_serve_config
from node import config as node_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


@pytest.mark.parametrize("unit", ["rarenet-node.service", "rarenet-coordinator.service"])
def test_systemd_units_verify(unit, tmp_path) -> None:
    text = (DEPLOY / "systemd" / unit).read_text()
    for setting in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/",
        "User=rarenet",
        "Restart=on-failure",
    ):
        assert setting in text, setting
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    local = tmp_path / unit
    local.write_text(text.replace("/opt/rarenet/venv/bin", str(Path(sys.executable).parent)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_compose_file_refers_only_to_existing_files() -> None:
    compose_path = DEPLOY / "docker" / "compose.yaml"
    compose = yaml.safe_load(compose_path.read_text())
    assert {"coordinator", "lab-a", "lab-b", "lab-c", "pki"} <= set(compose["services"])
    for name, service in compose["services"].items():
        build = service["build"]
        context = (compose_path.parent / build["context"]).resolve()
        assert context == ROOT and (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in compose["volumes"], f"{name} mounts {source}, not a named volume"
        for arg in service.get("entrypoint", []):
            if arg.startswith("/app/"):
                assert (ROOT / arg.removeprefix("/app/")).exists(), arg
    assert (
        compose["services"]["lab-a"]["depends_on"]["coordinator"]["condition"] == "service_healthy"
    )


def test_dockerfile_copies_only_existing_paths_and_runs_as_non_root() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    copies = re.findall(r"^COPY (.+) \S+$", text, flags=re.M)
    assert copies
    for line in copies:
        for source in line.split():
            assert (ROOT / source).exists(), source
    assert (
        re.search(r"^USER rarenet$", text, flags=re.M) and "HEALTHCHECK" in text and "-slim" in text
    )
    assert subprocess.run(["bash", "-n", str(DEPLOY / "docker" / "entrypoint.sh")]).returncode == 0
    compile((DEPLOY / "docker" / "healthcheck.py").read_text(), "healthcheck.py", "exec")


def test_example_configs_are_read_by_the_real_loaders(tmp_path) -> None:
    (tmp_path / "node.toml").write_text((DEPLOY / "config" / "node.example.toml").read_text())
    cfg = node_config.load(tmp_path)
    assert cfg.site_id == "lab-xyz" and cfg.daemon.summary_cron == "0 3 * * *" and not cfg.insecure
    serve = load_serve_config(DEPLOY / "config" / "coordinator.example.toml")
    assert serve.listen == "0.0.0.0:8443" and serve.client_ca and not serve.insecure


def test_node_example_documents_every_option_init_writes(tmp_path) -> None:
    written = tomllib.loads(
        (
            node_config.init(tmp_path / "n", "lab-a", "127.0.0.1:1", insecure=True).data_dir
            / "node.toml"
        ).read_text()
    )
    example = tomllib.loads((DEPLOY / "config" / "node.example.toml").read_text())
    for section, options in written.items():
        assert set(options) == set(example[section]), section
