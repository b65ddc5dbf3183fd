"""Checkpoints and the witnesses' cosignatures of them.

Every signed tree head is also published as a C2SP checkpoint (protos/checkpoint.py), signed by
the coordinator's key under its origin. Ed25519 signatures are deterministic, so the checkpoint of
a tree head is made from the `tree_heads` row whenever it is asked for and is the same bytes
every time; nothing but the cosignatures needs storing. Sites are the witnesses: a node that has
checked a checkpoint consistent with the last one it cosigned hands back its cosignature
(AddCosignature); GetCheckpoint publishes a checkpoint with every cosignature collected for it.
"""

from __future__ import annotations

import base64
import datetime as dt
import sqlite3

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator import peer_identity
from coordinator.errors import InvalidRequest, NotAuthenticated, NotFound, NotPermitted
from protos import checkpoint, cosignature, keys, note
from protos.note import NoteError
from protos.rarenet.v1 import coordinator_pb2 as cpb

SCHEMA = """
CREATE TABLE IF NOT EXISTS cosignatures (
    tree_size INTEGER NOT NULL,
    site_id TEXT NOT NULL,
    keyid TEXT NOT NULL,                -- the site key that made it (site_keys.keyid)
    timestamp INTEGER NOT NULL,         -- seconds since the epoch, as the witness signed it
    line TEXT NOT NULL,                 -- the signature line, as it goes on the checkpoint note
    received_at TEXT NOT NULL,
    PRIMARY KEY (tree_size, site_id)
);
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def _kept(conn: sqlite3.Connection) -> bool:
    """Whether the cosignatures table exists (a ledger never served has none); reading never
    creates it, so a reader's snapshot (an audit bundle's) is not committed away."""
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cosignatures'"
        ).fetchone()
        is not None
    )


def origin(key: Ed25519PrivateKey) -> str:
    return checkpoint.origin_for(keys.public_raw(key))


def _head(conn: sqlite3.Connection, tree_size: int | None) -> tuple[int, bytes]:
    if tree_size is None:
        row = conn.execute(
            "SELECT tree_size, root_hash FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT tree_size, root_hash FROM tree_heads WHERE tree_size = ?", (tree_size,)
        ).fetchone()
    if row is None:
        raise NotFound(
            "no signed tree head of that size; ask for the latest checkpoint (tree size 0)"
            if tree_size
            else "the ledger has no signed tree head yet"
        )
    return int(row[0]), bytes(row[1])


def signed_checkpoint(key: Ed25519PrivateKey, size: int, root_hash: bytes) -> note.Note:
    """The coordinator's checkpoint for a tree head, signed (no cosignatures)."""
    return checkpoint.sign(checkpoint.Checkpoint(origin(key), size, root_hash), key)


def cosigned(
    conn: sqlite3.Connection,
    key: Ed25519PrivateKey,
    tree_size: int | None = None,
    site: str | None = None,
) -> note.Note:
    """The checkpoint of this size (default: the latest) with every cosignature collected, or
    only `site`'s own (a site's bundle names no peer)."""
    size, root = _head(conn, tree_size)
    made = signed_checkpoint(key, size, root)
    if not _kept(conn):
        return made
    for (line,) in conn.execute(
        "SELECT line FROM cosignatures WHERE tree_size = ? AND (? IS NULL OR site_id = ?)"
        " ORDER BY site_id",
        (size, site, site),
    ):
        made = made.with_signature(note.parse_line(line))
    return made


def cosigners(conn: sqlite3.Connection, tree_size: int) -> list[str]:
    if not _kept(conn):
        return []
    return [
        site
        for (site,) in conn.execute(
            "SELECT site_id FROM cosignatures WHERE tree_size = ? ORDER BY site_id", (tree_size,)
        )
    ]


def witness_keys(conn: sqlite3.Connection) -> list[cpb.WitnessKey]:
    """Every key a site has cosigned or may cosign with (current and retired), without its site:
    every lab receives these, and a lab must not learn its peers' names (the witness name is
    derived from the key). Sorted by key, so the order says nothing either."""
    return [
        cpb.WitnessKey(public_key=raw)
        for raw in sorted(bytes(raw) for (raw,) in conn.execute("SELECT public_key FROM site_keys"))
    ]


def checkpoint_response(
    conn: sqlite3.Connection, key: Ed25519PrivateKey, tree_size: int | None = None
) -> cpb.GetCheckpointResponse:
    return cpb.GetCheckpointResponse(
        checkpoint=cosigned(conn, key, tree_size).encode(), witnesses=witness_keys(conn)
    )


