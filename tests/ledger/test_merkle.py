"""ledger.merkle against the RFC 9162 test vectors, plus properties of its proofs and store."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import math
import os
import random
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ledger.merkle as merkle_module
from ledger.errors import LedgerError
from ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    ListSource,
    MerkleProofError,
    consistency_proof,
    consistency_proof_from,
    inclusion_proof,
    inclusion_proof_from,
    leaf_hash,
    node_hash,
    nodes_to_store,
    root_from_leaf_hashes,
    tree_head,
    verify_consistency,
    verify_inclusion,
)


def _testdata_dir() -> Path:
    """The RFC 9162 vectors of transparency-dev/merkle, kept in this repository with their
    licence (``tests/testdata/merkle``); ``CARBON_MERKLE_TESTDATA`` points elsewhere."""
    override = os.environ.get("CARBON_MERKLE_TESTDATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "testdata" / "merkle"


TESTDATA = _testdata_dir()


def needs_testdata(test: Any) -> Any:
    """The vectors are part of the repository: missing, the test fails rather than skips."""
    return test

MAX_SIZE = 3000
LEAVES = [leaf_hash(b"leaf %d" % i) for i in range(MAX_SIZE)]
SOURCE = ListSource(LEAVES)  # perfect subtrees do not depend on the tree size: one serves all


def _vector_files(kind: str) -> list[Any]:
    """One pytest param per JSON file under ``kind``/, or a single skipped one without data."""
    if not TESTDATA.is_dir():
        return [pytest.param(None, id=f"{kind}-missing", marks=pytest.mark.skip(reason=MISSING))]
    files = sorted((TESTDATA / kind).rglob("*.json"))
    return [pytest.param(path, id=path.relative_to(TESTDATA).as_posix()) for path in files]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value, validate=True) if value else b""


def _b64_list(values: list[str | None] | None) -> list[bytes]:
    return [_b64(value) for value in values or []]


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _verifies(check: Callable[..., None], *args: Any) -> bool:
    try:
        check(*args)
    except MerkleProofError:
        return False
    return True


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


# --- The module stays pure -----------------------------------------------------------------


def test_merkle_imports_only_the_standard_library_and_ledger_errors() -> None:
    tree = ast.parse(Path(merkle_module.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    assert imported <= {"__future__", "hashlib", "base64", "typing", ".errors"}, imported
    assert issubclass(MerkleProofError, LedgerError)


# --- RFC 9162 test vectors -----------------------------------------------------------------


@needs_testdata
def test_vector_folders_are_populated() -> None:
    for kind in ("inclusion", "consistency"):
        assert list((TESTDATA / kind).rglob("*.json")), f"no vectors under {TESTDATA / kind}"


@pytest.mark.parametrize("path", _vector_files("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    v = _load(path)
    args = (v["leafIdx"], v["treeSize"], _b64(v.get("leafHash")), _b64_list(v.get("proof")))
    if v["wantErr"]:
        with pytest.raises(MerkleProofError):
            verify_inclusion(*args, _b64(v.get("root")))
    else:
        verify_inclusion(*args, _b64(v.get("root")))


@pytest.mark.parametrize("path", _vector_files("consistency"))
def test_consistency_vector(path: Path) -> None:
    v = _load(path)
    args = (v["size1"], v["size2"], _b64(v.get("root1")), _b64(v.get("root2")))
    if v["wantErr"]:
        with pytest.raises(MerkleProofError):
            verify_consistency(*args, _b64_list(v.get("proof")))
    else:
        verify_consistency(*args, _b64_list(v.get("proof")))


def _reference() -> tuple[list[bytes], list[bytes]]:
    ref = _load(TESTDATA / "reference-tree.json")
    # The file holds leaves and roots only; if proofs ever appear, this test must learn them.
    assert not [key for key in ref if "proof" in key.lower()], sorted(ref)
    leaves = [leaf_hash(bytes.fromhex(data)) for data in ref["leaf_inputs_hex"]]
    return leaves, [bytes.fromhex(root) for root in ref["root_hex_by_size"]]


@needs_testdata
def test_reference_tree_heads() -> None:
    leaves, roots = _reference()
    assert len(leaves) == 8 and len(roots) == 9
    assert roots[0] == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for size, root in enumerate(roots):
        assert root_from_leaf_hashes(leaves[:size]) == root, size
        assert tree_head(ListSource(leaves), size) == root, size


@needs_testdata
def test_proofs_for_reference_leaves_verify_against_reference_roots() -> None:
    leaves, roots = _reference()
    source = ListSource(leaves)
    for size in range(1, 9):
        for index in range(size):
            proof = inclusion_proof(leaves[:size], index)
            assert proof == inclusion_proof_from(source, size, index)
            verify_inclusion(index, size, leaves[index], proof, roots[size])
        for size1 in range(1, size + 1):
            proof = consistency_proof(leaves[:size], size1)
            assert proof == consistency_proof_from(source, size1, size)
            verify_consistency(size1, size, roots[size1], roots[size], proof)


@needs_testdata
def test_generated_proofs_match_the_vectors_happy_paths() -> None:
    """A passing vector over the reference tree holds the very proof we must produce."""
    leaves, roots = _reference()
    checked = set()
    for path in sorted((TESTDATA / "inclusion").rglob("*.json")):
        v = _load(path)
        size = v["treeSize"]
        if not v["wantErr"] and size <= 8 and _b64(v["root"]) == roots[size]:
            assert _b64(v["leafHash"]) == leaves[v["leafIdx"]], path
            assert inclusion_proof(leaves[:size], v["leafIdx"]) == _b64_list(v["proof"]), path
            checked.add(path)
    for path in sorted((TESTDATA / "consistency").rglob("*.json")):
        v = _load(path)
        size1, size2 = v["size1"], v["size2"]
        if not v["wantErr"] and size2 <= 8 and _b64(v["root2"]) == roots[size2]:
            assert _b64(v["root1"]) == roots[size1], path
            assert consistency_proof(leaves[:size2], size1) == _b64_list(v["proof"]), path
            checked.add(path)
    happy = set(TESTDATA.glob("*/[0-9]*/happy-path.json"))
    assert happy and happy <= checked, sorted(map(str, happy - checked))


# --- Examples ------------------------------------------------------------------------------


def test_hash_domains() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert root_from_leaf_hashes([]) == EMPTY_ROOT == tree_head(ListSource([]), 0)


def test_no_duplication_of_odd_nodes() -> None:
    a, b, c = (leaf_hash(bytes([i])) for i in range(3))
    assert root_from_leaf_hashes([a, b, c]) == node_hash(node_hash(a, b), c)
    assert inclusion_proof([a, b, c], 2) == [node_hash(a, b)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: inclusion_proof([], 0),
        lambda: inclusion_proof(LEAVES[:3], 3),
        lambda: inclusion_proof(LEAVES[:3], -1),
        lambda: inclusion_proof_from(SOURCE, 3, 3),
        lambda: consistency_proof(LEAVES[:3], 0),
        lambda: consistency_proof(LEAVES[:3], 4),
        lambda: consistency_proof_from(SOURCE, 0, 0),
        lambda: consistency_proof_from(SOURCE, 5, 4),
        lambda: tree_head(SOURCE, -1),
        lambda: ListSource(LEAVES[:3]).perfect(1, 1),
        lambda: ListSource(LEAVES[:3]).perfect(0, -1),
        lambda: nodes_to_store(-1, LEAVES[0], SOURCE),
    ],
)
def test_impossible_sizes_and_indices_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(MerkleProofError):
        make()


def test_nodes_to_store_wants_a_leaf_hash() -> None:
    with pytest.raises(ValueError):
        nodes_to_store(0, b"raw data", SOURCE)


def test_equal_sizes() -> None:
    root = tree_head(SOURCE, 5)
    assert consistency_proof(LEAVES[:5], 5) == []
    verify_consistency(5, 5, root, root, [])
    with pytest.raises(MerkleProofError, match="fork"):
        verify_consistency(5, 5, root, tree_head(SOURCE, 4), [])


def test_a_proof_does_not_bind_the_tree_size() -> None:
    """As in RFC 9162 and Go's reference: sizes whose proofs hash alike accept each other's proof.

    Leaf 0's path in a tree of 5 is (leaf 1, node 2-3, leaf 4); in a tree of 6 it is
    (leaf 1, node 2-3, node 4-5): the verifier cannot tell, so the size must be trusted input.
    """
    proof = inclusion_proof(LEAVES[:5], 0)
    verify_inclusion(0, 6, LEAVES[0], proof, tree_head(SOURCE, 5))
    with pytest.raises(MerkleProofError):
        verify_inclusion(0, 4, LEAVES[0], proof, tree_head(SOURCE, 5))


# --- Properties ----------------------------------------------------------------------------

EDGE_SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 255, 256, 257, 1023, 1024, 1025, 2047, 2048, 2049]
sizes = st.one_of(st.integers(1, 40), st.sampled_from(EDGE_SIZES), st.integers(1, MAX_SIZE))
PROPERTY = settings(max_examples=200, deadline=None, database=None)


@lru_cache(maxsize=None)
def _root(size: int) -> bytes:
    return root_from_leaf_hashes(LEAVES[:size])


def _flip(proof: list[bytes], element: int, byte: int, mask: int) -> list[bytes]:
    changed = bytearray(proof[element])
    changed[byte] ^= mask
    return proof[:element] + [bytes(changed)] + proof[element + 1 :]


def _inclusion_shape(index: int, size: int) -> tuple[bool, ...] | None:
    """For each proof hash, bottom up, whether it is a left sibling (None: impossible)."""
    if not 0 <= index < size:
        return None
    sides = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        sides.append(index >= lo + k)
        lo, hi = (lo + k, hi) if index >= lo + k else (lo, lo + k)
    return tuple(reversed(sides))


def _consistency_shape(size1: int, size2: int) -> tuple[bool, tuple[bool, ...]] | None:
    """Whether root1 seeds the proof, and each hash's side, bottom up (None: impossible)."""
    if not 0 < size1 <= size2:
        return None
    sides = []
    lo, hi, whole = 0, size2, True
    while size1 != hi:
        k = _split(hi - lo)
        sides.append(size1 - lo > k)
        lo, hi, whole = (lo + k, hi, False) if size1 - lo > k else (lo, lo + k, whole)
    return whole, tuple(reversed(sides))


