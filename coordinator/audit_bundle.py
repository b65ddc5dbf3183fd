"""An audit bundle: one zip an auditor verifies offline, trusting neither our servers nor our code
for the signatures (see the README's openssl steps).

    MANIFEST.json        every other file with its SHA-256, the period, the coordinator's key id
    MANIFEST.sig         raw Ed25519 signature over PAE(MANIFEST_TYPE, MANIFEST.json)
    tree_head.envelope   the signed tree head every inclusion proof leads to
    envelopes/N.envelope the signed site summaries (ledger leaf N, byte for byte the leaf data)
    receipts/N.envelope  the coordinator's signed receipt for leaf N (when it was accepted)
    eqa/R/round.envelope the signed EQA round R with its revealed salt; eqa/R/truth.csv its truth
    proofs/N.json        the inclusion proof of leaf N in the tree head
    keys/coordinator.pem the coordinator's public key; keys/sites.json the enrolment records;
    keys/KEYID.pem       each site key; enrolments/KEYID.envelope each signed enrolment request
    standard.toml        the testing standard applied
    report/benchmark.json, report/index.html   the report (with --site: that site's own view)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
import zipfile
from pathlib import Path

from coordinator import benchmark, report
from coordinator.config import DataDir
from coordinator.errors import NotFound
from coordinator.ledger import Ledger
from coordinator.standards import Standard
from protos import dsse, keys, wire
from protos.rarenet.v1 import ledger_pb2 as lpb

MANIFEST_TYPE = "application/vnd.rarenet.audit-manifest.v1+json"


def build(
    data: DataDir, standard: Standard, period: str, out: Path, site: str | None = None
) -> dict:
    conn = sqlite3.connect(data.db)
    key = data.signing_key()
    signed_inputs = benchmark.inputs(conn, period, standard)
    full = benchmark.compute_from(signed_inputs, period, standard)
    if site is not None and site not in full["sites"]:
        raise NotFound(f"no summary from site {site} for {period}")
    shown = benchmark.for_site(full, site) if site else full
    files: dict[str, bytes] = {}
    ledger = Ledger(conn, key)
    signed_head = ledger.latest_head(conn)
    head = wire.decode(signed_head.payload, lpb.TreeHead)
    files["tree_head.envelope"] = wire.envelope_bytes(signed_head)
    leaves = sorted(
        {leaf for entries in signed_inputs.by_period.values() for leaf, _ in entries.values()}
        | {leaf for r in signed_inputs.eqa_rounds for leaf, _ in r.responses.values()}
    )
    for entry in signed_inputs.eqa_rounds:
        (announcement,) = conn.execute(
            "SELECT announcement FROM eqa_rounds WHERE round_id = ?", (entry.round.round_id,)
        ).fetchone()
        files[f"eqa/{entry.round.round_id}/round.envelope"] = bytes(announcement)
        files[f"eqa/{entry.round.round_id}/truth.csv"] = entry.truth
    keyids = set()
    for leaf in leaves:
        envelope, receipt, keyid = conn.execute(
            "SELECT envelope, receipt, keyid FROM ledger WHERE leaf_index = ?", (leaf,)
        ).fetchone()
        files[f"envelopes/{leaf}.envelope"] = bytes(envelope)
        files[f"receipts/{leaf}.envelope"] = bytes(receipt)
        proof = ledger.inclusion(leaf, head.tree_size)
        files[f"proofs/{leaf}.json"] = (
            json.dumps(
                {
                    "leaf_index": leaf,
                    "tree_size": head.tree_size,
                    "hashes": [h.hex() for h in proof.hashes],
                },
                indent=2,
            ).encode()
            + b"\n"
        )
        keyids.add(keyid)
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
    files["keys/coordinator.pem"] = keys.public_pem(keys.public_raw(key))
    files["standard.toml"] = standard.text.encode("utf-8")
    files["report/benchmark.json"] = (
        json.dumps(shown, sort_keys=True, ensure_ascii=False, indent=1).encode() + b"\n"
    )
    if site is None:
        with tempfile.TemporaryDirectory() as tmp:
            report.write(full, Path(tmp))
            files["report/index.html"] = (Path(tmp) / "index.html").read_bytes()
    else:
        from jinja2 import Environment

        files["report/index.html"] = (
            Environment(autoescape=True)
            .from_string(
                "<!doctype html><meta charset=utf-8><title>{{ s }} {{ p }}</title><pre>{{ j }}</pre>"
            )
            .render(s=site, p=period, j=json.dumps(shown, indent=2, ensure_ascii=False))
            .encode()
        )
    manifest = {
        "bundle": "rarenet audit bundle v1",
        "period": full["period"],
        "site": site,
        "coordinator_keyid": dsse.keyid(key.public_key()),
        "tree_size": head.tree_size,
        "files": {
            name: hashlib.sha256(content).hexdigest() for name, content in sorted(files.items())
        },
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    signature = key.sign(dsse.pae(MANIFEST_TYPE, manifest_bytes))
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("MANIFEST.json", manifest_bytes)
        bundle.writestr("MANIFEST.sig", signature)
        for name, content in sorted(files.items()):
            bundle.writestr(name, content)
    conn.close()
    return manifest
