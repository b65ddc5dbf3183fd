"""metrics -> disclosure -> the exact payload bytes that will be signed and sent.

`build` is used both by `summarize` (preview, the sequence number not consumed) and by `submit`
(sequence consumed): for the same database, period, standard and sequence the bytes are the same.
"""

from __future__ import annotations

import sqlite3

from node import disclosure, metrics, privacy, store
from node.config import NodeConfig
from node.standard import NodeStandard
from node.workdays import WorkingDays
from protos import wire
from protos.periods import Period
from protos.rarenet.v1 import summary_pb2 as pb
from protos.version import software_version


def next_sequence(conn: sqlite3.Connection) -> int:
    return int(store.get_state(conn, "last_sequence", "0")) + 1


def build(
    conn: sqlite3.Connection,
    config: NodeConfig,
    standard: NodeStandard,
    period: Period,
    sequence: int,
) -> tuple[pb.SiteSummary, bytes]:
    raw = metrics.compute(conn, period, standard, WorkingDays(config.country, config.subdivision))
    released = disclosure.apply(raw, config.disclosure)
    released.site_id = config.site_id
    released.schema_version = wire.SCHEMA_VERSION
    released.sequence = sequence
    released.software_version = software_version("rarenet-node")
    policy = config.disclosure
    if policy.differential_privacy:
        bound = privacy.sensitivity(conn, period.start.isoformat(), period.end.isoformat())
        privacy.apply(released, policy.epsilon_per_period, bound, config.pseudonym_secret())
    return released, wire.encode(released)
