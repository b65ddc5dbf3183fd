"""EQA at the lab: which rounds are open, what the lab has answered, and the signed response.

EQA samples are recorded in the lab's normal export with eqa_round and eqa_sample set; they are
reference material, not patient data, so their calls (and variants) may leave the site. They
never enter the period summaries.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass

from node import outbox, summary
from node.client import CoordinatorClient
from node.config import NodeConfig
from node.errors import NodeError
from node.receipts import coordinator_key
from protos import dsse, wire
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.version import software_version


def rounds(config: NodeConfig, client: CoordinatorClient) -> list[epb.EqaRound]:
    trusted = coordinator_key(config)
    out = []
    for envelope in client.eqa_rounds():
        dsse.verify(envelope, trusted, expected_type=wire.EQA_ROUND)
        out.append(wire.decode(envelope.payload, epb.EqaRound))
    return out


def calls(conn: sqlite3.Connection, round_id: str) -> list[epb.EqaCall]:
    return [
        epb.EqaCall(sample_id=s, biomarker=b, method=m, result=r, variant=v or "")
        for s, b, m, r, v in conn.execute(
            "SELECT eqa_sample, biomarker, method, result, variant FROM results WHERE eqa_round = ?"
            " ORDER BY eqa_sample, biomarker, reported_date, method",
            (round_id,),
        )
    ]


@dataclass
class RoundStatus:
    round: epb.EqaRound
    answered: list[tuple[str, str]]
    missing: list[tuple[str, str]]


def status(conn: sqlite3.Connection, round_: epb.EqaRound) -> RoundStatus:
    answered = {(c.sample_id, c.biomarker) for c in calls(conn, round_.round_id)}
    asked = [(s.sample_id, b) for s in round_.samples for b in s.biomarkers]
    return RoundStatus(
        round_, [a for a in asked if a in answered], [a for a in asked if a not in answered]
    )


def queue_response(conn: sqlite3.Connection, config: NodeConfig, round_: epb.EqaRound) -> int:
    """Sign the lab's calls for the round into the outbox; returns the sequence number."""
    found = calls(conn, round_.round_id)
    if not found:
        raise NodeError(
            f"no results with eqa_round = {round_.round_id} in the database; ingest the export that "
            "holds the EQA samples first"
        )
    if dt.date.today() > dt.date.fromisoformat(round_.deadline):
        raise NodeError(
            f"EQA round {round_.round_id} closed on {round_.deadline}; the coordinator would refuse it"
        )
    sequence = summary.next_sequence(conn)
    response = epb.EqaResponse(
        site_id=config.site_id,
        round_id=round_.round_id,
        sequence=sequence,
        schema_version=wire.SCHEMA_VERSION,
        software_version=software_version("rarenet-node"),
        calls=found,
    )
    envelope = dsse.sign(wire.EQA_RESPONSE, wire.encode(response), config.signing_key())
    outbox.add(conn, envelope, f"eqa:{round_.round_id}", sequence)
    return sequence


def score(config: NodeConfig, client: CoordinatorClient, round_id: str) -> epb.EqaScoreSheet:
    request = cpb.EqaScoreRequestPayload(
        site_id=config.site_id,
        round_id=round_id,
        requested_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    sheet = client.eqa_score(
        dsse.sign(wire.EQA_SCORE_REQUEST, wire.encode(request), config.signing_key())
    )
    dsse.verify(sheet, coordinator_key(config), expected_type=wire.EQA_SCORE)
    return wire.decode(sheet.payload, epb.EqaScoreSheet)
