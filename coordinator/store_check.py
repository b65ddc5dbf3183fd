"""The coordinator's own store, checked before it is served (and by `rarenet-coordinator check`).

A ledger that lost its last entries, a summary edited in place or a disk that flipped bytes must
not be served: a node would see a stale tree head and then INTERNAL on every submission, and an
edited summary would silently change the benchmark. The check:

- SQLite's own integrity check (flipped bytes, a truncated file);
- the ledger's leaf indexes run 0..n-1, each leaf hash and digest is that of its envelope;
- the latest signed tree head is the coordinator's signature, covers exactly the ledger's n
  entries, and its root is the Merkle root of the stored leaves;
- every stored summary and EQA response is, byte for byte, the payload of its ledger leaf.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field

from coordinator.config import DataDir, SetupError
from protos import dsse, keys, merkle, wire
from protos import leaf as leaf_form
from protos.errors import ContractError
from protos.rarenet.v1 import ledger_pb2 as lpb

SHOWN = 10  # problems listed in a message; the check command lists all


class StoreDamaged(SetupError):
    """The store fails its check; the message says what to do."""


@dataclass
class StoreReport:
    path: str
    leaves: int = 0
    summaries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def advice(self) -> str:
        return (
            f"Do not serve this store. Stop the coordinator, keep a copy of {self.path} for "
            "investigation, restore coordinator.db from the latest backup (docs/operations.md), "
            f"run `rarenet-coordinator check --data-dir {self.path}` until it passes, then serve "
            "again. Nodes keep every envelope until it is receipted and send the missing ones again."
        )

    def raise_if_failed(self) -> None:
        if self.ok:
            return
        shown = "; ".join(self.problems[:SHOWN])
        more = f" (and {len(self.problems) - SHOWN} more)" if len(self.problems) > SHOWN else ""
        raise StoreDamaged(
            f"the coordinator's store {self.path} fails its check: {shown}{more}. {self.advice()}"
        )


def check_store(data: DataDir) -> StoreReport:
    """Every problem found in the data directory's database (none: the store may be served)."""
    data.check()
    report = StoreReport(str(data.path))
    trusted = {dsse.keyid(keys.public_raw(data.signing_key())): keys.public_raw(data.signing_key())}
    try:
        conn = sqlite3.connect(f"file:{data.db}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        report.problems.append(f"the database cannot be opened ({exc})")
        return report
    try:
        _check(conn, trusted, report)
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"the database cannot be read ({exc}): the file is damaged")
    finally:
        conn.close()
    return report


def _check(conn: sqlite3.Connection, trusted: dict[str, bytes], report: StoreReport) -> None:
    integrity = [row[0] for row in conn.execute("PRAGMA quick_check")]
    if integrity != ["ok"]:
        report.problems.append(
            "SQLite finds the database file damaged: " + "; ".join(integrity[:SHOWN])
        )
        return
    leaves: list[bytes] = []
    payloads: dict[int, tuple[str, str, str, int, bytes]] = {}
    # A store from before leaf headers has no leaf_header column until it is served once.
    columns = {row[1] for row in conn.execute("PRAGMA table_info(ledger)")}
    header_column = "leaf_header" if "leaf_header" in columns else "NULL"
    rows = conn.execute(
        "SELECT leaf_index, leaf_hash, envelope, envelope_sha256, site_id, payload_type, period,"
        f" sequence, {header_column} FROM ledger ORDER BY leaf_index"
    )
    for index, leaf, blob, sha, site, payload_type, period, sequence, header in rows:
        blob = bytes(blob)
        if index != len(leaves):
            report.problems.append(
                f"ledger entry {len(leaves)} is missing (the next one stored is {index})"
            )
            return
        leaves.append(bytes(leaf))
        # The leaf data is the envelope's header (protos/leaf.py), or for an older leaf the
        # serialised envelope itself.
        data = blob if header is None else bytes(header)
        if bytes(leaf) != merkle.leaf_hash(data):
            report.problems.append(f"ledger leaf {index}: the leaf hash is not that of its data")
        if hashlib.sha256(blob).hexdigest() != sha:
            report.problems.append(f"ledger leaf {index}: the envelope digest does not match")
        try:
            envelope = wire.parse_envelope(blob)
            if header is not None and leaf_form.header_data(leaf_form.header_for(envelope)) != data:
                report.problems.append(
                    f"ledger leaf {index}: the leaf header does not describe its envelope"
                )
            payload = envelope.payload
        except ContractError:
            report.problems.append(f"ledger leaf {index}: the envelope cannot be read")
            continue
        payloads[index] = (payload_type, site, period, sequence, _digest(payload))
    report.leaves = len(leaves)
    _check_head(conn, trusted, leaves, report)
    _check_payloads(conn, payloads, report)


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)


