"""Offline verification of an audit bundle: no network, no coordinator.

Checks, each reported as PASS or FAIL with its reason:
  manifest    MANIFEST.sig is the coordinator's signature over MANIFEST.json (the key in the
              bundle, or the one the auditor pins with --coordinator-key)
  files       every file listed is present with its SHA-256, and no file is unlisted
  tree head   the signed tree head verifies
  leaf N      the site's signature; the key was enrolled and not revoked when the coordinator
              received it (its signed receipt); the receipt names this envelope; the inclusion
              proof leads to the signed root
  standard    the report names the standard in the bundle
  statistics  the report equals the benchmark recomputed from the signed summaries and standard
              by the method package (method/), at the method version the report names; flag
              messages are prose and are not compared
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from method import METHOD_VERSION, known_answers
from method.benchmark import compute, for_site
from method.eqa import commitment
from method.inputs import EqaRoundInput, Inputs
from method.standard import StandardError
from method.standard import parse as parse_standard
from protos import dsse, keys, merkle, wire
from protos.errors import ContractError
from protos.rarenet.v1 import eqa_pb2 as epb
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1 import summary_pb2 as pb

MANIFEST_TYPE = "application/vnd.rarenet.audit-manifest.v1+json"


class BundleUnreadable(Exception):
    """The bundle cannot be read at all (exit status 2)."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Result:
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


def _pem_raw(pem: bytes) -> bytes:
    return keys.public_raw(serialization.load_pem_public_key(pem))


PROSE_KEYS = frozenset({"message"})


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
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


def check_known_answer(path: Path) -> str | None:
    """A known-answer case (method/known_answers.py) recomputed by the method the auditor runs:
    None when every figure matches, else where the first difference is."""
    case = known_answers.load(path)
    return _first_difference(known_answers.run(case), case["expected"])


