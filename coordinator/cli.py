"""rarenet-coordinator: a thin click layer; each command calls one library function."""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import sys
import threading
from contextlib import closing
from pathlib import Path

import click

from coordinator import enrolment, store
from coordinator.config import AlreadyServing, DataDir, SetupError
from coordinator.config import init as init_data_dir
from coordinator.errors import (
    CoordinatorError,
    InvalidRequest,
    NotFound,
    NothingToReport,
    TemporarilyUnavailable,
)
from coordinator.rate_limit import DEFAULT_PER_MINUTE, SiteRateLimit
from coordinator.standards import StandardError
from coordinator.standards import load as load_standard
from coordinator.store_check import StoreDamaged
from protos import exits
from protos.errors import ContractError

data_dir_option = click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The coordinator's data directory.",
)


# The one place the coordinator's errors become exit statuses (the scheme: protos/exits.py).
EXIT_STATUSES: dict[type[BaseException], int] = {
    CoordinatorError: exits.FAILED,  # refused: a round already closed, a site already enrolled
    AlreadyServing: exits.FAILED,
    StoreDamaged: exits.FAILED,  # the store fails its check (`rarenet-coordinator check`)
    InvalidRequest: exits.BAD_INPUT,  # a samples or truth file that is not valid, a past deadline
    NotFound: exits.BAD_INPUT,  # no such site or round
    NothingToReport: exits.FAILED,  # no summary for the period: no report written
    SetupError: exits.BAD_INPUT,  # no or a bad data directory, configuration or TLS file
    StandardError: exits.BAD_INPUT,
    ContractError: exits.BAD_INPUT,  # a period written wrongly, an unreadable key file
    TemporarilyUnavailable: exits.UNREACHABLE,
}


class Group(click.Group):
    """Turns the project's errors into a clean message and their exit status."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (CoordinatorError, ContractError) as exc:
            click.echo(f"Error: {exc}", err=True)
            raise SystemExit(exits.most_specific(exc, EXIT_STATUSES) or exits.FAILED) from None


@click.group(cls=Group)
@click.version_option(package_name="rarenet")
def main() -> None:
    """The rarenet coordinating centre: enrol sites, receive signed summaries, benchmark."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )


@main.command()
@data_dir_option
def init(data_dir: Path) -> None:
    """Create a data directory with a signing key and the default standard."""
    data = init_data_dir(data_dir)
    click.echo(f"initialised {data.path} (key {data.key}, standard {data.standard})")


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A TOML config (deploy/config/coordinator.example.toml); options given here override it.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The coordinator's data directory.",
)
@click.option("--listen", help="HOST:PORT (default 127.0.0.1:50051); port 0 picks a free one.")
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Server certificate (PEM).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Server private key (PEM).",
)
@click.option(
    "--client-ca",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Require client certificates issued by this CA (mTLS).",
)
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Plain text, only on a loopback address (demo and tests).",
)
@click.option(
    "--standard",
    "standard_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A testing standard TOML to serve instead of DATA_DIR/standard.toml.",
)
@click.option(
    "--port-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the bound port here.",
)
@click.option(
    "--site-rate",
    type=click.FloatRange(min=0),
    help=f"Submissions a site may send a minute after a burst (default {DEFAULT_PER_MINUTE:g}; "
    "0: no limit, for load tests).",
)
def serve(
    config_path,
    data_dir,
    listen,
    tls_cert,
    tls_key,
    client_ca,
    insecure,
    standard_path,
    port_file,
    site_rate,
) -> None:
    """Serve the coordinator over gRPC until SIGTERM or SIGINT; keeps reports current on a schedule."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from coordinator import reporting
    from coordinator.config import ServeConfig, load_serve_config
    from coordinator.server import TlsFiles, start

    if config_path:
        cfg = load_serve_config(config_path)
    elif data_dir:
        cfg = ServeConfig(data_dir=data_dir)
    else:
        raise click.UsageError("give --data-dir or --config")
    for name, value in (
        ("data_dir", data_dir),
        ("listen", listen),
        ("tls_cert", tls_cert),
        ("tls_key", tls_key),
        ("client_ca", client_ca),
        ("insecure", insecure),
        ("standard", standard_path),
        ("site_rate", site_rate),
    ):
        if value is not None:
            setattr(cfg, name, value)
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise click.UsageError("give both --tls-cert and --tls-key")
    if cfg.insecure and cfg.tls_cert:
        raise click.UsageError("--insecure and --tls-cert exclude each other")
    if cfg.client_ca and not cfg.tls_cert:
        raise click.UsageError("--client-ca needs --tls-cert and --tls-key")
    tls = (
        TlsFiles(cfg.tls_cert, cfg.tls_key, cfg.client_ca) if cfg.tls_cert and cfg.tls_key else None
    )
    data = DataDir(cfg.data_dir)
    running = start(
        data,
        cfg.listen,
        tls=tls,
        insecure=cfg.insecure,
        standard_path=cfg.standard,
        workers=cfg.workers,
        rate_limit=SiteRateLimit(cfg.site_rate),
    )
    host = cfg.listen.rsplit(":", 1)[0]
    click.echo(f"listening on {host}:{running.port}")
    sys.stdout.flush()
    if port_file:
        port_file.write_text(f"{running.port}\n")
    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(
        reporting.refresh,
        "interval",
        seconds=cfg.report_every_seconds,
        id="reports",
        args=[data, running.service.standard, cfg.report_period],
    )
    scheduler.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    logging.getLogger("rarenet.coordinator").info("shutting down: finishing calls in flight")
    scheduler.shutdown(wait=True)
    running.stop(grace=10)


@main.group()
def sites() -> None:
    """Enrol, list and revoke sites."""


MAX_TOKEN_HOURS = 24 * 366  # a token is for an enrolment soon, not for years
ttl_hours_option = click.option(
    "--ttl-hours",
    default=72,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_TOKEN_HOURS),
    help="How long a token stays valid (1 hour to a year).",
)


@sites.command("add")
@data_dir_option
@click.argument("site_id")
@ttl_hours_option
def sites_add(data_dir: Path, site_id: str, ttl_hours: int) -> None:
    """Print a one-time enrolment token for SITE_ID (give it to the lab over a trusted channel)."""
    import datetime as dt

    conn = store.connect(DataDir(data_dir).check().db)
    token, expires = enrolment.add_site(conn, site_id, dt.timedelta(hours=ttl_hours))
    click.echo(token)
    click.echo(
        f"one-time token for {site_id}, valid until {expires.isoformat(timespec='minutes')}",
        err=True,
    )


@sites.command("add-many")
@data_dir_option
@click.argument("sites_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the tokens (CSV: site_id,token,valid_until; readable by you only).",
)
@ttl_hours_option
def sites_add_many(data_dir: Path, sites_file: Path, out: Path, ttl_hours: int) -> None:
    """One-time enrolment tokens for every site id in SITES_FILE (one per line; blank lines and
    lines starting with # are skipped), added in one transaction: all of them or none."""
    import csv
    import datetime as dt
    import os

    try:
        lines = sites_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{sites_file}: cannot be read as UTF-8 text ({exc})") from exc
    site_list = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not site_list:
        raise InvalidRequest(f"{sites_file} names no site; write one site id per line")
    conn = store.connect(DataDir(data_dir).check().db)
    try:  # the file first: tokens are issued only when there is somewhere to keep them
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidRequest(f"{out} exists; tokens are never written over a file") from None
    except OSError as exc:
        raise InvalidRequest(f"cannot create {out}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
        try:
            tokens = enrolment.add_sites(conn, site_list, dt.timedelta(hours=ttl_hours))
        except BaseException:
            out.unlink()
            raise
        try:
            writer = csv.writer(fh)
            writer.writerow(["site_id", "token", "valid_until"])
            for site_id, (token, expires) in tokens.items():
                writer.writerow([site_id, token, expires.isoformat(timespec="minutes")])
            fh.flush()
        except OSError as exc:  # the sites stay pending: a new run issues them new tokens
            out.unlink(missing_ok=True)
            raise InvalidRequest(
                f"the tokens could not be written to {out} ({exc.strerror}); the sites are"
                " pending: run sites add-many again with another --out to issue new tokens"
            ) from exc
    click.echo(
        f"{len(tokens):,} one-time tokens written to {out} (readable by you only); give each lab"
        " its own over a trusted channel",
        err=True,
    )


@sites.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True)
def sites_list(data_dir: Path, as_json: bool) -> None:
    """List sites, their status and current key."""
    rows = enrolment.list_sites(store.connect(DataDir(data_dir).check().db))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(
            f"{r['site_id']:<20} {r['status']:<8} key {(r['keyid'] or '-')[:16]:<16} "
            f"submissions {r['submissions']:<5} last {r['last_submission'] or '-'}"
        )


@sites.command("revoke")
@data_dir_option
@click.argument("site_id")
def sites_revoke(data_dir: Path, site_id: str) -> None:
    """Refuse later submissions from SITE_ID; its earlier ones stay in the ledger, marked."""
    enrolment.revoke(store.connect(DataDir(data_dir).check().db), site_id)
    click.echo(f"revoked {site_id}")


@main.command()
@data_dir_option
@click.option("--period", required=True, help="2026Q2, 2026-05 or 2026.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--standard", "standard_path", type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    help="Report language (default: the standard's [report] language, else en).",
)
@click.option(
    "--lab-reports",
    is_flag=True,
    help="Also write every lab's individual report to OUT/labs/SITE.html (always above 100 labs).",
)
@click.option("--pdf", "lab_pdfs", is_flag=True, help="Also print each lab's report to PDF.")
@click.option(
    "--single-process",
    is_flag=True,
    help="Do everything in this process: the same report, later, with less memory at its peak. "
    "By default second processes benchmark the flag history's earlier periods, draw the funnels "
    "and share the labs' pages, which takes about one more benchmark's memory (at 3,000 labs "
    "about 1.9 GB in all, against 1.2 GB).",
)
@click.option(
    "--audit-bundle",
    "bundle_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the period's audit bundle to this .zip (what `audit-bundle --period` "
    "writes), built in a second process while the benchmark is computed (here, after the "
    "report, with --single-process).",
)
def benchmark(
    data_dir: Path,
    period: str,
    out: Path,
    standard_path: Path | None,
    lang: str | None,
    lab_reports: bool,
    lab_pdfs: bool,
    single_process: bool,
    bundle_path: Path | None,
) -> None:
    """Write OUT/benchmark.json, CSV tables, OUT/followup.json and OUT/index.html for PERIOD."""
    from coordinator import benchmark as bench
    from coordinator import decoded_cache, earlier_flags, followup, report
    from coordinator.bundle_beside import BundleBeside, build_here
    from protos.periods import parse as parse_period
    from rendering.pdf import PdfUnavailable

    data = DataDir(data_dir).check()
    standard = load_standard(standard_path or data.standard)
    try:
        language = lang or report.default_language(standard)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    say = lambda m: click.echo(f"… {m}", err=True)
    # The bundle's ledger members are written while the benchmark is computed; its report last.
    bundle = (
        BundleBeside(data, standard, parse_period(period).label, bundle_path)
        if bundle_path is not None and not single_process
        else None
    )
    conn = sqlite3.connect(data.db)
    # The flag history's earlier periods not kept from an earlier run are benchmarked in a second
    # process meanwhile (coordinator/earlier_flags.py); without one, first, here.
    known: dict[str, dict[str, list[dict]]] = {}
    missing = []
    for earlier in followup.earlier_periods(parse_period(period).label):
        kept = followup.kept_flags(conn, earlier, standard)
        if kept is None:
            missing.append(earlier)
        else:
            known[earlier] = kept
    decoded: bench.Decoded = {}  # each summary decoded once, whichever periods read it
    worker = None
    if missing and not single_process:
        # This window's summaries first: the second process reads them from its copy.
        fresh: bench.Decoded = {}
        bench.inputs(conn, period, standard, decoded, fresh)
        problem = decoded_cache.keep(conn, fresh)
        if problem:
            say(problem)
        worker = earlier_flags.start(data.db, missing, standard, decoded, progress=say)
    if worker is None:  # here, before this period: never two benchmarks in memory at once
        for earlier in missing:
            known[earlier] = followup.period_flags(
                conn, earlier, standard, decoded=decoded, progress=say
            )
    try:
        computed = bench.compute_report(conn, period, standard, progress=say, decoded=decoded)
        result = computed.result
        if bundle is not None and result["sites"]:
            bundle.give(computed.inputs_sha256, computed.report)
        # Every earlier period's flags are known by now, or come from the second process: the
        # decoded summaries (about 250 MB at 3,000 labs) go before the funnels are drawn.
        decoded.clear()
        if not result["sites"]:
            raise NothingToReport(
                f"no site submitted a summary for {result['period']}: there is nothing to "
                "benchmark and no report was written. Check the period, or `sites list` for who "
                "submitted when"
            )
        note = network_note(len(result["sites"]), result["period"])
        if note:
            click.echo(f"NOTE: {note}", err=True)
            result["notes"] = [note]
        # benchmark.json's bytes as kept for the audit bundle (a note is the report's own: then
        # encoded again), written while a second process draws the funnels; let go once written
        encoded = None if note else computed.report
        del computed
        lab_pages = True if lab_reports or lab_pdfs else None
        ctx, written = report.drawn(
            result,
            language,
            lab_pages,
            meanwhile=lambda: report.write_benchmark(result, out, encoded),
            processes=1 if single_process else 2,
        )
        encoded = None  # the report's bytes are written: let them go
        assert written is not None
        if worker is not None:
            known.update(worker.flags(conn, progress=say))
        extra = followup.gather(conn, result, standard, progress=say, decoded=decoded, known=known)
    except BaseException:
        if bundle is not None:
            bundle.cancel()
        raise
    finally:
        if worker is not None:
            worker.stop()
    try:
        written += report.write_followup(
            result,
            out,
            progress=say,
            followup=extra,
            lang=language,
            lab_reports=lab_pages,
            lab_pdfs=lab_pdfs,
            processes=1 if single_process else 2,
            ctx=ctx,
        )
    except PdfUnavailable as exc:
        if bundle is not None:
            bundle.cancel()
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(path)
    if bundle_path is not None:
        built = bundle.built() if bundle is not None else None
        if not isinstance(built, dict):  # no second process, or it failed: here, as audit-bundle
            if built:
                say(f"the audit bundle is built here: {built}")
            built = build_here(data, standard, parse_period(period).label, bundle_path)
        _said_bundle(data, bundle_path, built["files"], built["tree_size"], None)


MIN_SITES_FOR_FUNNELS = 3


def network_note(sites: int, period: str) -> str | None:
    """What a report of a network too small to compare sites must say."""
    if sites >= MIN_SITES_FOR_FUNNELS:
        return None
    return (
        f"only {sites} site(s) submitted for {period}: funnel plots and network rates compare a "
        f"site with the network and need at least {MIN_SITES_FOR_FUNNELS} sites; with fewer a "
        "site is compared largely with itself. Read the flags against the standard's ranges only"
    )


@main.command()
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(data_dir: Path, as_json: bool) -> None:
    """Check the store: SQLite integrity, the ledger against its latest signed tree head, every
    stored summary against its ledger leaf. Exit 1 if anything fails (and what to do)."""
    from coordinator.store_check import check_store

    result = check_store(DataDir(data_dir))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "leaves": result.leaves,
                    "summaries": result.summaries,
                    "problems": result.problems,
                },
                indent=2,
            )
        )
    elif result.ok:
        click.echo(
            f"OK: {result.leaves} ledger entries match the latest signed tree head; "
            f"{result.summaries} stored summaries match their leaves"
        )
    else:
        for problem in result.problems:
            click.echo(f"FAILED: {problem}", err=True)
        click.echo(result.advice(), err=True)
    if not result.ok:
        raise SystemExit(exits.FAILED)


