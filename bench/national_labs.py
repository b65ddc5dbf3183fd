"""Quarterly summaries for a national network, made fast and through the node's own code.

A few dozen template labs of varied volume and profile (normal, DNA-only panel, slow, failing
cytology) each get four quarters of results and a summary per quarter from node/summary.py
(metrics, disclosure control, payload encoding). Their rows are carved out of one pool per
profile, which the node's own ingest wrote from a synthetic export (node/synth.py) of one quarter
and which SQL then copies into the other three quarters (dates moved by whole quarters, test ids
and patient keys made distinct per quarter): a template costs a copy inside SQLite and four
summaries rather than a synthetic export each, and the pool costs one export per profile.
Everything is made afresh in every run (nothing is kept between runs), so the time printed is
what a clean clone pays.

Every lab of the network then takes a template's payloads with its own site id and sequence
numbers put in, and signs them with its own key: byte for byte what `rarenet-node summarize
--json` of such a lab gives.
"""

from __future__ import annotations

import math
import random
import shutil
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

from coordinator.standards import DEFAULT_STANDARD
from node import config as node_config
from node import store as node_store
from node import summary
from node.ingest import ingest_file
from node.mapping import Mapping
from node.pseudonym import Pseudonymiser
from node.standard import parse as parse_standard
from node.synth import generate, write_csv
from protos.periods import Period
from protos.periods import parse as parse_period

QUARTERS = tuple(parse_period(p) for p in ("2025Q4", "2026Q1", "2026Q2", "2026Q3"))
# Share of labs with each profile, and the tests of the one quarter each profile's pool is made of
# (copied into the other three). A template takes a slice of the pool; a lab larger than its pool
# takes all of it.
PROFILES = {"normal": 0.82, "dna_only": 0.08, "slow": 0.05, "failing_cytology": 0.05}
POOL_TESTS = {"normal": 1600, "dna_only": 700, "slow": 700, "failing_cytology": 700}
ROWS_PER_TEST = 12  # about 11 biomarkers a test, with some IHC/FISH and plasma follow-ups
# Tests a lab reports in a quarter: log-normal around 300 (a few dozen to two thousand).
MEDIAN_TESTS, SIGMA, MIN_TESTS, MAX_TESTS = 300, 0.8, 30, 2000
TEMPLATE_SITE = "template"
TEMPLATES = 32  # template labs by default: the count that keeps the templates near 5 s of CPU


@dataclass(frozen=True)
class Template:
    """One template lab: its profile, tests per quarter, and each quarter's payload (site id
    TEMPLATE_SITE, sequence 1)."""

    profile: str
    tests: tuple[int, ...]
    payloads: tuple[bytes, ...]


@dataclass(frozen=True)
class Pool:
    """One profile's pool: its node database and the tests it holds in each quarter."""

    profile: str
    db: Path
    tests: int


def _test_id(profile: str, period: Period, n: int) -> str:
    return f"T-pool-{profile}-{period.label}-{n:07d}"  # as node/synth.py names them


def make_pool(root: Path, profile: str) -> Pool:
    """The node database a profile's templates are carved from: one quarter written by the node's
    own ingest from a synthetic export, then copied into the other quarters."""
    base = QUARTERS[0]
    shutil.rmtree(root, ignore_errors=True)
    cfg = node_config.init(root, "pool", "127.0.0.1:1", insecure=True)
    conn = node_store.connect(cfg.db_path)
    export = root / f"{profile}.csv"
    rows = generate(f"pool-{profile}", POOL_TESTS[profile] * ROWS_PER_TEST, 1, (profile,), base)
    write_csv(rows, export)
    ingest_file(conn, export, Pseudonymiser(cfg.pseudonym_secret()), Mapping(), worker=False)
    export.unlink()
    (tests,) = conn.execute("SELECT COUNT(DISTINCT test_id) FROM results").fetchone()
    columns = [row[1] for row in conn.execute("PRAGMA table_info(results)")]
    conn.execute("BEGIN")
    for n, period in enumerate(QUARTERS[1:], start=1):
        shift = f"+{(period.start - base.start).days} days"
        moved = {  # the same weekday mix, a quarter later; reports due after its end close on it
            "test_id": "replace(test_id, :base, :label)",
            "patient_key": f"substr(patient_key, {8 * n + 1}) || substr(patient_key, 1, {8 * n})",
            "received_date": "date(received_date, :shift)",
            "reported_date": "min(date(reported_date, :shift), :end)",
        }
        conn.execute(
            f"INSERT INTO results ({', '.join(columns)})"
            f" SELECT {', '.join(moved.get(c, c) for c in columns)} FROM results"
            " WHERE reported_date BETWEEN :start0 AND :end0",
            {
                "base": base.label,
                "label": period.label,
                "shift": shift,
                "end": period.end.isoformat(),
                "start0": base.start.isoformat(),
                "end0": base.end.isoformat(),
            },
        )
    conn.execute("COMMIT")
    conn.close()
    return Pool(profile, cfg.db_path, tests)


