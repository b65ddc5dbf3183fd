"""What a benchmark run keeps for later runs. The report's flag history reads each earlier period's
flags kept under the fingerprint of its inputs (coordinator/flag_store.py) and stays exactly what
recomputing that period's benchmark gives, also after a late or a revised summary arrives. The
summaries a run decoded are kept as protobuf binary (coordinator/decoded_cache.py) and give the
very messages and benchmark that decoding the signed payloads gives."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coordinator import benchmark, decoded_cache, flag_store, followup, store
from coordinator.config import init as init_coordinator
from coordinator.standards import load as load_standard
from protos import wire
from protos.rarenet.v1 import summary_pb2 as pb

PERIODS = ("2026Q1", "2026Q2", "2026Q3")
LABS = ("lab-a", "lab-b", "lab-c", "lab-d", "lab-e", "lab-f")


def stratum(method: str, pos: int, neg: int) -> pb.StratumCounts:
    return pb.StratumCounts(
        biomarker="MET_EX14",
        method=method,
        specimen="tissue",
        histology_group="all",
        tests=pos + neg,
        positive=pos,
        negative=neg,
    )


def summary(site: str, period: str, met_pos: int, sequence: int = 1) -> pb.SiteSummary:
    """400 MET exon 14 results (DNA and RNA NGS); a lab finding none of them is flagged."""
    dna = met_pos // 3
    return pb.SiteSummary(
        site_id=site,
        period=period,
        schema_version=1,
        sequence=sequence,
        standard_version="2026.1",
        strata=[
            stratum("ngs_dna", dna, 200 - dna),
            stratum("ngs_dna_rna", met_pos - dna, 200 - met_pos + dna),
            stratum("all", met_pos, 400 - met_pos),
        ],
    )


class Ledger:
    """A coordinator database with summaries stored as intake stores them (payload as signed)."""

    def __init__(self, root: Path) -> None:
        data = init_coordinator(root)
        self.standard = load_standard(data.standard)
        self.conn = store.connect(data.db)
        self.conn.execute("PRAGMA foreign_keys=OFF")  # summaries only: no ledger rows needed
        self.leaf = 0
        for site in LABS + ("lab-late",):
            self.conn.execute(
                "INSERT INTO sites (site_id, status, created_at) VALUES (?, 'active', '2026-01-01')",
                (site,),
            )

    def add(self, s: pb.SiteSummary) -> None:
        self.conn.execute(
            "INSERT INTO summaries VALUES (?, ?, ?, ?, '2026.1', ?)",
            (self.leaf, s.site_id, s.period, s.sequence, wire.encode(s).decode()),
        )
        self.leaf += 1

    def history(self, **kwargs) -> dict:
        current = benchmark.compute(self.conn, PERIODS[-1], self.standard, keep=True)
        return followup.flag_history(self.conn, current, self.standard, **kwargs)[1]

    def recomputed(self) -> dict:
        """The flag history the long way: every period benchmarked afresh, nothing kept."""
        fresh = sqlite3.connect(":memory:")
        self.conn.backup(fresh)
        fresh.execute("DROP TABLE IF EXISTS period_flags")
        fresh.execute("DROP TABLE IF EXISTS summary_messages")
        out = {}
        for period in ("2025Q4",) + PERIODS:
            has = fresh.execute("SELECT 1 FROM summaries WHERE period = ?", (period,)).fetchone()
            result = benchmark.compute(fresh, period, self.standard) if has else {"sites": {}}
            out[period] = flag_store.by_site(result)
        return out


def never(period: str) -> dict:
    raise AssertionError(f"{period} was benchmarked again although its inputs did not change")


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    ledger = Ledger(tmp_path / "coordinator")
    for period in PERIODS:
        for i, site in enumerate(LABS):
            # lab-f finds no MET exon 14 in 2026Q2 and 2026Q3: flagged there, not in 2026Q1
            found = 0 if site == "lab-f" and period != "2026Q1" else 7 + i % 3
            ledger.add(summary(site, period, found))
    return ledger


def flagged(history: dict, period: str) -> set[str]:
    return {site for site, flags in history[period].items() if flags}


def test_earlier_flags_are_kept_and_read_back_unchanged(ledger) -> None:
    first = ledger.history()
    assert first == ledger.recomputed()
    assert "lab-f" in flagged(first, "2026Q2")  # the history holds a real flag to keep
    again = ledger.history(compute=never)  # every earlier period is read from what was kept
    assert again == first


def test_a_revised_summary_gives_the_revised_flags(ledger) -> None:
    before = ledger.history()
    assert "lab-f" in flagged(before, "2026Q2")
    ledger.add(summary("lab-f", "2026Q2", 8, sequence=2))  # the lab corrects its Q2 counts
    after = ledger.history()
    assert after == ledger.recomputed()
    assert "lab-f" not in flagged(after, "2026Q2")
    assert after["2026Q1"] == before["2026Q1"]


def test_a_late_summary_changes_every_window_it_falls_in(ledger) -> None:
    ledger.history()
    ledger.add(summary("lab-late", "2026Q1", 0))  # arrives after Q1's flags were kept
    with pytest.raises(AssertionError, match="2026Q1 was benchmarked again"):
        ledger.history(compute=never)
    after = ledger.history()
    assert after == ledger.recomputed()
    assert "lab-late" in after["2026Q1"]


def test_a_revoked_site_changes_the_fingerprint(ledger) -> None:
    before = benchmark.stored_fingerprint(ledger.conn, "2026Q2", ledger.standard)
    ledger.conn.execute("UPDATE sites SET status = 'revoked' WHERE site_id = 'lab-b'")
    after = benchmark.stored_fingerprint(ledger.conn, "2026Q2", ledger.standard)
    assert after != before


def test_the_stored_fingerprint_is_that_of_the_inputs_read(ledger) -> None:
    ledger.add(summary("lab-a", "2026Q2", 9, sequence=2))
    ledger.conn.execute("UPDATE sites SET status = 'revoked' WHERE site_id = 'lab-c'")
    for period in PERIODS:
        data = benchmark.inputs(ledger.conn, period, ledger.standard)
        assert benchmark.stored_fingerprint(
            ledger.conn, period, ledger.standard
        ) == benchmark.fingerprint(data, period, ledger.standard)


def test_each_summary_is_decoded_once_per_run(ledger) -> None:
    decoded: benchmark.Decoded = {}
    current = benchmark.compute(ledger.conn, "2026Q3", ledger.standard, decoded=decoded)
    window = set(decoded)
    assert len(window) == len(LABS) * len(PERIODS)
    objects = {leaf: id(s) for leaf, s in decoded.items()}
    followup.flag_history(ledger.conn, current, ledger.standard, decoded=decoded)
    assert {leaf: id(s) for leaf, s in decoded.items()} == objects  # none decoded again


def test_a_read_only_database_still_gives_the_history(ledger, tmp_path) -> None:
    path = tmp_path / "coordinator" / "coordinator.db"
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    current = benchmark.compute(reader, "2026Q3", ledger.standard)
    said: list[str] = []
    _periods, history = followup.flag_history(
        reader, current, ledger.standard, progress=said.append
    )
    assert history == {**ledger.recomputed(), "2026Q3": flag_store.by_site(current)}
    assert any("could not be kept" in m for m in said)


def test_kept_summaries_are_the_signed_payloads_decoded(ledger) -> None:
    ledger.add(summary("lab-a", "2026Q2", 9, sequence=2))
    first = benchmark.compute(ledger.conn, "2026Q3", ledger.standard, keep=True)
    payloads = dict(ledger.conn.execute("SELECT leaf_index, payload FROM summaries"))
    window = [leaf for p in PERIODS for _site, leaf in benchmark.latest_leaves(ledger.conn, p)]
    kept = decoded_cache.find(ledger.conn, window)
    assert set(kept) == set(window)
    for leaf, message in kept.items():
        assert message == wire.decode(payloads[leaf].encode("utf-8"), pb.SiteSummary)
    fresh: benchmark.Decoded = {}
    again = benchmark.inputs(ledger.conn, "2026Q3", ledger.standard, {}, fresh)
    assert fresh == {}  # the second run decodes no payload
    assert benchmark.compute_from(again, "2026Q3", ledger.standard) == first
    assert first == benchmark.compute(ledger_without_cache(ledger), "2026Q3", ledger.standard)


def ledger_without_cache(ledger: Ledger) -> sqlite3.Connection:
    copy = sqlite3.connect(":memory:")
    ledger.conn.backup(copy)
    copy.execute("DROP TABLE summary_messages")
    return copy


def test_flags_alone_are_the_flags_of_the_whole_benchmark(ledger, monkeypatch) -> None:
    """A quarter's close keeps only its flags: the same flags the whole benchmark gives, with no
    message written, unless the period is the newest, whose whole report is kept for its audit
    bundle and so has its messages."""
    whole = ledger.recomputed()  # the whole benchmark of every period, nothing kept
    written: list[str] = []
    real = benchmark.messages.write

    def counted(result: dict) -> dict:
        written.append(result["period"])
        return real(result)

    monkeypatch.setattr(benchmark.messages, "write", counted)
    earlier = benchmark.period_flags(ledger.conn, "2026Q2", ledger.standard)
    assert written == []
    assert "lab-f" in {site for site, flags in earlier.items() if flags}
    assert earlier == whole["2026Q2"]
    newest = benchmark.period_flags(ledger.conn, PERIODS[-1], ledger.standard)
    assert written == [PERIODS[-1]]  # kept whole for its audit bundle: messages written
    assert newest == whole[PERIODS[-1]]
