"""Submit: verify a signed site summary, append it to the ledger, store it, sign a receipt.

The ledger entry, the summary, its strata, the receipt and the tree head are written in one
transaction, so a crash leaves either all of them or none. An identical envelope submitted again
gets its original receipt and no second ledger entry.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import threading

from protos import dsse, merkle, wire
from protos.errors import ContractError
from protos.periods import parse as parse_period
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1 import summary_pb2 as pb
from protos.rarenet.v1.envelope_pb2 import Envelope
from coordinator.errors import (AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied,
                                Unauthenticated)
from coordinator.ledger import Ledger

KNOWN_SCHEMAS = {wire.SCHEMA_VERSION}
CELLS = ("positive", "negative", "failed", "equivocal")


def authenticate(conn: sqlite3.Connection, envelope: Envelope, expected_type: str) -> tuple[str, str]:
    """The (site id, key id) of the current, unrevoked key that signed the envelope."""
    if envelope.payload_type != expected_type:
        raise InvalidArgument(f"payload type {envelope.payload_type!r} is not {expected_type}; "
                              "upgrade rarenet-node or check what is being sent")
    keyids = [s.keyid for s in envelope.signatures]
    if not keyids:
        raise Unauthenticated("the envelope is not signed; sign it with the site's enrolled key")
    marks = ",".join("?" * len(keyids))
    rows = conn.execute(
        f"""SELECT k.keyid, k.site_id, k.public_key, k.retired_at, s.status FROM site_keys k
            JOIN sites s USING (site_id) WHERE k.keyid IN ({marks})""", keyids).fetchall()
    if not rows:
        raise Unauthenticated("the envelope is signed by a key no site has enrolled; run `rarenet-node enroll`")
    keyid, site_id, public_key, retired_at, status = rows[0]
    try:
        dsse.verify(envelope, {keyid: bytes(public_key)}, expected_type=expected_type)
    except ContractError as exc:
        raise Unauthenticated(f"signature check failed for site {site_id}: {exc}") from exc
    if status == "revoked":
        raise PermissionDenied(f"site {site_id} is revoked; its submissions are refused. Contact the coordinating centre")
    if retired_at:
        raise Unauthenticated(f"site {site_id} signed with a key retired at {retired_at}; sign with the current key")
    return site_id, keyid


def check_summary(summary: pb.SiteSummary, site_id: str, today: dt.date) -> None:
    if not summary.site_id or not summary.period:
        raise InvalidArgument("the payload cannot be read as a site summary: site_id and period are required")
    if summary.site_id != site_id:
        raise PermissionDenied(f"the summary names site {summary.site_id!r} but is signed by site {site_id}'s key")
    if summary.schema_version not in KNOWN_SCHEMAS:
        raise FailedPrecondition(f"summary schema version {summary.schema_version} is not known here "
                                 f"(known: {sorted(KNOWN_SCHEMAS)}); upgrade rarenet-node or the coordinator")
    try:
        period = parse_period(summary.period)
    except ContractError as exc:
        raise InvalidArgument(str(exc)) from exc
    if period.start > today:
        raise InvalidArgument(f"period {period} has not started yet; summaries are for past or current periods")
    if summary.sequence < 1:
        raise InvalidArgument("sequence numbers start at 1")
    for s in summary.strata:
        if not s.withheld and not s.suppressed_cells and sum(getattr(s, c) for c in CELLS) != s.tests:
            raise InvalidArgument(f"stratum {s.biomarker}/{s.method}/{s.specimen}: cells do not add up to tests")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Intake:
    def __init__(self, conn: sqlite3.Connection, ledger: Ledger) -> None:
        self.conn = conn
        self.ledger = ledger
        self.lock = threading.Lock()

    def submit(self, envelope: Envelope) -> cpb.SubmitResponse:
        data = wire.envelope_bytes(envelope)
        leaf = merkle.leaf_hash(data)
        sha = wire.envelope_sha256(envelope)
        with self.lock:
            existing = self._existing(sha)
            if existing:
                return existing
            site_id, keyid = authenticate(self.conn, envelope, wire.SITE_SUMMARY)
            try:
                summary = wire.decode(envelope.payload, pb.SiteSummary)
            except ContractError as exc:
                raise InvalidArgument(f"the payload cannot be read as a site summary: {exc}") from exc
            received = _now()
            check_summary(summary, site_id, received.date())
            (last,) = self.conn.execute("SELECT MAX(sequence) FROM ledger WHERE site_id = ?", (site_id,)).fetchone()
            if last is not None and summary.sequence <= last:
                raise AlreadyExists(
                    f"sequence {summary.sequence} is not after the last accepted sequence {last} of site {site_id}: "
                    "a replay, or a node restored from an old backup. Build a new summary with `rarenet-node submit`")
            index = len(self.ledger)
            head, signed_head = self.ledger.sign_head(index + 1, self.ledger.pending_root(leaf))
            receipt = lpb.Receipt(site_id=site_id, period=summary.period, sequence=summary.sequence,
                                  envelope_sha256=sha, leaf_index=index, received_at=received.isoformat(timespec="seconds"),
                                  tree_head=head, payload_type=envelope.payload_type)
            signed_receipt = dsse.sign(wire.RECEIPT, wire.encode(receipt), self.ledger.key)
            self._store(index, leaf, data, sha, site_id, keyid, envelope, summary, received, signed_receipt,
                        head, signed_head)
            self.ledger.committed(leaf, signed_head)
            return cpb.SubmitResponse(receipt=signed_receipt, signed_tree_head=signed_head,
                                      inclusion_proof=self.ledger.inclusion(index, index + 1))

    def _existing(self, sha: str) -> cpb.SubmitResponse | None:
        row = self.conn.execute("SELECT leaf_index, receipt, tree_head FROM ledger WHERE envelope_sha256 = ?",
                                (sha,)).fetchone()
        if row is None:
            return None
        index, receipt, head = row
        signed_head = wire.parse_envelope(head)
        size = wire.decode(signed_head.payload, lpb.TreeHead).tree_size
        return cpb.SubmitResponse(receipt=wire.parse_envelope(receipt), signed_tree_head=signed_head,
                                  inclusion_proof=self.ledger.inclusion(index, size))

    def _store(self, index, leaf, data, sha, site_id, keyid, envelope, summary, received, signed_receipt,
               head, signed_head) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO ledger (leaf_index, leaf_hash, envelope, envelope_sha256, site_id, keyid, payload_type,"
                " period, sequence, received_at, receipt, tree_head) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (index, leaf, data, sha, site_id, keyid, envelope.payload_type, summary.period, summary.sequence,
                 received.isoformat(timespec="seconds"), wire.envelope_bytes(signed_receipt),
                 wire.envelope_bytes(signed_head)))
            conn.execute("INSERT INTO summaries (leaf_index, site_id, period, sequence, standard_version, payload)"
                         " VALUES (?, ?, ?, ?, ?, ?)",
                         (index, site_id, summary.period, summary.sequence, summary.standard_version,
                          envelope.payload.decode("utf-8")))
            conn.executemany(
                "INSERT INTO strata VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(index, site_id, summary.period, s.biomarker, s.method, s.specimen, s.histology_group, s.tests,
                  s.positive, s.negative, s.failed, s.equivocal, int(s.withheld)) for s in summary.strata])
            conn.execute("INSERT INTO tree_heads (tree_size, root_hash, timestamp_ms, signed) VALUES (?, ?, ?, ?)",
                         (head.tree_size, head.root_hash, head.timestamp_ms, wire.envelope_bytes(signed_head)))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
