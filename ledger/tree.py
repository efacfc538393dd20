"""Tree heads, proofs and signed checkpoints over the journal's stored Merkle tree.

Proofs read only the O(log n) stored subtrees they need, in one query: the proof is first
computed against a recorder that notes which subtrees it asks for, then again against those,
fetched at once. The app signs a checkpoint only after checking a consistency proof from the
last one, so every checkpoint it ever publishes extends the one before.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import and_, insert, or_, select, tuple_
from sqlalchemy.orm import Session

from . import journal
from .checkpoint import Checkpoint, CheckpointError, parse_signer_key, sign
from .errors import ChainError
from .merkle import (
    HASH_SIZE,
    Frontier,
    MerkleProofError,
    NodeSource,
    consistency_proof_from,
    inclusion_proof_from,
    leaf_hash,
    tree_head,
    verify_consistency,
)
from .schema import ChainHead, Entry, MerkleNode, SignedCheckpoint, table_of, utcnow

T = TypeVar("T")


class _Recorder:
    """A NodeSource that answers with placeholders and remembers what was asked."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []

    def perfect(self, level: int, index: int) -> bytes:
        self.keys.append((level, index))
        return bytes(HASH_SIZE)


class _Fetched:
    def __init__(self, nodes: dict[tuple[int, int], bytes]) -> None:
        self.nodes = nodes

    def perfect(self, level: int, index: int) -> bytes:
        try:
            return self.nodes[(level, index)]
        except KeyError:
            raise MerkleProofError(f"the stored tree lacks subtree ({level}, {index})") from None


def _with_stored_nodes(session: Session, compute: Callable[[NodeSource], T]) -> T:
    recorder = _Recorder()
    compute(recorder)
    table = table_of(MerkleNode)
    nodes: dict[tuple[int, int], bytes] = {}
    if recorder.keys:
        keys = sorted(set(recorder.keys))
        if session.get_bind().dialect.name == "sqlite":
            # SQLite scans the table for a row-value IN list; OR'ed pairs use the primary key.
            where = or_(*(and_(table.c.level == level, table.c.idx == idx) for level, idx in keys))
        else:
            where = tuple_(table.c.level, table.c.idx).in_(keys)
        rows = session.execute(select(table.c.level, table.c.idx, table.c.hash).where(where))
        nodes = {(level, idx): bytes(value) for level, idx, value in rows}
    return compute(_Fetched(nodes))


def size(session: Session) -> int:
    """How many entries the journal holds (the tree's size)."""
    return int(session.execute(select(ChainHead.seq).where(ChainHead.id == 1)).scalar_one())


def head_at(session: Session, tree_size: int) -> bytes:
    """The tree head of the first ``tree_size`` entries."""
    _check_size(session, tree_size)
    return _with_stored_nodes(session, lambda source: tree_head(source, tree_size))


def inclusion(session: Session, seq: int, tree_size: int) -> list[bytes]:
    """The proof that entry ``seq`` is leaf ``seq - 1`` of the tree of ``tree_size`` entries."""
    _check_size(session, tree_size)
    if not 1 <= seq <= tree_size:
        raise MerkleProofError(f"entry {seq} is not in a tree of {tree_size} entries")
    return _with_stored_nodes(session, lambda s: inclusion_proof_from(s, tree_size, seq - 1))


def consistency(session: Session, size1: int, size2: int) -> list[bytes]:
    """The proof that the tree of ``size2`` entries extends the tree of ``size1``."""
    _check_size(session, size2)
    return _with_stored_nodes(session, lambda s: consistency_proof_from(s, size1, size2))


def _check_size(session: Session, tree_size: int) -> None:
    current = size(session)
    if not 0 <= tree_size <= current:
        raise MerkleProofError(f"the journal holds {current} entries, not {tree_size}")


def latest_checkpoint(session: Session) -> SignedCheckpoint | None:
    """The newest signed checkpoint, if any."""
    return session.scalars(
        select(SignedCheckpoint).order_by(SignedCheckpoint.size.desc()).limit(1)
    ).first()


