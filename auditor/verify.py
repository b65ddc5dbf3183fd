"""Offline verification of an audit bundle: no network, no coordinator.

Checks, each reported as PASS or FAIL with its reason:
  manifest    MANIFEST.sig is the coordinator's signature over MANIFEST.json (the key the auditor
              pins with --coordinator-key, or else the bundle's own, reported as NOT pinned)
  files       every file listed is present with its SHA-256, and no file is unlisted
  tree head   the signed tree head verifies
  witnesses   the checkpoint of that tree head is cosigned by at least N distinct enrolled sites
              (--witnesses N; auditor/witnesses.py), and which
  leaf N      the site's signature (exactly one); the key was enrolled and not revoked when the
              coordinator received it (its signed receipt); the receipt names this envelope; the
              inclusion proof leads to the signed root
  completeness  every leaf up to the tree head rebuilds the signed root, and every submission
              accepted for the bundle's periods is in it (auditor/completeness.py)
  standard    the report names the standard in the bundle
  statistics  the report equals the benchmark recomputed from the signed summaries and standard
              by the method package (method/), at the method version the report names; flag
              messages are prose and are not compared

Reading the bundle (auditor/bundle.py) refuses duplicate or unknown members and zip bombs with
BundleUnreadable (exit status 2).

The statistics check compares the recomputation written as the coordinator writes benchmark.json
(method.report_bytes) with the report: equal but for the flag messages (compared by SHA-256), it
passes. A report written otherwise (by json.dumps, as coordinators did before) is compared figure
by figure, which also says where a report differs.

On Linux a network bundle's payloads are decoded and its statistics recomputed in a forked child
process (auditor/forked.py) while this one checks the signatures, receipts and proofs. This
process gives the child each payload as it reads its envelope (the child never reads the bundle),
then the report's digest, and the report itself only if the child asks (a report written
otherwise than the recomputation). The child sends back only each payload's site, period and
sequence, then its verdict with the digest of what it compared. Its verdict counts only if every
other check passed, it recomputed from the very payloads given, and it compared the very report
read here; else the statistics are recomputed here, so the lines printed are the same.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from auditor import bundle, completeness
from auditor.bundle import BundleUnreadable
from auditor.coordinator_key import load_pinned, manifest_signer, pem_raw
from auditor.forked import Forked, Send, Take, can_fork
from auditor.witnesses import check as check_witnesses
from method import METHOD_VERSION
from protos import dsse, leaf, merkle, wire
from protos.errors import ContractError
from protos.periods import parse as parse_period
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1 import summary_pb2 as pb
from protos.rarenet.v1.envelope_pb2 import Envelope

__all__ = ["BundleUnreadable", "Check", "Result", "verify"]

M = TypeVar("M", pb.SiteSummary, epb.EqaResponse)

HTML_NOT_VERIFIED = (
    "report/index.html is not verified by anything (a rewritten page would pass), so bundles no "
    "longer carry one; `rarenet-audit show --html` renders the verified report/benchmark.json. "
    "Ask the centre for a new bundle"
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Result:
    checks: list[Check] = field(default_factory=list)
    coordinator_fingerprint: str = ""  # the full SHA-256 fingerprint of the key checked against
    key_pinned: bool = False
    verified_report: bytes | None = None  # report/benchmark.json, once every check passed

    @property
    def report(self) -> dict[str, Any] | None:
        """report/benchmark.json, parsed, once every check passed."""
        return None if self.verified_report is None else dict(json.loads(self.verified_report))

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


def _manifest(files: dict[str, bytes], path: Path) -> dict[str, Any]:
    if "MANIFEST.json" not in files or "MANIFEST.sig" not in files:
        raise BundleUnreadable(
            f"{path} has no MANIFEST.json and MANIFEST.sig: not a rarenet audit bundle"
        )
    try:
        manifest = json.loads(files["MANIFEST.json"])
    except ValueError as exc:
        raise BundleUnreadable(f"MANIFEST.json cannot be read: {exc}") from exc
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in listed.items()
    ):
        raise BundleUnreadable("MANIFEST.json has no list of files with their SHA-256")
    return dict(manifest)


PROSE_KEYS = frozenset({"message"})


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two JSON values first differ (floats within 1e-9 relative), or None. Flag messages
    are prose written by the coordinator, not figures: they are not compared."""
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return f"{path or '/'}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for key in sorted((set(a) | set(b)) - PROSE_KEYS):
            if key not in a or key not in b:
                return f"{path}/{key}: present on one side only"
            found = _first_difference(a[key], b[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(a, float) or isinstance(b, float):
        return None if abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b)) else f"{path}: {a!r} != {b!r}"
    return None if a == b else f"{path}: {a!r} != {b!r}"


def _keep_latest(group: dict[str, tuple[int, M]], index: int, message: M) -> None:
    """Keep each site's submission of highest sequence."""
    previous = group.get(message.site_id)
    if previous is None or previous[1].sequence < message.sequence:
        group[message.site_id] = (index, message)


_RECORD_FIELDS = {
    "keyid": (str,),
    "site_id": (str,),
    "enrolled_at": (str,),
    "retired_at": (str, type(None)),
    "site_status": (str,),
    "site_revoked_at": (str, type(None)),
}


def _enrolment_records(data: bytes) -> dict[str, dict[str, Any]]:
    """{key id: enrolment record} of keys/sites.json; ValueError unless every record has every
    field with its type."""
    records = json.loads(data)
    if not isinstance(records, list):
        raise ValueError("not a list of enrolment records")
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        if not isinstance(record, dict) or any(
            not isinstance(record.get(name), kinds) for name, kinds in _RECORD_FIELDS.items()
        ):
            raise ValueError(f"a record lacks one of {', '.join(_RECORD_FIELDS)}: {record!r:.120}")
        out[record["keyid"]] = record
    return out


def _reason(exc: BaseException) -> str:
    return str(exc) if str(exc) and not isinstance(exc, KeyError) else f"{type(exc).__name__} {exc}"


@dataclass
class _Receipt:
    """A leaf's receipt as read ahead of its check: the envelope and its payload, or why either
    could not be read (raised where the leaf's check reaches it)."""

    envelope: Envelope | None = None
    receipt: lpb.Receipt | None = None
    error: Exception | None = None

    @classmethod
    def read(cls, data: bytes) -> _Receipt:
        try:
            envelope = wire.parse_envelope(data)
        except ContractError as exc:
            return cls(error=exc)
        try:
            return cls(envelope, wire.decode(envelope.payload, lpb.Receipt))
        except ContractError as exc:
            return cls(envelope, error=exc)


