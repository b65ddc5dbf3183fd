"""Enrolment: register the site's key with a one-time token (proof of possession), pin the
coordinator's key, and cache the testing standard."""

from __future__ import annotations

import datetime as dt
import sqlite3

from node import standard as node_standard
from node import store
from node.client import CoordinatorClient
from node.config import NodeConfig, write_private
from node.errors import ConfigError
from node.receipts import coordinator_key, remember_tree_head
from protos import dsse, keys, wire
from protos.rarenet.v1 import coordinator_pb2 as cpb


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def enroll(
    config: NodeConfig, conn: sqlite3.Connection, client: CoordinatorClient, token: str
) -> cpb.EnrollResponse:
    """Enrol with a one-time token. A node enrolled before (a site revoked, say because its key
    may have leaked, and given a new token: docs/operations.md) enrols a new key; the old one is
    kept as keys/site.old."""
    again = store.get_state(conn, "keyid") is not None
    key = keys.generate() if again else config.signing_key()
    payload = cpb.EnrollPayload(
        site_id=config.site_id, token=token, public_key=keys.public_raw(key), requested_at=_now()
    )
    response = client.enroll(dsse.sign(wire.ENROLL, wire.encode(payload), key))
    if again:
        staged = config.key_path.with_suffix(".new")
        staged.unlink(missing_ok=True)
        keys.save_private(key, staged)
        config.key_path.replace(config.key_path.with_suffix(".old"))
        staged.replace(config.key_path)
    pinned = config.data_dir / "coordinator.pub"
    if pinned.exists() and pinned.read_bytes() != response.coordinator_public_key:
        raise ConfigError(
            f"the coordinator's key differs from the one pinned in {pinned}; "
            "if the centre really changed its key, remove that file and enrol again"
        )
    write_private(pinned, response.coordinator_public_key)
    store.set_state(conn, "keyid", response.keyid)
    store.set_state(conn, "enrolled_at", _now())
    remember_tree_head(conn, client, response.signed_tree_head, coordinator_key(config))
    fetch_standard(config, client)
    return response


def rotate_key(config: NodeConfig, conn: sqlite3.Connection, client: CoordinatorClient) -> str:
    """Enrol a new key with a request signed by the new key and the current one; then swap files."""
    old = config.signing_key()
    new = keys.generate()
    payload = cpb.EnrollPayload(
        site_id=config.site_id,
        public_key=keys.public_raw(new),
        requested_at=_now(),
        previous_keyid=dsse.keyid(old.public_key()),
    )
    request = dsse.sign(wire.ENROLL, wire.encode(payload), new, old)
    response = client.enroll(request)
    staged = config.key_path.with_suffix(".new")
    staged.unlink(missing_ok=True)
    keys.save_private(new, staged)
    config.key_path.replace(config.key_path.with_suffix(".old"))
    staged.replace(config.key_path)
    store.set_state(conn, "keyid", response.keyid)
    return response.keyid


def fetch_standard(config: NodeConfig, client: CoordinatorClient) -> node_standard.NodeStandard:
    response = client.standards()
    dsse.verify(response.standard, coordinator_key(config), expected_type=wire.STANDARD)
    text = response.standard.payload.decode("utf-8")
    parsed = node_standard.parse(text)
    node_standard.check_bounds(parsed, config.disclosure)  # refused: the cached one stays
    write_private(config.standard_path, text)
    return parsed
