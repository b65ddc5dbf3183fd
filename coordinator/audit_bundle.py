"""An audit bundle: one zip an auditor verifies offline, trusting neither our servers nor our code
for the signatures (see the README's openssl steps).

    MANIFEST.json        every other file with its SHA-256, the period, the coordinator's key id,
                         and what the bundle is complete for (complete_for: the report's periods
                         and EQA rounds)
    MANIFEST.sig         raw Ed25519 signature over PAE(MANIFEST_TYPE, MANIFEST.json)
    tree_head.envelope   the signed tree head every inclusion proof leads to: of those holding
                         what the report uses, the one most witnesses cosigned
    checkpoint.txt       the same tree head as a C2SP checkpoint, with the witnesses' cosignatures
    keys/witnesses.json  every site key as a witness key (name, key, enrolment dates)
    ledger/leaves.json   every leaf of the ledger up to that head: {"header": base64 leaf data}, or
                         for a leaf of the older whole-envelope form {"envelope": member}, so the
                         auditor rebuilds the whole tree and sees every accepted submission
    ledger/legacy/N.envelope  a whole-envelope leaf outside the bundle's periods
    envelopes/N.envelope every signed site summary accepted for the periods (ledger leaf N), and
                         every response to the EQA rounds
    receipts/N.envelope  the coordinator's signed receipt for leaf N (when it was accepted)
    eqa/R/round.envelope the signed EQA round R with its revealed salt; eqa/R/truth.csv its truth
    proofs/N.json        the inclusion proof of leaf N in the tree head
    keys/coordinator.pem the coordinator's public key; keys/sites.json the enrolment records;
    keys/KEYID.pem       each site key; enrolments/KEYID.envelope each signed enrolment request
    standard.toml        the testing standard applied
    report/benchmark.json  the report (with --site: that site's own view)

The HTML report is not in the bundle: nothing could verify it. `rarenet-audit show --html`
renders the verified benchmark.json instead.

With --site, the bundle shows peers only as the site's own benchmark view does: it holds that
site's signed summaries, receipts, proofs and keys, and no peer's (a signed summary names its
site and cannot be renamed without breaking its signature). An auditor then checks the site's own
figures and that every submission of that site for the period is in it; the network figures cannot
be recomputed from it. The ledger's leaf headers (site, period, sequence, digests: no figures) are
listed for every leaf, because completeness cannot be proven without them (docs/privacy.md).
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from coordinator import benchmark, kept_benchmark, ledger, witnesses
from coordinator.bundle_zip import BundleZip
from coordinator.config import DataDir
from coordinator.errors import NotFound
from coordinator.standards import Standard
from method.report_bytes import benchmark_bytes
from protos import dsse, keys, leaf, merkle, wire
from protos.periods import parse as parse_period
from protos.rarenet.v1 import ledger_pb2 as lpb
from protos.rarenet.v1.envelope_pb2 import Envelope

MANIFEST_TYPE = "application/vnd.rarenet.audit-manifest.v1+json"
FORMAT = "rarenet audit bundle v2"


def _witnessed_head(conn: sqlite3.Connection, appended: ledger.Ledger, used: list[int]) -> Envelope:
    """The signed tree head the bundle proves against: of the tree heads holding every summary
    and EQA response the report uses (the leaves `used`), the one whose checkpoint most
    witnesses cosigned (coordinator/witnesses.py); the latest when none was cosigned."""
    latest = wire.decode(appended.latest_head(conn).payload, lpb.TreeHead).tree_size
    size = witnesses.best_size(conn, max(used) + 1 if used else 0, latest)
    (signed,) = conn.execute(
        "SELECT signed FROM tree_heads WHERE tree_size = ?", (size,)
    ).fetchone()
    return wire.parse_envelope(signed)


REPORT = "report/benchmark.json"
ReportBytes = Callable[[str], bytes | None]


def build(
    data: DataDir,
    standard: Standard,
    period: str,
    out: Path,
    site: str | None = None,
    report: ReportBytes | None = None,
) -> dict:
    """Write the bundle to `out` (by way of a temporary file beside it, renamed once complete)
    and return its manifest. Each member is compressed as it is made, by other threads
    (coordinator/bundle_zip.py), so memory holds a few members at a time beside the report, not
    the whole bundle.

    report/benchmark.json is written last, after every member of the ledger. `report`, if given,
    is called then with the fingerprint of the inputs this bundle reads
    (coordinator.benchmark.fingerprint, as ComputedReport.inputs_sha256 gives it) and returns
    benchmark.json's bytes of the full benchmark of exactly those inputs (ComputedReport.report,
    e.g. from the `benchmark` command computing it meanwhile in another process), or None if it
    has none for them: the bundle then reuses the kept benchmark or computes it, as it does
    without `report`. The bundle is the same whichever way its report came."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    conn = sqlite3.connect(data.db, isolation_level=None)
    try:
        conn.execute("BEGIN")  # one snapshot: the tree head and every row below agree
        with BundleZip(partial) as bundle:
            manifest = _contents(conn, data, standard, period, site, bundle, report)
            manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
            signature = data.signing_key().sign(dsse.pae(MANIFEST_TYPE, manifest_bytes))
            bundle["MANIFEST.json"] = manifest_bytes
            bundle["MANIFEST.sig"] = signature
        partial.replace(out)
    finally:
        conn.close()
        partial.unlink(missing_ok=True)
    return manifest