@dataclass
class _Signed:
    """A leaf's checks that do not read its payload's fields: its envelope's, made as the leaf is
    read (_signed), then its receipt's and proof's (_receipted), with what the checks that do
    need (_included), and `later`, the first of the receipt's and proof's checks that failed
    (raised only if the payload's own checks pass)."""

    record: dict[str, Any]
    template: lpb.LeafHeader  # the leaf header but for the payload's site, period and sequence
    canonical: bytes | None = None  # the serialised envelope, when the leaf data is the envelope
    receipt: lpb.Receipt | None = None
    proof: Any = None  # proofs/N.json as read
    received: str = ""
    later: Exception | None = None


@dataclass
class _Fields:
    """What a leaf's header takes from its decoded payload."""

    kind: str  # the payload type
    site_id: str
    group: str  # the period of a summary, the round of an EQA response
    sequence: int

    @classmethod
    def of(cls, payload_type: str, summary: pb.SiteSummary | epb.EqaResponse) -> _Fields:
        if isinstance(summary, pb.SiteSummary):
            return cls(payload_type, summary.site_id, summary.period, summary.sequence)
        return cls(payload_type, summary.site_id, summary.round_id, summary.sequence)

    @property
    def period(self) -> str:
        """The period its leaf header names."""
        if self.kind == wire.SITE_SUMMARY:
            return self.group
        return leaf.EQA_PERIOD_PREFIX + self.group


def _decode(envelope: Envelope) -> pb.SiteSummary | epb.EqaResponse:
    return _decode_payload(envelope.payload_type, envelope.payload)


def _decode_payload(payload_type: str, payload: bytes) -> pb.SiteSummary | epb.EqaResponse:
    if payload_type == wire.SITE_SUMMARY:
        return wire.decode(payload, pb.SiteSummary)
    return wire.decode(payload, epb.EqaResponse)


def _signed(
    envelope: Envelope, envelope_data: bytes, envelope_sha256: str, keys: _SiteKeys
) -> _Signed:
    """Check one bundled submission (`envelope`, parsed from `envelope_data`) as far as neither
    its payload's fields nor its receipt are needed: its signature and key. Its receipt and proof
    are checked next (_receipted), its payload decoded elsewhere (_included)."""
    keyid = dsse.sole_signer(envelope)
    record, site_raw = keys.verified(keyid)
    if envelope.payload_type not in (wire.SITE_SUMMARY, wire.EQA_RESPONSE):
        raise ContractError(
            f"payload type {envelope.payload_type} is not a summary or an EQA response"
        )
    dsse.verify(envelope, {keyid: site_raw}, expected_type=envelope.payload_type)
    canonical = wire.envelope_bytes(envelope)
    template = leaf.make_header(
        envelope,
        "",
        "",
        0,
        envelope_sha256 if canonical == envelope_data else hashlib.sha256(canonical).hexdigest(),
    )
    return _Signed(record, template)


def _receipted(
    signed: _Signed,
    read_receipt: _Receipt | None,
    proof_data: bytes | None,
    envelope_sha256: str,
    canonical: Callable[[], bytes],
    trusted: dict[str, bytes],
    index: int,
    head: lpb.TreeHead,
) -> None:
    """A signed leaf's receipt, the key's validity when received, and its proof's form, in their
    order, into `signed` (the first that fails kept as `later`). `canonical` gives the serialised
    envelope, needed when the receipt names no leaf header (the leaf data is the envelope)."""
    try:
        if read_receipt is None:
            raise KeyError(f"receipts/{index}.envelope")
        if read_receipt.envelope is None:
            raise read_receipt.error or ContractError("the receipt cannot be read")
        dsse.verify(read_receipt.envelope, trusted, expected_type=wire.RECEIPT)
        receipt = signed.receipt = read_receipt.receipt
        if receipt is None:
            raise read_receipt.error or ContractError("the receipt cannot be read")
        if receipt.envelope_sha256 != envelope_sha256 or receipt.leaf_index != index:
            raise ContractError("the coordinator's receipt names another envelope or leaf")
        received = signed.received = receipt.received_at
        record = signed.record
        if record["enrolled_at"] > received:
            raise ContractError(
                f"received {received}, before the key was enrolled ({record['enrolled_at']})"
            )
        for when in (record["retired_at"], record["site_revoked_at"]):
            if when and when <= received:
                raise ContractError(
                    f"received {received}, after the key was retired or the site revoked ({when})"
                )
        if proof_data is None:
            raise KeyError(f"proofs/{index}.json")
        proof = signed.proof = json.loads(proof_data)
        if proof["leaf_index"] != index or proof["tree_size"] != head.tree_size:
            raise ContractError("the inclusion proof is for another leaf or tree size")
        if not receipt.HasField("leaf_header"):
            signed.canonical = canonical()
    except BundleUnreadable:
        raise
    except Exception as exc:  # noqa: BLE001 - raised in its turn, once the payload is checked
        signed.later = exc


def _included(signed: _Signed, fields: _Fields, index: int, head: lpb.TreeHead) -> str:
    """The rest of a leaf's checks, in their order, once its payload is decoded: the payload
    names the key's site, then the checks kept as `later`, then the inclusion proof from the
    header made of the payload. What was checked."""
    record = signed.record
    if fields.site_id != record["site_id"]:
        raise ContractError(
            f"summary names site {fields.site_id} but the key is {record['site_id']}'s"
        )
    if signed.later is not None:
        raise signed.later
    receipt = signed.receipt
    assert receipt is not None  # `later` says why otherwise
    own = lpb.LeafHeader()
    own.CopyFrom(signed.template)
    own.site_id, own.period, own.sequence = fields.site_id, fields.period, fields.sequence
    merkle.verify_inclusion(
        merkle.leaf_hash(_leaf_data(signed.canonical, own, receipt)),
        index,
        head.tree_size,
        [bytes.fromhex(h) for h in signed.proof["hashes"]],
        head.root_hash,
    )
    what = fields.group if fields.kind == wire.SITE_SUMMARY else f"EQA {fields.group}"
    return (
        f"{fields.site_id} {what} sequence {fields.sequence}: signature, "
        f"key valid at {signed.received}, receipt, inclusion proof"
    )


