"""rarenet-node: a thin click layer; each command opens the data directory and calls the library."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import click

from node import alarms, outbox, receipts, release, send, store, summary, synth, witness
from node import config as node_config
from node import enroll as enrolment
from node import mapping as node_mapping
from node.client import CoordinatorClient, RpcFailure
from node.errors import (
    BadInput,
    ConfigError,
    IngestError,
    LedgerAlarm,
    MappingError,
    NodeError,
    Unreachable,
)
from node.ingest import ingest_file
from node.pseudonym import Pseudonymiser
from node.readers import open_table
from node.standard import check_bounds, load_cached
from protos import dsse, exits, wire
from protos.errors import ContractError, KeyFileError, PeriodError
from protos.periods import parse as parse_period
from protos.rarenet.v1 import coordinator_pb2 as cpb

data_dir_option = click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The node's data directory.",
)


# The one place the node's errors become exit statuses (the scheme: protos/exits.py).
EXIT_STATUSES: dict[type[BaseException], int] = {
    NodeError: exits.FAILED,  # refused by the coordinator, the privacy budget spent, ...
    LedgerAlarm: exits.FAILED,
    ConfigError: exits.BAD_INPUT,  # no or a bad data directory, node.toml or file it names
    BadInput: exits.BAD_INPUT,  # an argument that is not what it must be (a date, a flag rule)
    IngestError: exits.BAD_INPUT,  # an export that cannot be read
    MappingError: exits.BAD_INPUT,
    Unreachable: exits.UNREACHABLE,  # the coordinator is down or busy: run it again later
    ContractError: exits.FAILED,  # what the coordinator sent does not verify
    PeriodError: exits.BAD_INPUT,
    KeyFileError: exits.BAD_INPUT,
}


class Group(click.Group):
    """Turns the project's errors into a clean message and their exit status."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (NodeError, ContractError) as exc:
            click.echo(f"{'ALARM' if isinstance(exc, LedgerAlarm) else 'Error'}: {exc}", err=True)
            raise SystemExit(exits.most_specific(exc, EXIT_STATUSES) or exits.FAILED) from None


def _open(data_dir: Path):
    cfg = node_config.load(data_dir)
    return cfg, store.connect(cfg.db_path)


@click.group(cls=Group)
@click.version_option(package_name="rarenet")
def main() -> None:
    """A rarenet lab node: only signed aggregate summaries ever leave this site."""
    os.umask(0o077)  # whatever the node writes is its user's alone (node/config.py)


@main.command()
@data_dir_option
@click.option("--site-id", required=True, help="The id the coordinating centre gave this lab.")
@click.option("--coordinator", required=True, help="HOST:PORT of the coordinator.")
@click.option(
    "--country",
    default="CN",
    show_default=True,
    help="Country whose public holidays are not working days.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Plain-text gRPC to a loopback coordinator (demo and tests only).",
)
@click.option(
    "--ca-file", default="", help="The network CA certificate (PEM) that signed the coordinator's."
)
@click.option(
    "--cert-file",
    default="",
    help="This site's client certificate (PEM), when the centre requires mTLS.",
)
@click.option("--key-file", default="", help="The key of --cert-file (PEM).")
def init(
    data_dir: Path,
    site_id: str,
    coordinator: str,
    country: str,
    insecure: bool,
    ca_file: str,
    cert_file: str,
    key_file: str,
) -> None:
    """Create the data directory, signing key and pseudonymisation secret."""
    if insecure and ca_file:
        raise click.UsageError("--insecure and --ca-file exclude each other")
    cfg = node_config.init(
        data_dir, site_id, coordinator, country, insecure, ca_file, cert_file, key_file
    )
    store.connect(cfg.db_path).close()
    click.echo(
        f"initialised node {site_id} in {data_dir}; key id {dsse.keyid(cfg.signing_key().public_key())}"
    )


@main.command()
@data_dir_option
@click.option("--token", required=True, help="The one-time token from the coordinating centre.")
def enroll(data_dir: Path, token: str) -> None:
    """Register this site's public key with the coordinator."""
    cfg, conn = _open(data_dir)
    with CoordinatorClient(cfg) as client:
        response = enrolment.enroll(cfg, conn, client, token)
    click.echo(
        f"enrolled {response.site_id} with key {response.keyid[:16]}…; standard cached at {cfg.standard_path}"
    )


