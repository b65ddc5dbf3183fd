"""The node as a witness of the coordinator's log (C2SP tlog-cosignature).

Each checkpoint the node receives (with a receipt, or published by GetCheckpoint) is checked
against the coordinator's pinned key and kept. A checkpoint whose size the node has already seen
with another root is a fork: the node raises a ledger alarm and keeps both signed checkpoints on
disk as evidence (D/alarms/...). Before cosigning the latest checkpoint, the node proves it
consistent with the last one it cosigned (or, the first time, with the largest tree head it has
verified); then it cosigns (cosignature/v1, with the site key, under the opaque name
rarenet.witness/<first 16 hex of its key id>) and hands the cosignature to the coordinator. It
also checks the other witnesses' cosignatures shown on the checkpoints it sees, and remembers
which witnesses (by opaque id: a lab does not learn its peers' names) cosigned the same
checkpoint it did.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from dataclasses import dataclass, field

from node.client import CoordinatorClient, RpcFailure
from node.config import NodeConfig
from node.errors import LedgerAlarm
from node.receipts import coordinator_key
from protos import checkpoint, cosignature, merkle, note
from protos.errors import ContractError
from protos.keys import public_raw
from protos.rarenet.v1 import coordinator_pb2 as cpb


@dataclass
class Seen:
    """A verified coordinator checkpoint: what it says, the note, and the witnesses on it."""

    checkpoint: checkpoint.Checkpoint
    note: note.Note
    cosigners: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)  # cosignature lines that failed


@dataclass
class WitnessReport:
    tree_size: int  # the latest checkpoint, which this node has now cosigned
    delivered: bool  # the coordinator has this node's cosignature
    cosigners: list[str]  # opaque ids of the other witnesses whose cosignatures on it verified
    same_as_mine: dict[int, list[str]]  # size of a checkpoint this node cosigned -> their ids
    problems: list[str]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _log(config: NodeConfig) -> tuple[str, bytes]:
    (raw,) = coordinator_key(config).values()
    return checkpoint.origin_for(raw), raw


def open_alarm(conn: sqlite3.Connection) -> tuple[str, str, str] | None:
    """The first alarm raised, if any: (raised at, reason, evidence directory)."""
    row = conn.execute(
        "SELECT raised_at, reason, evidence FROM ledger_alarms WHERE lifted_at IS NULL"
        " ORDER BY id LIMIT 1"
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


def alarms(conn: sqlite3.Connection) -> list[dict[str, str]]:
    return [
        {"raised_at": at, "reason": reason, "evidence": evidence}
        for at, reason, evidence in conn.execute(
            "SELECT raised_at, reason, evidence FROM ledger_alarms ORDER BY id"
        )
    ]


def raise_alarm(
    conn: sqlite3.Connection,
    config: NodeConfig,
    reason: str,
    evidence: dict[str, bytes],
    kind: str = "checkpoint",
) -> LedgerAlarm:
    """Keep the signed evidence on disk and in the database; return the alarm to raise (marked
    as recorded, so node/alarms.py does not record it twice)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = config.data_dir / "alarms" / stamp
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in evidence.items():
        (folder / name).write_bytes(content)
    (folder / "ALARM.txt").write_text(
        f"{reason}\n\nThe files beside this one are signed by the coordinator's key "
        f"({config.data_dir / 'coordinator.pub'}); send them to the coordinating centre and "
        "to the network's auditors.\n",
        encoding="utf-8",
    )
    conn.execute(
        "INSERT INTO ledger_alarms (raised_at, reason, evidence, kind) VALUES (?, ?, ?, ?)",
        (_now(), reason, str(folder), kind),
    )
    alarm = LedgerAlarm(f"{reason}. The signed evidence is kept in {folder}")
    alarm.recorded = True
    return alarm


def _cosigners_of(witness_keys: list[cpb.WitnessKey]) -> list[cosignature.Cosigner]:
    """The witnesses under their opaque names (the coordinator no longer says whose key is
    whose; a legacy site id, if an earlier coordinator sent one, is not used)."""
    return [
        cosignature.Cosigner(
            cosignature.opaque_witness_name(bytes(k.public_key)), bytes(k.public_key)
        )
        for k in witness_keys
    ]


def _own_name(config: NodeConfig) -> str:
    return cosignature.opaque_witness_name(public_raw(config.signing_key()))