def _leaf_data(canonical: bytes | None, own: lpb.LeafHeader, receipt: lpb.Receipt) -> bytes:
    """protos.leaf.leaf_data, from the header of the payload decoded already: the header when
    the receipt names one (which must be the envelope's own), else the serialised envelope."""
    if not receipt.HasField("leaf_header"):
        assert canonical is not None  # kept for such a receipt (_signed)
        return canonical
    if receipt.leaf_header != own:
        raise ContractError(
            "the receipt's leaf header does not describe this envelope "
            f"(it names {leaf.describe(receipt.leaf_header)}, the envelope is "
            f"{leaf.describe(own)})"
        )
    return leaf.header_data(own)


class _SiteKeys:
    """The bundle's site keys: each key's enrolment record, and its PEM and signed enrolment
    checked once, at its first submission."""

    def __init__(
        self, files: dict[str, bytes], records: dict[str, dict[str, Any]], trusted: dict[str, bytes]
    ) -> None:
        self.files, self.records, self.trusted = files, records, trusted
        self._checked: dict[str, bytes] = {}

    def verified(self, keyid: str) -> tuple[dict[str, Any], bytes]:
        record = self.records.get(keyid)
        if record is None or f"keys/{keyid}.pem" not in self.files:
            raise ContractError(f"signed by key {keyid[:16]}… which the bundle does not hold")
        site_raw = self._checked.get(keyid)
        if site_raw is None:
            site_raw = pem_raw(self.files[f"keys/{keyid}.pem"])
            if dsse.keyid(site_raw) != keyid:
                raise ContractError(f"keys/{keyid}.pem is not the key with that id")
            enrolment = wire.parse_envelope(self.files[f"enrolments/{keyid}.envelope"])
            dsse.verify(enrolment, {keyid: site_raw})
            self._checked[keyid] = site_raw
        return record, site_raw


# Members read one at a time, as their check comes (each is big at a national network's size,
# together hundreds of MB); the rest is read up front.
_STREAMED = ("envelopes/", "receipts/", "proofs/", bundle.REPORT, "report/index.html")


def verify(path: Path, coordinator_key: Path | None = None, witnesses: int = 0) -> Result:
    """Every check of the bundle at path. Members are read as their check comes and let go once
    checked, so memory holds the small members, the summaries the recomputation needs and the
    report, not the whole bundle. Every member is read, whatever failed, so that one that cannot
    be read is refused (BundleUnreadable) as before any check."""
    pinned = load_pinned(coordinator_key) if coordinator_key is not None else None
    result = Result()
    with bundle.Bundle(path) as opened:
        files = {n: opened.read(n) for n in opened.names if not n.startswith(_STREAMED)}
        recomputing: list[Forked] = []
        try:
            try:
                manifest = _manifest(files, path)
                files_at = _checks(opened, files, manifest, pinned, witnesses, result, recomputing)
            finally:
                for name in opened.unread():
                    opened.read(name)
            listed: dict[str, str] = manifest["files"]
            if files_at is not None:
                result.checks.insert(files_at, _files_check(listed, opened.digests))
        finally:  # last: a child that sent its verdict ends meanwhile (freeing its memory)
            for child in recomputing:
                child.stop()
    return result


def _files_check(listed: dict[str, str], digests: dict[str, str]) -> Check:
    """Every file is listed with its hash, and nothing else is there."""
    present = set(digests) - {"MANIFEST.json", "MANIFEST.sig"}
    missing, extra = sorted(set(listed) - present), sorted(present - set(listed))
    changed = sorted(n for n in set(listed) & present if digests[n] != listed[n])
    return Check(
        "files",
        not (missing or extra or changed),
        f"{len(listed)} files match their SHA-256"
        if not (missing or extra or changed)
        else "; ".join(
            filter(
                None,
                [
                    f"missing: {', '.join(missing)}" if missing else "",
                    f"not in the manifest: {', '.join(extra)}" if extra else "",
                    f"hash differs: {', '.join(changed)}" if changed else "",
                ],
            )
        ),
    )


