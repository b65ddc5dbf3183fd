"""The ledger's RFC 9162 proofs, checked against a straightforward recomputation and against
published known-answer vectors."""

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protos import merkle
from protos.errors import ProofError


def naive_root(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 section 2.1.1 defines it, no caching, no cleverness."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_root(leaves[:k]) + naive_root(leaves[k:])).digest()


def data(n: int) -> list[bytes]:
    return [f"envelope {i}".encode() for i in range(n)]


def tree_of(n: int) -> merkle.Tree:
    return merkle.Tree([merkle.leaf_hash(d) for d in data(n)])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100])
def test_root_matches_rfc_definition(n: int) -> None:
    assert tree_of(n).root() == naive_root(data(n))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_inclusion_proofs_verify_for_every_size(case) -> None:
    n, index = case
    tree = tree_of(n)
    root = naive_root(data(n))
    proof = tree.inclusion_proof(index, n)
    merkle.verify_inclusion(merkle.leaf_hash(data(n)[index]), index, n, proof, root)
    other = merkle.leaf_hash(b"forged")
    with pytest.raises(ProofError):
        merkle.verify_inclusion(other, index, n, proof, root)
    if proof:
        broken = list(proof)
        broken[0] = bytes(32)
        with pytest.raises(ProofError):
            merkle.verify_inclusion(merkle.leaf_hash(data(n)[index]), index, n, broken, root)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_consistency_proofs_verify_for_every_pair_of_sizes(case) -> None:
    m, n = case
    tree = tree_of(n)
    proof = tree.consistency_proof(m, n)
    merkle.verify_consistency(m, n, naive_root(data(m)), naive_root(data(n)), proof)
    # A log that rewrote an early entry is not consistent with what it signed before.
    rewritten = data(n)
    rewritten[0] = b"rewritten"
    forged = merkle.Tree([merkle.leaf_hash(d) for d in rewritten])
    if m < n:
        with pytest.raises(ProofError):
            merkle.verify_consistency(
                m, n, naive_root(data(m)), forged.root(), forged.consistency_proof(m, n)
            )


def test_shrunk_or_forked_log_is_detected() -> None:
    with pytest.raises(ProofError, match="shrank"):
        merkle.verify_consistency(5, 4, naive_root(data(5)), naive_root(data(4)), [])
    with pytest.raises(ProofError, match="forked"):
        merkle.verify_consistency(4, 4, naive_root(data(4)), naive_root(data(3) + [b"x"]), [])


def test_root_if_appended_does_not_change_the_tree_or_its_cache() -> None:
    tree = tree_of(7)
    tree.root()
    probe = tree.root_if_appended(merkle.leaf_hash(b"maybe"))
    assert len(tree) == 7
    assert probe == naive_root(data(7) + [b"maybe"])
    tree.append(merkle.leaf_hash(b"actually"))
    assert tree.root() == naive_root(data(7) + [b"actually"])


# Known-answer vectors: RFC 6962 / RFC 9162 proofs from transparency-dev/merkle (Apache-2.0),
# copied unchanged into tests/fixtures/transparency-dev-merkle/ (see SOURCE.md there).
VECTORS = Path(__file__).parent / "fixtures" / "transparency-dev-merkle"


def _vectors(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def test_roots_match_the_published_known_answers() -> None:
    known = json.loads((VECTORS / "roots.json").read_text())
    leaves = [bytes.fromhex(x) for x in known["leaf_inputs_hex"]]
    tree = merkle.Tree([merkle.leaf_hash(d) for d in leaves])
    for size, root in enumerate(known["root_hashes_hex_by_size"]):
        assert tree.root(size).hex() == root, size
        assert naive_root(leaves[:size]).hex() == root, size
    assert len(known["root_hashes_hex_by_size"]) == 9


def test_there_are_enough_published_vectors_to_mean_something() -> None:
    inclusion, consistency = _vectors("inclusion"), _vectors("consistency")
    assert len(inclusion) == 98 and len(consistency) == 98
    wanted = [json.loads(p.read_text())["wantErr"] for p in inclusion + consistency]
    assert wanted.count(False) >= 10 and wanted.count(True) >= 150


@pytest.mark.parametrize("path", _vectors("inclusion"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_inclusion_known_answers(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        _b64(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        [_b64(h) for h in case["proof"] or []],
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _vectors("consistency"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_consistency_known_answers(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        case["size1"],
        case["size2"],
        _b64(case["root1"]),
        _b64(case["root2"]),
        [_b64(h) for h in case["proof"] or []],
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)
