"""Reading a bundle an attacker crafted: duplicate or unknown members, zip bombs, corrupt members
and ordinary re-zips; the coordinator's key, pinned or not; the HTML report out of what is signed.
Every unreadable bundle exits 2 with a reason, never a traceback."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor import bundle as reading
from auditor.cli import main as audit_cli
from auditor.verify import verify
from coordinator.cli import main as coordinator_cli
from protos import keys
from tests.test_audit import bundle, rewrite  # noqa: F401 - the fixture, and a dishonest re-signer

ROOT = Path(__file__).resolve().parent.parent


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def audit(*args: str):
    return CliRunner().invoke(audit_cli, list(args))


def unreadable(path: Path, reason: str) -> None:
    run = audit("verify", str(path))
    assert run.exit_code == 2, run.output
    assert run.exception is None or isinstance(run.exception, SystemExit)
    assert reason in run.output, run.output


def test_duplicate_members_are_refused(bundle, tmp_path) -> None:  # noqa: F811
    path, _ = bundle
    files = members(path)
    doubled = tmp_path / "doubled.zip"
    with zipfile.ZipFile(doubled, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("report/benchmark.json", b'{"period": "2026Q3", "sites": {}}')  # unlisted
        for name, data in files.items():
            z.writestr(name, data)
    unreadable(doubled, "two members named report/benchmark.json")


def test_member_names_outside_the_layout_are_refused(bundle, tmp_path) -> None:  # noqa: F811
    path, key = bundle
    for name in ("envelopes/x", "envelopes/007.envelope", "../MANIFEST.json", "notes.txt"):
        odd = rewrite(path, tmp_path / "odd.zip", key=key, add={name: b"anything"})
        unreadable(odd, f"the member {name!r} is not part of a rarenet audit bundle")


def test_a_folder_entry_re_zip_verifies(bundle, tmp_path) -> None:  # noqa: F811
    if shutil.which("zip") is None:
        pytest.skip("the zip command is not installed")
    path, _ = bundle
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(path) as z:
        z.extractall(unpacked)
    rezipped = tmp_path / "rezipped.zip"
    subprocess.run(["zip", "-q", "-r", str(rezipped), "."], cwd=unpacked, check=True)
    assert any(n.endswith("/") for n in zipfile.ZipFile(rezipped).namelist())
    run = audit("verify", str(rezipped))
    assert run.exit_code == 0, run.output


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> Path:
    """About 1.5 MB on disk, 320 MiB decompressed, under a name the layout knows."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("report/benchmark.json", "w", force_zip64=True) as member:
            zeros = bytes(2**22)
            for _ in range(80):
                member.write(zeros)
    return path


