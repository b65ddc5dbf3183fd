"""The coordinator's TLS files, read and checked before the server starts, so that a mistake is
reported as what it is ("the key does not belong to the certificate") rather than as a port that
cannot be bound."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from coordinator.config import SetupError

SIDE = "coordinator (server side)"


@dataclass
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # require client certificates issued by this CA (mTLS)


def _read(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SetupError(f"{SIDE}: cannot read {option} {path}: {exc.strerror}") from exc


def _certificates(data: bytes, path: Path, option: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise SetupError(
            f"{SIDE}: {option} {path} holds no PEM certificate (expected '-----BEGIN CERTIFICATE-----')"
        )
    return certs


def check(tls: TlsFiles, today: dt.datetime | None = None) -> tuple[bytes, bytes, bytes | None]:
    """(key PEM, certificate chain PEM, client CA PEM or None), each checked; SetupError naming
    the file and what is wrong with it."""
    now = today or dt.datetime.now(dt.UTC)
    cert_pem = _read(tls.cert, "--tls-cert")
    key_pem = _read(tls.key, "--tls-key")
    leaf = _certificates(cert_pem, tls.cert, "--tls-cert")[0]
    if leaf.not_valid_after_utc < now:
        raise SetupError(
            f"{SIDE}: the certificate {tls.cert} expired on {leaf.not_valid_after_utc:%Y-%m-%d}; "
            "issue a new one (deploy/pki/make-pki.sh)"
        )
    if leaf.not_valid_before_utc > now:
        raise SetupError(
            f"{SIDE}: the certificate {tls.cert} is valid only from "
            f"{leaf.not_valid_before_utc:%Y-%m-%d}; check this machine's clock"
        )
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SetupError(
            f"{SIDE}: --tls-key {tls.key} is not an unencrypted PEM private key ({exc})"
        ) from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, public) != leaf.public_key().public_bytes(der, public):
        raise SetupError(
            f"{SIDE}: the key {tls.key} does not belong to the certificate {tls.cert}; "
            "give the key the certificate was issued for"
        )
    ca_pem = None
    if tls.client_ca is not None:
        ca_pem = _read(tls.client_ca, "--client-ca")
        _certificates(ca_pem, tls.client_ca, "--client-ca")
    return key_pem, cert_pem, ca_pem


def load_server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    key_pem, cert_pem, ca_pem = check(tls)
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)],
        root_certificates=ca_pem,
        require_client_auth=ca_pem is not None,
    )