def _digest(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()


def _check_head(
    conn: sqlite3.Connection, trusted: dict[str, bytes], leaves: list[bytes], report: StoreReport
) -> None:
    row = conn.execute("SELECT signed FROM tree_heads ORDER BY tree_size DESC LIMIT 1").fetchone()
    if row is None:
        if leaves:
            report.problems.append(
                f"the ledger holds {len(leaves)} entries but no signed tree head"
            )
        return
    try:
        signed = wire.parse_envelope(bytes(row[0]))
        dsse.verify(signed, trusted, expected_type=wire.TREE_HEAD)
        head = wire.decode(signed.payload, lpb.TreeHead)
    except ContractError as exc:
        report.problems.append(
            f"the latest tree head is not signed by this coordinator's key: {exc}"
        )
        return
    if head.tree_size != len(leaves):
        report.problems.append(
            f"the latest signed tree head covers {head.tree_size} ledger entries but the ledger "
            f"holds {len(leaves)}"
            + (": entries were lost (a truncated ledger)" if head.tree_size > len(leaves) else "")
        )
        return
    if merkle.Tree(leaves).root() != head.root_hash:
        report.problems.append(
            "the Merkle root of the stored ledger is not the root of the latest signed tree head: "
            "ledger entries were changed"
        )


def _check_payloads(
    conn: sqlite3.Connection,
    payloads: dict[int, tuple[str, str, str, int, bytes]],
    report: StoreReport,
) -> None:
    stored: set[int] = set()
    for index, site, period, sequence, payload in conn.execute(
        "SELECT leaf_index, site_id, period, sequence, payload FROM summaries"
    ):
        report.summaries += 1
        stored.add(index)
        leaf = payloads.get(index)
        if leaf is None or leaf[0] != wire.SITE_SUMMARY:
            report.problems.append(
                f"summary of leaf {index} has no site-summary leaf in the ledger"
            )
        elif _digest(_bytes(payload)) != leaf[4]:
            report.problems.append(
                f"summary of leaf {index} ({site}, {period}) differs from the signed payload in "
                "the ledger: it was edited"
            )
        elif (site, period, sequence) != leaf[1:4]:
            report.problems.append(f"summary of leaf {index}: site, period or sequence was edited")
    for index, payload in conn.execute("SELECT leaf_index, payload FROM eqa_responses"):
        stored.add(index)
        leaf = payloads.get(index)
        if leaf is None or leaf[0] != wire.EQA_RESPONSE or _digest(_bytes(payload)) != leaf[4]:
            report.problems.append(
                f"EQA response of leaf {index} differs from the signed payload in the ledger"
            )
    for index, payload in conn.execute("SELECT leaf_index, payload FROM corrective_actions"):
        stored.add(index)
        leaf = payloads.get(index)
        if leaf is None or leaf[0] != wire.CORRECTIVE_ACTION or _digest(_bytes(payload)) != leaf[4]:
            report.problems.append(
                f"corrective action of leaf {index} differs from the signed payload in the ledger"
            )
    stored_types = (wire.SITE_SUMMARY, wire.EQA_RESPONSE, wire.CORRECTIVE_ACTION)
    for index, (payload_type, *_rest) in payloads.items():
        if payload_type in stored_types and index not in stored:
            report.problems.append(f"ledger leaf {index}: its {payload_type} is not stored")
