"""Submit: verify a signed site summary, append it to the ledger, store it, sign a receipt.

The ledger entry, the summary, the receipt and the tree head are written in one
transaction, so a crash leaves either all of them or none. An identical envelope submitted again
gets its original receipt and no second ledger entry.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from coordinator import actions, decoded_cache, decoding, eqa
from coordinator.errors import (
    AlreadyRecorded,
    CoordinatorError,
    InvalidRequest,
    NotAuthenticated,
    NotPermitted,
)
from coordinator.ledger import Accepted, Ledger
from coordinator.peer_identity import check_identity
from coordinator.rate_limit import SiteRateLimit
from coordinator.summary_checks import MAX_PAYLOAD_BYTES, Vocabulary
from protos import dsse, leaf, wire
from protos.errors import ContractError
from protos.periods import parse as parse_period
from protos.rarenet.v1 import action_pb2 as apb
from protos.rarenet.v1 import coordinator_pb2 as cpb
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import summary_pb2 as pb
from protos.rarenet.v1.envelope_pb2 import Envelope

log = logging.getLogger("rarenet.coordinator")


SUBMITTABLE = (wire.SITE_SUMMARY, wire.EQA_RESPONSE, wire.CORRECTIVE_ACTION)
MAX_SEQUENCE_STEP = 1_000_000  # how far past the last accepted one a sequence number may jump


# An enrolled key: (key id, site, raw public key, retired at, the site's status).
EnrolledKey = tuple[str, str, bytes, str | None, str]
_KEYS_AT_ONCE = 500  # key ids per query (SQLite allows 999 parameters)


def enrolled_keys(conn: sqlite3.Connection, keyids: Collection[str]) -> dict[str, EnrolledKey]:
    """The enrolled keys among these key ids, by key id (one query for a batch's signers)."""
    wanted = list(keyids)
    found: dict[str, EnrolledKey] = {}
    for i in range(0, len(wanted), _KEYS_AT_ONCE):
        chunk = wanted[i : i + _KEYS_AT_ONCE]
        for keyid, site_id, public_key, retired_at, status in conn.execute(
            "SELECT k.keyid, k.site_id, k.public_key, k.retired_at, s.status FROM site_keys k"
            f" JOIN sites s USING (site_id) WHERE k.keyid IN ({','.join('?' * len(chunk))})",
            chunk,
        ):
            found[keyid] = (keyid, site_id, bytes(public_key), retired_at, status)
    return found


def authenticate(
    conn: sqlite3.Connection,
    envelope: Envelope,
    expected_type: str,
    enrolled: Mapping[str, EnrolledKey] | None = None,
) -> tuple[str, str]:
    """The (site id, key id) of the current, unrevoked key that signed the envelope. `enrolled`:
    the enrolled keys already read for a batch (`enrolled_keys`); else the signer's is read."""
    if envelope.payload_type != expected_type:
        raise InvalidRequest(
            f"payload type {envelope.payload_type!r} is not {expected_type}; "
            "upgrade rarenet-node or check what is being sent"
        )
    if not envelope.signatures:
        raise NotAuthenticated("the envelope is not signed; sign it with the site's enrolled key")
    try:
        signer = dsse.sole_signer(envelope)
    except ContractError as exc:
        raise InvalidRequest(f"{exc}; sign the summary again with `rarenet-node submit`") from exc
    found = (enrolled if enrolled is not None else enrolled_keys(conn, (signer,))).get(signer)
    if found is None:
        raise NotAuthenticated(
            "the envelope is signed by a key no site has enrolled; run `rarenet-node enroll`"
        )
    keyid, site_id, public_key, retired_at, status = found
    try:
        dsse.verify(envelope, {keyid: public_key}, expected_type=expected_type)
    except ContractError as exc:
        raise NotAuthenticated(f"signature check failed for site {site_id}: {exc}") from exc
    if status == "revoked":
        raise NotPermitted(
            f"site {site_id} is revoked; its submissions are refused. Contact the coordinating centre"
        )
    if retired_at:
        raise NotAuthenticated(
            f"site {site_id} signed with a key retired at {retired_at}; sign with the current key"
        )
    return site_id, keyid


def check_summary(
    summary: pb.SiteSummary, site_id: str, today: dt.date, problem: CoordinatorError | None
) -> None:
    """The checks that need the signer's site and today's date; `problem` is what
    coordinator/decoding.py found in the content alone (schema, period, sequence, cells)."""
    if not summary.site_id or not summary.period:
        raise InvalidRequest(
            "the payload cannot be read as a site summary: site_id and period are required"
        )
    if summary.site_id != site_id:
        raise NotPermitted(
            f"the summary names site {summary.site_id!r} but is signed by site {site_id}'s key"
        )
    if problem is not None:
        raise problem
    period = _period(summary.period)
    if period.start > today:
        raise InvalidRequest(
            f"period {period} has not started yet; summaries are for past or current periods"
        )


# The periods summaries name (a handful at a time), read once each; coordinator/decoding.py has
# read the label already, so it is valid here.
_period = functools.lru_cache(maxsize=64)(parse_period)


def check_eqa_response(
    response: epb.EqaResponse, site_id: str, problem: CoordinatorError | None
) -> None:
    if response.site_id != site_id:
        raise NotPermitted(
            f"the response names site {response.site_id!r} but is signed by site {site_id}'s key"
        )
    if problem is not None:
        raise problem


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class _Pending:
    envelope: Envelope
    done: threading.Lock = field(
        default_factory=_held_lock
    )  # released when answered (lighter than an Event)
    response: cpb.SubmitResponse | None = None
    error: BaseException | None = None
    twin: _Pending | None = None  # the same envelope earlier in the same batch
    # Filled in by the checks:
    data: bytes = b""
    sha: str = ""
    site_id: str = ""
    keyid: str = ""
    # What the payload type names.
    summary: pb.SiteSummary | epb.EqaResponse | apb.CorrectiveAction | None = None
    received: dt.datetime | None = None
    identities: frozenset[str] | None = None  # the sites the client certificate names (mTLS)
    leaf_header: bool = False  # append a header, not the whole envelope (the node checks them)

    def checked(
        self,
    ) -> tuple[pb.SiteSummary | epb.EqaResponse | apb.CorrectiveAction, dt.datetime]:
        """The payload and the time it was received, which the checks fill in."""
        if self.summary is None or self.received is None:
            raise RuntimeError("a submission reached the ledger before it was checked")
        return self.summary, self.received


class Intake:
    """One intake thread takes submissions in batches: it checks each envelope's signature, then
    reads its payload (coordinator/decoding.py; only a signed one is read) and checks it. A batch's
    accepted envelopes go into one transaction under one signed tree head (group commit), and each
    caller is answered after the commit, so a receipt always names a stored leaf. While the commit
    waits for the disk, request threads queue the next batch. Request threads only queue their
    envelope and wait."""

    MAX_BATCH = 256

    def __init__(
        self,
        conn: sqlite3.Connection,
        ledger: Ledger,
        db_path: Path,
        clock=None,
        vocabulary: Vocabulary | None = None,
        rate_limit: SiteRateLimit | None = None,
    ) -> None:
        self.conn = conn
        conn.execute(decoded_cache.SCHEMA)  # each summary kept decoded as it is stored
        self.clock = clock or _now  # UTC now; tests pass a clock they control
        self.ledger = ledger
        self.lock = threading.Lock()  # guards conn and the ledger's tree
        self.rate_limit = rate_limit or SiteRateLimit()
        self._db_path = db_path
        self._readers = threading.local()
        self._key_sites: dict[str, str] = {}  # keyid: site (a key never changes site)
        self._vocabulary = vocabulary
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="intake", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def reader(self) -> sqlite3.Connection:
        """A connection of this thread's own for work that only reads."""
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            conn = self._readers.conn = sqlite3.connect(
                self._db_path, timeout=30, check_same_thread=False
            )
        return conn

    def submit(
        self,
        envelope: Envelope,
        identities: frozenset[str] | None = None,
        leaf_header: bool = False,
    ) -> cpb.SubmitResponse:
        """Queue one envelope and wait for its answer (the caller's own, to complete). `identities`:
        under mTLS, the sites the client certificate names; the envelope's signer must be one of
        them. With `leaf_header` (the node said it checks them) its leaf is a header; otherwise
        the whole envelope, as nodes from before leaf headers expect."""
        if envelope.payload_type not in SUBMITTABLE:
            raise InvalidRequest(
                f"payload type {envelope.payload_type!r} cannot be submitted (only "
                f"{', '.join(SUBMITTABLE)}); upgrade rarenet-node or check what is being sent"
            )
        if len(envelope.payload) > MAX_PAYLOAD_BYTES:
            raise InvalidRequest(
                f"the payload has {len(envelope.payload):,} bytes, more than the "
                f"{MAX_PAYLOAD_BYTES:,} a summary may have (a quarter's is about 30 KB)"
            )
        site = self._signer_site(envelope)
        if site is not None:
            self.rate_limit.take(site)
        item = _Pending(envelope, identities=identities, leaf_header=leaf_header)
        self._queue.put(item)
        item.done.acquire()
        if item.error is not None:
            raise item.error
        if item.response is None:
            raise RuntimeError("a submission was answered with neither a receipt nor an error")
        return item.response

    def enrolled(self, keyid: str, site_id: str) -> None:
        """A key was enrolled for a site (the site's first submission then needs no lookup)."""
        self._key_sites[keyid] = site_id

    def _signer_site(self, envelope: Envelope) -> str | None:
        """The site whose key id leads the envelope's signatures, if any site enrolled it (the
        signature itself is checked later, in the intake thread)."""
        if not envelope.signatures:
            return None
        keyid = envelope.signatures[0].keyid
        site = self._key_sites.get(keyid)
        if site is None:
            row = (
                self.reader()
                .execute("SELECT site_id FROM site_keys WHERE keyid = ?", (keyid,))
                .fetchone()
            )
            if row is None:
                return None
            site = self._key_sites[keyid] = row[0]
        return site

    def _run(self) -> None:
        closing = False
        while not closing:
            batch, closing = self._take()
            checked = self._check(self._fresh(batch))
            if checked:
                with self.lock:
                    self._commit(checked)
                for item in checked:
                    item.done.release()

    def _take(self) -> tuple[list[_Pending], bool]:
        """What is queued (waiting for the first), up to MAX_BATCH; and whether closing."""
        batch: list[_Pending] = []
        while len(batch) < self.MAX_BATCH:
            try:
                item = self._queue.get(block=not batch)
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _answer(
        self,
        item: _Pending,
        error: BaseException | None = None,
        response: cpb.SubmitResponse | None = None,
    ) -> None:
        item.error, item.response = error, response
        item.done.release()

    def _fresh(self, batch: list[_Pending]) -> list[_Pending]:
        """Answer the envelopes already in the ledger; the others, to be checked."""
        hashed: list[_Pending] = []
        for item in batch:
            try:
                item.data = wire.envelope_bytes(item.envelope)
                item.sha = hashlib.sha256(item.data).hexdigest()
                hashed.append(item)
            except Exception as exc:  # noqa: BLE001 - one bad envelope must not stop the intake
                log.exception("unexpected error reading a submission")
                self._answer(item, exc)
        try:
            ledgered = self.ledger.ledgered(self.reader(), [item.sha for item in hashed])
        except Exception as exc:  # noqa: BLE001 - the batch is answered, the intake goes on
            log.exception("unexpected error looking up submissions")
            for item in hashed:
                self._answer(item, exc)
            return []
        fresh: list[_Pending] = []
        for item in hashed:
            if item.sha not in ledgered:
                fresh.append(item)
                continue
            try:  # its original receipt, even if the site was revoked since
                existing = self._existing(self.reader(), item.sha)
            except Exception as exc:  # noqa: BLE001 - one bad envelope must not stop the intake
                log.exception("unexpected error looking up a submission")
                self._answer(item, exc)
                continue
            if existing is None:
                fresh.append(item)
            else:
                self._answer(item, response=existing)
        return fresh

    def _check(self, fresh: list[_Pending]) -> list[_Pending]:
        """Signature, site, key, payload and period of each new envelope; the refused are answered."""
        reader = self.reader()
        passed: list[_Pending] = []
        try:
            enrolled = enrolled_keys(
                reader,
                {item.envelope.signatures[0].keyid for item in fresh if item.envelope.signatures},
            )
        except Exception as exc:  # noqa: BLE001 - the batch is answered, the intake goes on
            log.exception("unexpected error looking up the signers' keys")
            for item in fresh:
                self._answer(item, exc)
            return []
        for item in fresh:
            try:
                item.site_id, item.keyid = authenticate(
                    reader, item.envelope, item.envelope.payload_type, enrolled
                )
                check_identity(item.site_id, item.identities)
                self._check_payload(reader, item)
                passed.append(item)
            except CoordinatorError as exc:
                self._answer(item, exc)
            except Exception as exc:  # noqa: BLE001 - one bad envelope must not stop the intake
                log.exception("unexpected error checking a submission")
                self._answer(item, exc)
        return passed

    def _check_payload(self, conn: sqlite3.Connection, item: _Pending) -> None:
        payload_type = item.envelope.payload_type
        try:
            message, problem = decoding.read(payload_type, item.envelope.payload, self._vocabulary)
        except ContractError as exc:
            what = {
                wire.CORRECTIVE_ACTION: "a corrective action",
                wire.EQA_RESPONSE: "an EQA response",
            }.get(payload_type, "a site summary")
            raise InvalidRequest(f"the payload cannot be read as {what}: {exc}") from exc
        item.summary, item.received = message, self.clock()
        if isinstance(message, apb.CorrectiveAction):
            actions.check(conn, message, item.site_id, item.received.date(), problem)
        elif isinstance(message, epb.EqaResponse):
            check_eqa_response(message, item.site_id, problem)
            eqa.check_response(conn, message, item.received.date())
        else:
            check_summary(message, item.site_id, item.received.date(), problem)

    def _commit(self, batch: list[_Pending]) -> None:
        """Sequence numbers, then one transaction for the checked envelopes that pass."""
        accepted: list[_Pending] = []
        try:
            last_sequence = self.ledger.last_sequences(self.conn, {item.site_id for item in batch})
        except Exception as exc:  # noqa: BLE001 - the batch is answered, the intake goes on
            log.exception("unexpected error reading the last sequence numbers")
            for item in batch:
                item.error = exc
            return
        in_batch: dict[str, _Pending] = {}
        for item in batch:
            try:
                if item.sha in in_batch:
                    item.twin = in_batch[item.sha]  # answered with its twin's receipt below
                    continue
                summary, _ = item.checked()
                if summary.sequence <= last_sequence[item.site_id]:
                    raise AlreadyRecorded(
                        f"sequence {summary.sequence} is not after the last accepted sequence "
                        f"{last_sequence[item.site_id]} of site {item.site_id}: a replay, or a node restored from "
                        "an old backup. Build a new summary with `rarenet-node submit`"
                    )
                if summary.sequence > last_sequence[item.site_id] + MAX_SEQUENCE_STEP:
                    raise InvalidRequest(
                        f"sequence {summary.sequence} jumps more than {MAX_SEQUENCE_STEP:,} "
                        f"past the last accepted sequence {last_sequence[item.site_id]} of site "
                        f"{item.site_id}; a node counts its summaries one by one (a jump to the "
                        "top would leave the site no number to use)"
                    )
                last_sequence[item.site_id] = summary.sequence
                in_batch[item.sha] = item
                accepted.append(item)
            except Exception as exc:  # noqa: BLE001 - one bad envelope must not stop the intake
                if not isinstance(exc, CoordinatorError):
                    log.exception("unexpected error checking a sequence number")
                item.error = exc
        if accepted:
            try:
                self._append(accepted)
            except Exception:  # noqa: BLE001 - one envelope must not fail its batch
                log.exception(
                    "ledger commit of %d failed; committing them one by one", len(accepted)
                )
                self._append_one_by_one(accepted)
        for item in batch:
            if item.twin is not None:
                item.error = item.twin.error
                if item.twin.response is not None:
                    item.response = cpb.SubmitResponse()
                    item.response.CopyFrom(item.twin.response)

    def _append_one_by_one(self, accepted: list[_Pending]) -> None:
        """After a failed group commit: each envelope in a transaction of its own, so only the
        one that cannot be stored is refused."""
        for item in accepted:
            try:
                self._append([item])
            except Exception as exc:  # noqa: BLE001 - this caller hears of it
                log.exception("ledger commit failed for a submission of site %s", item.site_id)
                item.error = exc

    def _append(self, accepted: list[_Pending]) -> None:
        """One transaction: the ledger's rows and tree head (coordinator/ledger.py) and the stored
        summaries and EQA responses."""
        staged = self.ledger.stage([_accepted(item) for item in accepted])
        conn = self.conn
        summaries: list[tuple[int, str, str, int, str, str]] = []  # written in one statement
        messages: list[tuple[int, pb.SiteSummary]] = []  # kept decoded, in one statement
        conn.execute("BEGIN IMMEDIATE")
        try:
            self.ledger.write(conn, staged)
            for offset, item in enumerate(accepted):
                index = staged.first_index + offset
                summary, _ = item.checked()
                if isinstance(summary, apb.CorrectiveAction):
                    actions.store(conn, index, item.site_id, summary, item.envelope.payload)
                    continue
                if isinstance(summary, epb.EqaResponse):
                    conn.execute(
                        "INSERT INTO eqa_responses (leaf_index, round_id, site_id, sequence, payload)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (
                            index,
                            summary.round_id,
                            item.site_id,
                            summary.sequence,
                            item.envelope.payload.decode("utf-8"),
                        ),
                    )
                    continue
                assert isinstance(summary, pb.SiteSummary)  # the only other kind intake takes
                summaries.append(
                    (
                        index,
                        item.site_id,
                        summary.period,
                        summary.sequence,
                        summary.standard_version,
                        item.envelope.payload.decode("utf-8"),
                    )
                )
                messages.append((index, summary))
            conn.executemany(
                "INSERT INTO summaries (leaf_index, site_id, period, sequence, standard_version, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                summaries,
            )
            decoded_cache.keep_in(conn, messages)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for item, response in zip(accepted, self.ledger.committed(staged)):
            item.response = response

    def _existing(self, conn: sqlite3.Connection, sha: str) -> cpb.SubmitResponse | None:
        """The original answer to an envelope already in the ledger (only this thread appends to it)."""
        return self.ledger.existing(conn, sha)


def _accepted(item: _Pending) -> Accepted:
    summary, received = item.checked()
    period = (
        summary.period
        if isinstance(summary, pb.SiteSummary)
        else leaf.ACTION_PERIOD_PREFIX + summary.action_id
        if isinstance(summary, apb.CorrectiveAction)
        else leaf.EQA_PERIOD_PREFIX + summary.round_id
    )
    return Accepted(
        envelope=item.envelope,
        data=item.data,
        sha=item.sha,
        site_id=item.site_id,
        keyid=item.keyid,
        period=period,
        sequence=summary.sequence,
        received_at=received.isoformat(timespec="seconds"),
        leaf_header=item.leaf_header,
    )