def volumes(rng: random.Random, quantile: float) -> tuple[int, ...]:
    """Tests per quarter of one lab whose size is at `quantile` of the labs' sizes, varying by up to
    15% between quarters."""
    size = MEDIAN_TESTS * math.exp(SIGMA * NormalDist().inv_cdf(quantile))
    return tuple(
        max(MIN_TESTS, min(MAX_TESTS, round(size * rng.uniform(0.85, 1.15)))) for _ in QUARTERS
    )


def profiles(count: int) -> list[str]:
    """The profiles of `count` labs in the shares of PROFILES (largest remainders)."""
    exact = {name: share * count for name, share in PROFILES.items()}
    counts = {name: int(x) for name, x in exact.items()}
    for name in sorted(exact, key=lambda n: counts[n] - exact[n])[: count - sum(counts.values())]:
        counts[name] += 1
    return [name for name, n in counts.items() for _ in range(n)]


@dataclass(frozen=True)
class _Spec:
    profile: str
    tests: tuple[int, ...]
    first: tuple[int, ...]  # the first pool test of each quarter


def make_templates(
    root: Path, count: int = TEMPLATES, seed: int = 17, processes: int = 2
) -> list[Template]:
    """`count` template labs (see the module's docstring): the pools, then the templates, each
    shared among `processes` processes."""
    shutil.rmtree(root, ignore_errors=True)
    with ProcessPoolExecutor(processes) as executor:
        pools = {
            p.profile: p
            for p in executor.map(make_pool, [root / f"pool-{name}" for name in PROFILES], PROFILES)
        }
        rng = random.Random(seed)
        # Sizes at evenly spread quantiles, so that a few dozen templates cover small and large
        # labs alike; the profiles in their shares, shuffled among the sizes.
        kinds = profiles(count)
        rng.shuffle(kinds)
        specs = []
        for i, kind in enumerate(kinds):
            pool = pools[kind]
            tests = tuple(min(t, pool.tests) for t in volumes(rng, (i + 0.5) / count))
            first = tuple(rng.randint(1, pool.tests - n + 1) for n in tests)
            specs.append(_Spec(kind, tests, first))
        shares = [specs[i::processes] for i in range(processes)]
        made = list(
            executor.map(
                _make,
                [root / f"template-{i}" for i in range(processes)],
                [pools] * processes,
                shares,
            )
        )
    return [made[i % processes][i // processes] for i in range(count)]


def _make(root: Path, pools: dict[str, Pool], specs: list[_Spec]) -> list[Template]:
    """The templates of `specs`, one after the other, through one node's summary code."""
    cfg = node_config.init(root, TEMPLATE_SITE, "127.0.0.1:1", insecure=True)
    standard = parse_standard(DEFAULT_STANDARD.read_text(encoding="utf-8"))
    conn = node_store.connect(cfg.db_path)
    for profile, pool in pools.items():
        conn.execute(f"ATTACH DATABASE ? AS pool_{profile}", (str(pool.db),))
    templates = []
    for spec in specs:
        payloads = []
        for period, n, first in zip(QUARTERS, spec.tests, spec.first):
            # The template's results of the quarter: a slice of the pool, seen by the node's code
            # as its `results` table (a temporary view comes first in SQLite's name lookup).
            conn.execute("DROP VIEW IF EXISTS temp.results")
            low, high = (_test_id(spec.profile, period, t) for t in (first, first + n - 1))
            conn.execute(
                f"CREATE TEMP VIEW results AS SELECT * FROM pool_{spec.profile}.results"
                f" WHERE test_id BETWEEN '{low}' AND '{high}'"
            )
            payload = summary.build(conn, cfg, standard, period, 1)[1]
            if (
                payload.count(_site_field(TEMPLATE_SITE)) != 1
                or payload.count(_sequence_field(1)) != 1
            ):
                raise AssertionError("a template payload names its site or sequence more than once")
            payloads.append(payload)
        templates.append(Template(spec.profile, spec.tests, tuple(payloads)))
    conn.close()
    return templates


def _site_field(site_id: str) -> bytes:
    return f'"site_id": "{site_id}"'.encode()


def _sequence_field(sequence: int) -> bytes:
    return f'"sequence": "{sequence}"'.encode()  # uint64: a string in the JSON mapping


def lab_payload(template_payload: bytes, site_id: str, sequence: int) -> bytes:
    """The template's payload as the lab `site_id` would sign it with this sequence number."""
    return template_payload.replace(_site_field(TEMPLATE_SITE), _site_field(site_id), 1).replace(
        _sequence_field(1), _sequence_field(sequence), 1
    )


def rows_by_quarter(db: Path) -> dict[str, int]:
    """Results of each quarter in a node database (how a pool's copies can be checked)."""
    conn = sqlite3.connect(db)
    try:
        return {
            period.label: conn.execute(
                "SELECT COUNT(*) FROM results WHERE reported_date BETWEEN ? AND ?",
                (period.start.isoformat(), period.end.isoformat()),
            ).fetchone()[0]
            for period in QUARTERS
        }
    finally:
        conn.close()
