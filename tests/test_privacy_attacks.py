"""The curious coordinator: a red team that reads only what a node legitimately sends (its signed
summaries) and tries to recover one patient's result. Each test plants a known hidden value, runs
the attack, and asserts the value cannot be recovered.

The engine perturbs every released count with bounded, consistent cell-key noise, so an attack
by subtraction gives a figure, but one carrying noise the attacker cannot remove. "Cannot be
recovered" is then measured as it is for any noisy release: over many independent worlds (the
patients' record keys differ from world to world, as they differ from site to site), the attack
rarely returns the truth, and its answers for the planted value and for a neighbouring value (the
same data with that one result changed) overlap, so it cannot tell which world it is in. On the
previous engine each attack returned the planted value every time and the two worlds never
overlapped.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from coordinator.standards import DEFAULT_STANDARD
from node import config as node_config
from node import send, store, summary
from node.ingest import ingest_file
from node.mapping import Mapping
from node.pseudonym import Pseudonymiser
from node.release import PeriodRefused
from node.standard import NodeStandard, StandardRefused, load_cached, parse
from node.vocabulary import FIELDS
from protos import wire
from protos.periods import parse as parse_period
from protos.rarenet.v1 import summary_pb2 as pb

Q3 = parse_period("2026Q3")
TRIALS = 60


@dataclass
class Lab:
    config: node_config.NodeConfig
    conn: sqlite3.Connection

    def load(self, rows: list[dict], name: str = "export.csv") -> None:
        path = self.config.data_dir.parent / name
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        ingest_file(self.conn, path, Pseudonymiser(self.config.pseudonym_secret()), Mapping())

    def reset(self, rows: list[dict], world: str = "") -> None:
        """The lab's data replaced by `rows`; with `world`, as another site would hold them (its
        own site secret, derived from the world's name so that the test is repeatable)."""
        if world:
            self.config.secret_path.write_bytes(hashlib.sha256(world.encode()).digest())
        self.conn.execute("DELETE FROM results")
        self.load(rows)

    def standard(self) -> NodeStandard:
        return load_cached(self.config.standard_path)

    def build(self, period: str = "2026Q3", standard: NodeStandard | None = None):
        return summary.build(
            self.conn, self.config, standard or self.standard(), parse_period(period), 1
        )[0]

    def sign(self, period: str = "2026Q3", standard: NodeStandard | None = None):
        return send.queue_summary(
            self.conn, self.config, standard or self.standard(), parse_period(period)
        )

    def released(self, period: str = "2026Q3") -> list[pb.SiteSummary]:
        """What left (the outbox), in order: all the coordinator ever sees of this period."""
        return [
            wire.decode(wire.parse_envelope(blob).payload, pb.SiteSummary)
            for (blob,) in self.conn.execute(
                "SELECT envelope FROM outbox WHERE period = ? ORDER BY sequence", (period,)
            )
        ]


def make_lab(tmp_path: Path, name: str = "lab", disclosure: str = "") -> Lab:
    cfg = node_config.init(tmp_path / name, name, "127.0.0.1:1", insecure=True)
    shutil.copyfile(DEFAULT_STANDARD, cfg.standard_path)
    if disclosure:  # "key = value": replaces that line of the [disclosure] section
        path = cfg.data_dir / "node.toml"
        key = disclosure.split("=")[0].strip()
        text = re.sub(rf"(?m)^{key} = .*$", disclosure, path.read_text(), count=1)
        path.write_text(text)
        cfg = node_config.load(cfg.data_dir)
    return Lab(cfg, store.connect(cfg.db_path))


def result(
    test: str,
    biomarker: str,
    method: str,
    specimen: str,
    outcome: str,
    *,
    patient: str | None = None,
    reported: str = "2026-08-12",
    received: str = "2026-08-05",
    histology: str = "adenocarcinoma",
    vaf: str = "",
) -> dict:
    row = dict.fromkeys(FIELDS, "")
    row.update(
        test_id=test,
        patient_id=patient or f"P-{test}",
        received_date=received,
        reported_date=reported,
        specimen=specimen,
        histology=histology,
        method=method,
        biomarker=biomarker,
        result=outcome,
        vaf=vaf,
    )
    return row


