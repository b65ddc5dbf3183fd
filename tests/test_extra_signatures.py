"""A site's submission carries exactly one signature: intake and the auditor agree on which one
counts. Before, intake accepted an envelope led by a junk signature while the auditor checked only
signatures[0], so the honest centre's next audit bundle failed."""

from __future__ import annotations

import grpc
import pytest

from auditor.verify import verify
from coordinator.audit_bundle import build
from coordinator.standards import load as load_standard
from node.client import RpcFailure
from node.send import flush, queue_summary
from node.standard import load_cached
from protos import dsse, keys, wire
from protos.errors import SignatureError
from protos.rarenet.v1.envelope_pb2 import Signature
from tests.conftest import PERIOD


def test_sole_signer_refuses_none_and_several() -> None:
    key = keys.generate()
    assert dsse.sole_signer(dsse.sign(wire.SITE_SUMMARY, b"{}", key)) == dsse.keyid(
        key.public_key()
    )
    with pytest.raises(SignatureError, match="carries 0 signatures"):
        dsse.sole_signer(dsse.sign(wire.SITE_SUMMARY, b"{}"))
    with pytest.raises(SignatureError, match="carries 2 signatures"):
        dsse.sole_signer(dsse.sign(wire.SITE_SUMMARY, b"{}", keys.generate(), key))


def test_an_envelope_with_a_junk_signature_is_refused_and_the_next_bundle_verifies(
    coordinator, node_factory, synthetic_csv, tmp_path
) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a", rows=2000))
    honest = queue_summary(node.conn, node.config, load_cached(node.config.standard_path), PERIOD)
    (envelope_bytes,) = node.conn.execute(
        "SELECT envelope FROM outbox WHERE sequence = ?", (honest.sequence,)
    ).fetchone()
    signed = wire.parse_envelope(envelope_bytes)
    junk_by_stranger = Signature(keyid=dsse.keyid(keys.generate().public_key()), sig=b"\x00" * 64)
    junk_by_the_site = Signature(keyid=signed.signatures[0].keyid, sig=b"\x01" * 64)
    for junk in (junk_by_stranger, junk_by_the_site):
        for lead in (True, False):
            forged = wire.parse_envelope(envelope_bytes)
            if lead:
                forged.signatures.insert(0, junk)
            else:
                forged.signatures.append(junk)
            with pytest.raises(RpcFailure) as caught:
                node.client.submit(forged)
            assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert "carries 2 signatures" in str(caught.value)
    ledger = coordinator.service.conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    assert ledger == 0
    # The honest envelope goes through, and the bundle built on it verifies.
    assert flush(node.conn, node.config, node.client).delivered
    data = coordinator.service.data
    out = tmp_path / "bundle.zip"
    build(data, load_standard(data.standard), PERIOD.label, out)
    result = verify(out)
    assert result.ok, [c for c in result.checks if not c.ok]
