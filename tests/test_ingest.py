"""Ingest of LIMS exports: encodings, XLSX, mappings, validation, quarantine, idempotence."""

from __future__ import annotations

import csv
import io
import os
import signal
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import config as node_config
from node import store, validate
from node.errors import IngestError
from node.ingest import ingest_file
from node.mapping import Mapping
from node.mapping import load as load_mapping
from node.pseudonym import Pseudonymiser
from node.vocabulary import FIELDS
from protos.worker import Worker

HEADER = list(FIELDS)
GOOD = [
    "T1",
    "P1",
    "2026-07-01",
    "2026-07-08",
    "tissue",
    "adenocarcinoma",
    "ngs_dna_rna",
    "EGFR",
    "positive",
    "exon 19 del",
    "23.5",
    "",
    "",
]


def row(**changes) -> list[str]:
    values = dict(zip(HEADER, GOOD))
    values.update(changes)
    return [values[h] for h in HEADER]


def write(
    path: Path, rows: list[list[str]], header=HEADER, encoding="utf-8", delimiter=","
) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


@pytest.fixture
def node(tmp_path):
    cfg = node_config.init(tmp_path / "node", "lab-a", "127.0.0.1:1", insecure=True)
    conn = store.connect(cfg.db_path)

    def ingest(path: Path, mapping: Mapping | None = None, encoding: str | None = None):
        return ingest_file(
            conn, path, Pseudonymiser(cfg.pseudonym_secret()), mapping or Mapping(), encoding
        )

    ingest.conn = conn
    ingest.cfg = cfg
    return ingest


def count(conn) -> int:
    return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "utf-16"])
def test_each_encoding_is_detected(node, tmp_path, encoding) -> None:
    rows = [
        row(test_id="T1", histology="腺癌", result="阳性"),
        row(test_id="T2", specimen="细胞学", result="阴性"),
    ]
    result = node(write(tmp_path / "x.csv", rows, encoding=encoding))
    assert (result.rows, result.accepted, result.quarantined) == (2, 2, 0)
    stored = node.conn.execute("SELECT histology, result FROM results ORDER BY test_id").fetchall()
    assert stored == [("adenocarcinoma", "positive"), ("adenocarcinoma", "negative")]


def test_tsv_and_semicolons(node, tmp_path) -> None:
    assert node(write(tmp_path / "x.tsv", [row()], delimiter="\t")).accepted == 1
    assert node(write(tmp_path / "y.csv", [row(test_id="T9")], delimiter=";")).accepted == 1


def test_explicit_encoding_override_and_wrong_encoding_message(node, tmp_path) -> None:
    path = write(tmp_path / "x.csv", [row(histology="鳞癌")], encoding="gb18030")
    assert node(path, encoding="gb18030").accepted == 1
    with pytest.raises(IngestError, match="pass --encoding"):
        node(path, encoding="utf-8")


def test_xlsx(node, tmp_path) -> None:
    import datetime as dt

    workbook = openpyxl.Workbook()
    sheet = workbook.worksheets[0]
    sheet.append(HEADER)
    sheet.append(
        [
            "T1",
            "P1",
            dt.datetime(2026, 7, 1),
            dt.date(2026, 7, 3),
            "tissue",
            "adenocarcinoma",
            "pcr",
            "EGFR",
            "positive",
            "",
            12.5,
            None,
            None,
        ]
    )
    sheet.append(
        [
            "T2",
            1234,
            "2026-07-01",
            "2026-07-02",
            "plasma",
            "nos",
            "ddpcr",
            "KRAS G12C",
            "neg",
            None,
            None,
            None,
            None,
        ]
    )
    path = tmp_path / "export.xlsx"
    workbook.save(path)
    result = node(path)
    assert (result.rows, result.accepted, result.quarantined) == (2, 2, 0), result.errors
    assert node.conn.execute(
        "SELECT biomarker, reported_date FROM results WHERE test_id='T2'"
    ).fetchone() == ("KRAS_G12C", "2026-07-02")