def rows_of(
    prefix: str, n: int, biomarker: str, method: str, specimen: str, positives: int, **kw
) -> list[dict]:
    return [
        result(
            f"{prefix}{i}",
            biomarker,
            method,
            specimen,
            "positive" if i < positives else "negative",
            vaf="12" if i < positives else "",
            **kw,
        )
        for i in range(n)
    ]


def stratum(s: pb.SiteSummary, biomarker: str, method: str, specimen: str) -> pb.StratumCounts:
    (found,) = [
        x for x in s.strata if (x.biomarker, x.method, x.specimen) == (biomarker, method, specimen)
    ]
    return found


def attack_outcomes(
    lab: Lab,
    world: Callable[[str, bool], list[dict]],
    attack: Callable[[pb.SiteSummary], int],
) -> tuple[list[int], list[int]]:
    """The attack's answers in TRIALS worlds with the planted value and TRIALS neighbouring
    worlds (that one result changed). Each world has its own test and patient ids, hence its own
    secret record keys and its own site secret, as two sites would."""
    planted: list[int] = []
    neighbour: list[int] = []
    for trial in range(TRIALS):
        for flag, answers in ((True, planted), (False, neighbour)):
            lab.reset(world(f"w{trial}-", flag), f"site {trial} {flag}")
            answers.append(attack(lab.build()))
    return planted, neighbour


def total_variation(a: list[int], b: list[int]) -> float:
    ca, cb = Counter(a), Counter(b)
    return sum(abs(ca[k] / len(a) - cb[k] / len(b)) for k in set(ca) | set(cb)) / 2


def assert_not_recovered(planted: list[int], neighbour: list[int], truth: int) -> None:
    """The attack returns the planted value in at most half the worlds, and cannot tell the
    planted world from its neighbour (an attacker who could would see two separate answer sets:
    total variation 1; the noise keeps it near the published table's 0.26 for one result)."""
    hits = sum(1 for x in planted if x == truth) / len(planted)
    assert hits <= 0.5, f"the planted value {truth} came back in {hits:.0%} of worlds"
    distance = total_variation(planted, neighbour)
    assert distance <= 0.6, f"planted and neighbouring worlds are told apart ({distance:.2f})"


# 1. Subtraction inside one summary -------------------------------------------------------------


def test_all_minus_per_method_does_not_give_back_a_withheld_stratum(tmp_path) -> None:
    """EGFR on cytology: 12 PCR tests and 3 NGS tests (1 positive). The NGS stratum is too small
    and withheld; per test (method "all") cytology is released, as is PCR. all - pcr = NGS."""
    lab = make_lab(tmp_path)

    def world(p: str, planted: bool) -> list[dict]:
        return (
            rows_of(p + "pcr", 12, "EGFR", "pcr", "cytology", 4)
            + rows_of(p + "ngs", 3, "EGFR", "ngs_dna", "cytology", 1 if planted else 0)
            + rows_of(p + "tis", 30, "EGFR", "ngs_dna", "tissue", 9)
        )

    lab.reset(world("check-", True))
    s = lab.build()
    assert not any(
        x.method == "ngs_dna" and x.specimen == "cytology" and not x.withheld for x in s.strata
    )

    def attack(s: pb.SiteSummary) -> int:
        return (
            stratum(s, "EGFR", "all", "cytology").positive
            - stratum(s, "EGFR", "pcr", "cytology").positive
        )

    planted, neighbour = attack_outcomes(lab, world, attack)
    assert_not_recovered(planted, neighbour, truth=1)


def test_sibling_method_does_not_give_back_suppressed_positives(tmp_path) -> None:
    """Small-count suppression on: ALK IHC's 2 positives are suppressed; per test, ALK is
    released, and so is FISH: all - fish = IHC."""
    lab = make_lab(tmp_path, disclosure="small_count_suppression = true")
    assert lab.config.disclosure.small_count_suppression

    def world(p: str, planted: bool) -> list[dict]:
        return rows_of(p + "ihc", 20, "ALK", "ihc", "tissue", 2 if planted else 3) + rows_of(
            p + "fish", 20, "ALK", "fish", "tissue", 6
        )

    lab.reset(world("check-", True))
    assert "positive" in stratum(lab.build(), "ALK", "ihc", "tissue").suppressed_cells

    def attack(s: pb.SiteSummary) -> int:
        return (
            stratum(s, "ALK", "all", "tissue").positive
            - stratum(s, "ALK", "fish", "tissue").positive
        )

    planted, neighbour = attack_outcomes(lab, world, attack)
    assert_not_recovered(planted, neighbour, truth=2)


