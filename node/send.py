"""summary -> signed envelope -> outbox -> gRPC -> verified receipt."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from node import outbox, release, summary, witness
from node.client import CoordinatorClient, RpcFailure
from node.config import NodeConfig
from node.receipts import check_submission, coordinator_key, remember_tree_head
from node.standard import NodeStandard
from protos import dsse, wire
from protos.periods import Period


@dataclass
class Queued:
    period: str
    sequence: int | None  # None: nothing signed (unchanged, or held: see `held`)
    envelope_sha256: str | None
    held: str = ""  # why a changed period was not signed again


def queue_summary(
    conn: sqlite3.Connection, config: NodeConfig, standard: NodeStandard, period: Period
) -> Queued:
    """Build, sign and store the period's summary in the outbox, unless it says nothing new or
    the revision must be held (node/release.py)."""
    sequence = summary.next_sequence(conn)
    message, payload = summary.build(conn, config, standard, period, sequence)
    last = outbox.last_payload(conn, period.label)
    if last is not None:
        previous = wire.decode(last, type(message))
        previous.sequence = message.sequence
        if previous == message:
            return Queued(period.label, None, None)
        held = release.revision_held(conn, config, standard, period, previous)
        if held:
            return Queued(period.label, None, None, held)
    envelope = dsse.sign(wire.SITE_SUMMARY, payload, config.signing_key())
    return Queued(
        period.label,
        sequence,
        outbox.add(
            conn,
            envelope,
            period.label,
            sequence,
            also=lambda c: release.snapshot(c, period),
        ),
    )


@dataclass
class FlushReport:
    delivered: list[tuple[int, int]] = field(default_factory=list)  # (sequence, leaf index)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (sequence, error)
    pending: int = 0
    rejected: int = 0  # refused by the coordinator for good (moved out of the outbox)
    witnessed: witness.WitnessReport | None = None  # this node's round as a witness, after sending
    witness_error: str | None = None  # why that round could not run (tried again next time)


def flush(
    conn: sqlite3.Connection, config: NodeConfig, client: CoordinatorClient, due_only: bool = False
) -> FlushReport:
    """Send every pending envelope in sequence order; keep each until its receipt verifies."""
    trusted = coordinator_key(config)
    report = FlushReport()
    for item in outbox.pending(conn, due_only=due_only):
        try:
            response = client.submit(item.envelope)
        except RpcFailure as exc:
            report.failed.append((item.sequence, str(exc)))
            if exc.retryable:  # the coordinator is down or busy: keep order, try again later
                outbox.mark_failed(
                    conn,
                    item.sha256,
                    str(exc),
                    config.daemon.retry_base_seconds,
                    config.daemon.retry_max_seconds,
                )
                break
            outbox.mark_rejected(conn, item.sha256, str(exc))
            report.rejected += 1
            continue
        receipt, _ = check_submission(item.envelope, response, trusted)
        remember_tree_head(conn, client, response.signed_tree_head, trusted)
        outbox.mark_delivered(
            conn, item, receipt.leaf_index, response.receipt, response.signed_tree_head
        )
        if response.checkpoint:
            witness.record(conn, config, response.checkpoint, "submit")
        report.delivered.append((item.sequence, receipt.leaf_index))
    report.pending = len(outbox.pending(conn))
    if report.delivered:
        try:
            report.witnessed = witness.step(conn, config, client)
        except RpcFailure as exc:
            report.witness_error = str(exc)
    return report