def _contents(
    conn: sqlite3.Connection,
    data: DataDir,
    standard: Standard,
    period: str,
    site: str | None,
    files: BundleZip,
    given: ReportBytes | None,
) -> dict:
    key = data.signing_key()
    stored = benchmark.stored_leaves(conn, period, standard)
    report_period = parse_period(period).label
    kept = kept_benchmark.find_packed(conn, report_period, stored.fingerprint)
    with ThreadPoolExecutor(1, thread_name_prefix="kept-benchmark") as pool:
        # the kept report decompressed and checked meanwhile (it needs no database), unless one
        # is to be given: the report is written last
        unpacking = pool.submit(kept.unpacked) if kept is not None and given is None else None
        appended = ledger.Ledger(conn, key)
        signed_head = _witnessed_head(conn, appended, stored.leaves)
        head = wire.decode(signed_head.payload, lpb.TreeHead)
        files["tree_head.envelope"] = wire.envelope_bytes(signed_head)
        files["checkpoint.txt"] = witnesses.cosigned(conn, key, head.tree_size, site).encode()
        files["keys/witnesses.json"] = (
            json.dumps(witnesses.witness_records(conn, site), indent=2).encode() + b"\n"
        )
        periods = [q.label for q in benchmark.periods_for_trends(parse_period(period))]
        rounds = [round_.round_id for round_, _truth in stored.eqa_rounds]
        leaves = ledger.leaves_for(
            conn, head.tree_size, periods + [leaf.EQA_PERIOD_PREFIX + r for r in rounds], site
        )
        files["ledger/leaves.json"] = _leaves_json(conn, head.tree_size, set(leaves), files, site)
        for round_, truth in stored.eqa_rounds:
            (announcement,) = conn.execute(
                "SELECT announcement FROM eqa_rounds WHERE round_id = ?", (round_.round_id,)
            ).fetchone()
            files[f"eqa/{round_.round_id}/round.envelope"] = bytes(announcement)
            files[f"eqa/{round_.round_id}/truth.csv"] = truth
        keyids = set()
        for index, envelope, receipt, keyid in _ledger_rows(conn, leaves):
            files[f"envelopes/{index}.envelope"] = envelope
            files[f"receipts/{index}.envelope"] = receipt
            proof = appended.inclusion(index, head.tree_size)
            files[f"proofs/{index}.json"] = _proof_json(index, head.tree_size, proof.hashes)
            keyids.add(keyid)
        _key_members(conn, keyids, files)
        files["keys/coordinator.pem"] = keys.public_pem(keys.public_raw(key))
        files["standard.toml"] = standard.text.encode("utf-8")
        report = given(stored.fingerprint) if given is not None else None
        if report is None and kept is not None:
            report = unpacking.result() if unpacking is not None else kept.unpacked()
    files[REPORT] = _report(conn, standard, period, site, report)
    return {
        "bundle": FORMAT,
        "period": report_period,
        "site": site,
        "coordinator_keyid": dsse.keyid(key.public_key()),
        "tree_size": head.tree_size,
        "complete_for": {"periods": periods, "eqa_rounds": rounds},
        "files": dict(sorted(files.sha256().items())),
    }


ROWS_AT_ONCE = 500  # leaves read by one query (SQLite allows 32,766 parameters, 999 before 3.32)


def _ledger_rows(
    conn: sqlite3.Connection, leaves: list[int]
) -> Iterator[tuple[int, bytes, bytes, str]]:
    """(leaf index, envelope, receipt, key id) of each of `leaves`, in their order."""
    for start in range(0, len(leaves), ROWS_AT_ONCE):
        chunk = leaves[start : start + ROWS_AT_ONCE]
        rows = {
            index: (bytes(envelope), bytes(receipt), keyid)
            for index, envelope, receipt, keyid in conn.execute(
                "SELECT leaf_index, envelope, receipt, keyid FROM ledger"
                f" WHERE leaf_index IN ({','.join('?' * len(chunk))})",
                chunk,
            )
        }
        for index in chunk:
            yield (index, *rows[index])