# 2. VAF histograms -----------------------------------------------------------------------------


def test_a_withheld_biomarker_shows_its_positive_nowhere(tmp_path) -> None:
    """RET: 3 tests, 1 positive at VAF 7%. Every RET stratum is withheld; the VAF histogram used
    to show the positive anyway."""
    lab = make_lab(tmp_path)

    def world(p: str, planted: bool) -> list[dict]:
        ret = rows_of(p + "ret", 3, "RET", "ngs_rna", "tissue", 1 if planted else 0)
        for row in ret:
            row["vaf"] = "7" if row["result"] == "positive" else ""
        return ret + rows_of(p + "egfr", 40, "EGFR", "ngs_dna", "tissue", 12)

    def attack(s: pb.SiteSummary) -> int:
        return sum(sum(h.counts) for h in s.vaf if h.biomarker == "RET") + sum(
            x.positive for x in s.strata if x.biomarker == "RET"
        )

    planted, neighbour = attack_outcomes(lab, world, attack)
    assert set(planted) == set(neighbour) == {0}
    lab.reset(world("check-", True))
    (ret,) = [h for h in lab.build().vaf if h.biomarker == "RET"]
    assert ret.withheld and not ret.counts and "withheld" in ret.disclosure_note


def test_vaf_bins_of_a_released_stratum_are_perturbed(tmp_path) -> None:
    """A released stratum's VAF histogram: whether one more positive sits in the 5-10% bin (3
    there, or 2) is not given away. (That some positive sits there is: zero is exact.)"""
    lab = make_lab(tmp_path)

    def world(p: str, planted: bool) -> list[dict]:
        rows = rows_of(p + "egfr", 40, "EGFR", "ngs_dna", "tissue", 12)
        rows[0]["vaf"] = rows[1]["vaf"] = "6"
        rows[2]["vaf"] = "7" if planted else "30"  # one positive moves between bins
        return rows

    def attack(s: pb.SiteSummary) -> int:
        (h,) = [h for h in s.vaf if h.biomarker == "EGFR"]
        return h.counts[list(h.edges).index(5.0)]

    planted, neighbour = attack_outcomes(lab, world, attack)
    assert_not_recovered(planted, neighbour, truth=3)


# 3. Overlapping period kinds ---------------------------------------------------------------------


def test_months_inside_a_released_quarter_are_refused(tmp_path) -> None:
    """Q3 - August - September would be July. The policy releases quarters (and months, here);
    once Q3 has left, a month inside it is refused, and by default months are refused anyway."""
    lab = make_lab(tmp_path, disclosure='period_kinds = ["quarter", "month"]')
    july = rows_of("jul", 3, "ROS1", "fish", "tissue", 1, reported="2026-07-15")
    lab.load(
        july
        + rows_of("aug", 30, "EGFR", "pcr", "tissue", 9, reported="2026-08-12")
        + rows_of("sep", 30, "EGFR", "pcr", "tissue", 9, reported="2026-09-12")
    )
    assert lab.sign("2026Q3").sequence == 1
    for month in ("2026-08", "2026-09", "2026-07"):
        with pytest.raises(PeriodRefused, match="overlaps 2026Q3"):
            lab.sign(month)
        with pytest.raises(PeriodRefused):
            lab.build(month)  # the preview refuses too: it is what would be signed
    with pytest.raises(PeriodRefused, match="releases only quarters, months"):
        lab.sign("2026")
    assert [s.period for s in lab.released("2026-08") + lab.released("2026-09")] == []
    default = make_lab(tmp_path, "default")
    with pytest.raises(PeriodRefused, match="releases only quarters"):
        default.build("2026-08")


# 4. Revisions -----------------------------------------------------------------------------------


