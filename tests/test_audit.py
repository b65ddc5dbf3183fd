"""Audit bundles from a real network run (nodes -> gRPC -> coordinator -> bundle), verified offline,
and every kind of tampering detected and named."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditor.cli import main as audit_cli
from auditor.verify import verify
from coordinator.audit_bundle import MANIFEST_TYPE, build
from coordinator.config import init as init_coordinator
from coordinator.server import start
from coordinator.standards import load as load_standard
from node.send import flush, queue_summary
from node.standard import load_cached
from node.synth import generate, write_csv
from protos import dsse, keys, wire
from protos.rarenet.v1 import ledger_pb2 as lpb
from tests.conftest import PERIOD, make_node

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ed25519PrivateKey]:
    """One real network run (three nodes over gRPC) and its bundle, for the whole module: the tests
    only read it, and tamper with copies. The coordinator's data directory is beside the bundle
    (`path.parent / "coordinator"`)."""
    root = tmp_path_factory.mktemp("audit")
    running = start(init_coordinator(root / "coordinator"), "127.0.0.1:0", insecure=True)
    try:
        for i, profile in enumerate(("normal", "normal", "dna_only")):
            node = make_node(root, running, f"lab-{i}")
            try:
                export = root / f"lab-{i}.csv"
                # The DNA-only lab is large enough that its missed MET exon 14 cases are flagged
                # whatever the nodes' cell-key noise (the report tests reword real flags).
                rows = 12000 if profile == "dna_only" else 3000
                write_csv(generate(f"lab-{i}", rows, i, (profile,), PERIOD), export)
                node.ingest(export)
                standard = load_cached(node.config.standard_path)
                queue_summary(node.conn, node.config, standard, PERIOD)
                assert flush(node.conn, node.config, node.client).delivered
            finally:
                node.client.close()
                node.conn.close()
        data = running.service.data
        out = root / "bundle.zip"
        build(data, load_standard(data.standard), PERIOD.label, out)
        return out, data.signing_key()
    finally:
        running.stop(grace=1)


def rewrite(src: Path, dst: Path, key=None, change=None, remove=(), add=None) -> Path:
    """A copy of the bundle with files changed, removed or added; with key, a re-signed manifest
    (what a dishonest coordinator could do), so the deeper checks are reached."""
    files = {n: zipfile.ZipFile(src).read(n) for n in zipfile.ZipFile(src).namelist()}
    for name, fn in (change or {}).items():
        files[name] = fn(files[name])
    for name in remove:
        del files[name]
    files.update(add or {})
    if key is not None:
        manifest = json.loads(files["MANIFEST.json"])
        manifest["files"] = {
            n: hashlib.sha256(c).hexdigest()
            for n, c in sorted(files.items())
            if n not in ("MANIFEST.json", "MANIFEST.sig")
        }
        files["MANIFEST.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
        files["MANIFEST.sig"] = key.sign(dsse.pae(MANIFEST_TYPE, files["MANIFEST.json"]))
    with zipfile.ZipFile(dst, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    return dst


def failures(path: Path) -> dict[str, str]:
    return {c.name: c.detail for c in verify(path).checks if not c.ok}


def test_a_real_bundle_verifies(bundle) -> None:
    path, _ = bundle
    result = verify(path)
    assert result.ok, [c for c in result.checks if not c.ok]
    names = [c.name for c in result.checks]
    assert names[:3] == ["manifest", "files", "tree head"] and names[-2:] == [
        "standard",
        "statistics",
    ]
    assert sum(n.startswith("leaf ") for n in names) == 3
    run = CliRunner().invoke(audit_cli, ["verify", str(path)])
    assert run.exit_code == 0 and "0 failed" in run.output
    shown = CliRunner().invoke(audit_cli, ["show", str(path)])
    assert shown.exit_code == 0 and "lab-2" in shown.output and "PPA" in shown.output


def first_leaf(path: Path) -> str:
    return sorted(n for n in zipfile.ZipFile(path).namelist() if n.startswith("envelopes/"))[0]


def test_changed_summary_byte(bundle, tmp_path) -> None:
    path, key = bundle
    leaf = first_leaf(path)

    def flip(data: bytes) -> bytes:
        envelope = wire.parse_envelope(data)
        payload = bytearray(envelope.payload)
        payload[payload.index(b'"tests": ') + 9] ^= 1
        envelope.payload = bytes(payload)
        return wire.envelope_bytes(envelope)

    assert (
        "hash differs: " + leaf
        in failures(rewrite(path, tmp_path / "a.zip", change={leaf: flip}))["files"]
    )
    failed = failures(rewrite(path, tmp_path / "b.zip", key=key, change={leaf: flip}))
    number = leaf.split("/")[1].split(".")[0]
    assert "does not verify" in failed[f"leaf {number}"]


def test_changed_statistic_in_the_report(bundle, tmp_path) -> None:
    path, key = bundle

    def nudge(data: bytes) -> bytes:
        report = json.loads(data)
        site = sorted(report["sites"])[0]
        report["sites"][site]["positivity"]["EGFR"]["positive"] += 1
        return json.dumps(report).encode()

    failed = failures(
        rewrite(path, tmp_path / "s.zip", key=key, change={"report/benchmark.json": nudge})
    )
    assert set(failed) == {"statistics"}
    assert "/positivity/EGFR/positive" in failed["statistics"]


def test_changed_proof_hash(bundle, tmp_path) -> None:
    path, key = bundle
    number = first_leaf(path).split("/")[1].split(".")[0]

    def corrupt(data: bytes) -> bytes:
        proof = json.loads(data)
        proof["hashes"][0] = "00" * 32
        return json.dumps(proof).encode()

    failed = failures(
        rewrite(path, tmp_path / "p.zip", key=key, change={f"proofs/{number}.json": corrupt})
    )
    assert "inclusion proof" in failed[f"leaf {number}"]


def test_changed_tree_head(bundle, tmp_path) -> None:
    path, key = bundle

    def other_root(data: bytes) -> bytes:
        envelope = wire.parse_envelope(data)
        head = wire.decode(envelope.payload, lpb.TreeHead)
        head.root_hash = bytes(32)
        envelope.payload = wire.encode(head)
        return wire.envelope_bytes(envelope)

    failed = failures(
        rewrite(path, tmp_path / "t.zip", key=key, change={"tree_head.envelope": other_root})
    )
    assert "tree head" in failed and "does not verify" in failed["tree head"]


def test_changed_key(bundle, tmp_path) -> None:
    path, key = bundle
    site_key = sorted(
        n
        for n in zipfile.ZipFile(path).namelist()
        if n.startswith("keys/") and n.endswith(".pem") and "coordinator" not in n
    )[0]
    stranger = keys.public_pem(keys.public_raw(keys.generate()))
    failed = failures(
        rewrite(path, tmp_path / "k.zip", key=key, change={site_key: lambda _: stranger})
    )
    assert any("not the key with that id" in d for d in failed.values()), failed


def test_removed_and_added_files(bundle, tmp_path) -> None:
    path, _ = bundle
    leaf = first_leaf(path)
    assert f"missing: {leaf}" in failures(rewrite(path, tmp_path / "r.zip", remove=[leaf]))["files"]
    added = failures(rewrite(path, tmp_path / "x.zip", add={"envelopes/999.envelope": b"extra"}))
    assert "not in the manifest: envelopes/999.envelope" in added["files"]


def test_manifest_not_signed_by_the_coordinator(bundle, tmp_path) -> None:
    path, _ = bundle
    forged = rewrite(path, tmp_path / "m.zip", key=keys.generate())
    assert "manifest" in failures(forged)
    run = CliRunner().invoke(audit_cli, ["verify", str(forged)])
    assert run.exit_code == 1 and "FAIL manifest" in run.output


def test_pinned_coordinator_key(bundle, tmp_path) -> None:
    path, key = bundle
    pinned = tmp_path / "coordinator.pem"
    pinned.write_bytes(keys.public_pem(keys.public_raw(key)))
    assert verify(path, pinned).ok
    other = tmp_path / "other.pem"
    other.write_bytes(keys.public_pem(keys.public_raw(keys.generate())))
    assert not verify(path, other).ok


def test_unreadable_bundle_exits_2(tmp_path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    assert CliRunner().invoke(audit_cli, ["verify", str(junk)]).exit_code == 2


def readme_steps() -> str:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- openssl-steps -->")[1].split("```sh")[1].split("```")[0]
    return block


def test_readme_openssl_steps_verify_a_bundle(bundle, tmp_path) -> None:
    path, key = bundle
    (tmp_path / "coordinator.pem").write_bytes(keys.public_pem(keys.public_raw(key)))
    script = (
        readme_steps()
        .replace("bundle.zip", str(path))
        .replace("coordinator.pem", str(tmp_path / "coordinator.pem"))
    )
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Signature Verified Successfully" in run.stdout
    assert ": OK" in run.stdout and "FAILED" not in run.stdout
    # The same steps refuse a manifest signed by someone else.
    forged = rewrite(path, tmp_path / "forged.zip", key=keys.generate())
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace(str(path), str(forged))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