def test_chinese_headers_and_values_with_a_mapping(node, tmp_path) -> None:
    header = [
        "检测编号",
        "患者ID",
        "接收日期",
        "报告日期",
        "标本类型",
        "病理类型",
        "检测方法",
        "检测基因",
        "检测结果",
        "突变类型",
        "备注",
    ]
    rows = [
        [
            "C1",
            "王某",
            "2026年07月01日",
            "2026/07/09",
            "组织",
            "腺癌",
            "NGS（DNA+RNA）",
            "MET 14 跳跃",
            "突变型",
            "MET 14外显子跳跃",
            "x",
        ],
        [
            "C2",
            "李某",
            "2026年07月01日",
            "2026/07/09",
            "胸水",
            "肺腺癌",
            "ARMS",
            "EGFR 19del",
            "野生型",
            "",
            "",
        ],
        [
            "C3",
            "张某",
            "2026年07月01日",
            "2026/07/09",
            "血浆",
            "鳞癌",
            "数字PCR",
            "EGFR exon 19 deletion",
            "失败",
            "",
            "",
        ],
        [
            "C4",
            "赵某",
            "2026年07月01日",
            "2026/07/09",
            "组织",
            "腺癌",
            "二代测序",
            "ALK",
            "阳性",
            "EML4-ALK",
            "",
        ],
    ]
    mapping_file = tmp_path / "mapping.toml"
    mapping_file.write_text(
        '[columns]\n"备注" = "variant"\n\n[values.method]\n"NGS（DNA+RNA）" = "ngs_dna_rna"\n'
        '"二代测序" = "ngs_dna"\n',
        encoding="utf-8",
    )
    # The mapping names 备注 as the variant too: two columns map to one field, which is refused.
    with pytest.raises(Exception, match="two columns map to 'variant'"):
        node(
            write(tmp_path / "cn.csv", rows, header=header, encoding="gb18030"),
            load_mapping(mapping_file),
        )
    mapping_file.write_text(
        '[values.method]\n"NGS（DNA+RNA）" = "ngs_dna_rna"\n"二代测序" = "ngs_dna"\n',
        encoding="utf-8",
    )
    result = node(
        write(tmp_path / "cn.csv", rows, header=header, encoding="gb18030"),
        load_mapping(mapping_file),
    )
    assert (result.accepted, result.quarantined) == (4, 0), result.errors
    assert result.unmapped_columns == ["备注"]
    stored = node.conn.execute(
        "SELECT test_id, biomarker, method, specimen, histology, result, variant "
        "FROM results ORDER BY test_id"
    ).fetchall()
    assert stored == [
        (
            "C1",
            "MET_EX14",
            "ngs_dna_rna",
            "tissue",
            "adenocarcinoma",
            "positive",
            "MET exon 14 skipping",
        ),
        ("C2", "EGFR", "pcr", "cytology", "adenocarcinoma", "negative", None),
        ("C3", "EGFR", "ddpcr", "plasma", "squamous", "failed", None),
        ("C4", "ALK", "ngs_dna", "tissue", "adenocarcinoma", "positive", "EML4-ALK"),
    ]


