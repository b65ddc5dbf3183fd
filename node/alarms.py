"""Ledger alarms that stand until they are resolved, in the node's one alarm table
(ledger_alarms, shared with the witness in node/witness.py).

A receipts alarm (the coordinator's log shrank, is not consistent with a tree head it signed
before, or lost a receipted entry) is kept with the latest signed tree head this node holds as
evidence (DATA_DIR/alarms/...), shown by `rarenet-node status` (which then exits 1), logged at
CRITICAL on every daemon run, and it pauses sending: the node does not feed a log it cannot trust.
`rarenet-node verify-receipts` lifts it once every kept receipt checks out again. A fork seen as a
witness (kind "checkpoint") stays open until the coordinating centre has answered (node/witness.py).
"""

from __future__ import annotations

import datetime as dt
import sqlite3

from node import witness
from node.config import NodeConfig
from node.errors import LedgerAlarm

RECEIPTS = "receipts"


def record(conn: sqlite3.Connection, config: NodeConfig, alarm: LedgerAlarm) -> None:
    """Keep the alarm, unless it was kept when it was raised."""
    if alarm.recorded:
        return
    row = conn.execute("SELECT signed FROM tree_heads ORDER BY tree_size DESC LIMIT 1").fetchone()
    evidence = {"latest-signed-tree-head.bin": bytes(row[0])} if row else {}
    witness.raise_alarm(conn, config, str(alarm), evidence, kind=RECEIPTS)
    alarm.recorded = True


def standing(conn: sqlite3.Connection) -> list[dict[str, str]]:
    """The alarms not lifted, oldest first."""
    return [
        {"raised_at": at, "reason": reason, "evidence": evidence, "kind": kind}
        for at, reason, evidence, kind in conn.execute(
            "SELECT raised_at, reason, evidence, kind FROM ledger_alarms"
            " WHERE lifted_at IS NULL ORDER BY id"
        )
    ]


def lift_receipt_alarms(conn: sqlite3.Connection) -> int:
    """After verify-receipts passed: the receipts alarms are lifted; returns how many."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return conn.execute(
        "UPDATE ledger_alarms SET lifted_at = ? WHERE lifted_at IS NULL AND kind = ?",
        (now, RECEIPTS),
    ).rowcount


def describe(alarm: dict[str, str]) -> str:
    lift = (
        "once the log is sound again, `rarenet-node verify-receipts` lifts it"
        if alarm["kind"] == RECEIPTS
        else "it stays until the coordinating centre has answered"
    )
    return (
        f"LEDGER ALARM since {alarm['raised_at']}: {alarm['reason']}. Evidence: "
        f"{alarm['evidence']}. Sending is paused. Tell the coordinating centre now; {lift}"
    )
