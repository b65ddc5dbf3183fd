"""rarenet-audit: verify what the coordinator and sites signed, offline."""

from __future__ import annotations

import json
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auditor.errors import AuditError, Unreadable
from protos import dsse, exits, keys, wire
from protos.errors import ContractError, PayloadError

# The one place the auditor's errors become exit statuses (the scheme: protos/exits.py). A failed
# check is exit status 1 by the commands themselves.
EXIT_STATUSES: dict[type[BaseException], int] = {
    AuditError: exits.FAILED,
    Unreadable: exits.BAD_INPUT,
    ContractError: exits.FAILED,  # a signature or proof that does not verify
    PayloadError: exits.BAD_INPUT,  # a file that is not what it should be
}


class Group(click.Group):
    """Turns the project's errors into a clean message and their exit status."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (AuditError, ContractError) as exc:
            click.echo(f"Error: {exc}", err=True)
            raise SystemExit(exits.most_specific(exc, EXIT_STATUSES) or exits.FAILED) from None


def _public_key(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) == 32:
        return data
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise Unreadable(f"{path} is neither a raw 32-byte nor a PEM Ed25519 public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise Unreadable(f"{path} is not an Ed25519 public key")
    return keys.public_raw(key)


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
    the envelope or key cannot be read."""
    raw = _public_key(public_key)
    parsed = wire.parse_envelope(envelope.read_bytes())  # PayloadError: exit status 2
    try:
        dsse.verify(parsed, {dsse.keyid(raw): raw})
    except ContractError as exc:
        click.echo(f"FAIL {envelope.name}: {exc}")
        raise SystemExit(1) from None
    click.echo(f"PASS {envelope.name}: {parsed.payload_type} signed by {dsse.keyid(raw)[:16]}…")


@main.command()
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--coordinator-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Pin the coordinator's public key (PEM) obtained out of band instead of trusting the bundle's.",
)
@click.option("--json", "as_json", is_flag=True)
def verify(bundle: Path, coordinator_key: Path | None, as_json: bool) -> None:
    """Verify an audit bundle offline. Exit 0: every check passed; 1: a check failed; 2: unreadable."""
    from auditor.verify import BundleUnreadable
    from auditor.verify import verify as run

    try:
        result = run(bundle, coordinator_key)
    except BundleUnreadable as exc:
        click.echo(f"ERROR {exc}", err=True)
        raise SystemExit(exits.BAD_INPUT) from None
    if as_json:
        click.echo(
            json.dumps({"ok": result.ok, "checks": [c.__dict__ for c in result.checks]}, indent=2)
        )
    else:
        for check in result.checks:
            click.echo(f"{'PASS' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        click.echo(
            f"{sum(c.ok for c in result.checks)} passed, {sum(not c.ok for c in result.checks)} failed"
        )
    raise SystemExit(exits.OK if result.ok else exits.FAILED)


@main.command()
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def show(bundle: Path) -> None:
    """Print the bundle's concordance tables and flags readably."""
    import zipfile

    try:
        report = json.loads(zipfile.ZipFile(bundle).read("report/benchmark.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        click.echo(f"ERROR {bundle}: {exc}", err=True)
        raise SystemExit(exits.BAD_INPUT) from None
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


if __name__ == "__main__":
    main()