@pytest.mark.parametrize(
    "changes,field,words",
    [
        ({"test_id": ""}, "test_id", "required"),
        ({"patient_id": " "}, "patient_id", "required"),
        ({"specimen": "saliva"}, "specimen", "not a known specimen"),
        ({"histology": "small cell"}, "histology", "not a known histology"),
        ({"method": "sanger"}, "method", "not a known method"),
        ({"biomarker": "PD-L1"}, "biomarker", "not a known biomarker"),
        ({"result": "maybe"}, "result", "not a known result"),
        ({"received_date": "2026-02-30"}, "received_date", "not a real date"),
        ({"reported_date": "yesterday"}, "reported_date", "not a real date"),
        (
            {"received_date": "2026-07-10", "reported_date": "2026-07-01"},
            "reported_date",
            "before received",
        ),
        ({"vaf": "120"}, "vaf", "outside 0-100"),
        ({"vaf": "-1"}, "vaf", "outside 0-100"),
        ({"vaf": "abc"}, "vaf", "not a number"),
    ],
)
def test_each_validation_rule_quarantines_with_line_field_reason(
    node, tmp_path, changes, field, words
) -> None:
    result = node(write(tmp_path / "bad.csv", [row(test_id="OK1"), row(**changes)]))
    assert (result.rows, result.accepted, result.quarantined) == (2, 1, 1)
    assert any(e.line == 3 and e.field == field and words in e.reason for e in result.errors), (
        result.errors
    )
    q = node.conn.execute("SELECT source, line, field, reason, row_json FROM quarantine").fetchall()
    assert q[0][:3] == ("bad.csv", 3, field) and words in q[0][3]
    assert "P1" not in q[0][4]  # the raw patient id is not kept in quarantine either


def test_one_result_per_test_biomarker_method(node, tmp_path) -> None:
    rows = [row(), row(), row(result="negative"), row(method="pcr")]
    result = node(write(tmp_path / "x.csv", rows))
    assert (result.rows, result.accepted, result.duplicates, result.quarantined) == (4, 2, 1, 1)
    assert (
        "line 2 already gives a different result" in result.errors[0].reason
        and result.errors[0].line == 4
    )


def test_missing_required_column_refuses_the_file_with_advice(node, tmp_path) -> None:
    with pytest.raises(IngestError, match="no column for biomarker.*--mapping"):
        node(write(tmp_path / "x.csv", [row()[:7]], header=HEADER[:7]))


def test_reingest_is_idempotent_and_corrections_update(node, tmp_path) -> None:
    path = write(
        tmp_path / "x.csv",
        [row(test_id=f"T{i}") for i in range(10)] + [row(test_id="BAD", vaf="500")],
    )
    first = node(path)
    assert (first.inserted, first.updated, first.duplicates, first.quarantined) == (10, 0, 0, 1)
    again = node(path)
    assert (again.accepted, again.duplicates, again.quarantined) == (0, 10, 1)
    assert count(node.conn) == 10
    fixed = write(
        tmp_path / "x.csv",
        [row(test_id=f"T{i}") for i in range(9)]
        + [row(test_id="T9", result="negative"), row(test_id="BAD", vaf="5")],
    )
    third = node(fixed)
    assert (third.inserted, third.updated, third.duplicates, third.quarantined, third.released) == (
        1,
        1,
        9,
        0,
        1,
    )
    assert node.conn.execute("SELECT result FROM results WHERE test_id='T9'").fetchone() == (
        "negative",
    )
    assert node.conn.execute(
        "SELECT COUNT(*) FROM quarantine WHERE released_at IS NULL"
    ).fetchone() == (0,)


def test_patient_ids_are_stored_only_as_keyed_hashes(node, tmp_path) -> None:
    node(write(tmp_path / "x.csv", [row(patient_id="RAWPATIENT-123")]))
    (key,) = node.conn.execute("SELECT patient_key FROM results").fetchone()
    assert "RAWPATIENT" not in key and len(key) == 32
    raw = b"".join(p.read_bytes() for p in node.cfg.data_dir.glob("node.db*"))
    assert b"RAWPATIENT-123" not in raw
    # The hash is keyed: another site's secret gives another pseudonym.
    assert Pseudonymiser(b"other secret")("RAWPATIENT-123") != key


def cells_strategy():
    vocabulary = st.sampled_from(
        [
            "tissue",
            "组织",
            "x",
            "",
            "EGFR",
            "阳性",
            "negative",
            "2026-07-01",
            "2026/07/05",
            "2026-13-01",
            "ngs_dna",
            "fish",
            "adenocarcinoma",
            "12.5",
            "-3",
            "T1",
            "P1",
            "\u00a0",
        ]
    )
    return st.lists(st.one_of(vocabulary, st.text(max_size=8)), min_size=0, max_size=15)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(cells_strategy(), max_size=25))
