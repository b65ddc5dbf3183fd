"""Under mTLS the client certificate must name the site it acts for, and TLS mistakes are reported
as what they are, on the side where they are, over real handshakes on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest

from coordinator import enrolment
from coordinator.config import SetupError
from coordinator.config import init as init_coordinator
from coordinator.server import TlsFiles, start
from node import config as node_config
from node import store as node_store
from node import summary
from node.client import CoordinatorClient, RpcFailure
from node.enroll import enroll
from node.errors import ConfigError
from node.standard import load_cached
from protos import dsse, wire
from protos.rarenet.v1 import coordinator_pb2 as cpb
from tests.conftest import PERIOD

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    subprocess.run(
        [str(ROOT / "deploy" / "pki" / "make-pki.sh"), "--out", str(out)]
        + ["--site", "lab-two", "--site", "lab-xyz"],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture
def mtls(tmp_path, pki):
    running = start(
        init_coordinator(tmp_path / "c"),
        "127.0.0.1:0",
        tls=TlsFiles(pki / "coordinator.pem", pki / "coordinator.key", client_ca=pki / "ca.pem"),
    )
    yield running
    running.stop(grace=1)


def node_with(tmp_path, running, pki, site: str, cert_of: str) -> node_config.NodeConfig:
    return node_config.init(
        tmp_path / f"{site}-as-{cert_of}",
        site,
        f"127.0.0.1:{running.port}",
        ca_file=str(pki / "ca.pem"),
        cert_file=str(pki / "sites" / f"{cert_of}.pem"),
        key_file=str(pki / "sites" / f"{cert_of}.key"),
    )


def test_a_site_cannot_enrol_with_another_sites_certificate(tmp_path, pki, mtls) -> None:
    token, _ = enrolment.add_site(mtls.service.conn, "lab-two")
    cfg = node_with(tmp_path, mtls, pki, "lab-two", cert_of="lab-xyz")
    with CoordinatorClient(cfg) as client, pytest.raises(RpcFailure) as caught:
        enroll(cfg, node_store.connect(cfg.db_path), client, token)
    assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "names lab-xyz, not site lab-two" in str(caught.value)
    assert mtls.service.conn.execute("SELECT COUNT(*) FROM site_keys").fetchone() == (0,)
    # With its own certificate the same token enrols it.
    own = node_with(tmp_path, mtls, pki, "lab-two", cert_of="lab-two")
    with CoordinatorClient(own) as client:
        assert enroll(own, node_store.connect(own.db_path), client, token).site_id == "lab-two"


def test_a_site_cannot_submit_or_ask_with_another_sites_certificate(
    tmp_path, pki, mtls, synthetic_csv
) -> None:
    from node.ingest import ingest_file
    from node.mapping import Mapping
    from node.pseudonym import Pseudonymiser

    token, _ = enrolment.add_site(mtls.service.conn, "lab-two")
    own = node_with(tmp_path, mtls, pki, "lab-two", cert_of="lab-two")
    conn = node_store.connect(own.db_path)
    with CoordinatorClient(own) as client:
        enroll(own, conn, client, token)
    ingest_file(conn, synthetic_csv("lab-two"), Pseudonymiser(own.pseudonym_secret()), Mapping())
    _, payload = summary.build(conn, own, load_cached(own.standard_path), PERIOD, 1)
    envelope = dsse.sign(wire.SITE_SUMMARY, payload, own.signing_key())
    # The same data directory, but presenting lab-xyz's certificate.
    text = own.data_dir.joinpath("node.toml").read_text()
    own.data_dir.joinpath("node.toml").write_text(text.replace("lab-two.", "lab-xyz."))
    borrowed = node_config.load(own.data_dir)
    with CoordinatorClient(borrowed) as client:
        with pytest.raises(RpcFailure) as caught:
            client.submit(envelope)
        assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert "names lab-xyz, not site lab-two" in str(caught.value)
        request = cpb.BenchmarkRequestPayload(site_id="lab-two", period=PERIOD.label)
        with pytest.raises(RpcFailure) as caught:
            client.benchmark(
                dsse.sign(wire.BENCHMARK_REQUEST, wire.encode(request), own.signing_key())
            )
        assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert mtls.service.conn.execute("SELECT COUNT(*) FROM ledger").fetchone() == (0,)
    # Its own certificate: the same envelope is accepted.
    with CoordinatorClient(own) as client:
        assert client.submit(envelope).receipt.payload


def test_a_missing_client_certificate_is_named_not_socket_closed(tmp_path, pki, mtls) -> None:
    bare = node_config.init(
        tmp_path / "bare", "lab-two", f"127.0.0.1:{mtls.port}", ca_file=str(pki / "ca.pem")
    )
    with CoordinatorClient(bare) as client, pytest.raises(RpcFailure) as caught:
        client.standards()
    message = str(caught.value)
    assert "TLS" in message and "client certificate" in message and "cert_file" in message
    assert "cannot be reached" not in message


def test_a_coordinator_certificate_from_another_ca_is_named(tmp_path, pki, mtls) -> None:
    other = tmp_path / "other"
    subprocess.run(
        [str(ROOT / "deploy" / "pki" / "make-pki.sh"), "--out", str(other)],
        check=True,
        capture_output=True,
    )
    cfg = node_config.init(
        tmp_path / "n", "lab-two", f"127.0.0.1:{mtls.port}", ca_file=str(other / "ca.pem")
    )
    with CoordinatorClient(cfg) as client, pytest.raises(RpcFailure) as caught:
        client.standards()
    assert "does not trust the coordinator (server side)'s certificate" in str(caught.value)
    assert "ca_file" in str(caught.value)


def test_node_tls_files_are_checked_before_any_connection(tmp_path, pki) -> None:
    cases = {
        "not-pem": (str(tmp_path / "junk.pem"), "", "", "ca_file .* is not a PEM certificate"),
        "missing": (str(tmp_path / "absent.pem"), "", "", "cannot read .*ca_file"),
        "mismatch": (
            str(pki / "ca.pem"),
            str(pki / "sites" / "lab-two.pem"),
            str(pki / "sites" / "lab-xyz.key"),
            "key_file .* does not belong to cert_file",
        ),
    }
    (tmp_path / "junk.pem").write_text("not a certificate")
    for name, (ca, cert, key, words) in cases.items():
        cfg = node_config.init(
            tmp_path / name,
            "lab-two",
            "127.0.0.1:1",
            ca_file=ca,
            cert_file=cert,
            key_file=key,
        )
        with pytest.raises(ConfigError, match=f"this node \\(client side\\).*{words}"):
            CoordinatorClient(cfg)


def test_coordinator_tls_mistakes_are_named_at_start(tmp_path, pki) -> None:
    data = init_coordinator(tmp_path / "c")
    (tmp_path / "junk.pem").write_text("not a certificate")
    cases = [
        (TlsFiles(tmp_path / "junk.pem", pki / "coordinator.key"), "--tls-cert .* no PEM"),
        (
            TlsFiles(pki / "coordinator.pem", pki / "sites" / "lab-two.key"),
            "does not belong to the certificate",
        ),
        (
            TlsFiles(pki / "coordinator.pem", pki / "coordinator.key", tmp_path / "junk.pem"),
            "--client-ca .* no PEM",
        ),
    ]
    for tls, words in cases:
        with pytest.raises(SetupError, match=f"coordinator \\(server side\\): .*{words}") as caught:
            start(data, "127.0.0.1:0", tls=tls)
        assert "port in use" not in str(caught.value)