def test_a_zip_bomb_is_refused_with_bounded_memory(zip_bomb) -> None:
    assert zip_bomb.stat().st_size < 2**21
    # The peak of what the auditor allocates, traced in its own process: a member it read whole
    # would be allocated as bytes (zlib's own window is 32 KiB).
    probe = (
        "import sys, tracemalloc\n"
        "tracemalloc.start()\n"
        "from auditor.cli import main\n"
        "try:\n"
        "    main(['verify', sys.argv[1]])\n"
        "finally:\n"
        "    print('peak_kib', tracemalloc.get_traced_memory()[1] // 1024, file=sys.stderr)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, str(zip_bomb)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "decompresses to more than 67108864 bytes" in run.stderr
    assert "Traceback" not in run.stderr
    peak = re.search(r"peak_kib (\d+)", run.stderr)
    assert peak is not None, run.stderr
    peak_mib = int(peak[1]) / 1024
    # The report's bound is 64 MiB (reading stops there); the member is 320 MiB.
    assert peak_mib < 128, f"{peak_mib:.0f} MiB to refuse a 320 MiB member"


def test_the_total_is_bounded_on_bytes_actually_read(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(reading, "MAX_TOTAL_BYTES", 5 * 2**20)
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for leaf in range(3):
            z.writestr(f"envelopes/{leaf}.envelope", bytes(2 * 2**20))
    bound = 5 * 2**20 + 3 * reading.TOTAL_BYTES_PER_ENVELOPE  # three envelopes allow a little more
    with pytest.raises(reading.BundleUnreadable, match=f"past {bound} bytes"):
        reading.read(many)


def test_a_national_report_is_read_and_a_bomb_beside_envelopes_still_stops(tmp_path) -> None:
    """Each envelope lets the report grow by REPORT_BYTES_PER_ENVELOPE (a 3,000-lab report is
    130 MB), up to the ceiling; past what the envelopes allow it is refused."""
    envelopes = 4
    allowed = reading.MAX_MEMBER_BYTES + envelopes * reading.REPORT_BYTES_PER_ENVELOPE
    for size, refused in ((allowed, False), (allowed + 1, True)):
        path = tmp_path / f"report-{size}.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for leaf in range(envelopes):
                z.writestr(f"envelopes/{leaf}.envelope", b"x")
            z.writestr("report/benchmark.json", bytes(size))
        if refused:
            with pytest.raises(reading.BundleUnreadable, match=f"more than {allowed} bytes"):
                reading.read(path)
        else:
            assert len(reading.read(path)["report/benchmark.json"]) == size


def test_a_member_whose_header_understates_its_size_is_unreadable(tmp_path) -> None:
    honest = tmp_path / "honest.zip"
    with zipfile.ZipFile(honest, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("report/benchmark.json", bytes(2**20))
    data = bytearray(honest.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")  # claims 10 bytes
    local = data.index(b"PK\x03\x04")
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")
    lying = tmp_path / "lying.zip"
    lying.write_bytes(bytes(data))
    unreadable(lying, "the member report/benchmark.json cannot be read")


def test_corrupt_and_truncated_bundles_exit_2_with_a_reason(bundle, tmp_path) -> None:  # noqa: F811
    path, _ = bundle
    data = path.read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(data[: len(data) // 2])
    unreadable(truncated, "is not a readable zip file")
    corrupt = bytearray(data)
    start = corrupt.index(b"PK\x03\x04", 100)  # a member after the first
    for i in range(start + 60, start + 90):
        corrupt[i] ^= 0xFF
    (tmp_path / "corrupt.zip").write_bytes(bytes(corrupt))
    unreadable(tmp_path / "corrupt.zip", "cannot be read")
    unreadable(tmp_path / "missing.zip", "is not a readable zip file")


def test_content_that_does_not_parse_fails_its_check_without_a_traceback(
    bundle,  # noqa: F811
    tmp_path,
) -> None:
    path, key = bundle
    first = sorted(n for n in members(path) if n.startswith("envelopes/"))[0]
    junk = {
        first: lambda _: b"\xff\x00not an envelope",
        "keys/sites.json": lambda _: b'[1, "two"]',
        "ledger/leaves.json": lambda _: b'{"tree_size": "x"}',
    }
    for name, change in junk.items():
        forged = rewrite(path, tmp_path / "junk.zip", key=key, change={name: change})
        run = audit("verify", str(forged))
        assert run.exit_code == 1, run.output
        assert run.exception is None or isinstance(run.exception, SystemExit), run.exception


def fingerprint(key) -> str:
    return hashlib.sha256(keys.public_raw(key)).hexdigest()


def test_an_unpinned_key_is_reported_loudly_with_its_full_fingerprint(bundle) -> None:  # noqa: F811
    path, key = bundle
    run = audit("verify", str(path))
    assert run.exit_code == 0
    assert "the coordinator's key is NOT pinned" in run.output
    assert fingerprint(key) in run.output
    assert "NOT pinned" in run.output.splitlines()[-1]
    as_json = audit("verify", "--json", str(path))
    report = json.loads(as_json.stdout)
    assert report["coordinator_key"] == {"fingerprint": fingerprint(key), "pinned": False}


def test_a_wrong_pinned_key_says_whose_key_signed(bundle, tmp_path) -> None:  # noqa: F811
    path, key = bundle
    stranger = keys.generate()
    pinned = tmp_path / "pinned.pem"
    pinned.write_bytes(keys.public_pem(keys.public_raw(stranger)))
    run = audit("verify", str(path), "--coordinator-key", str(pinned))
    assert run.exit_code == 1
    assert (
        f"the manifest is signed by key {fingerprint(key)}, you pinned {fingerprint(stranger)}"
        in run.output
    )
    # A bundle whose manifest was changed after signing, checked with the right key pinned.
    right = tmp_path / "right.pem"
    right.write_bytes(keys.public_pem(keys.public_raw(key)))
    changed = rewrite(
        path,
        tmp_path / "changed.zip",
        change={"MANIFEST.json": lambda d: d.replace(b'"period"', b'"period" ', 1)},
    )
    run = audit("verify", str(changed), "--coordinator-key", str(right))
    assert run.exit_code == 1
    assert "does not verify with the pinned key" in run.output
    assert "changed after it was signed" in run.output
    not_a_key = tmp_path / "not-a-key.pem"
    not_a_key.write_text("hello")
    run = audit("verify", str(path), "--coordinator-key", str(not_a_key))
    assert run.exit_code == 2 and "is not a PEM public key" in run.output


def test_key_show_prints_what_auditors_pin(bundle, tmp_path) -> None:  # noqa: F811
    path, key = bundle
    data_dir = path.parent / "coordinator"  # the coordinator that made the bundle
    shown = CliRunner().invoke(coordinator_cli, ["key", "show", "--data-dir", str(data_dir)])
    assert shown.exit_code == 0, shown.output
    pem = shown.output.split("fingerprint")[0].encode()
    assert pem == keys.public_pem(keys.public_raw(key))
    assert f"fingerprint (SHA-256 of the raw Ed25519 public key): {fingerprint(key)}" in (
        shown.output
    )
    pinned = tmp_path / "coordinator.pem"
    pinned.write_bytes(pem)
    run = audit("verify", str(path), "--coordinator-key", str(pinned))
    assert run.exit_code == 0 and "NOT pinned" not in run.output
    assert f"signed by the pinned coordinator key {fingerprint(key)}" in run.output
    if shutil.which("openssl"):  # the README's way to compute the fingerprint without rarenet
        der = subprocess.run(
            ["openssl", "pkey", "-pubin", "-in", str(pinned), "-outform", "DER"],
            capture_output=True,
            check=True,
        ).stdout
        assert hashlib.sha256(der[-32:]).hexdigest() == fingerprint(key)


def test_the_html_is_not_signed_and_show_renders_the_verified_report(
    bundle,  # noqa: F811
    tmp_path,
) -> None:
    path, key = bundle
    files = members(path)
    assert "report/index.html" not in files
    report = json.loads(files["report/benchmark.json"])
    # A page that contradicts the verified report, listed in a re-signed manifest.
    status = report["sites"]["lab-2"]["status"]
    lying = f"<html><body>lab-2: {'ok' if status != 'ok' else 'alarm'}</body></html>".encode()
    forged = rewrite(path, tmp_path / "html.zip", key=key, add={"report/index.html": lying})
    failed = {c.name: c.detail for c in verify(forged).checks if not c.ok}
    assert set(failed) == {"report/index.html"}
    assert "not verified by anything" in failed["report/index.html"]
    assert audit("show", str(forged)).exit_code == 1
    out = tmp_path / "report.html"
    shown = audit("show", str(path), "--html", str(out))
    assert shown.exit_code == 0, shown.output
    page = out.read_text()
    for site, entry in report["sites"].items():
        status = entry["status"]
        assert f'{site}: <span class="{status}">{status.upper()}</span>' in page
    assert fingerprint(key) in page and "NOT pinned" in page


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_re_signed_member_damage_is_a_failed_check_or_unreadable(
    bundle,  # noqa: F811
    tmp_path,
    data,
) -> None:
    """A dishonest coordinator re-signs whatever it puts in: every check must still answer with
    PASS/FAIL or refuse the bundle, never an exception."""
    path, key = bundle
    names = sorted(n for n in members(path) if not n.startswith("MANIFEST"))
    name = data.draw(st.sampled_from(names), label="member")
    how = data.draw(st.sampled_from(["random", "truncate", "flip", "json"]), label="how")
    noise = data.draw(st.binary(min_size=1, max_size=64), label="noise")

    def damage(content: bytes) -> bytes:
        if how == "random":
            return noise
        if how == "truncate":
            return content[: len(content) * len(noise) // 65]
        if how == "flip":
            at = (noise[0] * 7919) % max(1, len(content))
            return (
                content[:at] + bytes([content[at] ^ 0xFF]) + content[at + 1 :] if content else b"x"
            )
        shapes = [
            [1, {"x": None}, "y"],
            {"tree_size": [], "leaves": "x", "hashes": 5, "leaf_index": None, "sites": 1},
            {"leaves": [{"header": 7}, {"envelope": None}], "tree_size": 2},
            [{"keyid": "00"}, {"site_id": 1}],
            [{"keyid": "00"}],
            "text",
            -1,
        ]
        return json.dumps(shapes[noise[0] % len(shapes)]).encode()

    forged = rewrite(path, tmp_path / "damaged.zip", key=key, change={name: damage})
    try:
        result = verify(forged)
    except reading.BundleUnreadable:
        return
    assert all(isinstance(c.detail, str) and c.detail for c in result.checks)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=4)
)
def test_any_damaged_zip_is_a_failed_check_or_unreadable(bundle, tmp_path, flips) -> None:  # noqa: F811
    """Bytes flipped anywhere in the zip: verify answers or refuses, never raises."""
    path, _ = bundle
    data = bytearray(path.read_bytes())
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    damaged = tmp_path / "flipped.zip"
    damaged.write_bytes(bytes(data))
    try:
        result = verify(damaged)
    except reading.BundleUnreadable:
        return
    # Flipped bytes may land where nothing is checked (a timestamp): only no crash is promised.
    assert all(isinstance(c.detail, str) and c.detail for c in result.checks)


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_members_read_whole_are_the_bytes_zipfile_reads(bundle, tmp_path, compression) -> None:  # noqa: F811
    """Members read in one piece (auditor/bundle._read_whole), deflated or stored."""
    path, _ = bundle
    copy = tmp_path / "copy.zip"
    with zipfile.ZipFile(path) as z, zipfile.ZipFile(copy, "w", compression=compression) as out:
        for name in z.namelist():
            out.writestr(name, z.read(name))
    with zipfile.ZipFile(copy) as z:
        whole = [
            info
            for info in z.infolist()
            if reading._read_whole(z, info, reading.MAX_MEMBER_BYTES) is not None
        ]
        assert len(whole) == len(z.infolist())  # every member of a bundle as made
        assert reading.read(copy) == {info.filename: z.read(info) for info in z.infolist()}


def damaged(tmp_path: Path, change) -> Path:
    """A one-member bundle whose zip bytes `change` alters."""
    honest = tmp_path / "honest.zip"
    with zipfile.ZipFile(honest, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("envelopes/0.envelope", b"a summary " * 1000)
    out = tmp_path / "damaged.zip"
    out.write_bytes(change(bytearray(honest.read_bytes())))
    return out


def test_a_member_read_whole_is_refused_as_zipfile_refuses_it(tmp_path) -> None:
    """What zipfile says of a damaged member, the bundle says (its CRC-32, its local header)."""

    def other_crc(data: bytearray) -> bytes:
        for header, at in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):  # the local, the central
            start = data.index(header)
            data[start + at] ^= 0x01
        return bytes(data)

    def local_name(data: bytearray) -> bytes:
        data[data.index(b"envelopes/0") + 10] = ord("1")  # the local header's copy of the name
        return bytes(data)

    def longer_local_name(data: bytearray) -> bytes:
        start = data.index(b"PK\x03\x04")
        data[start + 26] += 1  # the name runs one byte into the data
        return bytes(data)

    for change, reason in (
        (other_crc, "Bad CRC-32 for file 'envelopes/0.envelope'"),
        (local_name, "File name in directory 'envelopes/0.envelope' and header"),
        (longer_local_name, "File name in directory 'envelopes/0.envelope' and header"),
    ):
        with pytest.raises(reading.BundleUnreadable, match=re.escape(reason)):
            reading.read(damaged(tmp_path, change))
