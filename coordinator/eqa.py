"""External quality assessment rounds with sealed answers.

open:  the sample list is published, signed; the truth file stays with the centre, sealed by a
       signed commitment SHA-256(salt || truth file bytes) with a random salt.
respond: labs send signed EqaResponse envelopes through the outbox and the ledger (see intake).
close: after the deadline the truth is given again; it must match the commitment. Each lab's
       latest response is scored (ESP lung EQA style, ../shared/reference section 3): points for
       a correct call, none for an error (false positive, false negative, wrong variant); a
       technical failure scores nothing and is reported apart; pass at pass_share of the maximum.
       The salt is revealed in the re-signed round, so anyone can check the commitment.
Scoring itself (per sub-scheme, pass mark by number of cases) is the method's: method/eqa.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
import sqlite3
from collections import defaultdict

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.errors import AlreadyRecorded, InvalidRequest, NotFound, WrongState
from method import eqa as method_eqa
from method.standard import Standard
from protos import dsse, wire
from protos.rarenet.v1 import eqa_pb2 as epb

RESULTS = ("positive", "negative", "failed", "equivocal")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


commitment = method_eqa.commitment
score = method_eqa.score


def parse_samples(text: str) -> list[epb.EqaSample]:
    """CSV with columns sample_id, biomarker (one row per sample and biomarker to test)."""
    by_sample: dict[str, list[str]] = defaultdict(list)
    for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        sample, biomarker = (
            (row.get("sample_id") or "").strip(),
            (row.get("biomarker") or "").strip(),
        )
        if not sample or not biomarker:
            raise InvalidRequest(f"samples file line {line}: needs sample_id and biomarker")
        by_sample[sample].append(biomarker)
    if not by_sample:
        raise InvalidRequest("the samples file lists no samples (columns: sample_id, biomarker)")
    return [epb.EqaSample(sample_id=s, biomarkers=sorted(b)) for s, b in sorted(by_sample.items())]


def parse_truth(data: bytes) -> dict[tuple[str, str], tuple[str, str]]:
    """The truth file, parsed by the method; a bad file is refused with its line and reason."""
    try:
        return method_eqa.parse_truth(data)
    except method_eqa.EqaError as exc:
        raise InvalidRequest(str(exc)) from exc


def open_round(
    conn: sqlite3.Connection,
    key: Ed25519PrivateKey,
    round_id: str,
    samples_csv: str,
    truth: bytes,
    deadline: dt.date,
    pass_share: float,
    points_correct: int,
) -> epb.EqaRound:
    if conn.execute("SELECT 1 FROM eqa_rounds WHERE round_id = ?", (round_id,)).fetchone():
        raise AlreadyRecorded(f"EQA round {round_id} already exists")
    if deadline < dt.date.today():
        raise InvalidRequest(f"the deadline {deadline} is already past")
    samples = parse_samples(samples_csv)
    answers = parse_truth(truth)
    needed = {(s.sample_id, b) for s in samples for b in s.biomarkers}
    if needed - set(answers):
        missing = ", ".join(f"{s}/{b}" for s, b in sorted(needed - set(answers)))
        raise InvalidRequest(f"the truth file has no answer for {missing}")
    salt = secrets.token_bytes(32)
    round_ = epb.EqaRound(
        round_id=round_id,
        samples=samples,
        deadline=deadline.isoformat(),
        commitment_sha256=commitment(salt, truth),
        opened_at=_now(),
        pass_share=pass_share,
        points_correct=points_correct,
    )
    signed = dsse.sign(wire.EQA_ROUND, wire.encode(round_), key)
    conn.execute(
        "INSERT INTO eqa_rounds (round_id, announcement, deadline, salt) VALUES (?, ?, ?, ?)",
        (round_id, wire.envelope_bytes(signed), deadline.isoformat(), salt.hex()),
    )
    return round_


def load_round(conn: sqlite3.Connection, round_id: str) -> tuple[epb.EqaRound, str, bytes | None]:
    row = conn.execute(
        "SELECT announcement, salt, truth FROM eqa_rounds WHERE round_id = ?", (round_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no EQA round {round_id}; `rarenet-node eqa status` lists the open ones")
    return wire.decode(wire.parse_envelope(row[0]).payload, epb.EqaRound), row[1], row[2]


def check_response(conn: sqlite3.Connection, response: epb.EqaResponse, today: dt.date) -> None:
    """Refuse a response to an unknown round, after its deadline, or naming samples not in it."""
    round_, _, truth = load_round(conn, response.round_id)
    if truth is not None or today > dt.date.fromisoformat(round_.deadline):
        raise WrongState(
            f"EQA round {response.round_id} closed on {round_.deadline}; late responses "
            "are refused. Contact the coordinating centre"
        )
    asked = {(s.sample_id, b) for s in round_.samples for b in s.biomarkers}
    for call in response.calls:
        if (call.sample_id, call.biomarker) not in asked:
            raise InvalidRequest(
                f"sample {call.sample_id} / {call.biomarker} is not part of round {response.round_id}"
            )
        if call.result not in RESULTS:
            raise InvalidRequest(
                f"sample {call.sample_id}: result {call.result!r} is not one of {RESULTS}"
            )


def close_round(
    conn: sqlite3.Connection,
    key: Ed25519PrivateKey,
    round_id: str,
    truth: bytes,
    today: dt.date | None = None,
    standard: Standard | None = None,
) -> list[epb.EqaScoreSheet]:
    round_, salt_hex, stored_truth = load_round(conn, round_id)
    if stored_truth is not None:
        raise AlreadyRecorded(f"EQA round {round_id} is already closed")
    if (today or dt.date.today()) <= dt.date.fromisoformat(round_.deadline):
        raise WrongState(
            f"EQA round {round_id} is open until {round_.deadline}; close it after the deadline"
        )
    if commitment(bytes.fromhex(salt_hex), truth) != round_.commitment_sha256:
        raise WrongState(
            "this truth file is not the one sealed when the round opened (its commitment "
            "differs); use the original file"
        )
    answers = parse_truth(truth)
    latest: dict[str, tuple[int, epb.EqaResponse]] = {}
    for leaf, site, payload in conn.execute(
        "SELECT leaf_index, site_id, payload FROM eqa_responses WHERE round_id = ? ORDER BY sequence",
        (round_id,),
    ):
        latest[site] = (leaf, wire.decode(payload.encode("utf-8"), epb.EqaResponse))
    sheets = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for site, (leaf, response) in sorted(latest.items()):
            sheet = score(
                round_,
                answers,
                site,
                response,
                leaf,
                (lambda cases: standard.eqa_pass_share(cases, round_.pass_share))
                if standard
                else None,
                method_eqa.parse_schemes(truth),
            )
            conn.execute(
                "INSERT INTO eqa_scores (round_id, site_id, sheet) VALUES (?, ?, ?)",
                (
                    round_id,
                    site,
                    wire.envelope_bytes(dsse.sign(wire.EQA_SCORE, wire.encode(sheet), key)),
                ),
            )
            sheets.append(sheet)
        round_.revealed_salt, round_.closed_at = salt_hex, _now()
        conn.execute(
            "UPDATE eqa_rounds SET announcement = ?, truth = ?, closed_at = ? WHERE round_id = ?",
            (
                wire.envelope_bytes(dsse.sign(wire.EQA_ROUND, wire.encode(round_), key)),
                truth,
                round_.closed_at,
                round_id,
            ),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return sheets


def announcements(conn: sqlite3.Connection) -> list[bytes]:
    return [
        bytes(a) for (a,) in conn.execute("SELECT announcement FROM eqa_rounds ORDER BY round_id")
    ]


def score_sheet(conn: sqlite3.Connection, round_id: str, site_id: str) -> bytes:
    round_, _, truth = load_round(conn, round_id)
    if truth is None:
        raise WrongState(
            f"EQA round {round_id} is not closed yet; scores come after {round_.deadline}"
        )
    row = conn.execute(
        "SELECT sheet FROM eqa_scores WHERE round_id = ? AND site_id = ?", (round_id, site_id)
    ).fetchone()
    if row is None:
        raise NotFound(f"site {site_id} sent no response to EQA round {round_id}")
    return bytes(row[0])