def test_random_and_malformed_rows_never_raise_and_conservation_holds(node, tmp_path, rows) -> None:
    rows = [[c.replace("\x00", "") for c in r] for r in rows]
    path = write(tmp_path / "fuzz.csv", rows)
    result = node(path)
    assert result.rows == result.accepted + result.duplicates + result.quarantined
    nonblank = sum(1 for r in rows if any(c.strip() for c in r))
    # csv may split a row holding a newline or quote into more lines; every non-blank line is a row.
    assert result.rows >= nonblank or any(any(ch in c for ch in '\n\r"') for r in rows for c in r)


def test_conflicting_repeat_across_write_batches(node, tmp_path) -> None:
    rows = [row(test_id=f"T{i}") for i in range(6000)] + [
        row(test_id="T1", result="negative"),
        row(test_id="T2"),
    ]
    result = node(write(tmp_path / "x.csv", rows))
    assert (result.rows, result.accepted, result.duplicates, result.quarantined) == (
        6002,
        6000,
        1,
        1,
    )
    assert result.errors[0].line == 6002 and "line 3 already gives" in result.errors[0].reason


def mixed_rows(n: int) -> list[list[str]]:
    """n good rows over two write batches, with an identical repeat, a conflicting repeat, bad rows,
    a repeat of a bad row, and a blank line."""
    rows = [row(test_id=f"T{i}", patient_id=f"P{i // 3}") for i in range(n)]
    rows += [
        row(test_id="T1", patient_id="P0"),
        row(test_id="T2", patient_id="P0", result="negative"),
        row(test_id="BAD", vaf="500"),
        row(test_id="BAD", vaf="500"),
        [""] * len(HEADER),
        row(test_id="T5", patient_id="P1", method="pcr"),
    ]
    return rows


def table_contents(conn) -> list[tuple]:
    results = conn.execute("SELECT * FROM results ORDER BY test_id, biomarker, method").fetchall()
    quarantine = conn.execute(
        "SELECT source, line, field, reason, row_json, released_at IS NULL FROM quarantine"
        " ORDER BY line, id"
    ).fetchall()
    return results + quarantine


def test_a_second_validating_process_gives_exactly_the_in_process_result(tmp_path) -> None:
    """Large files are validated in a worker process (node/validate.py); small ones in process.
    Both must give the same counts, errors, rows and quarantine, first ingest and re-ingest."""
    first, fixed = mixed_rows(7000), mixed_rows(7000)
    fixed[3] = row(test_id="T3", patient_id="P1", result="negative")  # a correction
    fixed[-3] = fixed[-4] = row(test_id="BAD", vaf="5")  # the bad rows fixed: released
    outcomes = []
    for worker in (False, True):
        cfg = node_config.init(tmp_path / f"node-{worker}", "lab-a", "127.0.0.1:1", insecure=True)
        conn = store.connect(cfg.db_path)
        pseudonymise = Pseudonymiser(b"the same secret for both")
        results = [
            ingest_file(
                conn, write(tmp_path / "export.csv", rows), pseudonymise, Mapping(), worker=worker
            )
            for rows in (first, first, fixed)
        ]
        outcomes.append(([r.to_dict() for r in results], table_contents(conn)))
    (in_process, contents), (in_worker, worker_contents) = outcomes
    assert in_worker == in_process
    assert worker_contents == contents
    once, again, corrected = in_process
    assert (once["rows"], once["accepted"], once["duplicates"], once["quarantined"]) == (
        7005,
        7001,
        1,
        3,
    )
    assert [e["line"] for e in once["errors"]] == [7003, 7004, 7005]
    assert "line 4 already gives a different result" in once["errors"][0]["reason"]
    assert (again["accepted"], again["duplicates"], again["quarantined"]) == (0, 7002, 3)
    assert (corrected["inserted"], corrected["updated"], corrected["released"]) == (1, 1, 2)


