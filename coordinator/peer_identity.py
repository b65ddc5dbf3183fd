"""Under mTLS, who the client certificate says the caller is, and the check that a site acts only
with its own certificate (a node enrolled as lab-two must not present lab-xyz's certificate).

A site's certificate (deploy/pki/make-pki.sh) carries its id as the subject CN and as the URI SAN
`rarenet:site:<id>`; either names the site.
"""

from __future__ import annotations

from typing import cast

import grpc

from coordinator.errors import NotPermitted

SITE_URI_PREFIX = "rarenet:site:"


def identities(context: grpc.ServicerContext) -> frozenset[str]:
    """The site ids the peer's client certificate names (empty if it presented none)."""
    auth = cast("dict[str, list[bytes]]", context.auth_context() or {})  # stubs say int values
    names: set[str] = set()
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        for raw in auth.get(key, ()):
            value = raw.decode("utf-8", "replace")
            names.add(value.removeprefix(SITE_URI_PREFIX))
    return frozenset(names)


def check_identity(site_id: str, named: frozenset[str] | None) -> None:
    """NotPermitted unless `named` (None: no mTLS, nothing to check) includes site_id."""
    if named is None:
        return
    if site_id not in named:
        shown = ", ".join(sorted(named)) or "no site"
        raise NotPermitted(
            f"the client certificate names {shown}, not site {site_id}: a site enrols, submits "
            "and asks only with its own certificate (check cert_file in node.toml)"
        )