@main.command("rotate-key")
@data_dir_option
def rotate_key(data_dir: Path) -> None:
    """Enrol a new signing key, authorised by the current one."""
    cfg, conn = _open(data_dir)
    with CoordinatorClient(cfg) as client:
        keyid = enrolment.rotate_key(cfg, conn, client)
    click.echo(
        f"rotated: new key {keyid[:16]}…; the old key is kept as {cfg.key_path.with_suffix('.old')}"
    )


class Progress:
    """A progress line on stderr for files that take more than a second, only on a terminal."""

    def __init__(self, name: str, enabled: bool) -> None:
        self.name, self.enabled, self.start, self.shown = name, enabled, time.monotonic(), False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or (not self.shown and time.monotonic() - self.start < 1.0):
            return
        self.shown = True
        width = 30
        filled = int(width * done / max(total, 1))
        click.echo(
            f"\r{self.name} [{'#' * filled}{'.' * (width - filled)}] {100 * done // max(total, 1):3d}%",
            err=True,
            nl=False,
        )
        if done >= total:
            click.echo("", err=True)


@main.command()
@data_dir_option
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--mapping", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Mapping TOML."
)
@click.option("--encoding", help="Override encoding detection (utf-8, gb18030, utf-16).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON result per file.")
def ingest(
    data_dir: Path,
    files: tuple[Path, ...],
    mapping: Path | None,
    encoding: str | None,
    as_json: bool,
) -> None:
    """Ingest LIMS exports (CSV, TSV, XLSX); bad rows go to quarantine."""
    cfg, conn = _open(data_dir)
    rules = node_mapping.load(mapping)
    pseudonymise = Pseudonymiser(cfg.pseudonym_secret())
    results = []
    for path in files:
        progress = Progress(path.name, sys.stderr.isatty() and not as_json)
        result = ingest_file(conn, path, pseudonymise, rules, encoding, progress)
        results.append(result.to_dict())
        if not as_json:
            click.echo(
                f"{path.name}: {result.rows} rows = {result.accepted} accepted ({result.inserted} new, "
                f"{result.updated} updated) + {result.duplicates} duplicates + {result.quarantined} quarantined"
                + (f"; {result.released} released from quarantine" if result.released else "")
            )
            for error in result.errors[:20]:
                click.echo(f"  line {error.line}: {error.field}: {error.reason}")
            if len(result.errors) > 20:
                click.echo(
                    f"  … {len(result.errors) - 20} more; see `rarenet-node quarantine list`"
                )
    if as_json:
        click.echo(
            json.dumps(results[0] if len(results) == 1 else results, ensure_ascii=False, indent=2)
        )


@main.group()
def mapping() -> None:
    """Check how a LIMS export maps onto the canonical record."""


@mapping.command("check")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--mapping", "mapping_path", type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.option("--encoding")
@click.option("--rows", default=1000, show_default=True, help="How many rows to sample for values.")
def mapping_check(file: Path, mapping_path: Path | None, encoding: str | None, rows: int) -> None:
    """Report, column by column, what ingest would do with FILE (nothing is ingested)."""
    rules = node_mapping.load(mapping_path)
    table = open_table(file, encoding or rules.encoding)
    positions, unmapped = rules.resolve_header(table.header)
    click.echo(f"{file.name}: encoding {table.encoding}; mapping: {rules.source}")
    samples: dict[int, dict[str, int]] = {i: {} for i in positions}
    sampled = 0
    for n, (_, cells) in enumerate(table.rows):
        if n >= rows:
            break
        sampled += 1
        for i in positions:
            if i < len(cells):
                samples[i][cells[i]] = samples[i].get(cells[i], 0) + 1
    click.echo(f"  values counted over the first {sampled} rows (--rows to change)")
    for i, name in enumerate(table.header):
        if i not in positions:
            click.echo(f"  {name!r:<24} -> (ignored: not a canonical field)")
            continue
        target = positions[i]
        click.echo(f"  {name!r:<24} -> {target}")
        if target in ("specimen", "histology", "method", "biomarker", "result"):
            for value, count in sorted(samples[i].items(), key=lambda kv: -kv[1])[:12]:
                canon = rules.value(target, value)
                click.echo(
                    f"      {value!r:<28} -> {canon or 'UNKNOWN: add to [values.' + target + ']'} ({count})"
                )
        elif target in ("received_date", "reported_date"):
            bad = [v for v in samples[i] if v.strip() and rules.parse_date(v) is None]
            click.echo(
                f"      dates: {'all parse' if not bad else 'NOT PARSED: ' + ', '.join(map(repr, bad[:5]))}"
            )
    missing = [
        f
        for f in (
            "test_id",
            "patient_id",
            "received_date",
            "reported_date",
            "specimen",
            "histology",
            "method",
            "biomarker",
            "result",
        )
        if f not in positions.values()
    ]
    if missing:
        click.echo(
            f"  MISSING required columns: {', '.join(missing)}; name them in the mapping's [columns]"
        )
        raise SystemExit(exits.FAILED)


