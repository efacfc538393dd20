"""The Merkle tree of RFC 9162 (Certificate Transparency v2, section 2.1), exactly.

A leaf hashes as SHA-256(0x00 || data), an interior node as SHA-256(0x01 || left || right), and
the empty tree as SHA-256(b""). A tree of n > 1 leaves splits at k, the largest power of two
strictly smaller than n; odd nodes are never duplicated. Any RFC 9162 / RFC 6962 client can
therefore check our tree heads and proofs with its own code.

Two ways to build proofs:

* over an in-memory list of leaf hashes (``root_from_leaf_hashes``, ``inclusion_proof``,
  ``consistency_proof``): a literal transcription of the RFC's recursive definitions, kept
  simple on purpose to serve as the reference;
* over a :class:`NodeSource` that serves the hash of any complete *perfect* subtree (``tree_head``,
  ``inclusion_proof_from``, ``consistency_proof_from``): a store that saves those nodes as leaves
  arrive (see ``nodes_to_store``) answers any proof in O(log n) reads.

Every node the RFC recursion visits covers leaves [a, b) where a is a multiple of the smallest
power of two >= b - a. Such a range is either perfect, or splits into a perfect left part and a
remainder that is again such a range, so its hash is the right fold of at most log2(n) perfect
subtrees (one per set bit of b - a).

Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 and raises
:class:`MerkleProofError` instead of returning False, so a failed check cannot be ignored by
accident. Note that a proof does not commit to the tree size on its own: the size must come from
a trusted (signed) tree head, like the root.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, Sequence

from .errors import LedgerError

HASH_SIZE = 32


class MerkleProofError(LedgerError):
    """A proof does not verify, or its sizes/indices are impossible."""


def leaf_hash(data: bytes) -> bytes:
    """Hash a leaf's bytes; the 0x00 prefix keeps a leaf from passing for an interior node."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two children into their parent, with the 0x01 prefix for interior nodes."""
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2): where the RFC splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def _fail_unless(condition: bool, message: str) -> None:
    if not condition:
        raise MerkleProofError(message)


# --- Reference implementation over a list of leaf hashes -----------------------------------


def _mth(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) by the RFC's recursion."""
    if hi - lo == 0:
        return EMPTY_ROOT
    if hi - lo == 1:
        return hashes[lo]
    k = _split(hi - lo)
    return node_hash(_mth(hashes, lo, lo + k), _mth(hashes, lo + k, hi))


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """The tree head MTH(D[n]) over all the given leaf hashes (EMPTY_ROOT for none)."""
    return _mth(hashes, 0, len(hashes))


def _path(m: int, hashes: Sequence[bytes], lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]) of RFC 9162 2.1.3.1, with m an absolute leaf index."""
    if hi - lo == 1:
        return []
    k = _split(hi - lo)
    if m < lo + k:
        return _path(m, hashes, lo, lo + k) + [_mth(hashes, lo + k, hi)]
    return _path(m, hashes, lo + k, hi) + [_mth(hashes, lo, lo + k)]


def inclusion_proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path proving that leaf ``index`` is in the tree of all ``hashes``."""
    _fail_unless(0 <= index < len(hashes), f"leaf {index} is not in a tree of {len(hashes)}")
    return _path(index, hashes, 0, len(hashes))


def _subproof(m: int, hashes: Sequence[bytes], lo: int, hi: int, whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b) of RFC 9162 2.1.4.1, with m an absolute size."""
    if m == hi:
        return [] if whole else [_mth(hashes, lo, hi)]
    k = _split(hi - lo)
    if m - lo <= k:
        return _subproof(m, hashes, lo, lo + k, whole) + [_mth(hashes, lo + k, hi)]
    return _subproof(m, hashes, lo + k, hi, False) + [_mth(hashes, lo, lo + k)]


def _check_consistency_sizes(size1: int, size2: int) -> None:
    _fail_unless(size1 >= 0 and size2 >= 0, f"negative tree size: {size1}, {size2}")
    _fail_unless(size1 <= size2, f"size1 {size1} exceeds size2 {size2}: a log never shrinks")
    _fail_unless(size1 > 0, "a consistency proof from the empty tree is meaningless")


def consistency_proof(hashes: Sequence[bytes], size1: int) -> list[bytes]:
    """PROOF(size1, D[n]) of RFC 9162 2.1.4: the tree of all ``hashes`` extends its first size1."""
    _check_consistency_sizes(size1, len(hashes))
    return _subproof(size1, hashes, 0, len(hashes), True)


# --- Storage-backed form -------------------------------------------------------------------


class NodeSource(Protocol):
    """Whatever serves the hashes of complete perfect subtrees (a database table, a list...)."""

    def perfect(self, level: int, index: int) -> bytes:
        """Hash of the 2**level leaves starting at leaf index * 2**level (level 0: leaf hashes)."""
        ...


def _range_hash(source: NodeSource, lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) for a range the RFC recursion visits, from <= log2(n) perfect subtrees."""
    parts: list[bytes] = []
    width = hi - lo
    for level in reversed(range(width.bit_length())):
        if width >> level & 1:
            parts.append(source.perfect(level, lo >> level))
            lo += 1 << level
    result = parts.pop()
    while parts:
        result = node_hash(parts.pop(), result)
    return result