def add(
    conn: sqlite3.Connection,
    key: Ed25519PrivateKey,
    data: bytes,
    now: dt.datetime,
    identities: frozenset[str] | None = None,
) -> tuple[str, int]:
    """Keep a witness's cosignature of one of our checkpoints: (site id, cosigners now). Under
    mTLS (`identities`: the sites the client certificate names) a site cosigns only as itself."""
    ensure_schema(conn)
    try:
        parsed = note.parse(data)
        body = checkpoint.parse_body(parsed.text)
    except NoteError as exc:
        raise InvalidRequest(f"the cosigned checkpoint cannot be read: {exc}") from exc
    if body.origin != origin(key):
        raise InvalidRequest(f"the checkpoint is for log {body.origin!r}, not this coordinator's")
    size, root = _head(conn, body.size)
    if size != body.size or signed_checkpoint(key, size, root).text != parsed.text:
        raise InvalidRequest(
            f"this coordinator never signed that checkpoint of size {body.size}; "
            "cosign only checkpoints received from it"
        )
    lines = [s for s in parsed.signatures if cosignature.witness_of(s.name) is not None]
    if len(lines) != 1:
        raise InvalidRequest(f"send exactly one witness cosignature line, not {len(lines)}")
    line = lines[0]
    site_id = _site_of_witness(conn, line.name)
    peer_identity.check_identity(site_id, identities)
    row = conn.execute(
        """SELECT k.keyid, k.public_key, s.status FROM site_keys k JOIN sites s USING (site_id)
           WHERE k.site_id = ? AND k.retired_at IS NULL""",
        (site_id,),
    ).fetchone()
    if row is None:
        raise NotAuthenticated(f"no current enrolled key for site {site_id!r}")
    keyid, raw, status = row
    if status == "revoked":
        raise NotPermitted(f"site {site_id} is revoked; its cosignatures are not taken")
    try:
        found = cosignature.verify_line(
            parsed.text, line, cosignature.Cosigner(line.name, bytes(raw))
        )
    except NoteError as exc:
        raise NotAuthenticated(
            f"the cosignature does not verify with site {site_id}'s current key: {exc}"
        ) from exc
    conn.execute(
        """INSERT INTO cosignatures (tree_size, site_id, keyid, timestamp, line, received_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (tree_size, site_id) DO UPDATE SET keyid = excluded.keyid,
             timestamp = excluded.timestamp, line = excluded.line,
             received_at = excluded.received_at""",
        (size, site_id, keyid, found.timestamp, line.line(), now.isoformat(timespec="seconds")),
    )
    return site_id, len(cosigners(conn, size))


def _site_of_witness(conn: sqlite3.Connection, name: str) -> str:
    """The site whose current key has this opaque witness name; for a legacy name (an earlier
    node cosigning as rarenet.witness/<site id>), that site id."""
    for site_id, raw in conn.execute(
        "SELECT site_id, public_key FROM site_keys WHERE retired_at IS NULL"
    ):
        if cosignature.opaque_witness_name(bytes(raw)) == name:
            return str(site_id)
    return cosignature.witness_of(name) or ""


def best_size(conn: sqlite3.Connection, needed: int, latest: int) -> int:
    """The tree size an audit bundle should prove against: of the checkpoints holding the first
    `needed` leaves, the one most sites cosigned (the larger on a tie); the latest if none was."""
    if not _kept(conn):
        return latest
    row = conn.execute(
        """SELECT c.tree_size FROM cosignatures c JOIN tree_heads t USING (tree_size)
           WHERE c.tree_size >= ? AND c.tree_size <= ?
           GROUP BY c.tree_size ORDER BY COUNT(*) DESC, c.tree_size DESC LIMIT 1""",
        (needed, latest),
    ).fetchone()
    return int(row[0]) if row else latest


def witness_records(
    conn: sqlite3.Connection, site: str | None = None
) -> list[dict[str, str | None]]:
    """Every site key (or only `site`'s) as a witness key, with its enrolment dates, for auditors."""
    return [
        {
            "site_id": site_id,
            "name": cosignature.opaque_witness_name(bytes(raw)),
            "legacy_name": cosignature.witness_name(site_id),
            "keyid": keyid,
            "public_key": base64.b64encode(bytes(raw)).decode("ascii"),
            "enrolled_at": enrolled_at,
            "retired_at": retired_at,
            "site_status": status,
            "site_revoked_at": revoked_at,
        }
        for keyid, site_id, raw, enrolled_at, retired_at, status, revoked_at in conn.execute(
            """SELECT k.keyid, k.site_id, k.public_key, k.enrolled_at, k.retired_at, s.status,
                      s.revoked_at
               FROM site_keys k JOIN sites s USING (site_id) WHERE ? IS NULL OR site_id = ?
               ORDER BY k.site_id, k.enrolled_at""",
            (site, site),
        )
    ]
