"""Quarterly summaries for a national network, made fast and through the node's own code.

A few hundred template labs of varied volume and profile (normal, DNA-only panel, slow, failing
cytology) each get four quarters of results and a summary per quarter from node/summary.py (metrics,
disclosure control, payload encoding). Their rows are carved out of one pool per profile and
quarter, which the node's own ingest wrote from synthetic exports (node/synth.py), so a template
costs a copy inside SQLite and four summaries rather than a synthetic export each. Every lab of
the network then takes a template's payloads with its own site id and sequence numbers put in, and
signs them with its own key: byte for byte what `rarenet-node summarize --json` of such a lab gives.
"""

from __future__ import annotations

import math
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

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
# Share of labs with each profile, and the pool of tests per quarter each template is carved from.
PROFILES = {"normal": 0.82, "dna_only": 0.08, "slow": 0.05, "failing_cytology": 0.05}
POOL_TESTS = {"normal": 6000, "dna_only": 2400, "slow": 2400, "failing_cytology": 2400}
ROWS_PER_TEST = 12  # about 11 biomarkers a test, with some IHC/FISH and plasma follow-ups
# Tests a lab reports in a quarter: log-normal around 300 (a few dozen to two thousand).
MEDIAN_TESTS, SIGMA, MIN_TESTS, MAX_TESTS = 300, 0.8, 30, 2000
TEMPLATE_SITE = "template"


@dataclass(frozen=True)
class Template:
    """One template lab: its profile, tests per quarter, and each quarter's payload (site id
    TEMPLATE_SITE, sequence 1)."""

    profile: str
    tests: tuple[int, ...]
    payloads: tuple[bytes, ...]


def _test_id(profile: str, period: Period, n: int) -> str:
    return f"T-pool-{profile}-{period.label}-{n:07d}"  # as node/synth.py names them


def make_pool(root: Path) -> Path:
    """The node database every template is carved from, written by the node's own ingest (kept
    for later runs: it is the same every time)."""
    done = root / "complete"
    if done.exists():
        return root / "node.db"
    shutil.rmtree(root, ignore_errors=True)
    cfg = node_config.init(root, "pool", "127.0.0.1:1", insecure=True)
    conn = node_store.connect(cfg.db_path)
    pseudonymise = Pseudonymiser(cfg.pseudonym_secret())
    for profile, tests in POOL_TESTS.items():
        for period in QUARTERS:
            export = root / f"{profile}-{period.label}.csv"
            write_csv(
                generate(f"pool-{profile}", tests * ROWS_PER_TEST, 1, (profile,), period), export
            )
            ingest_file(conn, export, pseudonymise, Mapping())
            export.unlink()
    conn.close()
    done.touch()
    return cfg.db_path


def volumes(rng: random.Random) -> tuple[int, ...]:
    """Tests per quarter of one lab: a size of its own, varying by up to 15% between quarters."""
    size = MEDIAN_TESTS * math.exp(rng.gauss(0, SIGMA))
    return tuple(
        max(MIN_TESTS, min(MAX_TESTS, round(size * rng.uniform(0.85, 1.15)))) for _ in QUARTERS
    )


@dataclass(frozen=True)
class _Spec:
    profile: str
    tests: tuple[int, ...]
    first: tuple[int, ...]  # the first pool test of each quarter


def make_templates(root: Path, count: int, seed: int = 17, processes: int = 2) -> list[Template]:
    """`count` template labs (see the module's docstring), made in `processes` processes."""
    pool = make_pool(root / "pool")
    rng = random.Random(seed)
    names, weights = list(PROFILES), list(PROFILES.values())
    specs = []
    for _ in range(count):
        profile = rng.choices(names, weights)[0]
        tests = tuple(min(t, POOL_TESTS[profile] // 2) for t in volumes(rng))
        first = tuple(rng.randint(1, POOL_TESTS[profile] - n) for n in tests)
        specs.append(_Spec(profile, tests, first))
    shares = [specs[i::processes] for i in range(processes)]
    with ProcessPoolExecutor(processes) as executor:
        made = list(
            executor.map(
                _make,
                [root / f"template-{i}" for i in range(processes)],
                [pool] * processes,
                shares,
            )
        )
    return [made[i % processes][i // processes] for i in range(count)]


def _make(root: Path, pool: Path, specs: list[_Spec]) -> list[Template]:
    """The templates of `specs`, one after the other in one node database."""
    shutil.rmtree(root, ignore_errors=True)
    cfg = node_config.init(root, TEMPLATE_SITE, "127.0.0.1:1", insecure=True)
    standard = parse_standard(DEFAULT_STANDARD.read_text(encoding="utf-8"))
    conn = node_store.connect(cfg.db_path)
    conn.execute("ATTACH DATABASE ? AS pool", (str(pool),))
    templates = []
    for spec in specs:
        conn.execute("BEGIN")
        conn.execute("DELETE FROM results")
        for period, n, first in zip(QUARTERS, spec.tests, spec.first):
            conn.execute(
                "INSERT INTO results SELECT * FROM pool.results WHERE test_id BETWEEN ? AND ?",
                (
                    _test_id(spec.profile, period, first),
                    _test_id(spec.profile, period, first + n - 1),
                ),
            )
        conn.execute("COMMIT")
        payloads = tuple(summary.build(conn, cfg, standard, p, 1)[1] for p in QUARTERS)
        for payload in payloads:
            if (
                payload.count(_site_field(TEMPLATE_SITE)) != 1
                or payload.count(_sequence_field(1)) != 1
            ):
                raise AssertionError("a template payload names its site or sequence more than once")
        templates.append(Template(spec.profile, spec.tests, payloads))
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
