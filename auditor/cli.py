"""rarenet-audit: verify what the coordinator and sites signed, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from auditor.bundle import BundleUnreadable
from auditor.coordinator_key import load_pinned
from auditor.errors import AuditError, Unreadable
from protos import dsse, exits, wire
from protos.errors import ContractError, PayloadError

if TYPE_CHECKING:
    from auditor.verify import Result

# The one place the auditor's errors become exit statuses (the scheme: protos/exits.py). A check
# that fails is a FAIL line and exit status 1, from the commands themselves.
EXIT_STATUSES: dict[type[BaseException], int] = {
    AuditError: exits.FAILED,
    Unreadable: exits.BAD_INPUT,  # a bundle, envelope or key file that cannot be read as one
    ContractError: exits.FAILED,  # a signature or proof that does not verify
    PayloadError: exits.BAD_INPUT,  # a file that is not what it should be
}


class Group(click.Group):
    """Turns the project's errors into a clean message and their exit status."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (AuditError, ContractError) as exc:
            click.echo(f"ERROR {exc}", err=True)
            raise SystemExit(exits.most_specific(exc, EXIT_STATUSES) or exits.FAILED) from None


def _unreadable(message: str) -> NoReturn:
    click.echo(f"ERROR {message}", err=True)
    raise SystemExit(exits.BAD_INPUT)


def _verified(bundle: Path, coordinator_key: Path | None, witnesses: int = 0) -> Result:
    """The verification of a bundle; exit status 2 with the reason when it cannot be read."""
    from auditor.verify import verify as run

    try:
        return run(bundle, coordinator_key, witnesses)
    except BundleUnreadable as exc:
        _unreadable(str(exc))
    except Exception as exc:  # noqa: BLE001 - never a traceback for a crafted bundle
        _unreadable(f"{bundle} could not be verified: {type(exc).__name__}: {exc}")


def _not_pinned_warning(result: Result, err: bool = False) -> None:
    if result.key_pinned or not result.coordinator_fingerprint:
        return
    for line in (
        "WARNING: the coordinator's key is NOT pinned. The bundle was checked against the key it",
        "carries itself, so anyone could have made it. Its key's fingerprint (SHA-256 of the raw",
        "Ed25519 public key) is",
        f"    {result.coordinator_fingerprint}",
        "Compare it with the one the coordinating centre gave you (`rarenet-coordinator key",
        "show`), or pass --coordinator-key with the centre's PEM file.",
    ):
        click.echo(line, err=err)


@click.group(cls=Group)
@click.version_option(package_name="rarenet")
def main() -> None:
    """Offline verification for auditors."""


@main.command("verify-envelope")
@click.argument("envelope", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--public-key",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The signer's public key (PEM or raw 32 bytes).",
)
def verify_envelope(envelope: Path, public_key: Path) -> None:
    """Check the signature of a serialised Envelope; exit 0 when it verifies, 1 when not, 2 when
    the envelope or the key cannot be read."""
    raw = load_pinned(public_key)  # BundleUnreadable: exit status 2
    parsed = wire.parse_envelope(envelope.read_bytes())  # PayloadError: exit status 2
    try:
        dsse.verify(parsed, {dsse.keyid(raw): raw})
    except ContractError as exc:
        click.echo(f"FAIL {envelope.name}: {exc}")
        raise SystemExit(exits.FAILED) from None
    click.echo(f"PASS {envelope.name}: {parsed.payload_type} signed by {dsse.keyid(raw)}")


_PIN = click.option(
    "--coordinator-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Pin the coordinator's public key (PEM, from `rarenet-coordinator key show`) obtained "
    "out of band instead of trusting the bundle's own.",
)


@main.command()
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@_PIN
@click.option(
    "--witnesses",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Require at least N distinct enrolled sites' cosignatures on the checkpoint the bundle "
    "proves against.",
)
@click.option("--json", "as_json", is_flag=True)
def verify(bundle: Path, coordinator_key: Path | None, witnesses: int, as_json: bool) -> None:
    """Verify an audit bundle offline. Exit 0: every check passed; 1: a check failed; 2: the
    bundle cannot be read (not a zip, duplicate or unknown members, a member too large)."""
    result = _verified(bundle, coordinator_key, witnesses)
    failed = sum(not c.ok for c in result.checks)
    if as_json:
        _not_pinned_warning(result, err=True)
        click.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "coordinator_key": {
                        "fingerprint": result.coordinator_fingerprint,
                        "pinned": result.key_pinned,
                    },
                    "checks": [c.__dict__ for c in result.checks],
                },
                indent=2,
            )
        )
    else:
        _not_pinned_warning(result)
        for check in result.checks:
            click.echo(f"{'PASS' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        click.echo(
            f"{len(result.checks) - failed} passed, {failed} failed"
            + ("" if result.key_pinned else "; the coordinator's key was NOT pinned")
        )
    raise SystemExit(exits.OK if result.ok else exits.FAILED)


@main.command()
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@_PIN
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the verified report as an HTML page to this file.",
)
def show(bundle: Path, coordinator_key: Path | None, html_out: Path | None) -> None:
    """Verify the bundle, then print its flags and concordance tables from the verified
    report/benchmark.json (and with --html, write it as a page). Nothing is shown from a bundle
    that does not verify (exit 1)."""
    from auditor.render import page

    result = _verified(bundle, coordinator_key)
    report = result.report
    if not result.ok or report is None:
        failed = [c.name for c in result.checks if not c.ok]
        click.echo(
            f"ERROR {bundle} does not verify ({', '.join(failed)} failed): nothing is shown. "
            "`rarenet-audit verify` says why",
            err=True,
        )
        raise SystemExit(exits.FAILED)
    _not_pinned_warning(result, err=True)
    sites = report["sites"] if "sites" in report else {report["site"]["site_id"]: report["site"]}
    click.echo(
        f"Benchmark {report['period']}, standard {report['standard']['id']} {report['standard']['version']}"
    )
    for site, entry in sites.items():
        click.echo(f"\n{site}: {entry['status']}")
        for flag in entry["flags"]:
            click.echo(f"  {flag['level'].upper()} [{flag['rule']}] {flag['message']}")
        for t in entry["concordance"]:
            if t.get("withheld"):
                click.echo(
                    f"  {t['kind']} {t['biomarker']} {t['index_method']} vs {t['comparator_method']}: withheld"
                )
                continue
            kappa = "n/a" if t["kappa"] is None else f"{t['kappa']:.2f}"
            ppa = "n/a" if t["ppa"] is None else f"{100 * t['ppa']:.1f}%"
            npa = "n/a" if t["npa"] is None else f"{100 * t['npa']:.1f}%"
            click.echo(
                f"  {t['kind']:<13} {t['biomarker']:<9} {t['index_method']} vs {t['comparator_method']}: "
                f"a={t['a']} b={t['b']} c={t['c']} d={t['d']} (excluded {t['excluded_failed']}); "
                f"PPA {ppa}, NPA {npa}, kappa {kappa}"
            )
    if html_out is not None:
        try:
            html_out.write_text(
                page(report, result.coordinator_fingerprint, result.key_pinned), encoding="utf-8"
            )
        except OSError as exc:
            _unreadable(f"cannot write {html_out}: {exc}")
        click.echo(f"\nwrote {html_out}")


if __name__ == "__main__":
    main()