def checkpoint_covering(session: Session, seq: int) -> SignedCheckpoint | None:
    """The smallest signed checkpoint that includes entry ``seq``."""
    return session.scalars(
        select(SignedCheckpoint).where(SignedCheckpoint.size >= seq)
        .order_by(SignedCheckpoint.size).limit(1)
    ).first()


def sign_checkpoint(session: Session, signer_key: str, origin: str) -> SignedCheckpoint:
    """Sign a checkpoint of the journal as it stands, unless the latest one already covers it.

    Holds the chain-head lock so the size and root are those of one moment. Refuses (raises
    MerkleProofError) if the stored tree is not consistent with the last checkpoint: the app
    never publishes a fork.
    """
    key = parse_signer_key(signer_key)
    if origin != key.name:
        raise CheckpointError(f"the checkpoint's origin {origin!r} is not its key's name "
                              f"{key.name!r}: verifiers would refuse it")
    head = journal.locked_head(session)
    if head.seq == 0:
        raise ChainError("the journal is empty: there is nothing to sign")
    last = latest_checkpoint(session)
    if last is not None and last.size == head.seq:
        return last
    root = Frontier.from_bytes(head.seq, head.frontier).root()
    if head_at(session, head.seq) != root:
        raise MerkleProofError("the stored tree does not match the chain head's frontier")
    if last is not None:
        if last.size > head.seq:
            raise MerkleProofError(f"the last checkpoint covers {last.size} entries, "
                                   f"the journal only {head.seq}")
        proof = consistency(session, last.size, head.seq)
        verify_consistency(last.size, head.seq, bytes(last.root), root, proof)
    note = sign(Checkpoint(origin=origin, size=head.seq, root=root), key).decode("utf-8")
    session.execute(
        insert(table_of(SignedCheckpoint)).values(
            size=head.seq, root=root, note=note, key=key.verifier().encode(), created_at=utcnow()
        )
    )
    created = session.get(SignedCheckpoint, head.seq)
    assert created is not None
    return created


class BeyondJournalError(MerkleProofError):
    """A proof was asked for a tree larger than the journal is."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(bytes(raw)).decode("ascii")


def inclusion_document(session: Session, seq: int, tree_size: int) -> dict[str, object]:
    """Everything a client needs to check that entry ``seq`` is in the tree of ``tree_size``
    entries: the entry's hash and leaf hash, the proof and the root (base64), and the signed
    checkpoint of that size if there is one. Raises MerkleProofError for an impossible range."""
    current = size(session)
    if not 1 <= seq <= tree_size:
        raise MerkleProofError(f"need 1 <= seq <= size, not seq {seq} and size {tree_size}")
    if tree_size > current:
        raise BeyondJournalError(f"the journal holds {current} entries, not {tree_size}")
    proof = inclusion(session, seq, tree_size)
    root = head_at(session, tree_size)
    entry = session.get(Entry, seq)
    assert entry is not None  # seq <= tree_size <= the chain head's seq
    signed = session.get(SignedCheckpoint, tree_size)
    return {"seq": seq, "leaf_index": seq - 1, "tree_size": tree_size, "hash": entry.hash,
            "leaf_hash": _b64(leaf_hash(bytes(entry.record))),
            "proof": [_b64(node) for node in proof], "root": _b64(root),
            "checkpoint": signed.note if signed is not None else None}


def consistency_document(session: Session, size1: int, size2: int) -> dict[str, object]:
    """The consistency proof from ``size1`` to ``size2`` entries with both roots (base64).
    Raises MerkleProofError for an impossible range."""
    current = size(session)
    if not 1 <= size1 <= size2:
        raise MerkleProofError(f"need 1 <= from <= to, not {size1} and {size2}")
    if size2 > current:
        raise BeyondJournalError(f"the journal holds {current} entries, not {size2}")
    proof = consistency(session, size1, size2)
    return {"proof": [_b64(node) for node in proof], "from_root": _b64(head_at(session, size1)),
            "to_root": _b64(head_at(session, size2))}