def _checks(
    opened: bundle.Bundle,
    files: dict[str, bytes],
    manifest: dict[str, Any],
    pinned: bytes | None,
    witnesses: int,
    result: Result,
    recomputing: list[Forked],
) -> int | None:
    """Make the checks into result; where the files check goes once every member is read (None
    when the manifest's signature did not verify: nothing is checked against it then). The
    statistics of a whole network's bundle are recomputed in a forked child process while the
    signatures are checked here (`recomputing` holds it, to be stopped by the caller)."""
    # 1. The manifest is the coordinator's.
    signer = manifest_signer(files, manifest, pinned)
    result.coordinator_fingerprint, result.key_pinned = signer.fingerprint, signer.pinned
    result.add("manifest", signer.ok, signer.detail)
    if signer.raw is None:
        return None
    trusted = {dsse.keyid(signer.raw): signer.raw}

    # 2. Every file is listed with its hash (checked as each is read; the check goes here).
    files_at = len(result.checks)
    if "report/index.html" in opened:
        result.add("report/index.html", False, HTML_NOT_VERIFIED)

    # 3. The tree head.
    try:
        signed_head = wire.parse_envelope(files["tree_head.envelope"])
        dsse.verify(signed_head, trusted, expected_type=wire.TREE_HEAD)
        head = wire.decode(signed_head.payload, lpb.TreeHead)
        result.add("tree head", True, f"size {head.tree_size}, root {head.root_hash.hex()[:16]}…")
    except (ContractError, KeyError) as exc:
        result.add("tree head", False, str(exc) or f"{type(exc).__name__} {exc}")
        return files_at
    witnessed = check_witnesses(files, signer.raw, head.tree_size, head.root_hash, witnesses)
    result.add("witnesses", witnessed.ok, witnessed.detail)

    # 4. Each signed summary, read one at a time.
    try:
        records = _enrolment_records(files["keys/sites.json"])
    except (KeyError, ValueError, TypeError) as exc:
        result.add("keys", False, f"keys/sites.json cannot be read: {_reason(exc)}")
        return files_at
    leaves = sorted(bundle.leaf_number(n) for n in opened.names if n.startswith("envelopes/"))
    # The child is given every payload as it is read here; it decodes them (their fields come
    # back first) and recomputes the statistics (its verdict comes last) while the signatures are
    # checked here.
    # The method (numpy, scipy: most of a second) is loaded by the child as it starts, while the
    # first envelopes are read here.
    if manifest.get("site") is None and can_fork():
        try:
            recomputing.append(
                Forked(lambda take, send: _recompute(files, manifest, records, take, send))
            )
        except OSError:
            pass  # no second process to be had (a process or memory limit): all of it here
    feed = recomputing[0] if recomputing else None
    given: list[tuple[int, str]] = []  # (leaf, SHA-256 of its envelope) given to the child
    whole = completeness.whole_envelope_members(files.get("ledger/leaves.json", b"{}"))
    keys = _SiteKeys(files, records, trusted)
    envelopes: dict[int, str] = {}
    receipt_heads: dict[str, tuple[int, bytes]] = {}
    checked: dict[int, _Signed | str] = {}  # each leaf's checks so far, or why one failed
    # 4a. Each envelope read, its payload given to the child at once, and its signature checked.
    # While the child is behind (it cannot start recomputing before it has every payload), the
    # payload is decoded here for it, and the signature checked once every payload is given (the
    # envelope read again), while the child recomputes.
    later: list[int] = []  # the leaves whose signatures are checked after the child is given all
    for index in leaves:
        name = f"envelopes/{index}.envelope"
        data = opened.read(name)
        envelopes[index] = opened.digests[name]
        if name in whole:
            files[name] = data  # a whole-envelope leaf: completeness hashes it
        try:
            envelope = wire.parse_envelope(data)
            if feed is not None and envelope.payload_type in _SIGNED_FORMS:
                behind = feed.behind() > 0
                described, payload = _payload_frames(index, envelopes[index], envelope, behind)
                if feed.give(described) and feed.give(payload):
                    given.append((index, envelopes[index]))
                    if behind:
                        later.append(index)
                        continue
                else:
                    feed = None  # the child ended: its verdict will be None
            checked[index] = _signed(envelope, data, envelopes[index], keys)
        except BundleUnreadable:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with a leaf fails its check
            checked[index] = _reason(exc)
    report: bytes | None = None  # read here while the child recomputes, given to it as a digest
    report_digest = ""  # of the report but for its flag messages (_prose_free_sha256)
    if feed is not None:
        feed.give(_END)
        feed.flush()
        if bundle.REPORT in opened:
            report = opened.read(bundle.REPORT)
            report_digest = _prose_free_sha256(report)
            feed.give(_REPORT + report_digest.encode())
        else:
            feed.give(_REPORT)
        feed.flush()
    # 4b. The signatures left, each receipt and proof, while the child recomputes.
    deferred = set(later)
    for index in leaves:
        name = f"envelopes/{index}.envelope"
        if index in deferred:
            data = opened.read_again(name)  # the very bytes read first, or BundleUnreadable
            try:
                checked[index] = _signed(wire.parse_envelope(data), data, envelopes[index], keys)
            except Exception as exc:  # noqa: BLE001 - whatever is wrong with a leaf fails its check
                checked[index] = _reason(exc)
        read_receipt = _read_receipt(opened, f"receipts/{index}.envelope", receipt_heads)
        proof = f"proofs/{index}.json"
        proof_data = opened.read(proof) if proof in opened else None
        state = checked[index]
        if isinstance(state, _Signed):

            def canonical(name: str = name) -> bytes:
                return wire.envelope_bytes(wire.parse_envelope(opened.read_again(name)))

            _receipted(
                state,
                read_receipt,
                proof_data,
                envelopes[index],
                canonical,
                keys.trusted,
                index,
                head,
            )
    fields = _payload_fields(recomputing[0].receive() if recomputing else None, opened, checked)
    passed: list[int] = []  # the leaves whose checks passed: the recomputation reads those
    for index in leaves:
        state = checked[index]
        try:
            if isinstance(state, str):
                raise _Failed(state)
            found = fields[index]
            if isinstance(found, str):
                raise _Failed(found)
            detail = _included(state, found, index, head)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with a leaf fails its check
            result.add(
                f"leaf {index}", False, str(exc) if isinstance(exc, _Failed) else _reason(exc)
            )
            continue
        passed.append(index)
        result.add(f"leaf {index}", True, detail)
    checked.clear()
    for name in opened.unread():
        if name.startswith("receipts/"):  # a receipt without its envelope
            _read_receipt(opened, name, receipt_heads)

    # 4c. Every submission accepted for the bundle's periods is in it.
    for finding in completeness.check(
        files, opened.names, envelopes, receipt_heads, manifest, head
    ):
        result.add(finding.name, finding.ok, finding.detail)

    # 5. EQA rounds: signed by the coordinator, and the truth is the one sealed at opening.
    # The method (numpy, scipy) is loaded only once the bundle's signatures have been checked:
    # refusing a bad bundle stays cheap in memory.
    from method.eqa import commitment

    rounds: list[tuple[epb.EqaRound, bytes]] = []
    for name in _round_members(files):
        round_id = name.split("/")[1]
        try:
            signed = wire.parse_envelope(files[name])
            dsse.verify(signed, trusted, expected_type=wire.EQA_ROUND)
            round_ = wire.decode(signed.payload, epb.EqaRound)
            truth = files[f"eqa/{round_id}/truth.csv"]
            sealed = (
                commitment(bytes.fromhex(round_.revealed_salt), truth) == round_.commitment_sha256
            )
            result.add(
                f"eqa {round_id}",
                sealed,
                "the truth file is the one sealed at opening (commitment "
                f"{round_.commitment_sha256[:16]}…)"
                if sealed
                else "the truth file does not match the commitment published at opening",
            )
            rounds.append((round_, truth))
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with a round fails its check
            result.add(f"eqa {round_id}", False, _reason(exc))

    # 6. The statistics and scores, recomputed: by the child process, if every check above
    # passed and it recomputed from the very envelopes checked here; else here.
    if recomputing and report is not None and result.ok:
        verdict = _verdict(recomputing[0], report)
        if verdict is not None and _recomputed_agrees(verdict, given, report, report_digest):
            _statistics_recomputed(files, manifest, report, len(leaves), result)
            return files_at
    for child in recomputing:
        child.stop()

    def signed_inputs() -> Any:
        return _inputs(opened.read_again, passed, rounds, records)

    _statistics(opened, files, manifest, signed_inputs, len(leaves), result, report)
    return files_at