@main.group()
def quarantine() -> None:
    """Rows that could not be accepted, with file, line, field and reason."""


@quarantine.command("list")
@data_dir_option
@click.option("--all", "show_all", is_flag=True, help="Include rows released by a later re-ingest.")
def quarantine_list(data_dir: Path, show_all: bool) -> None:
    """List quarantined rows: file, line, field and reason."""
    _, conn = _open(data_dir)
    db = store.database(conn)
    where = None if show_all else "released_at IS NULL"
    rows = list(db["quarantine"].rows_where(where, order_by="source, line"))
    for r in rows:
        state = f" (released {r['released_at']})" if r["released_at"] else ""
        click.echo(f"{r['source']}:{r['line']}: {r['field']}: {r['reason']}{state}")
    click.echo(f"{len(rows)} quarantined row(s)", err=True)


@quarantine.command("export")
@data_dir_option
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV file to write.",
)
def quarantine_export(data_dir: Path, out: Path) -> None:
    """Write the open quarantine to a CSV file (patient ids pseudonymised) for fixing the export."""
    _, conn = _open(data_dir)
    rows = list(
        store.database(conn)["quarantine"].rows_where(
            "released_at IS NULL", order_by="source, line"
        )
    )
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["source", "line", "field", "reason", "row"])
        for r in rows:
            writer.writerow([r["source"], r["line"], r["field"], r["reason"], r["row_json"]])
    click.echo(f"wrote {len(rows)} row(s) to {out}")


def _print_summary(message) -> None:
    click.echo(
        f"Site {message.site_id}, period {message.period}, sequence {message.sequence}, "
        f"standard {message.standard_version}, schema {message.schema_version}"
    )
    p = message.policy
    click.echo(
        f"Disclosure policy: min denominator {p.min_denominator} ({p.small_stratum_action}); small-count "
        f"suppression {'on, threshold ' + str(p.small_count_threshold) if p.small_count_suppression else 'off'}"
    )
    click.echo(
        f"\n{'biomarker':<11} {'method':<12} {'specimen':<9} {'tests':>6} {'pos':>5} {'neg':>6} {'fail':>5} {'equiv':>5}  note"
    )
    for s in message.strata:
        if s.withheld:
            click.echo(
                f"{s.biomarker:<11} {s.method:<12} {s.specimen:<9} {'-':>6} {'-':>5} {'-':>6} {'-':>5} {'-':>5}  {s.disclosure_note}"
            )
        else:
            click.echo(
                f"{s.biomarker:<11} {s.method:<12} {s.specimen:<9} {s.tests:>6} {s.positive:>5} {s.negative:>6} "
                f"{s.failed:>5} {s.equivocal:>5}  {s.disclosure_note}"
            )
    click.echo("\nTurnaround (working days, receipt to report):")
    for h in message.turnaround:
        click.echo(
            f"  {h.specimen:<9} {'withheld' if h.withheld else f'{h.within_target}/{h.total} within {h.target_days}'}"
            f"  {h.disclosure_note}"
        )
    click.echo("\nTests per specimen (each test once; failed: no valid result for any biomarker):")
    for t in message.specimen_tests:
        click.echo(
            f"  {t.specimen:<9} {'withheld' if t.withheld else f'{t.failed} failed of {t.tests}'}"
            f"  {t.disclosure_note}"
        )
    click.echo("\nConcordance tables (a b c d, excluded):")
    for t in message.concordance:
        cells = (
            "withheld"
            if t.withheld
            else (
                f"{t.both_positive} {t.index_positive_comparator_negative} "
                f"{t.index_negative_comparator_positive} {t.both_negative}, {t.excluded_failed}"
            )
        )
        click.echo(
            f"  {t.kind:<13} {t.biomarker:<9} {t.index_method} vs {t.comparator_method}: {cells}"
        )
    panel = message.panel
    click.echo(
        f"\nPanel coverage: {'withheld' if panel.withheld else f'{panel.with_all_required}/{panel.patients} non-squamous patients with every required biomarker'}"
    )
    click.echo(f"VAF histograms: {len(message.vaf)} (biomarker x method, positives only)")
    click.echo(
        "\nNothing else leaves: no test ids, patient ids, dates finer than the period, variants or free text."
    )


