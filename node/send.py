"""summary -> signed envelope -> outbox -> gRPC -> verified receipt."""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass, field

from node import alarms, cellkey, outbox, release, summary, witness
from node.client import CoordinatorClient, RpcFailure
from node.config import NodeConfig
from node.errors import LedgerAlarm, PeriodNotReady
from node.receipts import check_submission, coordinator_key, remember_tree_head
from node.standard import NodeStandard
from protos import dsse, wire
from protos.periods import Period
from protos.rarenet.v1 import summary_pb2 as pb


@dataclass
class Queued:
    period: str
    sequence: int | None  # None: nothing signed (unchanged, or held: see `held`)
    envelope_sha256: str | None
    held: str = ""  # why a changed period was not signed again


@dataclass
class Built:
    message: pb.SiteSummary
    payload: bytes
    standard: NodeStandard  # as applied: with the period's released panel population
    previous: pb.SiteSummary | None  # the period's last signed version
    as_released: bool  # rebuilt from what the last release counted (an accepted new standard)


def build(
    conn: sqlite3.Connection,
    config: NodeConfig,
    standard: NodeStandard,
    period: Period,
    sequence: int,
) -> Built:
    """What signing the period now would sign (`summarize --json` prints these bytes). A period
    already released keeps its panel population; under a new standard the lab accepted it is
    rebuilt from what its last release counted (node/release.py). A period already released keeps
    the record key scheme it was released with (node/cellkey.py), or every cell of its next
    version would be a second, independent draw of its noise."""
    last = outbox.last_payload(conn, period.label)
    previous = None if last is None else wire.decode(last, pb.SiteSummary)
    key_scheme = cellkey.KEY_SCHEME if previous is None else previous.policy.perturbation.key_scheme
    applied = release.released_standard(conn, period, standard)
    rebuild = (
        previous is not None
        and release.new_standard(previous, standard)
        and release.revision_held(conn, config, standard, period, previous) is None
    )
    if rebuild:
        with release.as_released(conn, period, applied):
            message, payload = summary.build(conn, config, applied, period, sequence, key_scheme)
    else:
        message, payload = summary.build(conn, config, applied, period, sequence, key_scheme)
    return Built(message, payload, applied, previous, rebuild)


def check_period(
    conn: sqlite3.Connection,
    period: Period,
    today: dt.date | None = None,
    config: NodeConfig | None = None,
) -> None:
    """PeriodNotReady unless the period has closed and holds results: an open period's summary
    would be incomplete, a future one's refused by the coordinator, an empty one's meaningless,
    and each would use up a sequence number. With the config, the release policy
    (node/release.py: period kinds, overlaps) is checked first."""
    if config is not None:
        release.check_period(conn, config, period)
    day = today or dt.date.today()
    if period.start > day:
        raise PeriodNotReady(
            f"period {period} has not started yet (it starts {period.start}); nothing was signed"
        )
    if not period.is_closed(day):
        raise PeriodNotReady(
            f"period {period} is still open (it ends {period.end}); a summary is signed once the "
            "period has closed, so that it holds every result. Nothing was signed; "
            f"`rarenet-node summarize --period {period}` previews it now"
        )
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM results WHERE reported_date BETWEEN ? AND ? AND eqa_round IS NULL",
        (period.start.isoformat(), period.end.isoformat()),
    ).fetchone()
    if not count:
        raise PeriodNotReady(
            f"no results in {period} (reported {period.start} to {period.end}): nothing to sign. "
            "Ingest the period's LIMS exports first (`rarenet-node ingest`), or check the period"
        )


def queue_summary(
    conn: sqlite3.Connection,
    config: NodeConfig,
    standard: NodeStandard,
    period: Period,
    today: dt.date | None = None,
) -> Queued:
    """Build, sign and store the period's summary in the outbox, unless it says nothing new or
    the revision must be held (node/release.py); PeriodNotReady (before anything is signed) for
    an open, future or empty period."""
    check_period(conn, period, today, config)
    built = build(conn, config, standard, period, summary.next_sequence(conn))
    message, previous = built.message, built.previous
    if previous is not None:
        previous.sequence = message.sequence
        if previous == message:
            return Queued(period.label, None, None)
        held = release.revision_held(conn, config, built.standard, period, previous)
        if held:
            return Queued(period.label, None, None, held)
    envelope = dsse.sign(wire.SITE_SUMMARY, built.payload, config.signing_key())
    return Queued(
        period.label,
        message.sequence,
        outbox.add(
            conn,
            envelope,
            period.label,
            message.sequence,
            # rebuilt as released: what the release counted is unchanged
            also=None
            if built.as_released
            else lambda c: release.snapshot(c, period, built.standard),
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
    """Send every pending envelope in sequence order; keep each until its receipt verifies. A
    receipt that does not check out raises LedgerAlarm, which is also kept (node/alarms.py)."""
    trusted = coordinator_key(config)
    report = FlushReport()
    try:
        _flush(conn, config, client, due_only, trusted, report)
    except LedgerAlarm as alarm:
        alarms.record(conn, config, alarm)
        raise
    return report


def _flush(
    conn: sqlite3.Connection,
    config: NodeConfig,
    client: CoordinatorClient,
    due_only: bool,
    trusted: dict[str, bytes],
    report: FlushReport,
) -> None:
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
