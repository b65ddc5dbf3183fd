"""The node's TLS files, checked before a channel is opened, and TLS failures explained: which
side is wrong (this node or the coordinator) and what to do, instead of "Socket closed"."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node.config import NodeConfig
from node.errors import ConfigError

HERE = "this node (client side)"
THERE = "the coordinator (server side)"


@dataclass
class Files:
    ca: bytes
    cert: bytes | None
    key: bytes | None


def _read(path: str, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{HERE}: cannot read [coordinator] {key} {path!r} named in node.toml: {exc.strerror}"
        ) from exc


def _certificate(data: bytes, path: str, key: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificates(data)[0]
    except (ValueError, IndexError):
        raise ConfigError(
            f"{HERE}: [coordinator] {key} {path!r} is not a PEM certificate "
            "(expected '-----BEGIN CERTIFICATE-----')"
        ) from None


def check(config: NodeConfig, now: dt.datetime | None = None) -> Files:
    """The CA, client certificate and key named in node.toml, read and checked."""
    now = now or dt.datetime.now(dt.UTC)
    ca = _read(config.ca_file, "ca_file")
    _certificate(ca, config.ca_file, "ca_file")
    if bool(config.cert_file) != bool(config.key_file):
        raise ConfigError(
            f"{HERE}: node.toml names a client {'certificate' if config.cert_file else 'key'} "
            "without its pair; give both cert_file and key_file (mTLS) or neither"
        )
    if not config.cert_file:
        return Files(ca, None, None)
    cert_pem, key_pem = _read(config.cert_file, "cert_file"), _read(config.key_file, "key_file")
    cert = _certificate(cert_pem, config.cert_file, "cert_file")
    if cert.not_valid_after_utc < now:
        raise ConfigError(
            f"{HERE}: the client certificate {config.cert_file} expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d}; ask the coordinating centre for a new one"
        )
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{HERE}: [coordinator] key_file {config.key_file!r} is not an unencrypted PEM "
            f"private key ({exc})"
        ) from exc
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise ConfigError(
            f"{HERE}: key_file {config.key_file} does not belong to cert_file {config.cert_file}"
        )
    return Files(ca, cert_pem, key_pem)


def explain(details: str, tls: bool, address: str) -> str | None:
    """What a failed call's details say about TLS, in words; None if they say nothing of it."""
    if not tls:
        return None
    text = details.lower()
    if "certificate_verify_failed" in text or "certificate verify failed" in text:
        return (
            f"TLS: {HERE} does not trust {THERE}'s certificate at {address}: it is not signed by "
            "the CA in [coordinator] ca_file (or it expired). Check ca_file in node.toml"
        )
    if "peer name" in text or "hostname" in text or "subject alternative name" in text:
        return (
            f"TLS: {THERE}'s certificate does not name {address.rsplit(':', 1)[0]}; connect by "
            "the name in its certificate, or ask the centre for a certificate with this name"
        )
    if "wrong_version_number" in text or "packet_length_too_long" in text:
        return (
            f"TLS: {THERE} at {address} does not speak TLS on this port (plain text?); check the "
            "address, or the centre's --tls-cert"
        )
    if "socket closed" in text or "handshake" in text or "ssl" in text or "tls" in text:
        return (
            f"TLS: the handshake with {THERE} at {address} failed ({details}). Most often the "
            "coordinator requires a client certificate (mTLS) that is missing, expired, or not "
            "issued by the network CA: check cert_file and key_file in node.toml"
        )
    return None