def tree_head(source: NodeSource, size: int) -> bytes:
    """The tree head of the first ``size`` leaves, in popcount(size) reads of ``source``."""
    _fail_unless(size >= 0, f"negative tree size {size}")
    return _range_hash(source, 0, size) if size else EMPTY_ROOT


def inclusion_proof_from(source: NodeSource, size: int, index: int) -> list[bytes]:
    """Same as ``inclusion_proof`` for the first ``size`` leaves, in O(log n) reads.

    Only one sibling on the way down can be imperfect (the first one right of the path while
    it follows the tree's right edge), so the reads stay below 2 * log2(size) + 1.
    """
    _fail_unless(0 <= index < size, f"leaf {index} is not in a tree of {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            proof.append(_range_hash(source, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_range_hash(source, lo, lo + k))
            lo += k
    proof.reverse()
    return proof


def consistency_proof_from(source: NodeSource, size1: int, size2: int) -> list[bytes]:
    """Same as ``consistency_proof`` between sizes ``size1`` and ``size2``, in O(log n) reads."""
    _check_consistency_sizes(size1, size2)
    proof: list[bytes] = []
    lo, hi, whole = 0, size2, True
    while size1 != hi:
        k = _split(hi - lo)
        if size1 - lo <= k:
            proof.append(_range_hash(source, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_range_hash(source, lo, lo + k))
            lo, whole = lo + k, False
    if not whole:
        proof.append(_range_hash(source, lo, hi))
    proof.reverse()
    return proof


def nodes_to_store(
    size_before: int, leaf: bytes, source: NodeSource
) -> list[tuple[int, int, bytes]]:
    """The (level, index, hash) of each perfect subtree completed by appending leaf ``size_before``.

    Level 0 (the leaf itself) comes first, then one node per trailing 1 bit of ``size_before``;
    each reads its left sibling, already complete and stored, through ``source``. A store that
    saves all of them can serve ``perfect()`` for every complete subtree.
    """
    _fail_unless(size_before >= 0, f"negative tree size {size_before}")
    if len(leaf) != HASH_SIZE:
        raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf)}: hash it first")
    nodes = [(0, size_before, leaf)]
    level, index, value = 0, size_before, leaf
    while index & 1:
        value = node_hash(source.perfect(level, index - 1), value)
        level, index = level + 1, index >> 1
        nodes.append((level, index, value))
    return nodes


class ListSource:
    """A NodeSource over an in-memory, append-only list of leaf hashes.

    Interior nodes are computed on first use and cached; used by tests and the offline verifier.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self._leaves = leaf_hashes
        self._cache: dict[tuple[int, int], bytes] = {}

    def perfect(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree (level, index); it must lie within the list."""
        _fail_unless(
            level >= 0 and index >= 0 and (index + 1) << level <= len(self._leaves),
            f"no complete subtree ({level}, {index}) among {len(self._leaves)} leaves",
        )
        if level == 0:
            return self._leaves[index]
        value = self._cache.get((level, index))
        if value is None:
            left = self.perfect(level - 1, 2 * index)
            value = node_hash(left, self.perfect(level - 1, 2 * index + 1))
            self._cache[(level, index)] = value
        return value