class _Failed(Exception):
    """A leaf's check failed, for the reason given (said as it is)."""


def _payload_fields(
    message: dict[str, Any] | None, opened: bundle.Bundle, checked: dict[int, _Signed | str]
) -> dict[int, _Fields | str]:
    """The fields of each checked leaf's payload, or why it cannot be decoded: as the child
    process decoded them (`message`), else decoded here from the envelopes read again."""
    out: dict[int, _Fields | str] = {}
    sent = message.get("fields") if message is not None else None
    for index, signed in checked.items():
        if isinstance(signed, str):
            continue
        found = sent.get(str(index)) if isinstance(sent, dict) else None
        if not (  # the child's fields count only for the very bytes checked here
            isinstance(found, list)
            and found
            and found[-1] == opened.digests.get(f"envelopes/{index}.envelope")
        ):
            found = None
        if isinstance(found, list) and len(found) == 3 and found[0] == "error":
            out[index] = str(found[1])
        elif isinstance(found, list) and len(found) == 5:
            out[index] = _Fields(str(found[0]), str(found[1]), str(found[2]), int(found[3]))
        else:
            envelope = wire.parse_envelope(opened.read_again(f"envelopes/{index}.envelope"))
            try:
                out[index] = _Fields.of(envelope.payload_type, _decode(envelope))
            except Exception as exc:  # noqa: BLE001 - the leaf's check says why
                out[index] = _reason(exc)
    return out


def _round_members(files: dict[str, bytes]) -> list[str]:
    return sorted(n for n in files if n.startswith("eqa/") and n.endswith("/round.envelope"))


def _inputs(
    read: Callable[[str], bytes],
    indices: list[int],
    rounds: list[tuple[epb.EqaRound, bytes]],
    records: dict[str, dict[str, Any]],
) -> Any:
    """The method's Inputs from the signed envelopes of `indices` (each site's latest summary of
    each period, and latest response to each round), the EQA rounds and the revoked sites."""
    from method.inputs import EqaRoundInput, Inputs

    by_period: dict[str, dict[str, tuple[int, pb.SiteSummary]]] = {}
    responses: dict[str, dict[str, tuple[int, epb.EqaResponse]]] = {}
    for index in indices:
        summary = _decode(wire.parse_envelope(read(f"envelopes/{index}.envelope")))
        if isinstance(summary, pb.SiteSummary):
            _keep_latest(by_period.setdefault(summary.period, {}), index, summary)
        else:
            _keep_latest(responses.setdefault(summary.round_id, {}), index, summary)
    revoked = {r["site_id"] for r in records.values() if r["site_status"] == "revoked"}
    ordered = _in_coordinator_order(by_period)
    by_period.clear()
    return Inputs(
        ordered,
        revoked,
        [
            EqaRoundInput(round_, truth, responses.get(round_.round_id, {}))
            for round_, truth in rounds
        ],
    )


# What the parent gives the child (auditor/forked.py), each a frame of its own: every payload as
# its envelope is read, then the end of them, then the report's digest without its flag messages;
# and, only if the child asks (its recomputation is not the report's bytes), the report itself.
_PAYLOAD, _END, _REPORT, _REPORT_BYTES = b"P", b"E", b"R", b"B"
# A payload is given as it was signed (JSON), or decoded here and serialised (protobuf), when the
# child is behind: reading that is some thirty times cheaper than decoding the JSON, so the two
# processes share the decoding as each has time.
_SIGNED_FORMS = {wire.SITE_SUMMARY: b"S", wire.EQA_RESPONSE: b"Q"}
_DECODED_FORMS = {wire.SITE_SUMMARY: b"s", wire.EQA_RESPONSE: b"q"}
_FORMS: dict[bytes, tuple[str, bool]] = {
    **{form: (payload_type, False) for payload_type, form in _SIGNED_FORMS.items()},
    **{form: (payload_type, True) for payload_type, form in _DECODED_FORMS.items()},
}
_WANT_REPORT: dict[str, Any] = {"want": "report"}


def _payload_frames(
    index: int, envelope_sha256: str, envelope: Envelope, decode: bool
) -> tuple[bytes, bytes]:
    """A payload's two frames: P, the leaf index (8 bytes), its envelope's SHA-256 (32) and the
    payload's form (1); then the payload, as signed, or with `decode`, decoded here (as signed
    when it does not decode: the child then says why, as for any other)."""
    form, body = _SIGNED_FORMS[envelope.payload_type], envelope.payload
    if decode:
        try:
            body = _decode(envelope).SerializeToString()
            form = _DECODED_FORMS[envelope.payload_type]
        except Exception:  # noqa: BLE001 - given as signed: the child decodes it and says why
            pass
    head = b"".join((_PAYLOAD, index.to_bytes(8, "big"), bytes.fromhex(envelope_sha256), form))
    return head, body


def _payload_of(form: bytes, body: bytes) -> tuple[str, pb.SiteSummary | epb.EqaResponse]:
    """(payload type, payload) of a payload's form and body (_payload_frames)."""
    payload_type, decoded = _FORMS[form]
    if not decoded:
        return payload_type, _decode_payload(payload_type, body)
    if payload_type == wire.SITE_SUMMARY:
        return payload_type, pb.SiteSummary.FromString(body)
    return payload_type, epb.EqaResponse.FromString(body)


def _envelopes_digest(given: list[tuple[int, str]]) -> str:
    """One SHA-256 over the SHA-256 of every envelope given to the child, in leaf order."""
    listed = "".join(f"{index} {digest}\n" for index, digest in given)
    return hashlib.sha256(listed.encode()).hexdigest()


def _prose_free_sha256(data: bytes | bytearray) -> str:
    """The SHA-256 of a compact JSON text with every flag message pair taken out (_PROSE): equal
    for the report and its recomputation written alike but for the flag messages."""
    digest = hashlib.sha256()
    view = memoryview(data)
    at = 0
    for match in _PROSE.finditer(data):
        digest.update(view[at : match.start()])
        at = match.end()
    digest.update(view[at:])
    return digest.hexdigest()