def test_one_late_result_is_held_not_released_as_a_difference(tmp_path) -> None:
    """2026Q3 has left; one late result arrives (ROS1 FISH on plasma, positive, VAF 7%, 3 days).
    The daemon used to sign Q3 again: version 2 - version 1 was that patient's result."""
    from node import daemon

    lab = make_lab(tmp_path)
    lab.load(rows_of("t", 60, "EGFR", "ngs_dna", "tissue", 18))
    assert lab.sign().sequence == 1
    late = result("LATE1", "ROS1", "fish", "plasma", "positive", vaf="7", reported="2026-09-30")
    lab.load([late], "late.csv")
    # Q2 holds no results (an empty period is not signed); Q3's revision is held.
    assert daemon.summarise(str(lab.config.data_dir), today="2026-10-02") == []
    (version,) = lab.released()
    assert not any(s.biomarker == "ROS1" for s in version.strata)
    queued = lab.sign()
    assert queued.sequence is None and "1 result(s) changed" in queued.held
    # Ten more late results: the revision leaves, and its difference holds eleven results.
    lab.load(rows_of("more", 10, "EGFR", "ngs_dna", "tissue", 3, reported="2026-09-29"), "m.csv")
    assert lab.sign().sequence is not None
    first, second = lab.released()
    assert second.sequence > first.sequence


# 5. A hostile testing standard ------------------------------------------------------------------


def hostile(text: str, **changes: str) -> NodeStandard:
    for old, new in changes.items():
        text = text.replace(old, new)
    return parse(text)


def test_fine_vaf_edges_are_refused(tmp_path) -> None:
    """Edges 0.01% apart would give each positive's exact VAF."""
    lab = make_lab(tmp_path)
    rows = rows_of("t", 40, "EGFR", "ngs_dna", "tissue", 12)
    rows[0]["vaf"] = "7.23"
    lab.load(rows)
    text = DEFAULT_STANDARD.read_text()
    edges = ", ".join(f"{x / 100:.2f}" for x in range(0, 10001)) + ", 100.0001"
    fine = hostile(
        text,
        **{
            "edges = [0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0001]": f"edges = [{edges}]",
            'version = "2026.1"': 'version = "2026.2"',
        },
    )
    with pytest.raises(StandardRefused, match="VAF edges .* not a subset"):
        lab.build(standard=fine)
    with pytest.raises(StandardRefused):
        lab.sign(standard=fine)
    assert lab.released() == []
    coarser = hostile(
        text,
        **{"edges = [0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0001]": "edges = [0.0, 100.0001]"},
    )
    assert list(lab.build(standard=coarser).vaf[0].edges) == [0.0, 100.0001]  # coarser is fine


def test_a_panel_population_without_one_histology_is_refused(tmp_path) -> None:
    """Dropping sarcomatoid from the panel's histologies would give its one patient's panel."""
    lab = make_lab(tmp_path)
    lab.load(rows_of("t", 40, "EGFR", "ngs_dna", "tissue", 12))
    narrow = hostile(
        DEFAULT_STANDARD.read_text(),
        **{'"large_cell", "sarcomatoid", "nos"': '"large_cell", "nos"'},
    )
    with pytest.raises(StandardRefused, match="leave out \\['sarcomatoid'\\]"):
        lab.build(standard=narrow)


def test_a_new_standard_version_does_not_re_release_without_the_lab(tmp_path) -> None:
    """Bumping the version used to make the daemon sign every recent period again (fresh tables
    to compare, fresh noise to average). Now held until `rarenet-node standards accept`."""
    from click.testing import CliRunner

    from node.cli import main as node_cli

    lab = make_lab(tmp_path)
    lab.load(rows_of("t", 40, "EGFR", "ngs_dna", "tissue", 12))
    first = lab.sign()
    assert first.sequence == 1
    bumped_text = DEFAULT_STANDARD.read_text().replace('version = "2026.1"', 'version = "2026.2"')
    lab.config.standard_path.write_text(bumped_text)
    queued = lab.sign()
    assert queued.sequence is None and "standards accept" in queued.held
    assert len(lab.released()) == 1
    result_ = CliRunner().invoke(
        node_cli, ["standards", "accept", "--data-dir", str(lab.config.data_dir)]
    )
    assert result_.exit_code == 0, result_.output
    assert lab.sign().sequence == 2
    again = lab.sign()
    assert again.sequence is None and not again.held  # the same data: the same bytes, no redraw


# 6. What differential privacy used to leak -----------------------------------------------------


