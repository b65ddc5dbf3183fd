"""Corrective actions at the centre: the checks a signed CorrectiveAction must pass at intake, its
row beside the ledger entry, and the latest version of every action for the report.

A lab opens an action on a flag (root cause, action, due date) and later closes it under the same
action_id; an action closed cannot be reopened or changed (open a new one)."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3

from coordinator.errors import (
    CoordinatorError,
    InvalidRequest,
    NotPermitted,
    WrongState,
)
from method.flags import RULES as FLAG_RULES
from protos import wire
from protos.errors import ContractError
from protos.periods import parse as parse_period
from protos.rarenet.v1 import action_pb2 as apb

RULES = frozenset(FLAG_RULES)
ACTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_TEXT = 2000


def check_content(action: apb.CorrectiveAction) -> None:
    """What can be checked from the payload alone (coordinator/decoding.py)."""
    if action.sequence < 1:
        raise InvalidRequest("sequence numbers start at 1")
    if not ACTION_ID.match(action.action_id):
        raise InvalidRequest(
            f"action_id {action.action_id!r}: letters, digits, '.', '_' and '-' only, at most 64"
        )
    try:
        parse_period(action.flag.period)
    except ContractError as exc:
        raise InvalidRequest(f"the flag's period: {exc}") from exc
    if action.flag.rule not in RULES:
        raise InvalidRequest(
            f"flag rule {action.flag.rule!r} is not a benchmark rule ({', '.join(sorted(RULES))})"
        )
    if not action.flag.subject:
        raise InvalidRequest("the flag's subject is empty (e.g. MET_EX14, cytology)")
    for name in ("root_cause", "action"):
        text = getattr(action, name)
        if not text.strip() or len(text) > MAX_TEXT:
            raise InvalidRequest(f"{name} must hold 1 to {MAX_TEXT} characters")
    if action.status not in ("open", "closed"):
        raise InvalidRequest(f"status {action.status!r} is neither open nor closed")
    dates = {"due": action.due} | (
        {"closed_on": action.closed_on} if action.status == "closed" else {}
    )
    for name, value in dates.items():
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None
    if action.status == "closed" and not action.closing_note.strip():
        raise InvalidRequest("a closed action needs a closing note: what was done and checked")


def check(
    conn: sqlite3.Connection,
    action: apb.CorrectiveAction,
    site_id: str,
    today: dt.date,
    problem: CoordinatorError | None,
) -> None:
    """The checks that need the signer's site, today's date and the actions already received."""
    if action.site_id != site_id:
        raise NotPermitted(
            f"the action names site {action.site_id!r} but is signed by site {site_id}'s key"
        )
    if problem is not None:
        raise problem
    if parse_period(action.flag.period).start > today:
        raise InvalidRequest(f"the flag's period {action.flag.period} has not started yet")
    previous = conn.execute(
        "SELECT status, payload FROM corrective_actions WHERE site_id = ? AND action_id = ?"
        " ORDER BY sequence DESC LIMIT 1",
        (site_id, action.action_id),
    ).fetchone()
    if previous is None and action.status == "closed":
        raise WrongState(f"action {action.action_id} was never opened; open it before closing it")
    if previous is not None:
        if previous[0] == "closed":
            raise WrongState(f"action {action.action_id} is closed; open a new action for new work")
        first = wire.decode(previous[1].encode("utf-8"), apb.CorrectiveAction)
        if (first.flag.period, first.flag.rule, first.flag.subject) != (
            action.flag.period,
            action.flag.rule,
            action.flag.subject,
        ):
            raise WrongState(
                f"action {action.action_id} is about another flag; an action keeps its flag"
            )


def store(
    conn: sqlite3.Connection,
    leaf_index: int,
    site_id: str,
    action: apb.CorrectiveAction,
    payload: bytes,
) -> None:
    """The action's row, in the intake's transaction."""
    conn.execute(
        "INSERT INTO corrective_actions (leaf_index, site_id, action_id, sequence, status, payload)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            leaf_index,
            site_id,
            action.action_id,
            action.sequence,
            action.status,
            payload.decode("utf-8"),
        ),
    )


def latest(conn: sqlite3.Connection) -> list[dict]:
    """Every action's latest version, as the report shows it (none in a store from before
    corrective actions, whose table coordinator/store.py creates at the next open)."""
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'corrective_actions'"
    ).fetchone():
        return []
    out = []
    for leaf, payload in conn.execute(
        """SELECT a.leaf_index, a.payload FROM corrective_actions a
           WHERE a.sequence = (SELECT MAX(sequence) FROM corrective_actions b
                               WHERE b.site_id = a.site_id AND b.action_id = a.action_id)
           ORDER BY a.site_id, a.action_id"""
    ):
        a = wire.decode(payload.encode("utf-8"), apb.CorrectiveAction)
        out.append(
            {
                "site_id": a.site_id,
                "action_id": a.action_id,
                "flag_period": a.flag.period,
                "rule": a.flag.rule,
                "subject": a.flag.subject,
                "root_cause": a.root_cause,
                "action": a.action,
                "due": a.due,
                "status": a.status,
                "closed_on": a.closed_on or None,
                "closing_note": a.closing_note or None,
                "leaf_index": leaf,
            }
        )
    return out