def _written_sha256(full: dict[str, Any]) -> str | None:
    """_prose_free_sha256 of the recomputation written as the coordinator writes benchmark.json
    (method.report_bytes); None if it cannot be written so (then compared figure by figure)."""
    from method.report_bytes import benchmark_bytes

    try:
        return _prose_free_sha256(benchmark_bytes(full))
    except orjson.JSONEncodeError:  # a key that is not a string, an integer past 64 bits, ...
        return None


def _recompute(
    files: dict[str, bytes],
    manifest: dict[str, Any],
    records: dict[str, dict[str, Any]],
    take: Take,
    send: Send,
) -> None:
    """In the child process: every payload the parent gives (the very bytes it checks) decoded,
    the fields the parent's leaf checks need sent back first; then the benchmark recomputed and
    written as the coordinator writes benchmark.json (method.report_bytes). Its digest but for the
    flag messages is compared with the report's, which the parent gives; where they differ (a
    report written otherwise, by an older coordinator, or another report), the parent is asked
    for the report, and it is compared figure by figure. Only the verdict is sent, with the
    SHA-256 of what it compared, so the parent knows it recomputed from the very bytes it checked.
    The parent uses the verdict only if every leaf and round passed its checks: then "every
    payload given" is "every payload that passed", as the parent would read."""
    from method.benchmark import compute
    from method.inputs import EqaRoundInput, Inputs
    from method.standard import parse as parse_standard

    by_period: dict[str, dict[str, tuple[int, pb.SiteSummary]]] = {}
    responses: dict[str, dict[str, tuple[int, epb.EqaResponse]]] = {}
    fields: dict[str, list[Any]] = {}
    given: list[tuple[int, str]] = []
    while (frame := take()) is not None and frame[:1] == _PAYLOAD:
        index, digest = int.from_bytes(frame[1:9], "big"), frame[9:41].hex()
        body = take()
        if body is None:
            return  # the parent gave up: it does the work itself
        given.append((index, digest))
        try:
            payload_type, summary = _payload_of(frame[41:42], body)
        except Exception as exc:  # noqa: BLE001 - the leaf's check says why
            fields[str(index)] = ["error", _reason(exc), digest]
            continue
        found = _Fields.of(payload_type, summary)
        fields[str(index)] = [found.kind, found.site_id, found.group, found.sequence, digest]
        if isinstance(summary, pb.SiteSummary):
            _keep_latest(by_period.setdefault(summary.period, {}), index, summary)
        else:
            _keep_latest(responses.setdefault(summary.round_id, {}), index, summary)
    if frame != _END:
        return  # the parent gave up: it does the work itself
    send({"fields": fields})
    fields.clear()
    rounds = []
    for name in _round_members(files):
        round_ = wire.decode(wire.parse_envelope(files[name]).payload, epb.EqaRound)
        truth = files[f"eqa/{name.split('/')[1]}/truth.csv"]
        rounds.append(EqaRoundInput(round_, truth, responses.get(round_.round_id, {})))
    revoked = {r["site_id"] for r in records.values() if r["site_status"] == "revoked"}
    inputs = Inputs(_in_coordinator_order(by_period), revoked, rounds)
    by_period.clear()
    standard = parse_standard(files["standard.toml"].decode("utf-8"), "standard.toml")
    full = compute(inputs, manifest["period"], standard)
    inputs.by_period.clear()
    recomputed = _written_sha256(full)
    frame = take()
    if frame is None or not frame.startswith(_REPORT) or len(frame) == len(_REPORT):
        return  # no report: the parent says so itself
    envelopes_sha256 = _envelopes_digest(given)
    named = (
        full.get("method_version") == METHOD_VERSION
        and full.get("standard", {}).get("sha256") == standard.sha256
    )
    if named and frame[len(_REPORT) :].decode() == recomputed:
        send({"same": True, "prose_free_sha256": recomputed, "envelopes_sha256": envelopes_sha256})
        return
    send(_WANT_REPORT)
    frame = take()
    if frame is None or not frame.startswith(_REPORT_BYTES):
        return
    report = memoryview(frame)[len(_REPORT_BYTES) :]
    same = named and (_same_bytes(full, report) or _same_figures(full, report))
    send(
        {
            "same": bool(same),
            "report_sha256": hashlib.sha256(report).hexdigest(),
            "envelopes_sha256": envelopes_sha256,
        }
    )


def _verdict(child: Forked, report: bytes) -> dict[str, Any] | None:
    """The child's verdict on the report, given it if it asks."""
    message = child.receive()
    if message == _WANT_REPORT:
        if not (child.give(_REPORT_BYTES + report) and child.flush()):
            return None
        message = child.receive()
    return message


def _in_coordinator_order(
    by_period: dict[str, dict[str, tuple[int, pb.SiteSummary]]],
) -> dict[str, dict[str, tuple[int, pb.SiteSummary]]]:
    """In the coordinator's order (periods oldest first, sites by id: coordinator/benchmark.py),
    so that sums are added up in the same order and the figures come out to the same bits."""
    return {
        label: {site: by_period[label][site] for site in sorted(by_period[label])}
        for label in sorted(by_period, key=_period_start)
    }


def _recomputed_agrees(
    verdict: dict[str, Any], given: list[tuple[int, str]], report: bytes, report_digest: str
) -> bool:
    """The child found the report equal to its recomputation from the very payloads given to it
    (those checked here), and compared the very report read here: its bytes but for the flag
    messages (`report_digest`), or (figure by figure) its bytes."""
    return (
        verdict.get("same") is True
        and verdict.get("envelopes_sha256") == _envelopes_digest(given)
        and (
            verdict.get("prose_free_sha256") == report_digest
            if "prose_free_sha256" in verdict
            else verdict.get("report_sha256") == hashlib.sha256(report).hexdigest()
        )
    )


def _statistics_recomputed(
    files: dict[str, bytes],
    manifest: dict[str, Any],
    report: bytes,
    leaves: int,
    result: Result,
) -> None:
    """The standard and statistics checks passed, as the child process found of `report`."""
    from method.standard import parse as parse_standard

    standard = parse_standard(files["standard.toml"].decode("utf-8"), "standard.toml")
    result.add("standard", True, _standard_named(standard))
    result.add("statistics", True, _done(manifest, leaves))
    result.verified_report = report if result.ok else None


