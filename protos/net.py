"""Addresses: plain-text gRPC is allowed only on loopback, on both sides."""

from __future__ import annotations

import ipaddress


def is_loopback(address: str) -> bool:
    """Whether HOST:PORT (HOST may be [v6], localhost or an IP) names this machine's loopback."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
