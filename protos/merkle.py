"""The ledger's Merkle tree, hashed and proved as in RFC 9162 (Certificate Transparency v2).

    leaf hash = SHA-256(0x00 || data)        node hash = SHA-256(0x01 || left || right)

`Tree` keeps the leaf hashes and caches every complete power-of-two subtree it has hashed (those
never change in an append-only tree), so roots and proofs after the first cost O(log n) hashes.
`verify_inclusion` and `verify_consistency` are the RFC 9162 section 2.1.3.2 / 2.1.4.2
algorithms, used by nodes and auditors; they need nothing but the proof and the hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from protos.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Tree:
    """An append-only list of leaf hashes with RFC 9162 roots and proofs."""

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self._leaves: list[bytes] = list(leaf_hashes)
        self._complete: dict[tuple[int, int], bytes] = {}
        self._committed = len(self._leaves)  # only subtrees of committed leaves are cached

    def __len__(self) -> int:
        return len(self._leaves)

    def append(self, leaf: bytes) -> int:
        """Append a leaf hash; returns its index."""
        self._leaves.append(leaf)
        self._committed = len(self._leaves)
        return len(self._leaves) - 1

    def root_if_appended(self, *leaves: bytes) -> bytes:
        """The root the tree would have with these leaves appended, leaving the tree as it is."""
        size = len(self._leaves)
        self._leaves.extend(leaves)
        try:
            return self._hash(0, len(self._leaves))
        finally:
            del self._leaves[size:]

    def leaf(self, index: int) -> bytes:
        return self._leaves[index]

    def root(self, size: int | None = None) -> bytes:
        size = len(self._leaves) if size is None else size
        self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = len(self._leaves) if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ProofError(f"leaf {index} is not in a tree of size {size}")
        return self._path(index, 0, size)

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        second = len(self._leaves) if second is None else second
        self._check_size(second)
        if not 0 < first <= second:
            raise ProofError(f"no consistency proof from size {first} to size {second}")
        return self._subproof(first, 0, second, True)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= len(self._leaves):
            raise ProofError(f"tree size {size} is beyond the ledger's {len(self._leaves)} leaves")

    def _hash(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 1:
            return self._leaves[lo]
        complete = n & (n - 1) == 0 and hi <= self._committed
        if complete and (lo, hi) in self._complete:
            return self._complete[(lo, hi)]
        k = _split(n)
        value = node_hash(self._hash(lo, lo + k), self._hash(lo + k, hi))
        if complete:
            self._complete[(lo, hi)] = value
        return value

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return self._path(m, lo, lo + k) + [self._hash(lo + k, hi)]
        return self._path(m - k, lo + k, hi) + [self._hash(lo, lo + k)]

    def _subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if whole else [self._hash(lo, hi)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, lo, lo + k, whole) + [self._hash(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self._hash(lo, lo + k)]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2; raises ProofError unless leaf is at index in the tree of that size and root."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf)}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree allows")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree needs")
    if r != root:
        raise ProofError(
            f"inclusion proof for leaf {index} does not lead to the signed root of size {size}"
        )


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2; raises ProofError unless the tree of size `second` extends the tree of size `first`."""
    if first > second:
        raise ProofError(f"the log shrank: size {second} is smaller than the earlier size {first}")
    if first == 0:
        raise ProofError(
            "a consistency proof from the empty tree proves nothing (every tree extends it); "
            "check from the first non-empty size seen"
        )
    if first == second:
        if proof or first_root != second_root:
            raise ProofError(f"two different roots for the same tree size {first}: the log forked")
        return
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    if not path:
        raise ProofError("empty consistency proof")
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the trees allow")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != first_root or sr != second_root:
        raise ProofError(
            f"the log of size {second} is not an extension of the log of size {first}: "
            "it was rewritten or forked"
        )