class Frontier:
    """The right edge of a growing tree: the roots of the perfect subtrees that make up its
    first ``size`` leaves, one per set bit of ``size``, largest first.

    That is all an append needs (the left siblings it merges with are exactly these roots)
    and all the tree head needs, so the journal keeps it on the chain head and appends
    without reading the stored nodes.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != bin(size).count("1"):
            raise ValueError(f"a frontier of {size} leaves holds {bin(size).count('1')} hashes")
        self.size = size
        self.hashes = list(hashes)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> Frontier:
        """Read a frontier stored as its hashes, concatenated."""
        if len(blob) % HASH_SIZE:
            raise ValueError("a stored frontier is a whole number of hashes")
        return cls(size, [blob[i:i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)])

    def to_bytes(self) -> bytes:
        return b"".join(self.hashes)

    def perfect(self, level: int, index: int) -> bytes:
        """The frontier's subtree at ``level``; ``index`` must be where it stands."""
        position, start = 0, 0
        for bit in reversed(range(self.size.bit_length())):
            if self.size >> bit & 1:
                if bit == level and start == index << level:
                    return self.hashes[position]
                position += 1
                start += 1 << bit
        raise MerkleProofError(f"({level}, {index}) is not on the frontier of {self.size} leaves")

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash; return the (level, index, hash) of every subtree it completes."""
        nodes = nodes_to_store(self.size, leaf, self)
        merged = len(nodes) - 1
        if merged:
            del self.hashes[-merged:]
        self.hashes.append(nodes[-1][2])
        self.size += 1
        return nodes

    def join(self, height: int, root: bytes) -> None:
        """Append a perfect subtree of ``2**height`` leaves, given its root, where the tree's
        size is a multiple of ``2**height``: it merges with the frontier as a leaf does, a
        level up (the offline verifier joins one subtree per chunk of entries)."""
        if height < 0 or self.size & ((1 << height) - 1):
            raise ValueError(f"a subtree of 2**{height} leaves cannot start at leaf {self.size}")
        merged = self.size >> height
        while merged & 1:
            root = node_hash(self.hashes.pop(), root)
            merged >>= 1
        self.hashes.append(root)
        self.size += 1 << height

    def root(self) -> bytes:
        """The tree head (MTH) of the leaves so far."""
        if not self.hashes:
            return EMPTY_ROOT
        result = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            result = node_hash(left, result)
        return result


# --- Verification --------------------------------------------------------------------------


def _check_hash_sizes(proof: Sequence[bytes]) -> None:
    for position, element in enumerate(proof):
        _fail_unless(
            len(element) == HASH_SIZE,
            f"proof element {position} is {len(element)} bytes, not {HASH_SIZE}",
        )


def _inner_and_border(index: int, size: int) -> tuple[int, int]:
    """Split the audit path of leaf ``index`` (size > index) where it meets the right edge.

    ``inner`` hashes lie below the level where the paths to ``index`` and ``size - 1`` meet;
    ``border`` hashes, one per 1 bit of the rest of the index, are left siblings above it.
    """
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``leaf_index`` of the tree of ``tree_size`` with ``root``.

    RFC 9162 2.1.3.2. Returns None on success, raises MerkleProofError otherwise.
    """
    _fail_unless(leaf_index >= 0, f"negative leaf index {leaf_index}")
    _fail_unless(leaf_index < tree_size, f"leaf {leaf_index} is not in a tree of {tree_size}")
    _fail_unless(
        len(leaf_hash) == HASH_SIZE, f"leaf hash is {len(leaf_hash)} bytes, not {HASH_SIZE}"
    )
    _check_hash_sizes(proof)
    want = sum(_inner_and_border(leaf_index, tree_size))
    _fail_unless(
        len(proof) == want,
        f"an inclusion proof for leaf {leaf_index} of {tree_size} has {want} hashes,"
        f" not {len(proof)}",
    )
    fn, sn, r = leaf_index, tree_size - 1, leaf_hash
    for p in proof:
        _fail_unless(sn > 0, "inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    _fail_unless(sn == 0, "inclusion proof is too short")
    _fail_unless(r == root, f"inclusion proof for leaf {leaf_index} does not lead to the root")


def _consistency_length(size1: int, size2: int) -> int:
    """Hashes in the proof between 0 < size1 < size2."""
    inner, border = _inner_and_border(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # level of size1's rightmost perfect subtree
    return (0 if size1 == 1 << shift else 1) + inner - shift + border


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``size2`` with ``root2`` extends the tree of ``size1`` with ``root1``.

    RFC 9162 2.1.4.2 for 0 < size1 < size2. Equal sizes need an empty proof and equal roots; a
    proof from size 0 is refused, as it would prove nothing. Raises MerkleProofError on failure.
    """
    _check_consistency_sizes(size1, size2)
    if size1 == size2:
        _fail_unless(not proof, f"equal sizes need an empty proof, not {len(proof)} hashes")
        _fail_unless(root1 == root2, f"two different roots for tree size {size1}: a fork")
        return
    _check_hash_sizes(proof)
    want = _consistency_length(size1, size2)
    _fail_unless(
        len(proof) == want,
        f"a consistency proof from {size1} to {size2} has {want} hashes, not {len(proof)}",
    )
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        _fail_unless(sn > 0, "consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    _fail_unless(sn == 0, "consistency proof is too short")
    _fail_unless(fr == root1, f"consistency proof does not lead to the root of size {size1}")
    _fail_unless(sr == root2, f"consistency proof does not lead to the root of size {size2}")
