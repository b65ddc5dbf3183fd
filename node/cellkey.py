"""Cell-key perturbation: bounded, consistent noise on every released count.

Each record (a result, a per-test call, a test, a patient) has a secret record key: the first 32
bits of the patient's keyed hash (HMAC-SHA256 with the site secret, made at ingest) plus the CRCs
of what identifies the counted unit (test id and biomarker for results, per-test calls and VAFs;
test id for tests), never of the table it is counted in. Nobody without the site secret can
compute it. A cell's key is the sum of its records' keys modulo 2^32, mixed, so the same set of
records always has the same key, wherever it appears: per method and per test in a lab that runs
one method (twin cells), the VAF bin that holds all of a stratum's positives, a merged stratum
that holds exactly the records of another cell, the same quarter built twice.

Key schemes (summary.proto Perturbation.key_scheme): NAMED_TABLES (0), the scheme before twin
cells were found, also added the CRC of the method (per-method results) or of "all" (per-test
calls), so that twins drew independent noise; COUNTED_UNITS (1) does not. A period keeps the
scheme it was first released with (node/send.py), or its next version would be a second,
independent draw of every cell. The noise of a cell is read from the public perturbation table below at its true
count and its key: the same records always get the same noise (nothing to average away by asking
again), and a difference of two cells with different records is noisy.

References: Fraser & Wooton, UNECE work session on statistical confidentiality 2005; Thompson,
Broadfoot & Elazar, UNECE 2013 (ABS TableBuilder); the sdcTools `ptable` and `cellKey` packages.
The table is documented, with the same numbers, in protos/rarenet/v1/summary.proto.
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import accumulate

from node.errors import NodeError
from protos.rarenet.v1 import summary_pb2 as pb

MODULUS = 1 << 32
TABLE = "rarenet-ptable-1"
NAMED_TABLES = 0  # record keys named the method or "all": twin cells drew independent noise
COUNTED_UNITS = 1  # record keys name the counted unit only: twin cells share their noise
KEY_SCHEME = COUNTED_UNITS  # for periods not released yet
MAX_NOISE = 2
Rows = dict[int, tuple[tuple[int, ...], tuple[float, ...]]]
# True count -> (noise values, their probabilities); 3 or more: the last row. A zero stays zero and
# a count is never released as zero (the rare-signal rule); a released 1 may be a true 1, 2 or 3.
TABLE_ROWS: Rows = {
    0: ((0,), (1.0,)),
    1: ((0, 1, 2), (0.6, 0.3, 0.1)),
    2: ((-1, 0, 1), (0.3, 0.4, 0.3)),
    3: ((-2, -1, 0, 1, 2), (0.1, 0.2, 0.4, 0.2, 0.1)),
}
# A zero in a linked cell (a stratum that, with its released siblings, would give a withheld or
# merged stratum by subtraction): not kept exact, or a sibling's exact 0 and this cell's 1 would
# prove the withheld stratum holds a result. A true 0 is released as 0, 1 or 2; a released 0 is
# still a true 0 (a non-zero count is never released as 0).
LINKED_ZERO: tuple[tuple[int, ...], tuple[float, ...]] = ((0, 1, 2), (0.4, 0.4, 0.2))
_CUMULATIVE = {n: tuple(accumulate(p))[:-1] for n, (_, p) in TABLE_ROWS.items()}
_LINKED_ZERO_CUMULATIVE = tuple(accumulate(LINKED_ZERO[1]))[:-1]


def noise_variance() -> float:
    values, probabilities = TABLE_ROWS[3]
    return sum(p * v * v for v, p in zip(values, probabilities, strict=True))


def policy(key_scheme: int = KEY_SCHEME) -> pb.Perturbation:
    return pb.Perturbation(
        mechanism="cell_key",
        table=TABLE,
        max_noise=MAX_NOISE,
        noise_variance=noise_variance(),
        zero_exact=True,
        key_scheme=key_scheme,
    )


def check_key_scheme(key_scheme: int) -> int:
    """`key_scheme` if this node knows it (a period released by a newer node may not be)."""
    if key_scheme not in (NAMED_TABLES, COUNTED_UNITS):
        raise NodeError(
            f"record key scheme {key_scheme} is not known to this node (it knows "
            f"{NAMED_TABLES} and {COUNTED_UNITS}): upgrade rarenet-node before releasing the period"
        )
    return key_scheme


def patient_part(patient_key: str) -> int:
    """The secret part of every record key of a patient (its keyed hash is hex)."""
    return int(patient_key[:8], 16)


def name_key(name: str) -> int:
    """The public part of a record key contributed by one of its names (a test id, a biomarker,
    a method, a table): its CRC-32."""
    return zlib.crc32(name.encode("utf-8"))


def record_key(patient: int, *names: str) -> int:
    """The key of one record: the patient's secret part plus its names' keys (not reduced: cell
    keys are sums, reduced once in `noise`). Under COUNTED_UNITS the names are the test id and the
    biomarker (or the test id alone for a test), under NAMED_TABLES also the method or "all".
    node/metrics.py adds the same terms inline."""
    return patient + sum(name_key(n) for n in names)


def _mix(key: int) -> int:
    """A mix of the 32-bit cell key (the splitmix64 finaliser, truncated): two cells whose keys
    differ by a known amount (the same patients in the panel and a tissue-plasma table; under
    NAMED_TABLES the same tests per method and per test) get unrelated noise, since the secret patient parts make the key itself
    uniform and unknown."""
    x = (key * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) >> 32


def noise(count: int, key: int) -> int:
    """The perturbation of a cell of true `count` whose cell key is `key` (any integer: the sum of
    its records' keys; it is reduced modulo 2^32 here)."""
    row = min(max(count, 0), 3)
    u = _mix(key % MODULUS) / MODULUS
    return TABLE_ROWS[row][0][bisect_right(_CUMULATIVE[row], u)]


def perturb(count: int, key: int) -> int:
    return count + noise(count, key)


def perturb_linked_zero(key: int) -> int:
    """A true 0 in a linked cell, released as 0, 1 or 2 (LINKED_ZERO). `key` must be secret and
    not 0 (an empty cell has no records: use its stratum's other records' keys)."""
    u = _mix(key % MODULUS) / MODULUS
    return LINKED_ZERO[0][bisect_right(_LINKED_ZERO_CUMULATIVE, u)]


def _cells(n: int) -> defaultdict[object, list[int]]:
    return defaultdict(lambda: [0] * n)


@dataclass
class CellKeys:
    """The cell key of every count node/metrics.py computes (sums of record keys, not yet reduced
    modulo 2^32), indexed like the counts themselves."""

    # (biomarker, method or "all", specimen) -> keys of positive, negative, failed, equivocal
    strata: defaultdict = field(default_factory=lambda: _cells(4))
    # inter-method (biomarker, index, comparator) -> keys of the five concordance cells
    pairs: defaultdict = field(default_factory=lambda: _cells(5))
    tissue_plasma: defaultdict = field(default_factory=lambda: _cells(5))  # biomarker -> 5 keys
    turnaround: defaultdict = field(default_factory=lambda: _cells(64))  # specimen -> bin keys
    # specimen -> keys of its failed and succeeded tests (node/metrics.py FAILED, SUCCEEDED)
    specimen_tests: defaultdict = field(default_factory=lambda: _cells(2))
    # VAF by (biomarker, method, specimen), like the strata, so that a histogram can be built from
    # released strata only: bin keys, bin counts, and the edges the bins were counted with
    vaf: defaultdict = field(default_factory=lambda: _cells(64))
    vaf_counts: defaultdict = field(default_factory=lambda: _cells(64))
    vaf_edges: tuple[float, ...] = ()
    panel_patients: int = 0
    panel_all: int = 0
    panel_biomarkers: dict[str, int] = field(default_factory=dict)
    key_scheme: int = KEY_SCHEME  # how the record keys above were made