def _standard_named(standard: Any) -> str:
    return f"{standard.label} (sha256 {standard.sha256[:16]}…)"


def _done(manifest: dict[str, Any], leaves: int) -> str:
    site = manifest.get("site")
    return (
        f"{site}'s own positive and valid counts recomputed from its {leaves} signed "
        "summaries (a per-site bundle holds no peer's summary, so network figures are not)"
        if site
        else f"every figure of report/benchmark.json recomputed from {leaves} signed summaries"
    )


def _period_start(label: str) -> tuple[str, str]:
    try:
        return parse_period(label).start.isoformat(), label
    except ContractError:
        return "", label


def _read_receipt(
    opened: bundle.Bundle, name: str, heads: dict[str, tuple[int, bytes]]
) -> _Receipt | None:
    """The receipt member read ahead of its leaf's check, its tree head kept for completeness."""
    if name not in opened:
        return None
    read = _Receipt.read(opened.read(name))
    if read.receipt is not None:
        heads[name] = (read.receipt.tree_head.tree_size, read.receipt.tree_head.root_hash)
    return read


# A flag message is prose: the coordinator writes it (coordinator/messages.py), the method leaves
# it empty. In compact JSON `"message":"` can only be a key and the start of its string value (a
# quote inside a string is escaped), so taking out every such pair, and nothing else, compares all
# the rest: the commas left around it keep two texts that differ otherwise apart (no valid JSON
# has ",," or "{,"). The pattern starts with a literal, which the regex engine searches fast.
_PROSE = re.compile(rb'"message":"[^"\\]*(?:\\.[^"\\]*)*"')
_PROSE_KEY = b'"message":"'


def _without_prose(piece: bytes) -> bytes:
    return _PROSE.sub(b"", piece) if _PROSE_KEY in piece else piece