def verify(path: Path, coordinator_key: Path | None = None) -> Result:
    try:
        bundle = zipfile.ZipFile(path)
        files = {name: bundle.read(name) for name in bundle.namelist()}
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise BundleUnreadable(f"{path} is not a readable zip bundle: {exc}") from exc
    if "MANIFEST.json" not in files or "MANIFEST.sig" not in files:
        raise BundleUnreadable(
            f"{path} has no MANIFEST.json and MANIFEST.sig: not a rarenet audit bundle"
        )
    result = Result()
    try:
        manifest = json.loads(files["MANIFEST.json"])
        listed: dict[str, str] = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleUnreadable(f"MANIFEST.json cannot be read: {exc}") from exc

    # 1. The manifest is the coordinator's.
    try:
        pem = coordinator_key.read_bytes() if coordinator_key else files["keys/coordinator.pem"]
        coordinator_raw = _pem_raw(pem)
        trusted = {dsse.keyid(coordinator_raw): coordinator_raw}
        keys_ok = dsse.keyid(coordinator_raw) == manifest.get("coordinator_keyid")
        Ed25519PublicKey.from_public_bytes(coordinator_raw).verify(
            files["MANIFEST.sig"], dsse.pae(MANIFEST_TYPE, files["MANIFEST.json"])
        )
        result.add(
            "manifest",
            keys_ok,
            f"signed by coordinator key {dsse.keyid(coordinator_raw)[:16]}…"
            if keys_ok
            else "MANIFEST.json names another coordinator key than the one used",
        )
    except Exception as exc:  # noqa: BLE001 - any failure here is a failed check, with its reason
        result.add(
            "manifest",
            False,
            f"the manifest signature does not verify: {exc or type(exc).__name__}",
        )
        return result

    # 2. Every file is listed with its hash, and nothing else is there.
    present = set(files) - {"MANIFEST.json", "MANIFEST.sig"}
    missing, extra = sorted(set(listed) - present), sorted(present - set(listed))
    changed = sorted(
        n for n in set(listed) & present if hashlib.sha256(files[n]).hexdigest() != listed[n]
    )
    result.add(
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

    # 3. The tree head.
    try:
        signed_head = wire.parse_envelope(files["tree_head.envelope"])
        dsse.verify(signed_head, trusted, expected_type=wire.TREE_HEAD)
        head = wire.decode(signed_head.payload, lpb.TreeHead)
        result.add("tree head", True, f"size {head.tree_size}, root {head.root_hash.hex()[:16]}…")
    except (ContractError, KeyError) as exc:
        result.add("tree head", False, str(exc))
        return result

    # 4. Each signed summary.
    try:
        records = {r["keyid"]: r for r in json.loads(files["keys/sites.json"])}
    except (KeyError, ValueError) as exc:
        result.add("keys", False, f"keys/sites.json cannot be read: {exc}")
        return result
    by_period: dict[str, dict[str, tuple[int, pb.SiteSummary]]] = {}
    responses: dict[str, dict[str, tuple[int, epb.EqaResponse]]] = {}
    leaves = sorted(int(n.split("/")[1].split(".")[0]) for n in files if n.startswith("envelopes/"))
    for leaf in leaves:
        name = f"leaf {leaf}"
        try:
            data = files[f"envelopes/{leaf}.envelope"]
            envelope = wire.parse_envelope(data)
            keyid = envelope.signatures[0].keyid if envelope.signatures else ""
            record = records.get(keyid)
            if record is None or f"keys/{keyid}.pem" not in files:
                raise ContractError(f"signed by key {keyid[:16]}… which the bundle does not hold")
            site_raw = _pem_raw(files[f"keys/{keyid}.pem"])
            if dsse.keyid(site_raw) != keyid:
                raise ContractError(f"keys/{keyid}.pem is not the key with that id")
            if envelope.payload_type not in (wire.SITE_SUMMARY, wire.EQA_RESPONSE):
                raise ContractError(
                    f"payload type {envelope.payload_type} is not a summary or an EQA response"
                )
            dsse.verify(envelope, {keyid: site_raw}, expected_type=envelope.payload_type)
            enrolment = wire.parse_envelope(files[f"enrolments/{keyid}.envelope"])
            dsse.verify(enrolment, {keyid: site_raw})
            is_summary = envelope.payload_type == wire.SITE_SUMMARY
            summary = wire.decode(
                envelope.payload, pb.SiteSummary if is_summary else epb.EqaResponse
            )
            if summary.site_id != record["site_id"]:
                raise ContractError(
                    f"summary names site {summary.site_id} but the key is {record['site_id']}'s"
                )
            receipt_env = wire.parse_envelope(files[f"receipts/{leaf}.envelope"])
            dsse.verify(receipt_env, trusted, expected_type=wire.RECEIPT)
            receipt = wire.decode(receipt_env.payload, lpb.Receipt)
            if (
                receipt.envelope_sha256 != hashlib.sha256(data).hexdigest()
                or receipt.leaf_index != leaf
            ):
                raise ContractError("the coordinator's receipt names another envelope or leaf")
            received = receipt.received_at
            if record["enrolled_at"] > received:
                raise ContractError(
                    f"received {received}, before the key was enrolled ({record['enrolled_at']})"
                )
            for when in (record["retired_at"], record["site_revoked_at"]):
                if when and when <= received:
                    raise ContractError(
                        f"received {received}, after the key was retired or the site revoked ({when})"
                    )
            proof = json.loads(files[f"proofs/{leaf}.json"])
            if proof["leaf_index"] != leaf or proof["tree_size"] != head.tree_size:
                raise ContractError("the inclusion proof is for another leaf or tree size")
            merkle.verify_inclusion(
                merkle.leaf_hash(data),
                leaf,
                head.tree_size,
                [bytes.fromhex(h) for h in proof["hashes"]],
                head.root_hash,
            )
            group = (
                by_period.setdefault(summary.period, {})
                if is_summary
                else responses.setdefault(summary.round_id, {})
            )
            previous = group.get(summary.site_id)
            if previous is None or previous[1].sequence < summary.sequence:
                group[summary.site_id] = (leaf, summary)
            what = summary.period if is_summary else f"EQA {summary.round_id}"
            result.add(
                name,
                True,
                f"{summary.site_id} {what} sequence {summary.sequence}: signature, "
                f"key valid at {received}, receipt, inclusion proof",
            )
        except (ContractError, KeyError, ValueError, IndexError) as exc:
            result.add(name, False, str(exc) or type(exc).__name__)

    # 5. EQA rounds: signed by the coordinator, and the truth is the one sealed at opening.
    rounds = []
    for name in sorted(n for n in files if n.startswith("eqa/") and n.endswith("/round.envelope")):
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
            rounds.append(EqaRoundInput(round_, truth, responses.get(round_id, {})))
        except (ContractError, KeyError, ValueError) as exc:
            result.add(f"eqa {round_id}", False, str(exc))

    # 6. The statistics and scores, recomputed.
    try:
        standard = parse_standard(files["standard.toml"].decode("utf-8"), "standard.toml")
        reported = json.loads(files["report/benchmark.json"])
    except (KeyError, ValueError, StandardError) as exc:
        result.add("standard", False, str(exc))
        return result
    result.add(
        "standard",
        reported.get("standard", {}).get("sha256") == standard.sha256,
        f"{standard.label} (sha256 {standard.sha256[:16]}…)"
        if reported.get("standard", {}).get("sha256") == standard.sha256
        else "the report names another standard than the one in the bundle",
    )
    revoked = {r["site_id"] for r in records.values() if r["site_status"] == "revoked"}
    version = reported.get("method_version")
    if version != METHOD_VERSION:
        result.add(
            "statistics",
            False,
            f"the report was computed by method version {version or '(none named)'}; this auditor "
            f"runs method {METHOD_VERSION}: verify it with the rarenet-audit release of that method",
        )
        return result
    try:
        full = compute(Inputs(by_period, revoked, rounds), manifest["period"], standard)
        recomputed = for_site(full, manifest["site"]) if manifest.get("site") else full
        difference = _first_difference(json.loads(json.dumps(recomputed)), reported)
    except Exception as exc:  # noqa: BLE001 - a report that cannot be recomputed fails the check
        difference = f"cannot recompute: {exc}"
    result.add(
        "statistics",
        difference is None,
        f"every figure of report/benchmark.json recomputed from {len(leaves)} signed summaries"
        if difference is None
        else f"report/benchmark.json differs from the recomputation at {difference}",
    )
    return result
