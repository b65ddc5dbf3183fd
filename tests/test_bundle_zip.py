"""The audit bundle's zip writer (coordinator/bundle_zip.py): what any zip reader reads back is
every member's bytes, in the order given, with their SHA-256 as the manifest lists them, also
past the limits where ZIP64 records are needed; a failure in its thread reaches the caller."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

from coordinator import bundle_zip
from coordinator.bundle_zip import BundleZip


def members(seed: int = 7) -> dict[str, bytes]:
    """Members of every kind a bundle has: text that deflates, random bytes that do not
    (stored), empty ones, one of several MB, a name outside ASCII."""
    rng = random.Random(seed)
    out = {
        f"envelopes/{i}.envelope": b'{"payload": "%d"}' % i * rng.randint(1, 400)
        for i in range(300)
    }
    out |= {f"keys/{i}.sig": rng.randbytes(64) for i in range(50)}
    out["checkpoint.txt"] = b""
    out["report/benchmark.json"] = b'{"sites": {"lab": [0.1, 2]}}' * 200_000
    out["eqa/\u80ba\u764c-1/truth.csv"] = "sample,MET\n\u80ba,1\n".encode()
    return out


def write(path: Path, content: dict[str, bytes]) -> dict[str, str]:
    with BundleZip(path) as bundle:
        for name, data in content.items():
            bundle[name] = data
        digests = bundle.sha256()
    return digests


def test_any_reader_reads_back_every_member_in_order(tmp_path) -> None:
    content = members()
    path = tmp_path / "b.zip"
    digests = write(path, content)
    assert digests == {name: hashlib.sha256(data).hexdigest() for name, data in content.items()}
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None  # every CRC-32 checked
        assert z.namelist() == list(content)
        assert {name: z.read(name) for name in z.namelist()} == content
        kinds = {info.compress_type for info in z.infolist()}
        report = z.getinfo("report/benchmark.json")
        assert report.compress_size < report.file_size / 100  # deflated
        assert z.getinfo("keys/0.sig").compress_type == zipfile.ZIP_STORED  # random: stored
        assert kinds == {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
        assert all(info.external_attr >> 16 == 0o600 for info in z.infolist())


@pytest.mark.skipif(shutil.which("unzip") is None, reason="unzip (Info-ZIP) is not installed")
def test_unzip_tests_and_lists_the_bundle(tmp_path) -> None:
    content = members()
    write(tmp_path / "b.zip", content)
    tested = subprocess.run(["unzip", "-t", str(tmp_path / "b.zip")], capture_output=True)
    assert tested.returncode == 0, tested.stdout
    assert b"No errors detected" in tested.stdout
    shown = subprocess.run(
        ["unzip", "-p", str(tmp_path / "b.zip"), "report/benchmark.json"], capture_output=True
    )
    assert shown.stdout == content["report/benchmark.json"]


def test_past_the_zip64_limits_the_members_still_read_back(tmp_path, monkeypatch) -> None:
    """Offsets and sizes past ZIP64_LIMIT, and more members than a zip without ZIP64 can count:
    the limits lowered so that a small file crosses them, as a national bundle of 4 GB would."""
    monkeypatch.setattr(bundle_zip, "ZIP64_LIMIT", 1000)
    monkeypatch.setattr(bundle_zip, "ZIP_FILECOUNT_LIMIT", 100)
    content = members(8)
    path = tmp_path / "b64.zip"
    write(path, content)
    raw = path.read_bytes()
    assert b"PK\x06\x06" in raw and b"PK\x06\x07" in raw  # the ZIP64 end records
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert {name: z.read(name) for name in z.namelist()} == content
        far = z.infolist()[-1]
        assert far.header_offset > 1000  # read from the ZIP64 extra field
        assert z.getinfo("report/benchmark.json").file_size == len(content["report/benchmark.json"])


@pytest.mark.slow
def test_more_than_65535_members(tmp_path) -> None:
    content = {f"proofs/{i}.json": b"%d" % i for i in range(70_000)}
    path = tmp_path / "many.zip"
    write(path, content)
    with zipfile.ZipFile(path) as z:
        assert len(z.infolist()) == 70_000
        assert z.read("proofs/69999.json") == b"69999"


def test_a_name_written_twice_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="proofs/1.json is written twice"):
        with BundleZip(tmp_path / "twice.zip") as bundle:
            bundle["proofs/1.json"] = b"{}"
            bundle["proofs/1.json"] = b"{}"


@pytest.mark.parametrize("members", [10_000, 1])
def test_a_failure_in_a_thread_reaches_the_caller(tmp_path, monkeypatch, members) -> None:
    """Raised while members are given (many: the threads are never that far behind) or when
    the bundle is closed (one); either way its threads stop."""

    def full_disk(data: bytes, level: int, wbits: int) -> bytes:
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr(bundle_zip.isal_zlib, "compress", full_disk)
    threads = threading.active_count()
    with pytest.raises(OSError, match=os.strerror(28)):
        with BundleZip(tmp_path / "full.zip") as bundle:
            for i in range(members):
                bundle[f"envelopes/{i}.envelope"] = b"x" * 10_000
    assert threading.active_count() == threads
