"""Completeness: the bundle holds every submission accepted for the periods it reports on.

`ledger/leaves.json` carries every leaf of the ledger up to the signed tree head (a LeafHeader, or
for leaves from before headers the whole envelope). From them the auditor:
  1. rebuilds the whole Merkle tree and checks it leads to the signed root, so no leaf was left
     out, added or changed;
  2. checks each signed receipt's tree head is a prefix of that tree (a ledger rewritten after a
     receipt was given does not match it);
  3. reads every leaf's site, period and sequence, and checks every leaf of the periods and EQA
     rounds the manifest says the bundle is complete for (the report's period and the periods
     before it that its trends show) is in the bundle as envelopes/N.envelope, byte for byte the
     envelope the header names. A missing one is named: leaf index, site, period, sequence.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from auditor.bundle import leaf_number
from protos import leaf, merkle
from protos.errors import ContractError
from protos.periods import parse as parse_period
from protos.rarenet.v1 import ledger_pb2 as lpb

# The report's trends show the period and the ones before it (coordinator/benchmark.py
# periods_for_trends): a bundle must be complete for all of them.
TREND_PERIODS = 4


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str


def whole_envelope_members(listing: bytes) -> set[str]:
    """The members ledger/leaves.json names as whole-envelope leaves (leaves from before leaf
    headers), which `check` reads besides the listing; none when it cannot be read (`check` says
    why)."""
    try:
        entries = json.loads(listing)["leaves"]
        return {e["envelope"] for e in entries if isinstance(e, dict) and "envelope" in e}
    except (ValueError, KeyError, TypeError):
        return set()


def check(
    files: Mapping[str, bytes],
    members: Collection[str],
    envelopes: Mapping[int, str],
    receipt_heads: Mapping[str, tuple[int, bytes]],
    manifest: dict[str, Any],
    head: lpb.TreeHead,
) -> list[Finding]:
    """`files` holds ledger/leaves.json and the members it names as whole-envelope leaves;
    `members` is every member of the bundle, `envelopes` the SHA-256 of each envelopes/N.envelope
    by N, `receipt_heads` the tree head (size, root) of each receipt that could be read, by its
    member name."""
    if "ledger/leaves.json" not in files:
        return [
            Finding(
                "completeness",
                False,
                "the bundle carries no ledger leaves (ledger/leaves.json; it was made by an older "
                "coordinator), so nothing proves it holds every summary accepted for the period. "
                "Ask the centre for a new bundle",
            )
        ]
    try:
        site = manifest.get("site")  # a per-site bundle is complete for that site's submissions
        headers, tree = _headers(files, head, opaque_allowed=site is not None)
        periods, rounds = _scope(members, manifest)
    except ContractError as exc:
        return [Finding("completeness", False, str(exc))]
    findings = _receipts_agree(receipt_heads, tree)
    scope = set(periods) | {leaf.EQA_PERIOD_PREFIX + r for r in rounds}
    expected = {
        i: h
        for i, h in enumerate(headers)
        if h is not None and h.period in scope and (site is None or h.site_id == site)
    }
    for index, header in sorted(expected.items()):
        member = f"envelopes/{index}.envelope"
        if index not in envelopes:
            findings.append(
                Finding(
                    f"ledger leaf {index}",
                    False,
                    f"missing: leaf {index} ({leaf.describe(header)}) was accepted under the "
                    f"signed tree head but its envelope is not in the bundle",
                )
            )
        elif envelopes[index] != header.envelope_sha256:
            findings.append(
                Finding(
                    f"ledger leaf {index}",
                    False,
                    f"{member} is not the envelope the ledger holds at leaf {index} "
                    f"({leaf.describe(header)})",
                )
            )
    for name in sorted(f"envelopes/{index}.envelope" for index in envelopes):
        index = leaf_number(name)
        if index not in expected:
            shown = headers[index] if index < len(headers) else None
            where = (
                f"leaf {index} is {leaf.describe(shown)}"
                if shown is not None
                else f"leaf {index} is not a readable submission under the signed tree head"
            )
            findings.append(
                Finding(
                    f"ledger leaf {index}",
                    False,
                    f"{name} is outside what the bundle says it is complete for: {where}",
                )
            )
    missing = sum(not f.ok for f in findings)
    what = ", ".join(periods + [f"EQA {r}" for r in rounds])
    if site is not None:
        what = f"site {site} in {what}"
    opaque = sum(h is None for h in headers)
    caveat = (
        f"; {opaque} leaves are other sites' by the coordinator's word (a site's own bundle "
        "shows peers' leaves by hash only, so that no peer is named; the full bundle proves them)"
        if opaque
        else ""
    )
    findings.append(
        Finding(
            "completeness",
            missing == 0,
            f"all {len(expected)} submissions the ledger accepted for {what} (of its "
            f"{len(headers)} leaves) are in the bundle{caveat}"
            if missing == 0
            else f"{missing} problem(s) with the submissions accepted for {what}; see above",
        )
    )
    return findings


def _headers(
    files: Mapping[str, bytes], head: lpb.TreeHead, opaque_allowed: bool
) -> tuple[list[lpb.LeafHeader | None], merkle.Tree]:
    """Every leaf's header (None for a peer's whole-envelope leaf a site's bundle gives by hash
    only) and the tree rebuilt from the leaves, which lead to the signed root."""
    try:
        listing = json.loads(files["ledger/leaves.json"])
        size, entries = listing["tree_size"], listing["leaves"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ContractError(f"ledger/leaves.json cannot be read: {exc}") from exc
    if not isinstance(entries, list) or size != head.tree_size or len(entries) != size:
        raise ContractError(
            f"ledger/leaves.json does not list the {head.tree_size} leaves of the signed tree head"
        )
    hashes: list[bytes] = []
    headers: list[lpb.LeafHeader | None] = []
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ContractError("an entry is {'header': ...} or {'envelope': ...}")
            if "leaf_hash" in entry and not opaque_allowed:
                raise ContractError("only a site's own bundle may give a leaf by its hash alone")
            if "leaf_hash" in entry:
                opaque = bytes.fromhex(entry["leaf_hash"])
                if len(opaque) != 32:
                    raise ContractError("a leaf hash is 32 bytes")
                hashes.append(opaque)
                headers.append(None)
                continue
            if "header" in entry:
                blob = base64.b64decode(entry["header"], validate=True)
                parsed = leaf.classify(blob)
                if parsed.envelope is not None:
                    raise ContractError("listed as a header but it is a whole envelope")
            else:
                member = entry["envelope"]
                if member not in (
                    f"envelopes/{index}.envelope",
                    f"ledger/legacy/{index}.envelope",
                ):
                    raise ContractError(f"names {member!r}, not this leaf's envelope")
                blob = files[member]
                parsed = leaf.classify(blob)
                if parsed.envelope is None:
                    raise ContractError("listed as a whole envelope but it is a header")
        except (ContractError, KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ContractError(
                f"leaf {index} in ledger/leaves.json cannot be read: {exc}"
            ) from exc
        hashes.append(merkle.leaf_hash(blob))
        headers.append(parsed.header)
    tree = merkle.Tree(hashes)
    if tree.root(size) != head.root_hash:
        raise ContractError(
            f"the {size} leaves in ledger/leaves.json do not lead to the signed root "
            f"{head.root_hash.hex()[:16]}…: leaves were left out, added or changed"
        )
    return headers, tree


def _receipts_agree(heads: Mapping[str, tuple[int, bytes]], tree: merkle.Tree) -> list[Finding]:
    """Each receipt's tree head is a prefix of the rebuilt tree (its signature is checked with
    its leaf; one that cannot be read is reported there)."""
    findings = []
    for name in sorted(heads):
        size, root = heads[name]
        if size > len(tree) or tree.root(size) != root:
            findings.append(
                Finding(
                    f"ledger leaf {leaf_number(name)}",
                    False,
                    f"its receipt names a tree of {size} leaves that is not the start of the "
                    "ledger in the bundle: the ledger was rewritten after the receipt was given",
                )
            )
    return findings


def _scope(members: Collection[str], manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The periods and EQA rounds the bundle is complete for, checked against what it must be."""
    claim = manifest.get("complete_for")
    try:
        periods = [str(p) for p in claim["periods"]]  # type: ignore[index]
        rounds = [str(r) for r in claim["eqa_rounds"]]  # type: ignore[index]
        period = parse_period(str(manifest["period"]))
    except (KeyError, TypeError, ContractError) as exc:
        raise ContractError(
            "MANIFEST.json does not say which periods the bundle is complete for"
        ) from exc
    needed = [period]
    while len(needed) < TREND_PERIODS:
        needed.insert(0, needed[0].previous())
    short = [p.label for p in needed if p.label not in periods]
    if short:
        raise ContractError(
            f"the bundle does not claim to be complete for {', '.join(short)}, which the report "
            f"of {period} shows"
        )
    bundled = {n.split("/")[1] for n in members if n.startswith("eqa/")}
    if bundled != set(rounds):
        raise ContractError(
            "the EQA rounds in the bundle are not the ones it claims to be complete for"
        )
    return periods, rounds
