"""TLS and mTLS with certificates made by deploy/pki/make-pki.sh, over real handshakes on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest

from coordinator import enrolment
from coordinator.config import init as init_coordinator
from coordinator.server import TlsFiles, start
from node import config as node_config
from node import store as node_store
from node.client import CoordinatorClient, RpcFailure
from node.enroll import enroll
from node.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    subprocess.run(
        [str(ROOT / "deploy" / "pki" / "make-pki.sh"), "--out", str(out), "--site", "lab-a"],
        check=True,
        capture_output=True,
    )
    other = tmp_path_factory.mktemp("other-pki")
    subprocess.run(
        [str(ROOT / "deploy" / "pki" / "make-pki.sh"), "--out", str(other), "--site", "lab-a"],
        check=True,
        capture_output=True,
    )
    (out / "other-ca.pem").write_bytes((other / "ca.pem").read_bytes())
    (out / "sites" / "rogue.pem").write_bytes((other / "sites" / "lab-a.pem").read_bytes())
    (out / "sites" / "rogue.key").write_bytes((other / "sites" / "lab-a.key").read_bytes())
    return out


def enrol_over(tmp_path, running, pki, **tls):
    token, _ = enrolment.add_site(running.service.conn, "lab-a")
    cfg = node_config.init(tmp_path / "node", "lab-a", f"127.0.0.1:{running.port}", **tls)
    with CoordinatorClient(cfg) as client:
        enroll(cfg, node_store.connect(cfg.db_path), client, token)
    return cfg


def test_tls_enrolment_with_the_network_ca(tmp_path, pki) -> None:
    running = start(
        init_coordinator(tmp_path / "c"),
        "127.0.0.1:0",
        tls=TlsFiles(pki / "coordinator.pem", pki / "coordinator.key"),
    )
    try:
        cfg = enrol_over(tmp_path, running, pki, ca_file=str(pki / "ca.pem"))
        assert (cfg.data_dir / "coordinator.pub").exists()
        # A node that trusts another CA refuses the coordinator's certificate.
        other = node_config.init(
            tmp_path / "n2", "lab-b", f"127.0.0.1:{running.port}", ca_file=str(pki / "other-ca.pem")
        )
        with CoordinatorClient(other) as client, pytest.raises(RpcFailure) as caught:
            client.standards()
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop(grace=1)


def test_mtls_requires_a_client_certificate_from_the_network_ca(tmp_path, pki) -> None:
    running = start(
        init_coordinator(tmp_path / "c"),
        "127.0.0.1:0",
        tls=TlsFiles(pki / "coordinator.pem", pki / "coordinator.key", client_ca=pki / "ca.pem"),
    )
    try:
        cfg = enrol_over(
            tmp_path,
            running,
            pki,
            ca_file=str(pki / "ca.pem"),
            cert_file=str(pki / "sites" / "lab-a.pem"),
            key_file=str(pki / "sites" / "lab-a.key"),
        )
        assert node_store.get_state(node_store.connect(cfg.db_path), "keyid")
        for name, cert_file, key_file in (
            ("no-cert", "", ""),
            ("rogue", str(pki / "sites" / "rogue.pem"), str(pki / "sites" / "rogue.key")),
        ):
            bare = node_config.init(
                tmp_path / name,
                "lab-x",
                f"127.0.0.1:{running.port}",
                ca_file=str(pki / "ca.pem"),
                cert_file=cert_file,
                key_file=key_file,
            )
            with CoordinatorClient(bare) as client, pytest.raises(RpcFailure) as caught:
                client.standards()
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE, name
    finally:
        running.stop(grace=1)


def test_plaintext_client_config_only_to_loopback(tmp_path) -> None:
    with pytest.raises(ConfigError, match="only for a loopback coordinator, not 10.1.2.3:443"):
        node_config.init(tmp_path / "n", "lab-a", "10.1.2.3:443", insecure=True)
    assert not (tmp_path / "n").exists()  # refused before anything was written
    # a node.toml edited by hand afterwards is refused when the node connects
    cfg = node_config.init(tmp_path / "n", "lab-a", "127.0.0.1:443", insecure=True)
    toml = cfg.data_dir / "node.toml"
    toml.write_text(toml.read_text().replace("127.0.0.1:443", "10.1.2.3:443"))
    with pytest.raises(ConfigError, match="only for a loopback coordinator"):
        CoordinatorClient(node_config.load(cfg.data_dir))
    cfg = node_config.init(tmp_path / "m", "lab-a", "coordinator.example:443")
    with pytest.raises(ConfigError, match="ca_file"):
        CoordinatorClient(cfg)