def _statistics(
    opened: bundle.Bundle,
    files: dict[str, bytes],
    manifest: dict[str, Any],
    signed_inputs: Callable[[], Any],
    leaves: int,
    result: Result,
    read_already: bytes | None = None,
) -> None:
    """The standard check and the recomputation of report/benchmark.json (`read_already`, if the
    report was read before)."""
    from method.benchmark import compute, for_site
    from method.standard import StandardError
    from method.standard import parse as parse_standard

    site = manifest.get("site")
    try:
        standard = parse_standard(files["standard.toml"].decode("utf-8"), "standard.toml")
    except (KeyError, ValueError, StandardError) as exc:
        result.add("standard", False, str(exc))
        return
    done = _done(manifest, leaves)
    standard_named = _standard_named(standard)
    full: dict[str, Any] | Exception | None = None
    inputs = signed_inputs()
    if not site:
        try:
            full = compute(inputs, manifest["period"], standard)
        except Exception as exc:  # noqa: BLE001 - said below, once the report is read
            full = exc
        inputs.by_period.clear()  # the summaries are let go before the report is read
    try:
        report = opened.read(bundle.REPORT) if read_already is None else read_already
    except KeyError as exc:
        result.add("standard", False, str(exc))
        return
    # The common case, without parsing the report: the recomputation, written as the
    # coordinator writes benchmark.json (method.report_bytes), is the report's bytes but for the
    # flag messages; a report written otherwise (by json.dumps, before) holds the same figures.
    if (
        isinstance(full, dict)
        and full.get("method_version") == METHOD_VERSION
        and full.get("standard", {}).get("sha256") == standard.sha256
        and (
            _written_sha256(full) == _prose_free_sha256(report)
            or _same_bytes(full, report)
            or _same_figures(full, report)
        )
    ):
        result.add("standard", True, standard_named)
        result.add("statistics", True, done)
        result.verified_report = report if result.ok else None
        return
    try:
        reported = json.loads(report)
    except ValueError as exc:
        result.add("standard", False, str(exc))
        return
    if not isinstance(reported, dict):
        result.add("standard", False, "report/benchmark.json is not a JSON object")
        return
    result.add(
        "standard",
        reported.get("standard", {}).get("sha256") == standard.sha256,
        standard_named
        if reported.get("standard", {}).get("sha256") == standard.sha256
        else "the report names another standard than the one in the bundle",
    )
    version = reported.get("method_version")
    if version != METHOD_VERSION:
        result.add(
            "statistics",
            False,
            f"the report was computed by method version {version or '(none named)'}; this auditor "
            f"runs method {METHOD_VERSION}: verify it with the rarenet-audit release of that method",
        )
        return
    try:
        if full is None:
            full = compute(inputs, manifest["period"], standard)
        if isinstance(full, Exception):
            raise full
        if site:  # only the site's own summaries: its own counts can be recomputed, not the rest
            difference = _first_difference(_own_counts(for_site(full, site)), _own_counts(reported))
        else:
            recomputed = json.loads(
                json.dumps(full, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            )
            difference = None if recomputed == reported else _first_difference(recomputed, reported)
    except Exception as exc:  # noqa: BLE001 - a report that cannot be recomputed fails the check
        difference = f"cannot recompute: {exc}"
    result.add(
        "statistics",
        difference is None,
        done
        if difference is None
        else f"report/benchmark.json differs from the recomputation at {difference}",
    )
    result.verified_report = report if result.ok else None


def _same_bytes(full: dict[str, Any], report: bytes | bytearray | memoryview) -> bool:
    """The recomputation, written as the coordinator writes benchmark.json (compact, keys
    sorted), is the report byte for byte but for the flag messages. Written and compared a piece
    at a time, so that the text of a national network's report is never held twice.

    Each piece is written by orjson first, about six times faster than json's encoder. That
    text holds the very values of the piece (every int and string exactly, every float as the
    shortest text that reads back as that float), unless it holds a null: orjson writes NaN and
    the infinities as null too, so such a piece is written by json. The report's piece equal to
    it holds the recomputed values, what _same_figures asks too; where orjson writes a value
    otherwise than json does (1e-05 as 0.00001), the piece is compared as json writes it."""
    reported = _WithoutProse(report)
    for piece in _pieces(full, _SPLIT_DEPTH):
        if isinstance(piece, str):
            if not reported.starts_with(_without_prose(piece.encode())):
                return False
            continue
        if not _same_value(reported, piece.value, _SPLIT_FURTHER):
            return False
    return reported.starts_with(b"\n") and reported.at_end()


_SPLIT_FURTHER = 1  # levels a value orjson cannot write as json does is split further


def _same_value(reported: _WithoutProse, value: Any, depth: int) -> bool:
    """Whether the report goes on with `value` (read if so): as orjson writes it, else, split
    into the pieces json writes it in, each compared so, down to `depth` levels, else as json
    writes it whole."""
    fast = _faithful(value)
    if fast is not None and reported.starts_with(_without_prose(fast)):
        return True
    if depth and isinstance(value, (dict, list, tuple)):
        parts = list(_pieces(value, 1))
        if len(parts) > 1:
            return all(
                reported.starts_with(_without_prose(part.encode()))
                if isinstance(part, str)
                else _same_value(reported, part.value, depth - 1)
                for part in parts
            )
    return reported.starts_with(_without_prose(_COMPACT.encode(value).encode()))


def _faithful(value: Any) -> bytes | None:
    """orjson's compact text of value, keys sorted, if it holds exactly value's values (see
    _same_bytes); else None."""
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # a key that is not a string, an integer past 64 bits, ...
        return None
    return None if b"null" in data else data


_COMPACT = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
_SPLIT_DEPTH = 3  # the report, each of its parts, each site: pieces of a few KB


@dataclass(frozen=True)
class _Value:
    """A value of the report written whole (json: _COMPACT.encode(value))."""

    value: Any


def _pieces(value: Any, depth: int) -> Iterator[str | _Value]:
    """_COMPACT.encode(value) in consecutive pieces: the text of the punctuation and the keys,
    and the values written whole. A dict holding a flag message is never split, so each message
    pair lies whole in one piece (and _PROSE finds it there)."""
    if depth and isinstance(value, dict) and value and "message" not in value:
        if all(type(key) is str for key in value):
            yield "{"
            for i, key in enumerate(sorted(value)):
                yield ("," if i else "") + _COMPACT.encode(key) + ":"
                yield from _pieces(value[key], depth - 1)
            yield "}"
            return
    if depth and isinstance(value, (list, tuple)) and value:
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ","
            yield from _pieces(item, depth - 1)
        yield "]"
        return
    yield _Value(value)


class _Unaligned(Exception):
    """The report is not laid out as the recomputation would be written."""


_DECODER = json.JSONDecoder()


def _same_figures(full: dict[str, Any], report: bytes | bytearray | memoryview) -> bool:
    """Every figure of the report equals the recomputation's within rounding (_first_difference),
    read a piece at a time in the recomputation's layout (a national network's report parsed
    whole takes gigabytes). False when anything differs or the layout is another: the whole
    report is then parsed, to say where it differs."""
    try:
        text = str(report, "utf-8")
        difference, end = _walk(text, 0, full, _SPLIT_DEPTH, "")
    except (_Unaligned, ValueError, IndexError, RecursionError):
        return False
    return difference is None and text[end:] == "\n"


def _walk(text: str, at: int, value: Any, depth: int, path: str) -> tuple[str | None, int]:
    """(where the JSON value in text at `at` first differs from value, or None; where it ends),
    splitting as _pieces does; _Unaligned when the text is not laid out so."""
    if depth and isinstance(value, dict) and value and "message" not in value:
        if all(type(key) is str for key in value):
            at = _expect(text, at, "{")
            for i, key in enumerate(sorted(value)):
                if i:
                    at = _expect(text, at, ",")
                named, at = _DECODER.raw_decode(text, at)
                if named != key:
                    raise _Unaligned(f"{path}/{key}")
                at = _expect(text, at, ":")
                difference, at = _walk(text, at, value[key], depth - 1, f"{path}/{key}")
                if difference:
                    return difference, at
            return None, _expect(text, at, "}")
    if depth and isinstance(value, (list, tuple)) and value:
        at = _expect(text, at, "[")
        for i, item in enumerate(value):
            if i:
                at = _expect(text, at, ",")
            difference, at = _walk(text, at, item, depth - 1, f"{path}[{i}]")
            if difference:
                return difference, at
        return None, _expect(text, at, "]")
    reported, end = _DECODER.raw_decode(text, at)
    recomputed = json.loads(_COMPACT.encode(value))
    return (None if recomputed == reported else _first_difference(recomputed, reported, path)), end


def _expect(text: str, at: int, char: str) -> int:
    if text[at] != char:
        raise _Unaligned(f"{char!r} at {at}")
    return at + 1


class _WithoutProse:
    """The bytes of a compact JSON text with every flag message pair taken out (_PROSE), read
    from the front without copying the whole."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = memoryview(data)
        self._cuts = [match.span() for match in _PROSE.finditer(data)]
        self._at = 0
        self._next = 0  # the first cut not passed yet

    def starts_with(self, expected: bytes) -> bool:
        """Whether the next len(expected) bytes are expected: read if so, else left unread."""
        at, next_cut = self._at, self._next
        taken: list[bytes] = []
        wanted = len(expected)
        while wanted:
            cut = self._cuts[next_cut] if next_cut < len(self._cuts) else None
            end = len(self._data) if cut is None else cut[0]
            if at == end:
                if cut is None:
                    return False  # shorter than expected
                at, next_cut = cut[1], next_cut + 1
                continue
            chunk = self._data[at : min(end, at + wanted)]
            taken.append(chunk.tobytes())
            at += len(chunk)
            wanted -= len(chunk)
        if b"".join(taken) != expected:
            return False
        self._at, self._next = at, next_cut
        return True

    def at_end(self) -> bool:
        while self._next < len(self._cuts) and self._at == self._cuts[self._next][0]:
            self._at = self._cuts[self._next][1]
            self._next += 1
        return self._at == len(self._data)


def check_known_answer(path: Path) -> str | None:
    """A known-answer case (method/known_answers.py) recomputed by the method the auditor runs:
    None when every figure matches, else where the first difference is."""
    from method import known_answers

    case = known_answers.load(path)
    return _first_difference(known_answers.run(case), case["expected"])


def _own_counts(view: dict[str, Any]) -> dict[str, Any]:
    """A site's own view reduced to what its own signed summaries alone determine."""
    positivity = (view.get("site") or {}).get("positivity", {})
    return {
        b: {"positive": v.get("positive"), "valid": v.get("valid")} for b, v in positivity.items()
    }