def test_the_published_noise_says_nothing_about_the_data(tmp_path) -> None:
    """The DP noise scale was 4 x the most results one patient had: published, it told the
    coordinator that number. The perturbation published now is a constant table."""
    lab = make_lab(tmp_path)
    one_heavy_patient = [
        result(f"H{i}", b, "ngs_dna", "tissue", "negative", patient="HEAVY")
        for i, b in enumerate(("EGFR", "ALK", "ROS1", "RET", "KRAS", "NTRK", "ERBB2"))
    ]
    lab.load(rows_of("t", 40, "EGFR", "ngs_dna", "tissue", 12))
    light = lab.build().policy
    lab.load(one_heavy_patient, "heavy.csv")
    heavy = lab.build().policy
    assert light == heavy
    assert not light.differential_privacy.enabled and light.perturbation.mechanism == "cell_key"


@pytest.mark.slow
def test_every_table_is_perturbed_and_the_same_data_gives_the_same_noise(tmp_path) -> None:
    """Turnaround, concordance, panel and VAF were released exact with DP on. Now every count
    carries noise: across worlds, a turnaround bin that holds one more test or not cannot be told
    apart, and the concordance cell and panel count are not returned exactly in most worlds;
    building again never draws new noise."""
    lab = make_lab(tmp_path)

    def world(p: str, planted: bool) -> list[dict]:
        rows = []
        for i in range(30):
            rows.append(
                result(f"{p}c{i}", "ALK", "ihc", "tissue", "positive" if i < 8 else "negative")
            )
            rows.append(
                result(f"{p}c{i}", "ALK", "fish", "tissue", "positive" if i < 7 else "negative")
            )
        slow = [
            result(f"{p}slow{i}", "EGFR", "pcr", "tissue", "negative", received="2026-07-01")
            for i in range(3)
        ]
        for row in slow:
            row["reported_date"] = "2026-07-21"  # 14 working days
        slow[0]["reported_date"] = "2026-07-21" if planted else "2026-07-22"
        return rows + slow

    def tat_bin(s: pb.SiteSummary) -> int:
        (h,) = [h for h in s.turnaround if h.specimen == "tissue"]
        return h.counts[14]

    lab.reset(world("bins-", True))
    truth = lab.conn.execute(
        "SELECT COUNT(*) FROM results WHERE received_date = '2026-07-01' AND reported_date = ?",
        ("2026-07-21",),
    ).fetchone()[0]
    assert truth == 3
    planted, neighbour = attack_outcomes(lab, world, tat_bin)
    assert_not_recovered(planted, neighbour, truth=3)
    lab.reset(world("same-", True))
    first = lab.build()
    assert all(lab.build() == first for _ in range(3))
    exact = [
        (t.both_positive, t.index_negative_comparator_positive)
        for t in first.concordance
        if t.biomarker == "ALK"
    ]
    assert exact  # released (30 pairs)
    panel_hits = concordance_hits = 0
    for trial in range(TRIALS):
        lab.reset(world(f"p{trial}-", True), f"site {trial}")
        s = lab.build()
        panel_hits += s.panel.patients == 33
        (t,) = [t for t in s.concordance if t.biomarker == "ALK"]
        concordance_hits += (t.both_positive, t.index_positive_comparator_negative) == (7, 1)
    assert panel_hits <= TRIALS / 2 and concordance_hits <= TRIALS / 2


def test_zero_positives_in_many_tests_stays_visible(tmp_path) -> None:
    """The rare-signal rule: 0 MET exon 14 positives in 400 DNA-only tests is released as 0 in
    about 400, in every world."""
    lab = make_lab(tmp_path)
    for trial in range(10):
        lab.reset(rows_of(f"r{trial}-", 400, "MET_EX14", "ngs_dna", "tissue", 0))
        s = lab.build()
        for method in ("ngs_dna", "all"):
            x = stratum(s, "MET_EX14", method, "tissue")
            assert x.positive == 0 and abs(x.tests - 400) <= 2 * 4


# 7. The lab's disk -------------------------------------------------------------------------------


