"""metrics -> disclosure -> the exact payload bytes that will be signed and sent.

`build` is used both by `summarize` (preview, the sequence number not consumed) and by `submit`
(sequence consumed): for the same database, period, standard and sequence the bytes are the same.
"""

from __future__ import annotations

import sqlite3

from node import disclosure, metrics, release, store
from node.cellkey import KEY_SCHEME, CellKeys, check_key_scheme
from node.config import NodeConfig
from node.standard import NodeStandard, check_bounds
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
    key_scheme: int = KEY_SCHEME,
) -> tuple[pb.SiteSummary, bytes]:
    """The period's summary and its bytes, its record keys made with `key_scheme` (node/cellkey.py:
    a period keeps the scheme it was first released with; node/send.py passes it)."""
    release.check_period(conn, config, period)
    check_bounds(standard, config.disclosure)
    keys = CellKeys(key_scheme=check_key_scheme(key_scheme))
    raw = metrics.compute(
        conn, period, standard, WorkingDays(config.country, config.subdivision), keys
    )
    released = disclosure.apply(raw, config.disclosure, keys)
    released.site_id = config.site_id
    released.schema_version = wire.SCHEMA_VERSION
    released.sequence = sequence
    released.software_version = software_version("rarenet-node")
    released.testing_directory = config.testing_directory
    return released, wire.encode(released)