@PROPERTY
@given(data=st.data())
def test_inclusion_proofs_verify_and_tampering_fails(data: st.DataObject) -> None:
    size = data.draw(sizes, label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    leaf, root = LEAVES[index], _root(size)
    assert tree_head(SOURCE, size) == root
    proof = inclusion_proof(LEAVES[:size], index)
    assert proof == inclusion_proof_from(SOURCE, size, index)
    verify_inclusion(index, size, leaf, proof, root)

    mask = data.draw(st.integers(1, 255), label="mask")
    for element in range(len(proof)):
        for byte in range(HASH_SIZE):
            bad = _flip(proof, element, byte, mask)
            assert not _verifies(verify_inclusion, index, size, leaf, bad, root)
    for bad in (proof + [root], [root] + proof) + ((proof[:-1],) if proof else ()):
        assert not _verifies(verify_inclusion, index, size, leaf, bad, root)

    other = data.draw(st.integers(0, 2 * MAX_SIZE), label="other size")
    for wrong_size in {size - 1, size + 1, size * 2, size // 2, other} - {size}:
        same = _inclusion_shape(index, wrong_size) == _inclusion_shape(index, size)
        assert _verifies(verify_inclusion, index, wrong_size, leaf, proof, root) == same, wrong_size
    for wrong_index in {index - 1, index + 1, index ^ 2, data.draw(st.integers(0, MAX_SIZE))}:
        if wrong_index != index:
            assert not _verifies(verify_inclusion, wrong_index, size, leaf, proof, root)
    assert not _verifies(verify_inclusion, index, size, LEAVES[(index + 1) % MAX_SIZE], proof, root)
    wrong_root = _root(data.draw(st.integers(0, MAX_SIZE).filter(lambda n: n != size)))
    assert not _verifies(verify_inclusion, index, size, leaf, proof, wrong_root)
    assert not _verifies(verify_inclusion, index, size, leaf, proof, _flip([root], 0, 0, mask)[0])


@PROPERTY
@given(data=st.data())
def test_consistency_proofs_verify_and_tampering_fails(data: st.DataObject) -> None:
    size2 = data.draw(sizes, label="size2")
    size1 = data.draw(st.one_of(st.integers(1, size2), st.just(size2)), label="size1")
    root1, root2 = _root(size1), _root(size2)
    proof = consistency_proof(LEAVES[:size2], size1)
    assert proof == consistency_proof_from(SOURCE, size1, size2)
    verify_consistency(size1, size2, root1, root2, proof)
    if size1 == size2:
        assert proof == []
        assert not _verifies(verify_consistency, size1, size2, root1, _root(size2 - 1), proof)
        return

    mask = data.draw(st.integers(1, 255), label="mask")
    for element in range(len(proof)):
        for byte in range(HASH_SIZE):
            bad = _flip(proof, element, byte, mask)
            assert not _verifies(verify_consistency, size1, size2, root1, root2, bad)
    for bad in (proof[:-1], proof + [root2], [root1] + proof, []):
        assert not _verifies(verify_consistency, size1, size2, root1, root2, bad)

    shape = _consistency_shape(size1, size2)
    other1 = data.draw(st.integers(0, size2 + 2), label="other size1")
    other2 = data.draw(st.integers(0, 2 * MAX_SIZE), label="other size2")
    wrong_sizes = {(size1 - 1, size2), (size1 + 1, size2), (size1 ^ 2, size2), (other1, size2)}
    wrong_sizes |= {(size1, size2 * 2), (size1, size2 // 2), (size1, size2 + 1), (size1, other2)}
    for s1, s2 in wrong_sizes - {(size1, size2)}:
        same = _consistency_shape(s1, s2) == shape
        assert _verifies(verify_consistency, s1, s2, root1, root2, proof) == same, (s1, s2)
    wrong = _root(data.draw(st.integers(0, MAX_SIZE).filter(lambda n: n not in (size1, size2))))
    flipped = _flip([root1], 0, 5, mask)[0]
    for r1, r2 in ((root2, root1), (wrong, root2), (root1, wrong), (flipped, root2)):
        assert not _verifies(verify_consistency, size1, size2, r1, r2, proof)


# --- The storage-backed form ---------------------------------------------------------------


class DictSource:
    """What a database table of (level, index) -> hash does, in a dict."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}

    def perfect(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]  # KeyError: a node nobody stored

    def append(self, size_before: int, leaf: bytes) -> list[tuple[int, int, bytes]]:
        new = nodes_to_store(size_before, leaf, self)
        for level, index, value in new:
            assert (level, index) not in self.nodes, "a stored node is never rewritten"
            self.nodes[(level, index)] = value
        return new


def test_nodes_to_store_example() -> None:
    store = DictSource()
    assert [(lv, i) for lv, i, _ in store.append(0, LEAVES[0])] == [(0, 0)]
    assert [(lv, i) for lv, i, _ in store.append(1, LEAVES[1])] == [(0, 1), (1, 0)]
    assert [(lv, i) for lv, i, _ in store.append(2, LEAVES[2])] == [(0, 2)]
    assert store.append(3, LEAVES[3]) == [
        (0, 3, LEAVES[3]),
        (1, 1, node_hash(LEAVES[2], LEAVES[3])),
        (2, 0, _root(4)),
    ]


def test_store_built_leaf_by_leaf_serves_the_same_heads_and_proofs() -> None:
    store, rng = DictSource(), random.Random(9162)
    size = 1100
    for n in range(size):
        store.append(n, LEAVES[n])
        grown = n + 1
        assert tree_head(store, grown) == tree_head(SOURCE, grown), grown
        index, size1 = rng.randrange(grown), rng.randint(1, grown)
        for proof_from, args in (
            (inclusion_proof_from, (grown, index)),
            (consistency_proof_from, (size1, grown)),
        ):
            assert proof_from(store, *args) == proof_from(SOURCE, *args), (proof_from, args)
    complete = {(lv, i) for lv in range(size.bit_length()) for i in range(size >> lv)}
    assert set(store.nodes) == complete
    assert all(value == SOURCE.perfect(lv, i) for (lv, i), value in store.nodes.items())
    for grown in (1, 2, 3, 700, size):
        assert tree_head(store, grown) == _root(grown)
        assert inclusion_proof_from(store, grown, grown // 2) == inclusion_proof(
            LEAVES[:grown], grown // 2
        )
        assert consistency_proof_from(store, 1 + grown // 3, grown) == consistency_proof(
            LEAVES[:grown], 1 + grown // 3
        )


class CountingSource:
    """Deterministic stand-in hashes; counts reads and refuses incomplete subtrees."""

    def __init__(self, size: int) -> None:
        self.size, self.calls = size, 0

    def perfect(self, level: int, index: int) -> bytes:
        assert level >= 0 and 0 <= index and (index + 1) << level <= self.size, (level, index)
        self.calls += 1
        return hashlib.sha256(b"%d/%d" % (level, index)).digest()


@pytest.mark.parametrize("size", [999_983, 1_000_000, 2**20 - 1, 2**20, 2**20 + 1, 3 * 2**19 - 1])
def test_reads_stay_logarithmic(size: int) -> None:
    source = CountingSource(size)
    tight = 2 * size.bit_length() + 1  # what the algorithm achieves
    loose = 4 * math.log2(size) ** 2  # what the design promises

    def reads(action: Callable[..., object], *args: int) -> int:
        source.calls = 0
        action(source, *args)
        assert source.calls <= min(tight, loose), (action.__name__, args, source.calls)
        return source.calls

    assert reads(tree_head, size) == bin(size).count("1")
    rng = random.Random(size)
    special = [0, 1, 2, 3, 2**19 - 1, 2**19, 2**19 + 1, size // 3, size - 2, size - 1]
    for index in special + rng.sample(range(size), 30):
        reads(inclusion_proof_from, size, index)
    for size1 in [s for s in special if s > 0] + [size] + rng.sample(range(1, size), 30):
        reads(consistency_proof_from, size1, size)
    appended = CountingSource(size)
    nodes_to_store(size - 1, LEAVES[0], appended)
    assert appended.calls < size.bit_length()


@given(st.integers(min_value=0, max_value=600))
@settings(max_examples=40, deadline=None)
def test_frontier_gives_the_tree_head_and_the_stored_nodes(size: int) -> None:
    leaves = [merkle_module.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    frontier = merkle_module.Frontier()
    stored: dict[tuple[int, int], bytes] = {}
    for n, leaf in enumerate(leaves):
        for level, index, value in frontier.append(leaf):
            stored[(level, index)] = value
        restored = merkle_module.Frontier.from_bytes(frontier.size, frontier.to_bytes())
        assert restored.root() == merkle_module.root_from_leaf_hashes(leaves[: n + 1])
    assert frontier.root() == merkle_module.root_from_leaf_hashes(leaves)
    reference = merkle_module.ListSource(leaves)
    for (level, index), value in stored.items():
        assert reference.perfect(level, index) == value


def test_frontier_refuses_a_wrong_shape() -> None:
    with pytest.raises(ValueError):
        merkle_module.Frontier(3, [b"\0" * 32])
    with pytest.raises(ValueError):
        merkle_module.Frontier.from_bytes(1, b"\0" * 31)


@given(st.lists(st.integers(min_value=0, max_value=5), max_size=12))
@settings(max_examples=60, deadline=None)
def test_frontier_joins_perfect_subtrees_as_their_leaves_would(heights: list[int]) -> None:
    """Subtrees joined where they fit give the tree their leaves appended one by one give."""
    joined = merkle_module.Frontier()
    leaves: list[bytes] = []
    for height in heights:
        if joined.size % (1 << height):
            with pytest.raises(ValueError, match="cannot start"):
                joined.join(height, b"\0" * 32)
            continue
        part = [merkle_module.leaf_hash(len(leaves + [b""] * i).to_bytes(4, "big"))
                for i in range(1 << height)]
        joined.join(height, merkle_module.root_from_leaf_hashes(part))
        leaves.extend(part)
    assert joined.size == len(leaves)
    assert joined.root() == merkle_module.root_from_leaf_hashes(leaves)
    appended = merkle_module.Frontier()
    for leaf in leaves:
        appended.append(leaf)
    assert joined.hashes == appended.hashes