@main.command()
@data_dir_option
@click.option("--period", required=True, help="2026Q2, 2026-05 or 2026.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the exact payload bytes that would be signed."
)
def summarize(data_dir: Path, period: str, as_json: bool) -> None:
    """Show exactly what would leave for PERIOD (unsigned; nothing is sent or stored)."""
    cfg, conn = _open(data_dir)
    shown = parse_period(period)
    built = send.build(
        conn, cfg, load_cached(cfg.standard_path), shown, summary.next_sequence(conn)
    )
    message, payload = built.message, built.payload
    if as_json:
        sys.stdout.buffer.write(payload)
    else:
        _print_summary(message)
    try:  # a preview of what `submit` would refuse says so (on stderr: --json stays the bytes)
        send.check_period(conn, shown, config=cfg)
    except NodeError as exc:
        click.echo(f"note: `submit` would not sign this: {exc}", err=True)


def _report_flush(report: send.FlushReport) -> None:
    """What was sent. Exit status 1 when the coordinator refused an envelope; 3 when it could not
    be reached and envelopes wait in the outbox to be sent again."""
    for sequence, leaf in report.delivered:
        click.echo(f"sequence {sequence}: delivered, receipt verified, ledger leaf {leaf}")
    for sequence, error in report.failed:
        click.echo(f"sequence {sequence}: not delivered: {error}", err=True)
    if report.pending:
        click.echo(
            f"{report.pending} envelope(s) wait in the outbox; `rarenet-node submit` (or the "
            "daemon) sends them when the coordinator can be reached",
            err=True,
        )
    if report.witnessed:
        _report_witness(report.witnessed)
    if report.witness_error:
        click.echo(
            f"witness: not this time ({report.witness_error}); tried again next time", err=True
        )
    if report.rejected:
        raise SystemExit(exits.FAILED)
    if report.failed or report.pending:
        raise SystemExit(exits.UNREACHABLE)


def _standard_for_signing(cfg, client: CoordinatorClient):
    """The coordinator's current standard, or the cached one when it cannot be reached (said)."""
    try:
        return enrolment.fetch_standard(cfg, client)
    except Unreachable as exc:
        if not cfg.standard_path.exists():  # never enrolled: nothing to sign against
            raise
        cached = load_cached(cfg.standard_path)
        click.echo(
            f"the coordinator cannot be reached ({exc}); signing against the cached standard "
            f"{cached.version}",
            err=True,
        )
        return cached


@main.command()
@data_dir_option
@click.option(
    "--period", help="Build and queue this period's summary first (default: only send the outbox)."
)
def submit(data_dir: Path, period: str | None) -> None:
    """Sign PERIOD's summary into the outbox, then send everything pending and verify receipts."""
    cfg, conn = _open(data_dir)
    held = False
    with CoordinatorClient(cfg) as client:
        if period:
            p = parse_period(period)
            standard = _standard_for_signing(cfg, client)
            queued = send.queue_summary(conn, cfg, standard, p)  # refuses before signing
            if queued.held:
                click.echo(f"held, nothing signed: {queued.held}", err=True)
                held = True
            elif queued.sequence is None:
                click.echo(
                    f"{queued.period}: nothing changed since the last summary; not signing a new one"
                )
            else:
                click.echo(
                    f"{queued.period}: signed summary sequence {queued.sequence} into the outbox"
                )
        report = send.flush(conn, cfg, client)
    _report_flush(report)
    if held:
        raise SystemExit(exits.FAILED)