@pytest.mark.slow
def test_under_umask_022_the_node_keeps_its_files_to_itself(tmp_path) -> None:
    export = tmp_path / "export.csv"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows_of("T", 20, "EGFR", "pcr", "tissue", 5))
    export.write_text(buffer.getvalue())
    data = tmp_path / "node"
    node = [sys.executable, "-m", "node.cli"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def run(*args: str) -> None:
        done = subprocess.run(
            [*node, *args], env=env, capture_output=True, text=True, umask=0o022, check=False
        )
        assert done.returncode == 0, done.stderr

    run("init", "--data-dir", str(data), "--site-id", "lab-u", "--coordinator", "127.0.0.1:1")
    shutil.copyfile(DEFAULT_STANDARD, data / "standard.toml")
    run("ingest", "--data-dir", str(data), str(export))
    run("summarize", "--data-dir", str(data), "--period", "2026Q3")
    assert (data / "node.db").exists()
    for path in [data, *data.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        if path == data / "standard.toml":
            continue  # copied here by the test, as a stand-in for `standards fetch`
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"


def test_raw_exports_quarantine_and_logs_keep_no_identities(tmp_path, caplog) -> None:
    """An export with patient names and MRNs in extra columns: after the daemon ingests it, the
    file is gone (its digest and report stay), quarantine keeps canonical fields with the patient
    id hashed, and the log names no id."""
    from node import daemon

    lab = make_lab(tmp_path)
    inbox = Path(lab.config.daemon.watch_dir)
    inbox.mkdir(parents=True, exist_ok=True)
    rows = rows_of("TIDMARK", 12, "EGFR", "pcr", "tissue", 3)
    rows[0]["patient_id"] = "PIDMARK-0"
    rows[1]["specimen"] = "banana"  # quarantined
    rows[1]["patient_id"] = "PIDMARK-1"
    with (inbox / "export.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*FIELDS, "patient_name", "hospital_number"])
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow(
                {**row, "patient_name": f"NAMEMARK {i}", "hospital_number": f"MRNMARK{i}"}
            )
    with caplog.at_level(logging.INFO, logger="rarenet.node"):
        assert daemon.watch(str(lab.config.data_dir)) == {"export.csv": "processed"}
    kept = sorted(p.name for p in (inbox / "processed").iterdir())
    assert len(kept) == 1 and kept[0].endswith(".report.json")
    report = json.loads((inbox / "processed" / kept[0]).read_text())
    assert len(report["sha256"]) == 64 and report["quarantined"] == 1
    (quarantined,) = [r for (r,) in lab.conn.execute("SELECT row_json FROM quarantine")]
    for marker in ("NAMEMARK", "MRNMARK", "PIDMARK"):
        assert marker not in quarantined
        assert marker not in caplog.text
    assert "TIDMARK" not in caplog.text
    assert json.loads(quarantined)["patient_id"].startswith("pseudonym:")


def test_raw_exports_kept_only_as_long_as_the_policy_says(tmp_path) -> None:
    from node import daemon

    lab = make_lab(tmp_path)
    path = lab.config.data_dir / "node.toml"
    path.write_text(path.read_text().replace("raw_export_days = 0", "raw_export_days = 7"))
    inbox = Path(lab.config.daemon.watch_dir)
    inbox.mkdir(parents=True, exist_ok=True)
    lab.load(rows_of("A", 12, "EGFR", "pcr", "tissue", 3), "seed.csv")
    shutil.copyfile(lab.config.data_dir.parent / "seed.csv", inbox / "a.csv")
    daemon.watch(str(lab.config.data_dir))
    (raw,) = [p for p in (inbox / "processed").iterdir() if p.suffix == ".csv"]
    assert raw.stat().st_mode & 0o777 == 0o600
    old = (dt.datetime.now() - dt.timedelta(days=8)).timestamp()
    os.utime(raw, (old, old))
    daemon.watch(str(lab.config.data_dir))
    assert not raw.exists()


# 8. Per-site audit bundles ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_site_bundle_names_no_peer(coordinator, node_factory, synthetic_csv, tmp_path) -> None:
    from coordinator import audit_bundle
    from coordinator.standards import load as load_standard

    for site in ("lab-own", "lab-peerzz1", "lab-peerzz2"):
        node = node_factory(site)
        node.ingest(synthetic_csv(site, rows=600, seed=len(site)))
        send.queue_summary(node.conn, node.config, load_cached(node.config.standard_path), Q3)
        send.flush(node.conn, node.config, node.client)
    data = coordinator.service.data
    out = tmp_path / "own.zip"
    audit_bundle.build(data, load_standard(data.standard), Q3.label, out, site="lab-own")
    with zipfile.ZipFile(out) as bundle:
        contents = {n: bundle.read(n) for n in bundle.namelist()}
    # No peer's figures: every signed summary in it is the site's own ...
    summaries = [n for n in contents if n.startswith("envelopes/")]
    assert summaries
    for name in summaries:
        envelope = wire.parse_envelope(contents[name])
        assert wire.decode(envelope.payload, pb.SiteSummary).site_id == "lab-own"
    # ... and no peer is named anywhere: peers' ledger leaves are given by hash only, and the
    # checkpoint carries only the site's own cosignature.
    named_peers = {n for n, data in contents.items() if b"peerzz" in data}
    assert named_peers == set(), named_peers
    leaves = json.loads(contents["ledger/leaves.json"])["leaves"]
    assert sum("leaf_hash" in entry for entry in leaves) == 2  # the two peers' summaries
    assert b"lab-own" in contents["report/benchmark.json"]
    # And its own signed summaries still verify offline.
    from auditor.verify import verify

    checks = verify(out)
    assert checks.ok, [c for c in checks.checks if not c.ok]
    assert any(c.name == "statistics" and "lab-own's own" in c.detail for c in checks.checks)


@pytest.mark.slow
def test_a_hostile_standard_served_signed_is_refused_and_not_cached(tmp_path) -> None:
    """The real path: the coordinator serves (signed) a standard with 0.01%-wide VAF edges; the
    node refuses it on fetch, keeps the one it had, and summaries stay as coarse as before."""
    from coordinator.config import init as init_coordinator
    from coordinator.server import start
    from node import enroll
    from tests.conftest import make_node

    data = init_coordinator(tmp_path / "centre")
    running = start(data, "127.0.0.1:0", insecure=True)
    try:
        node = make_node(tmp_path, running, "lab-h")
        cached = node.config.standard_path.read_text()
    finally:
        running.stop(grace=1)
    edges = ", ".join(f"{x / 100:.2f}" for x in range(0, 10001)) + ", 100.0001"
    hostile_path = tmp_path / "hostile.toml"
    hostile_path.write_text(
        DEFAULT_STANDARD.read_text()
        .replace('version = "2026.1"', 'version = "2026.9"')
        .replace("edges = [0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0001]", f"edges = [{edges}]")
    )
    running = start(data, f"127.0.0.1:{running.port}", insecure=True, standard_path=hostile_path)
    try:
        with pytest.raises(StandardRefused, match="not a subset"):
            enroll.fetch_standard(node.config, node.client)
    finally:
        node.client.close()
        running.stop(grace=1)
    assert node.config.standard_path.read_text() == cached


@pytest.mark.slow
def test_the_benchmark_still_sees_a_lab_with_no_met_exon_14_positive(tmp_path) -> None:
    """Not blind: six perturbed labs, five finding MET exon 14 in about 2.5% of 400 tests and one
    DNA-only lab finding none in 400. In every world the benchmark flags the DNA-only lab for
    MET exon 14 and alarms no other lab's positivity (they test MET only: their panel coverage
    alarms are true)."""
    from coordinator.benchmark import Inputs, compute_from
    from coordinator.standards import load as load_standard

    standard = load_standard(DEFAULT_STANDARD)
    labs = {f"lab-{i}": make_lab(tmp_path, f"lab-{i}") for i in range(6)}
    for world in range(3):
        released = {}
        for i, (site, lab) in enumerate(labs.items()):
            if i == 0:
                rows = rows_of(f"{world}-{site}-", 400, "MET_EX14", "ngs_dna", "tissue", 0)
            else:
                rows = rows_of(f"{world}-{site}-", 400, "MET_EX14", "ngs_dna_rna", "tissue", 10)
            lab.reset(rows, f"{site} {world}")
            message = lab.build()
            message.site_id = site
            released[site] = (i, message)
        result = compute_from(Inputs({Q3.label: released}, set(), []), Q3.label, standard)
        flagged = {
            (f["site_id"], f["level"])
            for f in result["flags"]
            if f["rule"] == "positivity_funnel" and f["subject"] == "MET_EX14"
        }
        assert ("lab-0", "alarm") in flagged or ("lab-0", "alert") in flagged, flagged
        assert result["sites"]["lab-0"]["positivity"]["MET_EX14"]["positive"] == 0
        others = [
            f
            for f in result["flags"]
            if f["rule"].startswith("positivity")
            and f["level"] == "alarm"
            and f["site_id"] != "lab-0"
        ]
        assert not others, others
