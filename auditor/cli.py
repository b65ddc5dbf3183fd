"""rarenet-audit: verify what the coordinator and sites signed, offline."""
from __future__ import annotations

from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protos import dsse, keys, wire
from protos.errors import ContractError


def _public_key(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) == 32:
        return data
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise click.ClickException(f"{path} is neither a raw 32-byte nor a PEM Ed25519 public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise click.ClickException(f"{path} is not an Ed25519 public key")
    return keys.public_raw(key)


@click.group()
@click.version_option(package_name="rarenet")
def main() -> None:
    """Offline verification for auditors."""


@main.command("verify-envelope")
@click.argument("envelope", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--public-key", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The signer's public key (PEM or raw 32 bytes).")
def verify_envelope(envelope: Path, public_key: Path) -> None:
    """Check the signature of a serialised Envelope; exit 0 when it verifies, 1 when not."""
    raw = _public_key(public_key)
    try:
        parsed = wire.parse_envelope(envelope.read_bytes())
        dsse.verify(parsed, {dsse.keyid(raw): raw})
    except ContractError as exc:
        click.echo(f"FAIL {envelope.name}: {exc}")
        raise SystemExit(1) from None
    click.echo(f"PASS {envelope.name}: {parsed.payload_type} signed by {dsse.keyid(raw)[:16]}…")


if __name__ == "__main__":
    main()