@main.group("eqa")
def eqa_group() -> None:
    """External quality assessment rounds with sealed answers."""


@eqa_group.command("open")
@data_dir_option
@click.argument("round_id")
@click.option(
    "--samples",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="CSV: sample_id, biomarker (one row per sample and biomarker to test).",
)
@click.option(
    "--truth",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="CSV: sample_id, biomarker, result, variant. Sealed now; kept by the centre, given again at close.",
)
@click.option(
    "--deadline",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Last day for responses.",
)
def eqa_open(data_dir: Path, round_id: str, samples: Path, truth: Path, deadline) -> None:
    """Publish a round's samples and a signed commitment to its truth."""
    from coordinator import eqa

    data = DataDir(data_dir).check()
    standard = load_standard(data.standard)
    rules = standard.section("eqa")
    conn = store.connect(data.db)
    round_ = eqa.open_round(
        conn,
        data.signing_key(),
        round_id,
        samples.read_text(encoding="utf-8"),
        truth.read_bytes(),
        deadline.date(),
        float(rules["pass_share"]),
        int(rules["points_correct"]),
    )
    click.echo(
        f"opened {round_id}: {len(round_.samples)} samples until {round_.deadline}; "
        f"commitment {round_.commitment_sha256}"
    )


@eqa_group.command("close")
@data_dir_option
@click.argument("round_id")
@click.option(
    "--truth", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
def eqa_close(data_dir: Path, round_id: str, truth: Path) -> None:
    """Reveal the truth (checked against the commitment) and score every lab's response."""
    from coordinator import eqa

    data = DataDir(data_dir).check()
    sheets = eqa.close_round(
        store.connect(data.db),
        data.signing_key(),
        round_id,
        truth.read_bytes(),
        standard=load_standard(data.standard),
    )
    for sheet in sheets:
        click.echo(
            f"{sheet.site_id:<16} {sheet.points}/{sheet.max_points} ({100 * sheet.score:.1f}%) "
            f"{'PASS' if sheet.passed else 'FAIL'}; errors {sheet.errors}, technical failures "
            f"{sheet.technical_failures}"
        )


@eqa_group.command("list")
@data_dir_option
def eqa_list(data_dir: Path) -> None:
    """List EQA rounds."""
    from coordinator import eqa
    from protos import wire
    from protos.rarenet.v1 import eqa_pb2 as epb

    for blob in eqa.announcements(store.connect(DataDir(data_dir).check().db)):
        r = wire.decode(wire.parse_envelope(blob).payload, epb.EqaRound)
        click.echo(
            f"{r.round_id:<16} deadline {r.deadline} {'closed ' + r.closed_at if r.closed_at else 'open'}; "
            f"{len(r.samples)} samples"
        )


@main.group("key")
def key_group() -> None:
    """The coordinator's signing key."""


@key_group.command("show")
@data_dir_option
def key_show(data_dir: Path) -> None:
    """Print the coordinator's public key (PEM) and its full fingerprint, to hand to auditors
    (`rarenet-audit verify --coordinator-key`) by a channel other than the bundle."""
    from protos import dsse, keys

    raw = keys.public_raw(DataDir(data_dir).signing_key())
    click.echo(keys.public_pem(raw).decode("ascii"), nl=False)
    click.echo(f"fingerprint (SHA-256 of the raw Ed25519 public key): {dsse.keyid(raw)}")


@main.command("audit-bundle")
@data_dir_option
@click.option("--period", required=True)
@click.option(
    "--site",
    help="A bundle for that site alone: its own summaries, receipts and keys, its own view of the "
    "report, and no peer named (peers' ledger leaves by hash only).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The .zip to write.",
)
@click.option(
    "--standard", "standard_path", type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
def audit_bundle(
    data_dir: Path, period: str, site: str | None, out: Path, standard_path: Path | None
) -> None:
    """Write a signed bundle an auditor verifies offline with `rarenet-audit verify`."""
    from coordinator.audit_bundle import build

    data = DataDir(data_dir).check()
    manifest = build(data, load_standard(standard_path or data.standard), period, out, site)
    _said_bundle(data, out, len(manifest["files"]), manifest["tree_size"], site)


def _said_bundle(data: DataDir, out: Path, files: int, tree_size: int, site: str | None) -> None:
    """What was written, and who cosigned its checkpoint."""
    from coordinator import witnesses

    click.echo(f"wrote {out}: {files} files, tree size {tree_size}")
    with closing(sqlite3.connect(data.db)) as conn:
        cosigners = witnesses.cosigners(conn, tree_size)
    if site is not None:  # a site's bundle carries only its own cosignature
        cosigners = [c for c in cosigners if c == site]
    click.echo(
        f"its checkpoint is cosigned by {len(cosigners)} site(s): {', '.join(cosigners) or 'none yet'}"
        " (rarenet-audit verify --witnesses N asks for N)"
    )


@main.command("checkpoint")
@data_dir_option
@click.option(
    "--tree-size",
    type=click.IntRange(min=0),
    default=None,
    help="A tree size the ledger signed a head for (default: the latest).",
)
def checkpoint_command(data_dir: Path, tree_size: int | None) -> None:
    """Print the ledger's checkpoint (C2SP signed note) with the sites' cosignatures collected for
    it; which sites cosigned goes to stderr. Publish it where labs and auditors can compare."""
    from coordinator import witnesses

    data = DataDir(data_dir).check()
    with closing(sqlite3.connect(data.db)) as conn:
        note = witnesses.cosigned(conn, data.signing_key(), tree_size)
        size = int(note.text.split("\n")[1])
        cosigners = witnesses.cosigners(conn, size)
    sys.stdout.buffer.write(note.encode())
    click.echo(
        f"tree size {size}, cosigned by {len(cosigners)} site(s): {', '.join(cosigners) or 'none yet'}",
        err=True,
    )


if __name__ == "__main__":
    main()