@main.command("verify-receipts")
@data_dir_option
def verify_receipts(data_dir: Path) -> None:
    """Re-check every kept receipt against the coordinator's current tree (inclusion + consistency)."""
    cfg, conn = _open(data_dir)
    with CoordinatorClient(cfg) as client:
        try:
            result = receipts.verify_all(conn, client, receipts.coordinator_key(cfg))
        except LedgerAlarm as alarm:  # exit 1 with ALARM; unreachable is exit 3, no alarm
            alarms.record(conn, cfg, alarm)
            raise
        lifted = alarms.lift_receipt_alarms(conn)  # before the witness, which waits on open alarms
        try:
            witnessed: witness.WitnessReport | None = witness.step(conn, cfg, client)
        except LedgerAlarm as alarm:
            alarms.record(conn, cfg, alarm)
            raise
        except RpcFailure as exc:
            witnessed = None
            click.echo(f"witness: not this time ({exc}); tried again next time", err=True)
    click.echo(
        f"OK: {result.checked} receipt(s) verified in the coordinator's log of {result.tree_size} entries; "
        "the log only grew" + (f"; {lifted} ledger alarm(s) lifted" if lifted else "")
    )
    if witnessed:
        _report_witness(witnessed)
    for standing in alarms.standing(conn):  # a fork seen as a witness is not lifted here
        click.echo(alarms.describe(standing), err=True)


def _witnesses(ids: list[str]) -> str:
    """Other witnesses as a count and their opaque ids (a lab does not learn its peers' names)."""
    return f"{len(ids)} other site(s) ({', '.join(ids)})" if ids else "no other site"


def _report_witness(report: witness.WitnessReport) -> None:
    others = _witnesses(report.cosigners) if report.cosigners else "no other site yet"
    click.echo(
        f"witness: cosigned checkpoint {report.tree_size}"
        f"{'' if report.delivered else ' (cosignature not yet delivered)'}; "
        f"also cosigned by {others}"
    )
    for size, ids in sorted(report.same_as_mine.items()):
        if size != report.tree_size:
            click.echo(
                f"witness: checkpoint {size}, cosigned by this site, also by {_witnesses(ids)}"
            )
    for problem in report.problems:
        click.echo(f"witness: {problem}", err=True)


@main.command("witness")
@data_dir_option
def witness_command(data_dir: Path) -> None:
    """Act as a witness of the coordinator's log: check its latest checkpoint extends the last one
    this site cosigned, cosign it, and see which other sites cosigned the same. Exit 1 on a
    ledger alarm (the evidence is kept under DATA_DIR/alarms/), 3 if unreachable."""
    cfg, conn = _open(data_dir)
    with CoordinatorClient(cfg) as client:
        try:
            report = witness.step(conn, cfg, client)
        except LedgerAlarm as exc:
            click.echo(f"ALARM: {exc}", err=True)
            raise SystemExit(exits.FAILED) from None
        except RpcFailure as exc:
            click.echo(str(exc), err=True)
            raise SystemExit(exits.UNREACHABLE if exc.retryable else exits.FAILED) from None
    _report_witness(report)


@main.group()
def standards() -> None:
    """The testing standard the metrics are computed against."""


@standards.command("fetch")
@data_dir_option
def standards_fetch(data_dir: Path) -> None:
    """Fetch the coordinator's signed testing standard and cache it for offline summaries."""
    cfg, _ = _open(data_dir)
    with CoordinatorClient(cfg) as client:
        std = enrolment.fetch_standard(cfg, client)
    click.echo(f"standard {std.version} cached at {cfg.standard_path}")


