"""rarenet-coordinator: a thin click layer; each command calls one library function."""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import sys
import threading
from pathlib import Path

import click

from coordinator import benchmark as bench
from coordinator import enrolment, report, store
from coordinator.config import DataDir
from coordinator.config import init as init_data_dir
from coordinator.errors import CoordinatorError
from coordinator.server import TlsFiles, start
from coordinator.standards import load as load_standard
from protos.errors import ContractError

data_dir_option = click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The coordinator's data directory.",
)


class Group(click.Group):
    """Turns the project's errors into a clean message and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (CoordinatorError, ContractError) as exc:
            raise click.ClickException(str(exc)) from None


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
def serve(
    config_path, data_dir, listen, tls_cert, tls_key, client_ca, insecure, standard_path, port_file
) -> None:
    """Serve the coordinator over gRPC until SIGTERM or SIGINT; keeps reports current on a schedule."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from coordinator import reporting
    from coordinator.config import ServeConfig, load_serve_config

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
    ):
        if value is not None:
            setattr(cfg, name, value)
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise click.UsageError("give both --tls-cert and --tls-key")
    if cfg.insecure and cfg.tls_cert:
        raise click.UsageError("--insecure and --tls-cert exclude each other")
    if cfg.client_ca and not cfg.tls_cert:
        raise click.UsageError("--client-ca needs --tls-cert and --tls-key")
    tls = TlsFiles(cfg.tls_cert, cfg.tls_key, cfg.client_ca) if cfg.tls_cert else None
    data = DataDir(cfg.data_dir)
    running = start(
        data,
        cfg.listen,
        tls=tls,
        insecure=cfg.insecure,
        standard_path=cfg.standard,
        workers=cfg.workers,
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


@sites.command("add")
@data_dir_option
@click.argument("site_id")
@click.option("--ttl-hours", default=72, show_default=True, help="How long the token stays valid.")
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
def benchmark(data_dir: Path, period: str, out: Path, standard_path: Path | None) -> None:
    """Write OUT/benchmark.json, CSV tables and OUT/index.html for PERIOD."""
    data = DataDir(data_dir).check()
    standard = load_standard(standard_path or data.standard)
    say = lambda m: click.echo(f"… {m}", err=True)
    conn = sqlite3.connect(data.db)
    result = bench.compute(conn, period, standard, progress=say)
    for path in report.write(result, out, progress=say):
        click.echo(path)


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


@main.command("audit-bundle")
@data_dir_option
@click.option("--period", required=True)
@click.option(
    "--site", help="Make the report that site's own view (all summaries stay in, to recompute it)."
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
    click.echo(f"wrote {out}: {len(manifest['files'])} files, tree size {manifest['tree_size']}")


if __name__ == "__main__":
    main()