def _key_members(conn: sqlite3.Connection, keyids: set[str], files: BundleZip) -> None:
    """keys/KEYID.pem and enrolments/KEYID.envelope of each key, and keys/sites.json."""
    records = []
    for (
        keyid,
        site_id,
        public_key,
        enrolled_at,
        retired_at,
        enrolment,
        status,
        revoked_at,
    ) in conn.execute(
        f"""SELECT k.keyid, k.site_id, k.public_key, k.enrolled_at, k.retired_at, k.enrolment, s.status,
                       s.revoked_at
                FROM site_keys k JOIN sites s USING (site_id)
                WHERE k.keyid IN ({",".join("?" * len(keyids))}) ORDER BY k.site_id, k.enrolled_at""",
        sorted(keyids),
    ):
        files[f"keys/{keyid}.pem"] = keys.public_pem(bytes(public_key))
        files[f"enrolments/{keyid}.envelope"] = bytes(enrolment)
        records.append(
            {
                "keyid": keyid,
                "site_id": site_id,
                "enrolled_at": enrolled_at,
                "retired_at": retired_at,
                "site_status": status,
                "site_revoked_at": revoked_at,
            }
        )
    files["keys/sites.json"] = json.dumps(records, indent=2).encode() + b"\n"


def _report(
    conn: sqlite3.Connection,
    standard: Standard,
    period: str,
    site: str | None,
    kept: bytes | None,
) -> bytes:
    """report/benchmark.json: the period's full benchmark (with --site, that site's own view of
    it). `kept`: the full benchmark's bytes for these very inputs, if at hand (given to `build`,
    or kept by the `benchmark` command: coordinator/kept_benchmark.py), are reused; else it is
    computed from the signed inputs. Both are the bytes method.report_bytes.benchmark_bytes
    writes of the same function of the same inputs."""
    if kept is not None and site is None:
        return kept
    full = (
        orjson.loads(kept)
        if kept is not None
        else benchmark.compute_from(benchmark.inputs(conn, period, standard), period, standard)
    )
    if site is not None and site not in full["sites"]:
        raise NotFound(f"no summary from site {site} for {period}")
    return benchmark_bytes(benchmark.for_site(full, site) if site else full)


def _leaves_json(
    conn: sqlite3.Connection,
    size: int,
    bundled: set[int],
    files: BundleZip,
    site: str | None,
) -> bytes:
    """Every leaf up to the head: a header as its bytes, a whole-envelope leaf by the member that
    holds it (its envelopes/N.envelope when bundled anyway, else ledger/legacy/N.envelope). In a
    site's own bundle a peer's leaf is given by its hash only: its header would name the peer,
    and its envelope would show the peer's figures under its name (docs/privacy.md)."""
    entries: list[str] = []
    for index, data, is_header, leaf_site in ledger.stored_leaves(conn, size):
        if site is not None and leaf_site != site:
            entries.append(_entry("leaf_hash", merkle.leaf_hash(data).hex()))
            continue
        if is_header:
            entries.append(_entry("header", base64.b64encode(data).decode("ascii")))
            continue
        name = f"envelopes/{index}.envelope"
        if index not in bundled:
            name = f"ledger/legacy/{index}.envelope"
            files[name] = data
        entries.append(_entry("envelope", name))
    # json.dumps({"tree_size": size, "leaves": entries}, indent=1), written directly: the indented
    # encoder is json's pure-Python one, slow over a national ledger's leaves.
    listing = ",\n".join(entries)
    if not entries:
        return f'{{\n "tree_size": {size},\n "leaves": []\n}}\n'.encode()
    return f'{{\n "tree_size": {size},\n "leaves": [\n{listing}\n ]\n}}\n'.encode()


def _entry(key: str, value: str) -> str:
    """One entry of ledger/leaves.json as json.dumps(indent=1) writes it at its depth (the values
    are base64, hex or member names: nothing to escape)."""
    return f'  {{\n   "{key}": "{value}"\n  }}'


def _proof_json(index: int, size: int, hashes: Sequence[bytes]) -> bytes:
    """json.dumps({"leaf_index": .., "tree_size": .., "hashes": [hex, ..]}, indent=2) + newline,
    written directly (the indented encoder is json's pure-Python one)."""
    if not hashes:
        listed = "[]"
    else:
        listed = "[\n" + ",\n".join(f'    "{h.hex()}"' for h in hashes) + "\n  ]"
    return (
        f'{{\n  "leaf_index": {index},\n  "tree_size": {size},\n  "hashes": {listed}\n}}\n'.encode()
    )