@main.command()
@data_dir_option
@click.option("--period", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the signed benchmark's JSON.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write this lab's individual report as a self-contained HTML page.",
)
@click.option(
    "--pdf",
    "pdf_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also print the individual report to PDF (needs Chromium).",
)
@click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    help="Report language (default: [report] language in node.toml).",
)
def benchmark(
    data_dir: Path,
    period: str,
    as_json: bool,
    html_path: Path | None,
    pdf_path: Path | None,
    lang: str | None,
) -> None:
    """Fetch this site's own benchmark for PERIOD (peers shown without names)."""
    cfg, _ = _open(data_dir)
    p = parse_period(period)
    request = cpb.BenchmarkRequestPayload(
        site_id=cfg.site_id,
        period=p.label,
        requested_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    with CoordinatorClient(cfg) as client:
        response = client.benchmark(
            dsse.sign(wire.BENCHMARK_REQUEST, wire.encode(request), cfg.signing_key())
        )
    dsse.verify(
        response.benchmark, receipts.coordinator_key(cfg), expected_type=wire.SITE_BENCHMARK
    )
    data = json.loads(response.benchmark.payload)
    if html_path or pdf_path:
        from node.benchmark_page import write_pages

        for path in write_pages(data, lang or cfg.report_language, html_path, pdf_path):
            click.echo(f"wrote {path}", err=True)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    site = data["site"]
    click.echo(
        f"{cfg.site_id}, {data['period']}: status {site['status']}, {len(site['flags'])} flag(s)"
    )
    for flag in site["flags"]:
        click.echo(f"  {flag['level'].upper()}: {flag['message']}")
    for biomarker, p_ in site["positivity"].items():
        click.echo(
            f"  {biomarker:<11} {p_['positive']:>4}/{p_['valid']:<5} {100 * (p_['rate'] or 0):5.1f}% "
            f"(network {100 * p_['network_rate']:.1f}%) {p_['status']}"
        )


@standards.command("accept")
@data_dir_option
def standards_accept(data_dir: Path) -> None:
    """Approve re-releasing already released periods under the cached standard."""
    cfg, conn = _open(data_dir)
    std = load_cached(cfg.standard_path)
    check_bounds(std, cfg.disclosure)
    store.set_state(conn, release.ACCEPTED_STANDARD, std.version)
    click.echo(
        f"standard {std.version} accepted: periods already released under another standard may "
        "be signed again under it (each such version is a new table the centre can compare with "
        "the old one; see docs/privacy.md)"
    )


@main.command()
@data_dir_option
@click.option("--json", "as_json", is_flag=True)
def status(data_dir: Path, as_json: bool) -> None:
    """Enrolment, last ingest, pending outbox, last receipt, next scheduled jobs, standard version."""
    from node.daemon import next_jobs

    cfg, conn = _open(data_dir)
    last_ingest = conn.execute(
        "SELECT source, ingested_at FROM ingests ORDER BY id DESC LIMIT 1"
    ).fetchone()
    last_receipt = conn.execute(
        "SELECT sequence, leaf_index, received_at FROM receipts ORDER BY sequence DESC LIMIT 1"
    ).fetchone()
    try:
        std_version = load_cached(cfg.standard_path).version
    except NodeError:
        std_version = None
    info = {
        "site_id": cfg.site_id,
        "coordinator": cfg.coordinator,
        "enrolled": store.get_state(conn, "keyid") is not None,
        "keyid": store.get_state(conn, "keyid"),
        "last_ingest": {"file": last_ingest[0], "at": last_ingest[1]} if last_ingest else None,
        "results": conn.execute("SELECT COUNT(*) FROM results").fetchone()[0],
        "quarantined": conn.execute(
            "SELECT COUNT(*) FROM quarantine WHERE released_at IS NULL"
        ).fetchone()[0],
        "outbox_pending": len(outbox.pending(conn)),
        "outbox_rejected": [
            {"sequence": q, "period": p, "reason": r} for q, p, r in outbox.rejected(conn)
        ],
        "last_receipt": {
            "sequence": last_receipt[0],
            "leaf_index": last_receipt[1],
            "at": last_receipt[2],
        }
        if last_receipt
        else None,
        "standard_version": std_version,
        "next_jobs": next_jobs(cfg.db_path),
        "last_cosigned_checkpoint": witness.latest_cosigned(conn),
        "ledger_alarms": witness.alarms(conn),
        "ledger_alarms_standing": alarms.standing(conn),
    }
    standing = info["ledger_alarms_standing"]
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for label, text in _status_lines(info):
            click.echo(f"{label:<20} {text}")
    for alarm in standing:
        click.echo(alarms.describe(alarm), err=True)
    if standing:
        raise SystemExit(1)


def _status_lines(info: dict) -> list[tuple[str, str]]:
    """`status` for a person: one line per subject, in words (`--json` keeps the fields)."""
    receipt, checkpoint = info["last_receipt"], info["last_cosigned_checkpoint"]
    ingest = info["last_ingest"]
    jobs = ", ".join(f"{j['job']} at {j['next_run'] or 'not scheduled'}" for j in info["next_jobs"])
    rejected = info["outbox_rejected"]
    standing = len(info["ledger_alarms_standing"])
    return [
        ("site", info["site_id"]),
        ("coordinator", info["coordinator"]),
        ("enrolled", f"yes, key {info['keyid'][:16]}…" if info["enrolled"] else "no"),
        ("last ingest", f"{ingest['file']} at {ingest['at']}" if ingest else "none"),
        ("results", f"{info['results']:,} ({info['quarantined']:,} in quarantine)"),
        ("outbox", f"{info['outbox_pending']} pending, {len(rejected)} refused"),
        *((f"  refused {r['sequence']}", f"{r['period']}: {r['reason']}") for r in rejected),
        (
            "last receipt",
            f"sequence {receipt['sequence']}, ledger entry {receipt['leaf_index']:,},"
            f" at {receipt['at']}"
            if receipt
            else "none",
        ),
        ("standard", info["standard_version"] or "not fetched yet"),
        ("next jobs", jobs or "none scheduled (the daemon has not run)"),
        (
            "cosigned checkpoint",
            f"tree size {checkpoint['tree_size']:,} at {checkpoint['cosigned_at']}"
            f" ({'delivered' if checkpoint['delivered'] else 'not yet delivered'})"
            if checkpoint
            else "none",
        ),
        (
            "ledger alarms",
            f"{standing} standing, {len(info['ledger_alarms'])} ever"
            if info["ledger_alarms"]
            else "none",
        ),
    ]


@main.group("action")
def action_group() -> None:
    """Corrective actions: acknowledge a benchmark flag with a signed note, and close it."""


@action_group.command("add")
@data_dir_option
@click.option(
    "--flag",
    "flag_text",
    required=True,
    help="RULE:SUBJECT as the report names it, e.g. positivity_funnel:MET_EX14.",
)
@click.option("--period", required=True, help="The benchmark period of the flag (2026Q3).")
@click.option("--root-cause", required=True, help="What the lab found (no patient data).")
@click.option("--action", "action_text", required=True, help="What the lab does about it.")
@click.option("--due", required=True, help="When it will be done, YYYY-MM-DD.")
@click.option("--id", "action_id", help="An id of your own (default: PERIOD-random).")
def action_add(
    data_dir: Path,
    flag_text: str,
    period: str,
    root_cause: str,
    action_text: str,
    due: str,
    action_id: str | None,
) -> None:
    """Sign a corrective action for a flag into the outbox and send it to the centre."""
    from node import actions

    cfg, conn = _open(data_dir)
    flag = actions.parse_flag(flag_text, period)
    action_id, sequence = actions.add(conn, cfg, flag, root_cause, action_text, due, action_id)
    click.echo(f"signed corrective action {action_id} as sequence {sequence} into the outbox")
    with CoordinatorClient(cfg) as client:
        report = send.flush(conn, cfg, client)
    _report_flush(report)


@action_group.command("close")
@data_dir_option
@click.option("--id", "action_id", required=True)
@click.option("--note", required=True, help="What was done and how it was checked.")
@click.option("--on", "closed_on", help="The day it was done, YYYY-MM-DD (default today).")
def action_close(data_dir: Path, action_id: str, note: str, closed_on: str | None) -> None:
    """Sign the action again, closed, and send it."""
    from node import actions

    cfg, conn = _open(data_dir)
    sequence = actions.close(conn, cfg, action_id, note, closed_on)
    click.echo(f"signed the closing of {action_id} as sequence {sequence} into the outbox")
    with CoordinatorClient(cfg) as client:
        report = send.flush(conn, cfg, client)
    _report_flush(report)


@action_group.command("list")
@data_dir_option
def action_list(data_dir: Path) -> None:
    """This lab's corrective actions, latest version of each."""
    from node import actions

    _, conn = _open(data_dir)
    found = actions.listing(conn)
    if not found:
        click.echo("no corrective actions")
    for a in found:
        state = f"closed {a.closed_on}" if a.status == "closed" else f"open, due {a.due}"
        click.echo(
            f"{a.action_id}: {a.flag.period} {a.flag.rule}:{a.flag.subject}: {state}; "
            f"{a.root_cause} -> {a.action}"
        )


@main.group("eqa")
def eqa_group() -> None:
    """External quality assessment: open rounds, this lab's answers, its score."""


@eqa_group.command("status")
@data_dir_option
def eqa_status(data_dir: Path) -> None:
    """Show the coordinator's EQA rounds and what this lab has and has not answered."""
    from node import eqa

    cfg, conn = _open(data_dir)
    with CoordinatorClient(cfg) as client:
        found = eqa.rounds(cfg, client)
    if not found:
        click.echo("no EQA rounds")
    for round_ in found:
        state = eqa.status(conn, round_)
        closed = (
            f"closed {round_.closed_at}" if round_.closed_at else f"open until {round_.deadline}"
        )
        click.echo(
            f"{round_.round_id}: {closed}; answered {len(state.answered)} of "
            f"{len(state.answered) + len(state.missing)}"
        )
        for sample, biomarker in state.missing:
            click.echo(f"  not answered: {sample} {biomarker}")


@eqa_group.command("submit")
@data_dir_option
@click.option("--round", "round_id", required=True)
def eqa_submit(data_dir: Path, round_id: str) -> None:
    """Sign this lab's calls for an open round into the outbox and send it."""
    from node import eqa

    cfg, conn = _open(data_dir)
    with CoordinatorClient(cfg) as client:
        matching = [r for r in eqa.rounds(cfg, client) if r.round_id == round_id]
        if not matching:
            raise NodeError(
                f"the coordinator has no EQA round {round_id}; see `rarenet-node eqa status`"
            )
        sequence = eqa.queue_response(conn, cfg, matching[0])
        click.echo(f"signed the {round_id} response as sequence {sequence} into the outbox")
        report = send.flush(conn, cfg, client)
    _report_flush(report)


@eqa_group.command("score")
@data_dir_option
@click.option("--round", "round_id", required=True)
def eqa_score(data_dir: Path, round_id: str) -> None:
    """Fetch this lab's signed score sheet for a closed round."""
    from node import eqa

    cfg, _ = _open(data_dir)
    with CoordinatorClient(cfg) as client:
        sheet = eqa.score(cfg, client, round_id)
    click.echo(
        f"{round_id}: {sheet.points}/{sheet.max_points} ({100 * sheet.score:.1f}%) "
        f"{'PASS' if sheet.passed else 'FAIL'} (pass at {100 * sheet.pass_share:.0f}%); errors {sheet.errors}, "
        f"technical failures {sheet.technical_failures}"
    )
    for line in sheet.lines:
        if line.outcome != "correct":
            click.echo(
                f"  {line.sample_id} {line.biomarker}: {line.outcome} (expected {line.expected_result}"
                f"{' ' + line.expected_variant if line.expected_variant else ''}, reported "
                f"{line.reported_result or '-'})"
            )


@main.command()
@data_dir_option
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Logs go to stderr; json writes one JSON object a line.",
)
def run(data_dir: Path, log_format: str) -> None:
    """Run unattended: ingest the watch folder, sign closed periods, send the outbox (until SIGTERM)."""
    from node import daemon

    daemon.configure_logging(log_format)
    daemon.run(data_dir)


@main.command("synth")
@click.option("--site-id", required=True)
@click.option("--rows", default=5000, show_default=True, help="Number of result rows.")
@click.option("--seed", default=1, show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--profile",
    default="normal",
    show_default=True,
    help=f"Comma-separated: {', '.join(synth.PROFILES)}.",
)
@click.option("--period", help="Period the results fall in (default: the last closed quarter).")
def synth_command(
    site_id: str, rows: int, seed: int, out: Path, profile: str, period: str | None
) -> None:
    """Write a realistic synthetic canonical CSV (no real patient data)."""
    try:
        data = synth.generate(
            site_id,
            rows,
            seed,
            synth.parse_profiles(profile),
            parse_period(period) if period else None,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--profile") from None
    synth.write_csv(data, out)
    click.echo(f"wrote {len(data)} rows to {out}")


if __name__ == "__main__":
    main()
