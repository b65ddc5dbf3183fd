"""Sites and their keys: one-time expiring tokens, proof-of-possession enrolment, rotation, revocation."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.errors import (
    AlreadyRecorded,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    NotPermitted,
)
from coordinator.peer_identity import check_identity
from protos import dsse, site_ids, wire
from protos.errors import ContractError
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1.envelope_pb2 import Envelope

TOKEN_TTL = dt.timedelta(hours=72)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def valid_site_id(site_id: str) -> bool:
    return site_ids.is_valid(site_id)


def add_site(
    conn: sqlite3.Connection, site_id: str, ttl: dt.timedelta = TOKEN_TTL
) -> tuple[str, dt.datetime]:
    """A one-time enrolment token for a new site, a site whose enrolment was never completed, or
    a revoked site that is to enrol again with a new key (docs/operations.md)."""
    return add_sites(conn, [site_id], ttl)[site_id]


def add_sites(
    conn: sqlite3.Connection, sites: Sequence[str], ttl: dt.timedelta = TOKEN_TTL
) -> dict[str, tuple[str, dt.datetime]]:
    """`add_site` for many sites in one transaction (a national network's thousands of labs cost
    one durable write, not one each): every site's token and its expiry, or nothing written when
    any site cannot be added."""
    for site_id in sites:
        problem = site_ids.problem(site_id)
        if problem:
            raise InvalidRequest(problem)
    repeated = sorted(s for s, n in Counter(sites).items() if n > 1)
    if repeated:
        raise InvalidRequest(f"site {repeated[0]} is named more than once; name each site once")
    if ttl <= dt.timedelta(0):
        raise InvalidRequest(
            f"a token must stay valid for some time, not {ttl}; give 1 hour or more"
        )
    issued = now()
    expires = issued + ttl
    tokens: dict[str, tuple[str, dt.datetime]] = {}
    conn.execute("BEGIN IMMEDIATE")
    try:
        for site_id in sites:
            row = conn.execute("SELECT status FROM sites WHERE site_id = ?", (site_id,)).fetchone()
            if row and row[0] not in ("pending", "revoked"):
                raise AlreadyRecorded(
                    f"site {site_id} is {row[0]}; a new key for an active site comes from "
                    "`rarenet-node rotate-key` at the lab"
                )
            if not row:
                conn.execute(
                    "INSERT INTO sites (site_id, status, created_at) VALUES (?, 'pending', ?)",
                    (site_id, _iso(issued)),
                )
            elif row[0] == "revoked":  # its keys stay retired; the token admits a new one
                conn.execute("UPDATE sites SET status = 'pending' WHERE site_id = ?", (site_id,))
            token = secrets.token_urlsafe(24)
            conn.execute(
                "INSERT INTO tokens (token_sha256, site_id, issued_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (_token_hash(token), site_id, _iso(issued), _iso(expires)),
            )
            tokens[site_id] = (token, expires)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return tokens


@dataclass
class Enrolled:
    site_id: str
    keyid: str


def enroll(
    conn: sqlite3.Connection, envelope: Envelope, identities: frozenset[str] | None = None
) -> Enrolled:
    """Enrol the key the request carries; `identities`: under mTLS, the sites the client
    certificate names (the request must be for one of them)."""
    if envelope.payload_type != wire.ENROLL:
        raise InvalidRequest(
            f"Enroll takes payload type {wire.ENROLL}, not {envelope.payload_type!r}"
        )
    try:
        request = wire.decode(envelope.payload, cpb.EnrollPayload)
    except ContractError as exc:
        raise InvalidRequest(f"the enrolment request cannot be read: {exc}") from exc
    check_identity(request.site_id, identities)
    if len(request.public_key) != 32:
        raise InvalidRequest("public_key must be a raw 32-byte Ed25519 key")
    new_keyid = dsse.keyid(request.public_key)
    try:
        dsse.verify(envelope, {new_keyid: request.public_key})
    except ContractError as exc:
        raise NotAuthenticated(
            f"the request is not signed by the key it enrols (proof of possession): {exc}"
        ) from exc
    if conn.execute("SELECT 1 FROM site_keys WHERE keyid = ?", (new_keyid,)).fetchone():
        raise AlreadyRecorded("this key is already enrolled; each enrolment needs a new key")
    site = conn.execute("SELECT status FROM sites WHERE site_id = ?", (request.site_id,)).fetchone()
    if site is None:
        raise NotAuthenticated(
            f"site {request.site_id!r} is not known; ask the coordinating centre to add it"
        )
    if site[0] == "revoked":
        raise NotPermitted(f"site {request.site_id} is revoked; contact the coordinating centre")
    stamp = _iso(now())
    conn.execute("BEGIN IMMEDIATE")
    try:
        if request.previous_keyid:
            _check_rotation(conn, envelope, request)
            conn.execute(
                "UPDATE site_keys SET retired_at = ? WHERE keyid = ?",
                (stamp, request.previous_keyid),
            )
        else:
            _use_token(conn, request)
        conn.execute(
            "INSERT INTO site_keys (keyid, site_id, public_key, enrolled_at, enrolment) VALUES (?, ?, ?, ?, ?)",
            (new_keyid, request.site_id, request.public_key, stamp, wire.envelope_bytes(envelope)),
        )
        conn.execute("UPDATE sites SET status = 'active' WHERE site_id = ?", (request.site_id,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return Enrolled(request.site_id, new_keyid)


def _use_token(conn: sqlite3.Connection, request: cpb.EnrollPayload) -> None:
    row = conn.execute(
        "SELECT site_id, expires_at, used_at FROM tokens WHERE token_sha256 = ?",
        (_token_hash(request.token),),
    ).fetchone()
    if row is None:
        raise NotAuthenticated(
            "the enrolment token is not valid; copy it again from the coordinating centre"
        )
    site_id, expires_at, used_at = row
    if used_at:
        raise NotPermitted(
            "the enrolment token was already used; ask the coordinating centre for a new one"
        )
    if site_id != request.site_id:
        raise NotPermitted(f"the token was issued for another site, not {request.site_id}")
    if dt.datetime.fromisoformat(expires_at) < now():
        raise NotPermitted(
            f"the enrolment token expired at {expires_at}; ask the coordinating centre for a new one"
        )
    if conn.execute(
        "SELECT 1 FROM site_keys WHERE site_id = ? AND retired_at IS NULL", (site_id,)
    ).fetchone():
        raise AlreadyRecorded(
            f"site {site_id} already has an enrolled key; use `rarenet-node rotate-key`"
        )
    conn.execute(
        "UPDATE tokens SET used_at = ? WHERE token_sha256 = ?",
        (_iso(now()), _token_hash(request.token)),
    )


def _check_rotation(
    conn: sqlite3.Connection, envelope: Envelope, request: cpb.EnrollPayload
) -> None:
    row = conn.execute(
        "SELECT public_key FROM site_keys WHERE keyid = ? AND site_id = ? AND retired_at IS NULL",
        (request.previous_keyid, request.site_id),
    ).fetchone()
    if row is None:
        raise NotPermitted("the key to replace is not the site's current key")
    try:
        dsse.verify(envelope, {request.previous_keyid: bytes(row[0])})
    except ContractError as exc:
        raise NotAuthenticated(f"a rotation must also be signed by the current key: {exc}") from exc


def current_keys(conn: sqlite3.Connection, site_id: str) -> dict[str, bytes]:
    return {
        k: bytes(v)
        for k, v in conn.execute(
            "SELECT keyid, public_key FROM site_keys WHERE site_id = ? AND retired_at IS NULL",
            (site_id,),
        )
    }


def revoke(conn: sqlite3.Connection, site_id: str) -> None:
    row = conn.execute("SELECT status FROM sites WHERE site_id = ?", (site_id,)).fetchone()
    if row is None:
        raise NotFound(f"no site {site_id}")
    stamp = _iso(now())
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "UPDATE sites SET status = 'revoked', revoked_at = ? WHERE site_id = ?", (stamp, site_id)
    )
    conn.execute(
        "UPDATE site_keys SET retired_at = ? WHERE site_id = ? AND retired_at IS NULL",
        (stamp, site_id),
    )
    conn.execute(  # a token issued before the revocation must not re-admit the site
        "UPDATE tokens SET expires_at = ? WHERE site_id = ? AND used_at IS NULL AND expires_at > ?",
        (stamp, site_id, stamp),
    )
    conn.execute("COMMIT")


def list_sites(conn: sqlite3.Connection) -> list[dict]:
    rows = conn.execute(
        """SELECT s.site_id, s.status, s.created_at, s.revoked_at,
                  (SELECT keyid FROM site_keys k WHERE k.site_id = s.site_id AND k.retired_at IS NULL),
                  (SELECT COUNT(*) FROM ledger l WHERE l.site_id = s.site_id),
                  (SELECT MAX(received_at) FROM ledger l WHERE l.site_id = s.site_id)
           FROM sites s ORDER BY s.site_id"""
    )
    return [
        dict(
            zip(
                (
                    "site_id",
                    "status",
                    "created_at",
                    "revoked_at",
                    "keyid",
                    "submissions",
                    "last_submission",
                ),
                r,
            )
        )
        for r in rows
    ]