def record(
    conn: sqlite3.Connection,
    config: NodeConfig,
    data: bytes,
    source: str,
    witness_keys: list[cpb.WitnessKey] | None = None,
) -> Seen:
    """Verify a checkpoint from the coordinator and keep it; a different root for a size already
    seen (as a checkpoint or a signed tree head) raises a ledger alarm with both as evidence."""
    origin, raw = _log(config)
    try:
        body, parsed = checkpoint.open_checkpoint(data, origin, raw)
    except ContractError as exc:
        raise LedgerAlarm(f"the coordinator's checkpoint does not check out: {exc}") from exc
    seen = Seen(body, parsed)
    if witness_keys:
        found, bad = cosignature.verified_cosignatures(parsed, _cosigners_of(witness_keys))
        mine = _own_name(config)
        seen.cosigners = sorted(
            {cosignature.witness_of(c.cosigner.name) or "" for c in found}
            - {cosignature.witness_of(mine)}
        )
        seen.unverified = bad
    for size, root, kept in conn.execute(
        "SELECT tree_size, root_hash, note FROM checkpoints WHERE tree_size = ?", (body.size,)
    ).fetchall():
        if bytes(root) != body.root_hash:
            raise raise_alarm(
                conn,
                config,
                f"the coordinator signed two different checkpoints for tree size {size}: "
                "its log forked (a split view)",
                {
                    f"checkpoint-{size}-a.txt": bytes(kept),
                    f"checkpoint-{size}-b.txt": data,
                },
            )
    head = conn.execute(
        "SELECT root_hash, signed FROM tree_heads WHERE tree_size = ?", (body.size,)
    ).fetchone()
    if head and bytes(head[0]) != body.root_hash:
        raise raise_alarm(
            conn,
            config,
            f"the coordinator's checkpoint for tree size {body.size} has another root than its "
            "signed tree head of that size: its log forked",
            {
                f"checkpoint-{body.size}.txt": data,
                f"tree-head-{body.size}.envelope": bytes(head[1]),
            },
        )
    conn.execute(
        "INSERT OR IGNORE INTO checkpoints (tree_size, root_hash, note, source, seen_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (body.size, body.root_hash, data, source, _now()),
    )
    if witness_keys is not None:
        row = conn.execute(
            "SELECT cosigners FROM checkpoints WHERE tree_size = ? AND root_hash = ?",
            (body.size, body.root_hash),
        ).fetchone()
        known = set(json.loads(row[0])) if row and row[0] else set()
        conn.execute(
            "UPDATE checkpoints SET cosigners = ? WHERE tree_size = ? AND root_hash = ?",
            (json.dumps(sorted(known | set(seen.cosigners))), body.size, body.root_hash),
        )
    return seen


