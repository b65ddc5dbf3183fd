"""How verify compares report/benchmark.json with its recomputation: byte for byte but for the flag
messages (prose), else figure by figure within rounding a piece at a time, else the whole report
parsed to say where it differs; and the bundle's generated members, written as json.dumps would."""

from __future__ import annotations

import json
import zipfile
from typing import Any

import pytest

from auditor.verify import verify
from coordinator.audit_bundle import build
from coordinator.config import DataDir
from coordinator.errors import NotFound
from coordinator.standards import load as load_standard
from tests.conftest import PERIOD
from tests.test_audit import bundle, failures, rewrite  # noqa: F401 - the fixture, a re-signer


def compact(report: dict[str, Any]) -> bytes:
    """As the coordinator writes benchmark.json."""
    return (
        json.dumps(report, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        + b"\n"
    )


def verify_counting_parses(path, monkeypatch) -> tuple[Any, list[int]]:
    """verify(path), and the sizes of the texts it parsed with json.loads."""
    import auditor.verify as module

    sizes: list[int] = []
    loads = json.loads

    def counting(text, *args, **kwargs):
        sizes.append(len(text))
        return loads(text, *args, **kwargs)

    monkeypatch.setattr("auditor.verify.json.loads", counting)
    try:
        return module.verify(path), sizes
    finally:
        monkeypatch.setattr("auditor.verify.json.loads", loads)


def first_rate(report: dict[str, Any]) -> tuple[str, str]:
    """(site, biomarker) of the first positivity rate that is a float other than zero."""
    for site in sorted(report["sites"]):
        for biomarker, entry in sorted(report["sites"][site]["positivity"].items()):
            if isinstance(entry.get("rate"), float) and entry["rate"]:
                return site, biomarker
    raise AssertionError("no positivity rate in the report")


def test_reworded_flag_messages_verify_in_any_layout(bundle, tmp_path, monkeypatch) -> None:  # noqa: F811
    path, key = bundle
    original = json.loads(zipfile.ZipFile(path).read("report/benchmark.json"))
    assert original["flags"], "the fixture's network raises flags"

    def reword(layout):
        def change(data: bytes) -> bytes:
            report = json.loads(data)
            for flag in report["flags"]:
                flag["message"] = 'reworded: "quoted", \\ and 中文'
            for site in report["sites"].values():
                for flag in site["flags"]:
                    flag["message"] = "reworded"
            return layout(report)

        return change

    for name, layout in {
        "compact": compact,
        "indented": lambda r: json.dumps(r, indent=1).encode(),
    }.items():
        forged = rewrite(
            path,
            tmp_path / f"{name}.zip",
            key=key,
            change={"report/benchmark.json": reword(layout)},
        )
        result, parsed = verify_counting_parses(forged, monkeypatch)
        assert result.ok, [c for c in result.checks if not c.ok]
        size = len(zipfile.ZipFile(forged).read("report/benchmark.json"))
        # compact: compared piece by piece, never parsed whole; another layout: parsed whole
        assert (size in parsed) == (name == "indented")
        assert result.report is not None and result.report["flags"][0]["message"].startswith(
            "reworded"
        )


def test_a_figure_within_rounding_verifies_and_beyond_it_fails(
    bundle,  # noqa: F811
    tmp_path,
    monkeypatch,
) -> None:
    path, key = bundle
    site, biomarker = first_rate(json.loads(zipfile.ZipFile(path).read("report/benchmark.json")))

    def scaled(factor: float):
        def change(data: bytes) -> bytes:
            report = json.loads(data)
            entry = report["sites"][site]["positivity"][biomarker]
            entry["rate"] = entry["rate"] * factor
            return compact(report)

        return change

    within = rewrite(
        path, tmp_path / "within.zip", key=key, change={"report/benchmark.json": scaled(1 + 1e-12)}
    )
    result, parsed = verify_counting_parses(within, monkeypatch)
    assert result.ok, [c for c in result.checks if not c.ok]
    assert len(zipfile.ZipFile(within).read("report/benchmark.json")) not in parsed
    beyond = rewrite(
        path, tmp_path / "beyond.zip", key=key, change={"report/benchmark.json": scaled(1 + 1e-6)}
    )
    failed = failures(beyond)
    assert set(failed) == {"statistics"}
    assert f"/sites/{site}/positivity/{biomarker}/rate" in failed["statistics"]


def test_a_key_the_recomputation_lacks_fails_naming_it(bundle, tmp_path) -> None:  # noqa: F811
    path, key = bundle

    def add(data: bytes) -> bytes:
        report = json.loads(data)
        report["sites"][sorted(report["sites"])[0]]["planted"] = 1
        return compact(report)

    failed = failures(
        rewrite(path, tmp_path / "key.zip", key=key, change={"report/benchmark.json": add})
    )
    assert set(failed) == {"statistics"}
    assert "/planted: present on one side only" in failed["statistics"]


def test_proofs_and_the_leaf_listing_are_what_json_dumps_writes(bundle) -> None:  # noqa: F811
    path, _ = bundle
    with zipfile.ZipFile(path) as z:
        proofs = [n for n in z.namelist() if n.startswith("proofs/")]
        assert proofs
        for name in proofs:
            data = z.read(name)
            assert json.dumps(json.loads(data), indent=2).encode() + b"\n" == data
        listing = z.read("ledger/leaves.json")
        assert json.dumps(json.loads(listing), indent=1).encode() + b"\n" == listing


def test_a_bundle_that_cannot_be_made_leaves_no_file(bundle, tmp_path) -> None:  # noqa: F811
    path, _ = bundle
    data = DataDir(path.parent / "coordinator")
    out = tmp_path / "nobody.zip"
    with pytest.raises(NotFound, match="no summary from site lab-nobody"):
        build(data, load_standard(data.standard), PERIOD.label, out, site="lab-nobody")
    assert list(tmp_path.iterdir()) == []


def test_a_bundle_rebuilt_over_an_old_one_replaces_it_whole(bundle, tmp_path) -> None:  # noqa: F811
    path, _ = bundle
    data = DataDir(path.parent / "coordinator")
    out = tmp_path / "again.zip"
    out.write_bytes(b"an older file")
    build(data, load_standard(data.standard), PERIOD.label, out)
    assert [p.name for p in tmp_path.iterdir()] == ["again.zip"]
    assert verify(out).ok
    with zipfile.ZipFile(out) as made, zipfile.ZipFile(path) as first:
        assert set(made.namelist()) == set(first.namelist())
        assert made.read("ledger/leaves.json") == first.read("ledger/leaves.json")
        assert made.read("report/benchmark.json") == first.read("report/benchmark.json")
