"""Corrective actions: the lab acknowledges a benchmark flag with a signed note (root cause, action,
due date) and later closes it. Each version is signed into the outbox and travels to the ledger like
a summary; the outbox row's period is `action:ACTION_ID`, so the lab's own actions are read back
from there (`rarenet-node action list`)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import sqlite3

from method.flags import RULES as FLAG_RULES
from node import id_screen, outbox, summary
from node.config import NodeConfig
from node.errors import BadInput, NodeError
from node.pseudonym import Pseudonymiser
from protos import dsse, wire
from protos.errors import ContractError
from protos.periods import parse as parse_period
from protos.rarenet.v1 import action_pb2 as apb
from protos.version import software_version

MAX_TEXT = 2000
ACTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _period_key(action_id: str) -> str:
    return f"action:{action_id}"


def parse_flag(text: str, period: str) -> apb.FlagReference:
    """`RULE:SUBJECT` as printed in the report (e.g. positivity_funnel:MET_EX14)."""
    rule, sep, subject = text.partition(":")
    if not sep or not rule.strip() or not subject.strip():
        raise BadInput(
            f"--flag {text!r}: write RULE:SUBJECT as the report shows it, e.g. "
            "positivity_funnel:MET_EX14 or failure_rate:cytology"
        )
    if rule.strip() not in FLAG_RULES:
        raise BadInput(
            f"--flag {text!r}: {rule.strip()!r} is not a rule a flag can name "
            f"({', '.join(FLAG_RULES)}); nothing was signed"
        )
    try:
        label = parse_period(period).label
    except ContractError as exc:
        raise BadInput(f"--period {period!r}: {exc}") from exc
    return apb.FlagReference(period=label, rule=rule.strip(), subject=subject.strip())


def _text(conn: sqlite3.Connection, config: NodeConfig, name: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise NodeError(f"--{name} is empty: say what you found and what you do")
    if len(value) > MAX_TEXT:
        raise NodeError(f"--{name} has {len(value)} characters; keep it under {MAX_TEXT}")
    named = id_screen.ids_in(conn, Pseudonymiser(config.pseudonym_secret()), value)
    if named:
        raise NodeError(
            f"--{name} names {', '.join(named)}, held by this node; test and patient ids never "
            "leave the site: describe the case without them (e.g. 'one cytology sample in "
            "August') and keep the ids in your LIMS record of this action"
        )
    return value


def _date(name: str, value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise BadInput(f"--{name} {value!r} is not a date; write YYYY-MM-DD") from None


def _queue(conn: sqlite3.Connection, config: NodeConfig, action: apb.CorrectiveAction) -> int:
    sequence = summary.next_sequence(conn)
    action.sequence = sequence
    action.site_id = config.site_id
    action.schema_version = wire.SCHEMA_VERSION
    action.software_version = software_version("rarenet-node")
    envelope = dsse.sign(wire.CORRECTIVE_ACTION, wire.encode(action), config.signing_key())
    outbox.add(conn, envelope, _period_key(action.action_id), sequence)
    return sequence


def add(
    conn: sqlite3.Connection,
    config: NodeConfig,
    flag: apb.FlagReference,
    root_cause: str,
    action: str,
    due: str,
    action_id: str | None = None,
) -> tuple[str, int]:
    """Sign a new corrective action into the outbox; returns (action id, sequence)."""
    action_id = action_id or f"{flag.period}-{secrets.token_hex(4)}"
    if not ACTION_ID.match(action_id):
        raise NodeError(
            f"action id {action_id!r}: letters, digits, '.', '_' and '-' only, at most 64"
        )
    if outbox.last_payload(conn, _period_key(action_id)) is not None:
        raise NodeError(
            f"action {action_id} exists already; close it with `rarenet-node action close`"
        )
    message = apb.CorrectiveAction(
        action_id=action_id,
        flag=flag,
        root_cause=_text(conn, config, "root-cause", root_cause),
        action=_text(conn, config, "action", action),
        due=_date("due", due),
        status="open",
    )
    return action_id, _queue(conn, config, message)


def current(conn: sqlite3.Connection, action_id: str) -> apb.CorrectiveAction:
    payload = outbox.last_payload(conn, _period_key(action_id))
    if payload is None:
        raise NodeError(f"no corrective action {action_id}; see `rarenet-node action list`")
    return wire.decode(payload, apb.CorrectiveAction)


def close(
    conn: sqlite3.Connection, config: NodeConfig, action_id: str, note: str, on: str | None = None
) -> int:
    """Sign the action again, closed, with what was done; returns the sequence."""
    message = current(conn, action_id)
    if message.status == "closed":
        raise NodeError(f"action {action_id} was closed on {message.closed_on} already")
    message.status = "closed"
    message.closed_on = _date("on", on or dt.date.today().isoformat())
    message.closing_note = _text(conn, config, "note", note)
    return _queue(conn, config, message)


def listing(conn: sqlite3.Connection) -> list[apb.CorrectiveAction]:
    """Every action's latest version, oldest first."""
    out = []
    for (period,) in conn.execute(
        "SELECT period FROM outbox WHERE period LIKE 'action:%' GROUP BY period ORDER BY MIN(sequence)"
    ):
        out.append(current(conn, period.removeprefix("action:")))
    return out
