"""Completeness: a bundle must hold every submission the ledger accepted for its periods. A
dishonest coordinator (holding the real key) that leaves out the under-detecting lab and recomputes
the report is caught, and the missing leaf is named; stores from before leaf headers still open
and their bundles still prove completeness."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import sqlite3
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import main as audit_cli
from auditor.verify import verify
from coordinator import benchmark
from coordinator.audit_bundle import build
from coordinator.config import init as init_coordinator
from coordinator.server import start
from coordinator.standards import load as load_standard
from node.client import CoordinatorClient
from node.receipts import coordinator_key, verify_all
from node.send import flush, queue_summary
from node.standard import load_cached
from protos import dsse, keys, leaf, merkle, wire
from protos.rarenet.v1 import coordinator_pb2_grpc as cgrpc
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1 import summary_pb2 as pb
from tests.conftest import PERIOD, make_node
from tests.test_audit import bundle, rewrite  # noqa: F401 - the fixture, and a dishonest re-signer


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def site_leaf(files: dict[str, bytes], site: str) -> int:
    for name, data in files.items():
        if name.startswith("envelopes/"):
            summary = wire.decode(wire.parse_envelope(data).payload, pb.SiteSummary)
            if summary.site_id == site:
                return int(name.split("/")[1].split(".")[0])
    raise AssertionError(f"no envelope of {site}")


def report_without(files: dict[str, bytes], left_out: int, standard) -> bytes:
    """The report a dishonest coordinator recomputes from the summaries it kept."""
    kept = {}
    for name, data in files.items():
        if name.startswith("envelopes/") and name != f"envelopes/{left_out}.envelope":
            summary = wire.decode(wire.parse_envelope(data).payload, pb.SiteSummary)
            kept[summary.site_id] = (int(name.split("/")[1].split(".")[0]), summary)
    inputs = benchmark.Inputs({PERIOD.label: kept}, set(), [])
    full = benchmark.compute_from(inputs, PERIOD.label, standard)
    return json.dumps(full, sort_keys=True, ensure_ascii=False, indent=1).encode() + b"\n"


def test_a_bundle_leaving_out_an_accepted_summary_fails_naming_the_leaf(
    bundle,  # noqa: F811
    coordinator,
    tmp_path,
) -> None:
    path, key = bundle
    files = members(path)
    hidden = site_leaf(files, "lab-2")  # the DNA-only lab that misses MET exon 14
    standard = load_standard(coordinator.service.data.standard)
    forged = rewrite(
        path,
        tmp_path / "forged.zip",
        key=key,
        remove=[f"envelopes/{hidden}.envelope", f"receipts/{hidden}.envelope"]
        + [f"proofs/{hidden}.json"],
        change={"report/benchmark.json": lambda _: report_without(files, hidden, standard)},
    )
    pinned = tmp_path / "coordinator.pem"
    pinned.write_bytes(keys.public_pem(keys.public_raw(key)))
    result = verify(forged, pinned)
    failed = {c.name: c.detail for c in result.checks if not c.ok}
    # Everything else about the forgery holds: signatures, hashes, the recomputed statistics.
    assert set(failed) == {f"ledger leaf {hidden}", "completeness"}, failed
    assert (
        f"leaf {hidden} (site lab-2, period {PERIOD.label}, sequence 1)"
        in (failed[f"ledger leaf {hidden}"])
    )
    run = CliRunner().invoke(audit_cli, ["verify", str(forged), "--coordinator-key", str(pinned)])
    assert run.exit_code == 1
    assert f"FAIL ledger leaf {hidden}: missing: leaf {hidden} (site lab-2" in run.output


def test_leaves_left_out_of_the_listing_do_not_lead_to_the_signed_root(
    bundle,  # noqa: F811
    tmp_path,
) -> None:
    path, key = bundle
    files = members(path)
    hidden = site_leaf(files, "lab-2")

    def drop(data: bytes) -> bytes:
        listing = json.loads(data)
        del listing["leaves"][hidden]
        listing["tree_size"] -= 1
        return json.dumps(listing).encode()

    forged = rewrite(path, tmp_path / "f.zip", key=key, change={"ledger/leaves.json": drop})
    failed = {c.name: c.detail for c in verify(forged).checks if not c.ok}
    assert "does not list the 3 leaves" in failed["completeness"]

    def swap(data: bytes) -> bytes:  # same count, the hidden leaf replaced by a copy of another
        listing = json.loads(data)
        listing["leaves"][hidden] = listing["leaves"][(hidden + 1) % 3]
        return json.dumps(listing).encode()

    forged = rewrite(path, tmp_path / "g.zip", key=key, change={"ledger/leaves.json": swap})
    failed = {c.name: c.detail for c in verify(forged).checks if not c.ok}
    assert "do not lead to the signed root" in failed["completeness"]


def append_as_before_leaf_headers(conn: sqlite3.Connection, key, envelope, keyid: str) -> None:
    """What coordinators wrote before leaf headers (frozen here): the leaf data is the envelope,
    the receipt names no header."""
    data = wire.envelope_bytes(envelope)
    hashes = [bytes(h) for (h,) in conn.execute("SELECT leaf_hash FROM ledger ORDER BY leaf_index")]
    index = len(hashes)
    tree = merkle.Tree([*hashes, merkle.leaf_hash(data)])
    head = lpb.TreeHead(tree_size=index + 1, root_hash=tree.root(), timestamp_ms=1)
    signed_head = dsse.sign(wire.TREE_HEAD, wire.encode(head), key)
    summary = wire.decode(envelope.payload, pb.SiteSummary)
    received = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    receipt = lpb.Receipt(
        site_id=summary.site_id,
        period=summary.period,
        sequence=summary.sequence,
        envelope_sha256=wire.envelope_sha256(envelope),
        leaf_index=index,
        received_at=received,
        tree_head=head,
        payload_type=envelope.payload_type,
    )
    signed_receipt = dsse.sign(wire.RECEIPT, wire.encode(receipt), key)
    with conn:
        conn.execute(
            "INSERT INTO ledger (leaf_index, leaf_hash, envelope, envelope_sha256, site_id, keyid,"
            " payload_type, period, sequence, received_at, receipt, tree_head)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                index,
                merkle.leaf_hash(data),
                data,
                wire.envelope_sha256(envelope),
                summary.site_id,
                keyid,
                envelope.payload_type,
                summary.period,
                summary.sequence,
                received,
                wire.envelope_bytes(signed_receipt),
                wire.envelope_bytes(signed_head),
            ),
        )
        conn.execute(
            "INSERT INTO summaries (leaf_index, site_id, period, sequence, standard_version,"
            " payload) VALUES (?, ?, ?, ?, ?, ?)",
            (
                index,
                summary.site_id,
                summary.period,
                summary.sequence,
                summary.standard_version,
                envelope.payload.decode(),
            ),
        )
        conn.execute(
            "INSERT INTO tree_heads (tree_size, root_hash, timestamp_ms, signed) VALUES (?,?,?,?)",
            (head.tree_size, head.root_hash, head.timestamp_ms, wire.envelope_bytes(signed_head)),
        )


def test_a_store_from_before_leaf_headers_opens_and_its_bundles_prove_completeness(
    tmp_path, synthetic_csv
) -> None:
    data = init_coordinator(tmp_path / "coordinator")
    running = start(data, "127.0.0.1:0", insecure=True)
    nodes = []
    for i, profile in enumerate(("normal", "normal", "dna_only")):
        node = make_node(tmp_path, running, f"lab-{i}")
        node.ingest(synthetic_csv(f"lab-{i}", rows=2000, seed=i, profiles=(profile,)))
        queue_summary(node.conn, node.config, load_cached(node.config.standard_path), PERIOD)
        nodes.append(node)
    running.stop(grace=1)
    # The store as an older coordinator left it: no leaf_header column, two whole-envelope leaves.
    conn = sqlite3.connect(data.db)
    conn.execute("ALTER TABLE ledger DROP COLUMN leaf_header")
    conn.execute("PRAGMA user_version = 0")  # older coordinators did not number their layouts
    key = data.signing_key()
    for node in nodes[:2]:
        (blob,) = node.conn.execute("SELECT envelope FROM outbox").fetchone()
        keyid = dsse.keyid(node.config.signing_key().public_key())
        append_as_before_leaf_headers(conn, key, wire.parse_envelope(blob), keyid)
    conn.close()
    running = start(data, "127.0.0.1:0", insecure=True)
    try:
        for node in nodes:  # the restarted coordinator listens on another port
            node.client.close()
            node.config = dataclasses.replace(node.config, coordinator=f"127.0.0.1:{running.port}")
            node.client = CoordinatorClient(node.config)
            assert flush(node.conn, node.config, node.client).delivered  # receipts check out
        for node in nodes:
            checked = verify_all(node.conn, node.client, coordinator_key(node.config))
            assert checked.checked == 1 and checked.tree_size == 3
        forms = [
            h is None
            for (h,) in running.service.conn.execute(
                "SELECT leaf_header FROM ledger ORDER BY leaf_index"
            )
        ]
        assert forms == [True, True, False]  # old leaves kept their form; the new one a header
        out = tmp_path / "bundle.zip"
        build(data, load_standard(data.standard), PERIOD.label, out)
    finally:
        for node in nodes:
            node.client.close()
        running.stop(grace=1)
    result = verify(out)
    assert result.ok, [c for c in result.checks if not c.ok]
    listing = json.loads(members(out)["ledger/leaves.json"])["leaves"]
    assert listing[0] == {"envelope": "envelopes/0.envelope"} and "header" in listing[2]
    assert leaf.parse_header(base64.b64decode(listing[2]["header"])).site_id == "lab-2"
    # Hiding a whole-envelope leaf is caught as well: moved out of envelopes/, it is still read.
    files = members(out)
    standard = load_standard(data.standard)
    forged = rewrite(
        out,
        tmp_path / "forged.zip",
        key=key,
        remove=["envelopes/1.envelope", "receipts/1.envelope", "proofs/1.json"],
        change={
            "ledger/leaves.json": lambda d: d.replace(
                b'"envelopes/1.envelope"', b'"ledger/legacy/1.envelope"'
            ),
            "report/benchmark.json": lambda _: report_without(files, 1, standard),
        },
        add={"ledger/legacy/1.envelope": files["envelopes/1.envelope"]},
    )
    failed = {c.name: c.detail for c in verify(forged).checks if not c.ok}
    assert set(failed) == {"ledger leaf 1", "completeness"}, failed
    assert f"leaf 1 (site lab-1, period {PERIOD.label}, sequence 1)" in failed["ledger leaf 1"]
    # Only a site's own bundle may give a leaf by its hash alone.
    blob = files["envelopes/1.envelope"]
    hashed = rewrite(
        out,
        tmp_path / "hashed.zip",
        key=key,
        change={
            "ledger/leaves.json": lambda d: d.replace(
                b'{\n   "envelope": "envelopes/1.envelope"\n  }',
                json.dumps({"leaf_hash": merkle.leaf_hash(blob).hex()}).encode(),
            )
        },
    )
    failed = {c.name: c.detail for c in verify(hashed).checks if not c.ok}
    assert "may give a leaf by its hash alone" in failed["completeness"], failed
    # A site's own bundle shows peers' whole-envelope leaves by hash only (their envelopes would
    # name them with their figures), and says so.
    for site, own in (("lab-2", 2), ("lab-0", 0)):
        out = tmp_path / f"{site}.zip"
        build(data, load_standard(data.standard), PERIOD.label, out, site=site)
        files = members(out)
        assert [n for n in files if n.startswith(("envelopes/", "ledger/legacy/"))] == [
            f"envelopes/{own}.envelope"
        ]
        listing = json.loads(files["ledger/leaves.json"])["leaves"]
        peers = [i for i in range(len(listing)) if i != own]  # old-form and header leaves alike
        assert all(set(listing[i]) == {"leaf_hash"} for i in peers)
        result = verify(out)
        assert result.ok, [c for c in result.checks if not c.ok]
        detail = {c.name: c.detail for c in result.checks}["completeness"]
        assert f"{len(peers)} leaves are other sites' by the coordinator's word" in detail


def test_a_node_from_before_leaf_headers_gets_receipts_it_can_check(
    coordinator, node_factory, synthetic_csv, tmp_path
) -> None:
    old, new = node_factory("lab-old"), node_factory("lab-new")
    for node in (old, new):
        node.ingest(synthetic_csv(node.config.site_id, rows=2000))
        queue_summary(node.conn, node.config, load_cached(node.config.standard_path), PERIOD)
    (blob,) = old.conn.execute("SELECT envelope FROM outbox").fetchone()
    envelope = wire.parse_envelope(blob)
    # An older node calls Submit without saying it reads leaf headers.
    response = cgrpc.CoordinatorStub(old.client.channel).Submit(envelope, timeout=15)
    receipt = wire.decode(response.receipt.payload, lpb.Receipt)
    assert not receipt.HasField("leaf_header")
    head = wire.decode(response.signed_tree_head.payload, lpb.TreeHead)
    merkle.verify_inclusion(  # what such a node checks: the leaf is the envelope itself
        merkle.leaf_hash(blob),
        receipt.leaf_index,
        head.tree_size,
        list(response.inclusion_proof.hashes),
        head.root_hash,
    )
    assert flush(new.conn, new.config, new.client).delivered
    assert flush(old.conn, old.config, old.client).delivered  # the original receipt, checked
    data = coordinator.service.data
    out = tmp_path / "bundle.zip"
    build(data, load_standard(data.standard), PERIOD.label, out)
    result = verify(out)
    assert result.ok, [c for c in result.checks if not c.ok]
    listing = json.loads(members(out)["ledger/leaves.json"])["leaves"]
    assert listing[0] == {"envelope": "envelopes/0.envelope"} and "header" in listing[1]


def test_a_site_view_bundle_is_complete_too(coordinator, node_factory, synthetic_csv, tmp_path):
    for i, profile in enumerate(("normal", "dna_only")):
        node = node_factory(f"lab-{i}")
        node.ingest(synthetic_csv(f"lab-{i}", rows=2000, seed=i, profiles=(profile,)))
        queue_summary(node.conn, node.config, load_cached(node.config.standard_path), PERIOD)
        assert flush(node.conn, node.config, node.client).delivered
    data = coordinator.service.data
    out = tmp_path / "site.zip"
    manifest = build(data, load_standard(data.standard), PERIOD.label, out, site="lab-0")
    assert manifest["site"] == "lab-0"
    result = verify(out)
    assert result.ok, [c for c in result.checks if not c.ok]
    shown = CliRunner().invoke(audit_cli, ["show", str(out)])
    assert shown.exit_code == 0 and "lab-0:" in shown.output and "lab-1" not in shown.output
    files = members(out)
    with pytest.raises(AssertionError):
        site_leaf(files, "lab-1")  # no peer's summary in a site's own bundle
    hidden = site_leaf(files, "lab-0")
    forged = rewrite(
        out,
        tmp_path / "forged.zip",
        key=data.signing_key(),
        remove=[f"envelopes/{hidden}.envelope", f"receipts/{hidden}.envelope"],
    )
    failed = {c.name: c.detail for c in verify(forged).checks if not c.ok}
    assert (
        f"leaf {hidden} (site lab-0, period {PERIOD.label}, sequence 1)"
        in (failed[f"ledger leaf {hidden}"])
    )
