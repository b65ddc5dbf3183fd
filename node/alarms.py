"""A ledger alarm that stands until it is resolved: the coordinator's log forked, shrank or lost a
receipted entry. It is kept in the node's database, shown by `rarenet-node status`, logged at
CRITICAL on every daemon run, and it pauses sending (the node does not feed a log it cannot
trust). `rarenet-node verify-receipts` lifts it once every kept receipt checks out again."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from node import store
from node.errors import LedgerAlarm

KEY = "ledger_alarm"


def record(conn: sqlite3.Connection, alarm: LedgerAlarm) -> dict:
    """Keep the alarm (the first one raised stays, with how many times it was raised since)."""
    standing = current(conn)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if standing is None:
        standing = {"message": str(alarm), "since": now, "times": 0}
    standing["times"] += 1
    standing["last"] = now
    standing["last_message"] = str(alarm)
    store.set_state(conn, KEY, json.dumps(standing))
    return standing


def current(conn: sqlite3.Connection) -> dict | None:
    raw = store.get_state(conn, KEY)
    return json.loads(raw) if raw else None


def clear(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM state WHERE key = ?", (KEY,))


def describe(standing: dict) -> str:
    return (
        f"LEDGER ALARM standing since {standing['since']} (raised {standing['times']} time(s)): "
        f"{standing['message']}. Sending is paused. Tell the coordinating centre now; once the "
        "log is sound again, `rarenet-node verify-receipts` lifts the alarm"
    )
