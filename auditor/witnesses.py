"""The witness check of an audit bundle: is the checkpoint the bundle proves against one the labs
themselves cosigned?

The bundle's `checkpoint.txt` is the coordinator's C2SP checkpoint of the tree head every
inclusion proof leads to, with the witnesses' cosignatures (C2SP tlog-cosignature,
cosignature/v1), under opaque names (protos/cosignature.py). `keys/witnesses.json` lists each
site's keys: the full bundle is where a witness key is mapped to its site. A cosignature counts when it
verifies with a key of that site which was enrolled, and neither retired nor revoked, when the
site cosigned. A coordinator that showed one lab a forked log cannot gather cosignatures from the
other labs on that fork, so `--witnesses N` fails for a bundle proved against it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass

from protos import checkpoint, cosignature
from protos.errors import ContractError


@dataclass(frozen=True)
class WitnessCheck:
    ok: bool
    detail: str
    sites: tuple[str, ...]


def _when(iso: str | None) -> float | None:
    return dt.datetime.fromisoformat(iso).timestamp() if iso else None


def _valid_at(record: Mapping[str, str | None], timestamp: int) -> bool:
    enrolled = _when(record.get("enrolled_at"))
    ends = [_when(record.get("retired_at")), _when(record.get("site_revoked_at"))]
    return (enrolled is None or enrolled <= timestamp + 300) and all(
        end is None or timestamp < end for end in ends
    )


def check(
    files: Mapping[str, bytes],
    coordinator_key: bytes,
    tree_size: int,
    root_hash: bytes,
    required: int,
) -> WitnessCheck:
    """At least `required` distinct enrolled sites cosigned the checkpoint of this tree head."""
    if "checkpoint.txt" not in files:
        if required:
            return WitnessCheck(
                False,
                "the bundle carries no cosigned checkpoint (made before rarenet had witnesses); "
                "ask the coordinating centre for a new bundle",
                (),
            )
        return WitnessCheck(True, "no checkpoint in this bundle; no witnesses required", ())
    try:
        body, parsed = checkpoint.open_checkpoint(
            files["checkpoint.txt"], checkpoint.origin_for(coordinator_key), coordinator_key
        )
        records = json.loads(files["keys/witnesses.json"])
        keys = [
            (record, base64.b64decode(record["public_key"], validate=True)) for record in records
        ]
    except (ContractError, KeyError, ValueError, TypeError, binascii.Error) as exc:
        return WitnessCheck(False, f"the checkpoint or witness keys cannot be read: {exc}", ())
    if (body.size, body.root_hash) != (tree_size, root_hash):
        return WitnessCheck(
            False,
            f"the checkpoint (size {body.size}) is not the signed tree head the proofs lead to "
            f"(size {tree_size})",
            (),
        )
    # A key cosigns under its opaque name (or, from nodes before opaque names, its site's
    # legacy name); keys/witnesses.json says whose key it is.
    by_cosigner = {
        cosigner: r
        for r, raw in keys
        for cosigner in cosignature.cosigners_of_key(raw, str(r["site_id"]))
    }
    found, bad = cosignature.verified_cosignatures(parsed, list(by_cosigner))
    if bad:
        return WitnessCheck(False, "; ".join(bad), ())
    sites: set[str] = set()
    not_enrolled: list[str] = []
    for cosigned in found:
        record = by_cosigner[cosigned.cosigner]
        if _valid_at(record, cosigned.timestamp):
            sites.add(str(record["site_id"]))
        else:
            not_enrolled.append(str(record["site_id"]))
    named = tuple(sorted(sites))
    ok = len(named) >= required
    detail = (
        f"checkpoint {body.size} (root {body.root_hash.hex()[:16]}…) cosigned by "
        f"{len(named)} enrolled site(s): {', '.join(named) or 'none'}; required {required}"
    )
    if not_enrolled:
        detail += f"; not counted (key not valid when cosigned): {', '.join(sorted(not_enrolled))}"
    return WitnessCheck(ok, detail, named)