def test_a_second_validating_process_refuses_a_file_as_in_process(node, tmp_path) -> None:
    pseudonymise = Pseudonymiser(node.cfg.pseudonym_secret())
    no_column = write(tmp_path / "x.csv", [row()[:7]], header=HEADER[:7])
    with pytest.raises(IngestError, match="no column for biomarker.*--mapping"):
        ingest_file(node.conn, no_column, pseudonymise, Mapping(), worker=True)
    broken = tmp_path / "broken.csv"
    broken.write_bytes(
        write(tmp_path / "ok.csv", mixed_rows(6000)).read_bytes()
        + "T9,\xff\xfe\n".encode("latin-1")
    )
    with pytest.raises(IngestError, match="not utf-8"):
        ingest_file(node.conn, broken, pseudonymise, Mapping(), encoding="utf-8", worker=True)
    assert count(node.conn) == 0
    assert node.conn.execute("SELECT COUNT(*) FROM ingests").fetchone() == (0,)


def started_workers(monkeypatch) -> list[Worker]:
    """The validation processes the ingest starts from now on, as the ingest holds them: a test
    signals only processes it started itself."""
    started: list[Worker] = []

    class Recorded(Worker):
        def __init__(self, module: str, name: str) -> None:
            super().__init__(module, name)
            started.append(self)

    monkeypatch.setattr(validate, "Worker", Recorded)
    return started


def test_a_killed_validating_process_leaves_the_database_unchanged(
    node, tmp_path, monkeypatch
) -> None:
    """The OOM killer, say, stops the worker mid-file: the ingest says so and nothing is stored."""
    node(write(tmp_path / "before.csv", [row(test_id="KEEP")]))
    before = table_contents(node.conn)
    path = write(tmp_path / "big.csv", mixed_rows(30_000))
    workers = started_workers(monkeypatch)
    killed: list[int] = []

    def kill_worker(done: int, total: int) -> None:
        if not killed:
            assert len(workers) == 1, workers
            os.kill(workers[0].pid, signal.SIGKILL)
            killed.append(workers[0].pid)

    with pytest.raises(
        IngestError, match=r"validation process stopped \(killed by signal 9\).*nothing .* stored"
    ):
        ingest_file(
            node.conn,
            path,
            Pseudonymiser(node.cfg.pseudonym_secret()),
            Mapping(),
            progress=kill_worker,
            worker=True,
        )
    assert killed and table_contents(node.conn) == before
    assert node.conn.execute("SELECT COUNT(*) FROM ingests").fetchone() == (1,)
    again = node(path)  # and it works the next time
    assert (again.rows, again.accepted) == (30_005, 30_001)
    assert all(w.stopped() for w in workers)


def test_the_validating_process_leaves_sigterm_to_its_parent(node, tmp_path, monkeypatch) -> None:
    """`systemctl stop` signals every process of the unit; the node daemon finishes the running
    ingest before it stops, so the helper must not die of the same SIGTERM."""
    path = write(tmp_path / "big.csv", mixed_rows(30_000))
    workers = started_workers(monkeypatch)
    signalled: list[int] = []

    def terminate_worker(done: int, total: int) -> None:
        if not signalled:
            (worker,) = workers
            os.kill(worker.pid, signal.SIGTERM)
            signalled.append(worker.pid)

    result = ingest_file(
        node.conn,
        path,
        Pseudonymiser(node.cfg.pseudonym_secret()),
        Mapping(),
        progress=terminate_worker,
        worker=True,
    )
    assert signalled and (result.rows, result.accepted, result.quarantined) == (30_005, 30_001, 3)
    assert workers[0].stopped()