def _bases(conn: sqlite3.Connection) -> list[tuple[int, bytes, str, bytes]]:
    """What the next checkpoint must extend: the last checkpoint this node cosigned and the
    largest tree head it verified (each may be the larger). (size, root, file name, signed)"""
    found: list[tuple[int, bytes, str, bytes]] = []
    row = conn.execute(
        "SELECT tree_size, root_hash, note FROM checkpoints WHERE cosigned_at IS NOT NULL"
        " ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    if row:
        found.append(
            (int(row[0]), bytes(row[1]), f"checkpoint-{row[0]}-cosigned.txt", bytes(row[2]))
        )
    row = conn.execute(
        "SELECT tree_size, root_hash, signed FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    if row:
        found.append((int(row[0]), bytes(row[1]), f"tree-head-{row[0]}.envelope", bytes(row[2])))
    return found


def check_extends(
    conn: sqlite3.Connection, config: NodeConfig, client: CoordinatorClient, seen: Seen, data: bytes
) -> None:
    """The checkpoint extends what this node vouched for and verified before; else a ledger alarm."""
    for base in _bases(conn):
        _check_extends(conn, config, client, seen, data, base)


def _check_extends(
    conn: sqlite3.Connection,
    config: NodeConfig,
    client: CoordinatorClient,
    seen: Seen,
    data: bytes,
    base: tuple[int, bytes, str, bytes],
) -> None:
    size, root, name, signed = base
    new = seen.checkpoint
    evidence = {name: signed, f"checkpoint-{new.size}.txt": data}
    if new.size < size:
        raise raise_alarm(
            conn,
            config,
            f"the coordinator's checkpoint of size {new.size} is smaller than size {size}, which "
            f"it signed before ({name}): its log shrank or forked",
            evidence,
        )
    if new.size == size:
        if new.root_hash != root:
            raise raise_alarm(
                conn,
                config,
                f"two different roots for tree size {size}: the coordinator's log forked",
                evidence,
            )
        return
    if size == 0:
        return  # every tree extends the empty one
    try:
        proof = client.consistency_proof(size, new.size)
    except RpcFailure as exc:
        if exc.retryable:
            raise
        raise raise_alarm(
            conn,
            config,
            f"the coordinator refuses to prove that its checkpoint of size {new.size} extends "
            f"size {size}, which it signed before ({name}; {exc}): its log forked",
            evidence,
        ) from exc
    try:
        merkle.verify_consistency(size, new.size, root, new.root_hash, list(proof.hashes))
    except ContractError as exc:
        raise raise_alarm(
            conn,
            config,
            f"the coordinator's checkpoint of size {new.size} does not extend size {size}, which "
            f"it signed before ({name}; {exc}): its log forked",
            evidence,
        ) from exc


def _send(
    conn: sqlite3.Connection, client: CoordinatorClient, size: int, root: bytes, cosigned: bytes
) -> str | None:
    """Hand a cosignature to the coordinator; None when it took it, else why not (kept and sent
    again next round)."""
    try:
        client.add_cosignature(cosigned)
    except RpcFailure as exc:
        return f"the cosignature of checkpoint {size} is not delivered yet ({exc}); " + (
            "sent again next time" if exc.retryable else "check the site's key and certificate"
        )
    conn.execute(
        "UPDATE checkpoints SET delivered_at = ? WHERE tree_size = ? AND root_hash = ?",
        (_now(), size, root),
    )
    return None


def _cosigned_note(parsed: note.Note, origin: str, line: str) -> bytes:
    """The coordinator's signature line and this witness's, on the checkpoint text."""
    own = [s for s in parsed.signatures if s.name == origin]
    return note.Note(parsed.text, (*own, note.parse_line(line))).encode()


def step(conn: sqlite3.Connection, config: NodeConfig, client: CoordinatorClient) -> WitnessReport:
    """One round as a witness: hand back undelivered cosignatures, check the latest checkpoint,
    cosign it, and see who else cosigned the checkpoints this node cosigned."""
    alarm = open_alarm(conn)
    if alarm:
        still = LedgerAlarm(
            f"a ledger alarm is open since {alarm[0]} ({alarm[1]}); this node cosigns nothing "
            f"more until the coordinating centre has answered. Evidence: {alarm[2]}"
        )
        still.recorded = True  # the alarm it repeats is kept already
        raise still
    origin, _ = _log(config)
    problems: list[str] = []
    for size, root, data, line in conn.execute(
        "SELECT tree_size, root_hash, note, cosignature FROM checkpoints"
        " WHERE cosignature IS NOT NULL AND delivered_at IS NULL ORDER BY tree_size"
    ).fetchall():
        problem = _send(
            conn, client, size, bytes(root), _cosigned_note(note.parse(bytes(data)), origin, line)
        )
        problems += [problem] if problem else []
    published = client.checkpoint()
    seen = record(conn, config, published.checkpoint, "published", list(published.witnesses))
    problems += seen.unverified
    body = seen.checkpoint
    row = conn.execute(
        "SELECT cosignature, delivered_at FROM checkpoints WHERE tree_size = ? AND root_hash = ?",
        (body.size, body.root_hash),
    ).fetchone()
    delivered = bool(row and row[1])
    if not (row and row[0]):
        check_extends(conn, config, client, seen, published.checkpoint)
        line = cosignature.cosign(
            body.body(),
            _own_name(config),
            config.signing_key(),
            int(time.time()),
        ).line()
        conn.execute(
            "UPDATE checkpoints SET cosignature = ?, cosigned_at = ? WHERE tree_size = ?"
            " AND root_hash = ?",
            (line, _now(), body.size, body.root_hash),
        )
        problem = _send(
            conn, client, body.size, body.root_hash, _cosigned_note(seen.note, origin, line)
        )
        delivered = problem is None
        problems += [problem] if problem else []
    same: dict[int, list[str]] = {}
    for (size,) in conn.execute(
        "SELECT tree_size FROM checkpoints WHERE cosigned_at IS NOT NULL"
        " ORDER BY tree_size DESC LIMIT 2"
    ).fetchall():
        shown = (
            seen
            if size == body.size
            else record(
                conn,
                config,
                (fetched := client.checkpoint(size)).checkpoint,
                "published",
                list(fetched.witnesses),
            )
        )
        problems += [] if shown is seen else shown.unverified
        same[size] = shown.cosigners
    return WitnessReport(body.size, delivered, seen.cosigners, same, problems)


def latest_cosigned(conn: sqlite3.Connection) -> dict[str, object] | None:
    row = conn.execute(
        "SELECT tree_size, root_hash, cosigned_at, delivered_at, cosigners FROM checkpoints"
        " WHERE cosigned_at IS NOT NULL ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return {
        "tree_size": row[0],
        "root_hash": bytes(row[1]).hex(),
        "cosigned_at": row[2],
        "delivered": row[3] is not None,
        "also_cosigned_by": json.loads(row[4]) if row[4] else [],
    }
