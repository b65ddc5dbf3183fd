"""Submissions through a real gRPC server on 127.0.0.1: receipts, refusals, idempotence."""

from __future__ import annotations

import hashlib
import sqlite3

import grpc
import pytest

from coordinator import benchmark, enrolment
from node import outbox, send, summary
from node.client import RpcFailure
from node.standard import load_cached
from protos import dsse, keys, merkle, wire
from protos.errors import SignatureError
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1 import summary_pb2 as pb
from tests.conftest import PERIOD


def ledger_size(coordinator) -> int:
    return coordinator.service.conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]


def stored_summaries(coordinator) -> int:
    return coordinator.service.conn.execute("SELECT COUNT(*) FROM summaries").fetchone()[0]


def signed_summary(node, sequence: int | None = None, **changes):
    message, payload = summary.build(
        node.conn,
        node.config,
        load_cached(node.config.standard_path),
        PERIOD,
        sequence or summary.next_sequence(node.conn),
    )
    for name, value in changes.items():
        setattr(message, name, value)
    if changes:
        payload = wire.encode(message)
    return dsse.sign(wire.SITE_SUMMARY, payload, node.config.signing_key())


def test_submit_returns_a_receipt_signed_by_the_coordinator(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    envelope = signed_summary(node)
    response = node.client.submit(envelope)
    coordinator_key = keys.public_raw(coordinator.service.key)
    # Check the receipt independently of the node's own checking code.
    dsse.verify(
        response.receipt, {dsse.keyid(coordinator_key): coordinator_key}, expected_type=wire.RECEIPT
    )
    receipt = wire.decode(response.receipt.payload, lpb.Receipt)
    assert receipt.site_id == "lab-a" and receipt.period == PERIOD.label and receipt.sequence == 1
    assert receipt.envelope_sha256 == wire.envelope_sha256(envelope)
    # The leaf commits to a header describing the envelope (ledger.proto), written out here.
    header = lpb.LeafHeader(
        site_id="lab-a",
        period=PERIOD.label,
        sequence=1,
        payload_type=wire.SITE_SUMMARY,
        payload_sha256=hashlib.sha256(envelope.payload).hexdigest(),
        envelope_sha256=wire.envelope_sha256(envelope),
    )
    assert receipt.leaf_header == header
    leaf_data = b"\x00rarenet.leaf-header.v1\x00" + header.SerializeToString(deterministic=True)
    head = wire.decode(response.signed_tree_head.payload, lpb.TreeHead)
    merkle.verify_inclusion(
        merkle.leaf_hash(leaf_data),
        receipt.leaf_index,
        head.tree_size,
        list(response.inclusion_proof.hashes),
        head.root_hash,
    )
    # A receipt signed by any other key is not the coordinator's.
    stranger = keys.generate()
    with pytest.raises(SignatureError):
        dsse.verify(
            response.receipt, {dsse.keyid(stranger.public_key()): keys.public_raw(stranger)}
        )
    assert stored_summaries(coordinator) == 1


def test_outbox_flush_delivers_and_keeps_the_verified_receipt(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    queued = send.queue_summary(
        node.conn, node.config, load_cached(node.config.standard_path), PERIOD
    )
    assert queued.sequence == 1 and len(outbox.pending(node.conn)) == 1
    report = send.flush(node.conn, node.config, node.client)
    assert report.delivered == [(1, 0)] and report.pending == 0
    assert node.conn.execute("SELECT COUNT(*) FROM receipts").fetchone()[0] == 1
    # Nothing new: no second summary is signed.
    again = send.queue_summary(
        node.conn, node.config, load_cached(node.config.standard_path), PERIOD
    )
    assert again.sequence is None


def test_tampered_envelope_is_refused_and_nothing_stored(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    envelope = signed_summary(node)
    payload = bytearray(envelope.payload)
    payload[payload.index(b'"tests": ') + 9] ^= 0x01  # one digit of a count
    envelope.payload = bytes(payload)
    with pytest.raises(RpcFailure) as caught:
        node.client.submit(envelope)
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "does not verify" in str(caught.value)
    assert ledger_size(coordinator) == 0 and stored_summaries(coordinator) == 0


def test_unknown_site_is_refused(coordinator, node_factory, synthetic_csv) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    stranger = keys.generate()
    envelope = dsse.sign(wire.SITE_SUMMARY, signed_summary(node).payload, stranger)
    with pytest.raises(RpcFailure) as caught:
        node.client.submit(envelope)
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "no site has enrolled" in str(caught.value)
    assert ledger_size(coordinator) == 0


def test_garbage_payload_is_refused(coordinator, node_factory) -> None:
    node = node_factory("lab-a")
    for garbage in (b"\x00\xff not json", b'{"site_id": "lab-a", "patient_id": "x"}', b"[]"):
        envelope = dsse.sign(wire.SITE_SUMMARY, garbage, node.config.signing_key())
        with pytest.raises(RpcFailure) as caught:
            node.client.submit(envelope)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT, garbage
        assert "cannot be read as a site summary" in str(caught.value)
        # Signed by no enrolled key: refused for that, before the payload is read.
        with pytest.raises(RpcFailure) as caught:
            node.client.submit(dsse.sign(wire.SITE_SUMMARY, garbage, keys.generate()))
        assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED, garbage
    envelope = dsse.sign("application/x-unknown", b"{}", node.config.signing_key())
    with pytest.raises(RpcFailure) as caught:
        node.client.submit(envelope)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert ledger_size(coordinator) == 0 and stored_summaries(coordinator) == 0


def test_identical_envelope_returns_the_original_receipt(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    envelope = signed_summary(node)
    first = node.client.submit(envelope)
    second = node.client.submit(envelope)
    assert second.receipt == first.receipt
    assert ledger_size(coordinator) == 1


def test_replayed_sequence_is_refused(coordinator, node_factory, synthetic_csv) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    node.client.submit(signed_summary(node, sequence=5))
    with pytest.raises(RpcFailure) as caught:
        node.client.submit(signed_summary(node, sequence=5, software_version="different bytes"))
    assert caught.value.code == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(RpcFailure) as caught:
        node.client.submit(signed_summary(node, sequence=4, software_version="older"))
    assert caught.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert ledger_size(coordinator) == 1


@pytest.mark.parametrize(
    "changes,code,words",
    [
        ({"period": "2031Q1"}, grpc.StatusCode.INVALID_ARGUMENT, "has not started"),
        ({"period": "2026Q7"}, grpc.StatusCode.INVALID_ARGUMENT, "2026Q2, 2026-05 or 2026"),
        ({"schema_version": 99}, grpc.StatusCode.FAILED_PRECONDITION, "schema version 99"),
        ({"site_id": "lab-b"}, grpc.StatusCode.PERMISSION_DENIED, "signed by site lab-a"),
        (
            {"site_id": "lab-b", "schema_version": 99},
            grpc.StatusCode.PERMISSION_DENIED,
            "signed by site lab-a",
        ),
    ],
)
def test_bad_summaries_are_refused(
    coordinator, node_factory, synthetic_csv, changes, code, words
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    with pytest.raises(RpcFailure) as caught:
        node.client.submit(signed_summary(node, **changes))
    assert caught.value.code == code
    assert words in str(caught.value)
    assert ledger_size(coordinator) == 0


def test_a_summary_whose_cells_do_not_add_up_or_sequence_is_zero_is_refused(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    message = wire.decode(signed_summary(node).payload, pb.SiteSummary)
    stratum = next(s for s in message.strata if not s.withheld and not s.suppressed_cells)
    stratum.positive += 1
    zero = pb.SiteSummary()
    zero.CopyFrom(message)
    zero.sequence = 0
    for sent, words in (
        (
            message,
            f"stratum {stratum.biomarker}/{stratum.method}/{stratum.specimen}: cells do not add up",
        ),
        (zero, "sequence numbers start at 1"),
    ):
        with pytest.raises(RpcFailure) as caught:
            node.client.submit(
                dsse.sign(wire.SITE_SUMMARY, wire.encode(sent), node.config.signing_key())
            )
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT and words in str(caught.value)
    assert ledger_size(coordinator) == 0


def test_revoked_site_is_refused_but_its_entries_stay(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    node.client.submit(signed_summary(node, sequence=1))
    enrolment.revoke(coordinator.service.conn, "lab-a")
    with pytest.raises(RpcFailure) as caught:
        node.client.submit(signed_summary(node, sequence=2))
    assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "revoked" in str(caught.value)
    assert ledger_size(coordinator) == 1


def test_enrolment_token_is_one_time(coordinator, tmp_path) -> None:
    from node import config as node_config
    from node import store as node_store
    from node.client import CoordinatorClient
    from node.enroll import enroll

    token, _ = enrolment.add_site(coordinator.service.conn, "lab-z")
    cfg = node_config.init(tmp_path / "z", "lab-z", f"127.0.0.1:{coordinator.port}", insecure=True)
    with CoordinatorClient(cfg) as client:
        enroll(cfg, node_store.connect(cfg.db_path), client, token)
        cfg2 = node_config.init(
            tmp_path / "z2", "lab-z", f"127.0.0.1:{coordinator.port}", insecure=True
        )
        with pytest.raises(RpcFailure) as caught:
            enroll(cfg2, node_store.connect(cfg2.db_path), client, token)
        assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert "already used" in str(caught.value)
        with pytest.raises(RpcFailure) as caught:
            enroll(cfg2, node_store.connect(cfg2.db_path), client, "not-a-token")
        assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_enrolment_needs_proof_of_possession(coordinator, node_factory) -> None:
    node = node_factory("lab-a")
    token, _ = enrolment.add_site(coordinator.service.conn, "lab-b")
    claimed = keys.generate()
    request = cpb.EnrollPayload(site_id="lab-b", token=token, public_key=keys.public_raw(claimed))
    envelope = dsse.sign(
        wire.ENROLL, wire.encode(request), keys.generate()
    )  # not signed by the claimed key
    with pytest.raises(RpcFailure) as caught:
        node.client.enroll(envelope)
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "proof of possession" in str(caught.value)


def test_health_and_reflection_are_served(coordinator) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{coordinator.port}") as channel:
        check = health_pb2_grpc.HealthStub(channel).Check  # type: ignore[attr-defined]  # the types-grpcio-health-checking stub's HealthStub has no methods
        status = check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        # the types-grpcio-reflection stub leaves ServerReflectionInfo untyped ("Incomplete")
        info = stub.ServerReflectionInfo
        responses = info(  # type: ignore[operator]
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
        assert "rarenet.v1.Coordinator" in names


def test_insecure_serving_is_refused_off_loopback(tmp_path) -> None:
    from coordinator.config import SetupError, init
    from coordinator.server import start

    data = init(tmp_path / "c")
    with pytest.raises(SetupError, match="loopback"):
        start(data, "0.0.0.0:0", insecure=True)
    with pytest.raises(SetupError, match="TLS is the default"):
        start(data, "127.0.0.1:0")


def test_same_envelope_sent_concurrently_is_ledgered_once(
    coordinator, node_factory, synthetic_csv
) -> None:
    import threading

    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    envelope = signed_summary(node)
    responses = []
    threads = [
        threading.Thread(target=lambda: responses.append(node.client.submit(envelope)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(responses) == 8 and all(r.receipt == responses[0].receipt for r in responses)
    assert responses[0].checkpoint and all(r == responses[0] for r in responses)
    assert ledger_size(coordinator) == 1 and stored_summaries(coordinator) == 1


def test_one_coordinator_per_port_and_per_data_directory(coordinator, tmp_path) -> None:
    from coordinator.config import SetupError, init
    from coordinator.server import start

    with pytest.raises(SetupError, match="already serving"):
        start(coordinator.service.data, "127.0.0.1:0", insecure=True)
    other = init(tmp_path / "other")
    with pytest.raises(SetupError, match="cannot listen"):
        start(other, f"127.0.0.1:{coordinator.port}", insecure=True)
    second = start(other, "127.0.0.1:0", insecure=True)  # the failed attempt released its lock
    second.stop(grace=0)


def test_the_strata_view_lists_each_stratum_of_the_stored_summary(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    envelope = signed_summary(node)
    node.client.submit(envelope)
    sent = wire.decode(envelope.payload, pb.SiteSummary)
    conn = sqlite3.connect(coordinator.service.data.db)
    rows = conn.execute(
        "SELECT site_id, period, biomarker, method, specimen, histology_group, tests, positive,"
        " negative, failed, equivocal, withheld FROM strata ORDER BY rowid"
    ).fetchall()
    assert rows == [
        (
            "lab-a",
            PERIOD.label,
            s.biomarker,
            s.method,
            s.specimen,
            s.histology_group,
            s.tests,
            s.positive,
            s.negative,
            s.failed,
            s.equivocal,
            int(s.withheld),
        )
        for s in sent.strata
    ]
    assert len(rows) > 20


def test_a_stored_summary_is_kept_decoded_and_the_benchmark_reads_that(
    coordinator, node_factory, synthetic_csv
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    envelope = signed_summary(node)
    node.client.submit(envelope)
    conn = sqlite3.connect(coordinator.service.data.db)
    ((leaf, message),) = conn.execute("SELECT leaf_index, message FROM summary_messages").fetchall()
    (stored_leaf,) = conn.execute("SELECT leaf_index FROM summaries").fetchone()
    assert leaf == stored_leaf
    # The kept message is the signed payload, decoded independently here.
    assert pb.SiteSummary.FromString(message) == wire.decode(envelope.payload, pb.SiteSummary)
    # The benchmark's reader takes it from there: with the JSON payload made unreadable, the
    # kept message still gives the summary (and without it, the payload would be refused).
    conn.execute("UPDATE summaries SET payload = '{}'")
    conn.commit()
    ((site, (read_leaf, read)),) = benchmark.latest_summaries(conn, PERIOD.label).items()
    assert (site, read_leaf) == ("lab-a", leaf)
    assert read == wire.decode(envelope.payload, pb.SiteSummary)
