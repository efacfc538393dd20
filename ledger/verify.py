"""The offline verifier: check an export, or one certificate, with nothing but the files and
the operator's public key. No database, no Flask, no SQLAlchemy.

    python -m ledger.verify EXPORT_DIR [--key KEY]
    python -m ledger.verify --certificate CERT.json --key KEY

For an export it recomputes every entry hash and the chain, replays every operation against
the ledger's rules (the same code ``flask ledger verify`` runs), rebuilds the Merkle tree,
checks that the signed checkpoint covers exactly this journal, and prints the tonnes issued,
retired, cancelled and in the buffer pool per project. Valid: exit 0. Otherwise exit 1 with
the first bad seq (or the checkpoint, or the manifest) and the reason. ``KEY`` is a verifier
key string or a file holding one.

A certificate is a retirement's (whole tonnes) or, with ``"kind": "allocation"``, a kilogram
allocation's: then the ``allocate`` entry and every ``pool`` entry it draws from are checked
against the same signed checkpoint, and the serials shown against the pool retirements' blocks.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import gc
import hashlib
import itertools
import json
import marshal
import mmap
import multiprocessing
import os
import sys
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeGuard

import orjson

from . import bundle, canonical
from .checkpoint import Checkpoint, CheckpointError, open_note, parse_verifier_key
from .errors import LedgerError
from .merkle import Frontier, MerkleProofError, leaf_hash, verify_inclusion
from .records import Allocate, OriginRetirement, PoolRetire
from .replay import (
    OriginTotals,
    PoolTotals,
    Replay,
    Step,
    Totals,
    check_prev,
    make_step,
    open_record,
)
from .rules import Coverage, beneficiary_commitment, classify
from .serials import NativeSerial, parse_serial


class Invalid(Exception):
    """Verification failed at ``where`` (``seq N``, ``checkpoint``, ``manifest``...)."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[type[Invalid], tuple[str, str]]:
        return Invalid, (self.where, self.reason)


@dataclass(frozen=True)
class Summary:
    entries: int
    head: str
    checkpoint: Checkpoint
    totals: dict[str, Totals]
    origin: dict[str, OriginTotals] | None = None
    pending: dict[int, tuple[str, int]] | None = None
    """Retirement seq -> (its date, tonnes still pending at the origin registry)."""
    pools: dict[str, PoolTotals] | None = None

    @property
    def conflicts(self) -> int:
        return sum(t.conflicts for t in (self.origin or {}).values())

    def lines(self) -> list[str]:
        out = [
            f"journal OK: {self.entries:,} entries, head {self.head[:16]}, checkpoint of "
            f"{self.checkpoint.size:,} entries from {self.checkpoint.origin} verified",
            f"{'project':<12}{'issued':>14}{'retired':>12}{'cancelled':>11}{'buffer':>11}"
            f"{'frozen':>9}{'tradable':>14}",
        ]
        for project, t in sorted(self.totals.items()):
            out.append(f"{project:<12}{t.issued:>14,}{t.retired:>12,}{t.cancelled:>11,}"
                       f"{t.buffer:>11,}{t.frozen:>9,}{t.tradable:>14,}")
        if self.origin:
            out.append("")
            out.append(f"{'at origin':<12}{'retired here':>14}{'covered':>12}{'pending':>11}"
                       f"{'conflict':>11}{'frozen':>14}")
            for project, o in sorted(self.origin.items()):
                c = o.coverage
                out.append(f"{project:<12}{c.covered + c.pending + c.conflict:>14,}"
                           f"{c.covered:>12,}{c.pending:>11,}{c.conflict:>11,}{o.frozen:>14,}")
        if self.pools:
            out.append("")
            out.append(f"{'kg pool':<12}{'retired (t)':>14}{'allocated (kg)':>18}"
                       f"{'free (kg)':>16}{'allocations':>13}")
            for pool, p in sorted(self.pools.items()):
                out.append(f"{pool:<12}{p.tonnes:>14,}{kilograms(p.allocated):>18}"
                           f"{kilograms(p.free):>16}{p.allocations:>13,}")
        return out


def kilograms(grams: int) -> str:
    """Grams as kilograms, exactly: 4970000 -> '4,970.000'."""
    return f"{grams // 1000:,}.{grams % 1000:03d}"


def load_key(value: str) -> str:
    """A verifier key given as a string or as a file holding one."""
    path = Path(value)
    text = value
    if "+" not in value or path.is_file():
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise Invalid("key", f"cannot read {value}: {exc}") from None
    try:
        parse_verifier_key(text)
    except CheckpointError as exc:
        raise Invalid("key", str(exc)) from None
    return text


def expected_origin(key: str, origin: str | None) -> str:
    """The log a checkpoint must come from: ``origin`` if given, else the key's own name (the
    operator names its key after its log, as sumdb/note keys are)."""
    if origin is not None:
        return origin
    try:
        return parse_verifier_key(key).name
    except CheckpointError as exc:
        raise Invalid("key", str(exc)) from None


Progress = Callable[[int, int], None]
"""Told (entries replayed, entries the checkpoint covers) after every chunk of entries."""
CHUNK = 8192
"""Entries checked at a time, by one worker: a power of two, so that each whole chunk is one
perfect subtree of the Merkle tree and the main process merges one root a chunk."""
PROGRESS_FROM = 100_000
"""Exports at least this long show a progress bar on a terminal."""


def verify_export(directory: Path, key: str, origin: str | None = None,
                  progress: Progress | None = None, *, workers: int | None = None,
                  chunk: int | None = None) -> Summary:
    """Verify an export directory against ``key``; raise :class:`Invalid` at the first fault.
    The checkpoint must come from ``origin`` (default: the key's name). ``workers``: how many
    processes check lines (default: one per CPU; 1 checks them in this process); ``chunk``:
    how many lines each is given at a time (a power of two; default :data:`CHUNK`)."""
    # The replay allocates a few objects per entry and keeps most of them (the blocks), none
    # in a reference cycle: the cyclic garbage collector would only walk the growing state
    # again and again (a sixth of the time at 100,000 entries, more as the state grows), then
    # find nothing. So it is off while the export is checked; everything the check allocates
    # is freed by reference counting when it returns.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _verify_export(directory, key, expected_origin(key, origin), progress, workers,
                              chunk)
    finally:
        if collecting:
            gc.enable()


def _verify_export(directory: Path, key: str, origin: str, progress: Progress | None = None,
                   workers: int | None = None, chunk: int | None = None) -> Summary:
    checkpoint = _open_checkpoint(directory / bundle.CHECKPOINT, key, origin)
    state = Replay()
    tree, journal_sha256 = _replay_journal(directory / bundle.JOURNAL, state, checkpoint.size,
                                           progress, workers, chunk)
    if state.seq < checkpoint.size:
        raise Invalid(f"seq {state.seq + 1}", f"is missing: the signed checkpoint covers "
                                              f"{checkpoint.size} entries, the journal ends at "
                                              f"{state.seq} (truncated?)")
    if tree.root() != checkpoint.root:
        raise Invalid("checkpoint", "its root hash is not the journal's tree head: the log "
                                    "was forked or rewritten")
    try:
        state.check_coverage()
    except LedgerError as exc:
        raise Invalid("journal", str(exc)) from None
    _check_manifest(directory, state, journal_sha256)
    pending = {seq: (state.retirements[seq][0], tonnes)
               for seq, tonnes in state.pending_retirements().items()}
    return Summary(state.seq, state.head, checkpoint, state.totals(), state.origin_totals(),
                   pending, state.pool_totals())


def check_origin(summary: Summary, *, strict: bool, max_pending_days: int | None,
                 today: dt.date | None = None) -> None:
    """``--strict-origin``: any conflict at the origin registry fails; ``--max-pending-days``:
    so does a retirement still pending at origin more than that many days after it was made."""
    if strict and summary.conflicts:
        projects = ", ".join(f"{p} {o.conflicts:,} t" for p, o in sorted((summary.origin or {})
                             .items()) if o.conflicts)
        raise Invalid("origin", f"{summary.conflicts:,} t in conflict with the origin registry "
                                f"({projects})")
    if max_pending_days is not None:
        today = today or dt.datetime.now(dt.UTC).date()
        for seq, (date, tonnes) in sorted((summary.pending or {}).items()):
            age = (today - dt.date.fromisoformat(date)).days
            if age > max_pending_days:
                raise Invalid(f"seq {seq}", f"{tonnes:,} t retired on {date} are still pending "
                                            f"at the origin registry after {age} days "
                                            f"(at most {max_pending_days} allowed)")


class Chunk(NamedTuple):
    """What checking one run of lines on its own found (:func:`check_chunk`)."""

    first: int
    """The seq of its first line."""
    steps: list[Step] | bytes
    """One per entry checked on its own, in order, for the replay to apply; from a worker
    process, packed by :mod:`marshal` when they are all plain values (:func:`_pack`)."""
    head: str
    """The hash of its last entry checked."""
    first_prev: tuple[object, ...]
    """The previous hash its first record names, as a 1-tuple once that record was read that
    far (empty before: a record's ``prev`` may itself be null): the main process checks it
    against the hash of the chunk before."""
    size: int
    roots: list[bytes]
    """The Merkle subtrees of its ``size`` entries, tallest first (one per 1 bit of size)."""
    error: tuple[str, str] | None
    """The first fault found (where, reason); the entries before it are in ``steps``."""


def check_chunk(path: str, start: int, end: int, first: int, covered: int,
                pack: bool = False) -> Chunk:
    """Check the lines of the journal at ``path`` between byte offsets ``start`` and ``end``
    (whole lines; the first is entry ``first``) each on its own: the line is a whole entry
    whose seq follows on and is covered by the checkpoint (``covered`` entries), the record's
    hash and form and every rule that needs nothing but the record (``replay.open_record``,
    ``replay.make_step``), the chain between its own entries, and the line's kind is the
    record's. Hash its leaves into Merkle subtrees (a ``merkle.Frontier`` of its own).

    Pure, and picklable both ways: the verifier runs it in a pool of processes, one chunk
    after another, and replays the steps in order in the main process. ``pack``: return the
    steps packed for the trip back (:func:`_pack`).
    """
    with open(path, "rb") as handle:
        handle.seek(start)
        lines = handle.read(end - start).split(b"\n")
    tail = lines.pop()  # empty when the last line ends as every line must
    steps: list[Step] = []
    append = steps.append
    tree = Frontier()
    join = tree.join
    seq = first - 1
    head = ""
    first_prev: tuple[object, ...] = ()
    try:
        for line in lines:
            seq += 1
            entry, record = _parse_line(line, seq)
            if entry["seq"] != seq:
                found = entry["seq"]
                if isinstance(found, int) and found < seq:
                    raise Invalid(f"seq {found}", f"appears again after seq {seq - 1} "
                                                  "(a duplicated or reordered line)")
                raise Invalid(f"seq {seq}", f"is missing (the next line holds seq {found!r})")
            if seq > covered:
                raise Invalid(f"seq {seq}", f"is not covered by the signed checkpoint, which "
                                            f"ends at seq {covered}")
            try:
                digest, parsed = open_record(seq, record, entry["hash"])
                if seq == first:
                    first_prev = (parsed["prev"],)
                else:
                    check_prev(parsed["prev"], head)
                step = make_step(parsed)
            except LedgerError as exc:
                raise Invalid(f"seq {seq}", str(exc)) from None
            append(step)
            if parsed["kind"] != entry["kind"]:
                # Reported once the step is replayed, as a broken rule of the entry comes first.
                raise Invalid(f"seq {seq}", "the line's kind differs from its record's")
            head = digest
            join(0, leaf_hash(record))
        if tail:
            raise Invalid(f"seq {seq + 1}", "the last line is cut short (the file is truncated)")
    except Invalid as exc:
        return Chunk(first, _pack(steps) if pack else steps, head, first_prev, tree.size,
                     tree.hashes, (exc.where, exc.reason))
    return Chunk(first, _pack(steps) if pack else steps, head, first_prev, tree.size,
                 tree.hashes, None)


def _pack(steps: list[Step]) -> list[Step] | bytes:
    """Steps for the trip from a worker to the main process. Those of transfers, retirements
    and cancellations, nearly every entry, are tuples of numbers and strings, which
    :mod:`marshal` writes five times as fast as :mod:`pickle` (and reads back a little
    slower, in the main process, which has the time); a step that holds a record object
    (issue, origin, label, pool, allocate) keeps the chunk's steps as they are, for pickle.
    Only this program's own worker processes write what is read back."""
    try:
        return marshal.dumps(steps)
    except ValueError:
        return steps


def _chunks(journal: Any, length: int, chunk: int) -> Iterator[tuple[int, int]]:
    """Byte ranges of ``chunk`` lines each (the last may hold fewer) over a mapped file."""
    find = journal.find
    start = 0
    while start < length:
        end = start
        for _ in range(chunk):
            end = find(b"\n", end) + 1
            if end == 0:
                end = length
                break
        yield start, end
        start = end


def _workers(requested: int | None) -> int:
    if requested is not None:
        return max(1, requested)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _replay_journal(path: Path, state: Replay, covered: int, progress: Progress | None = None,
                    workers: int | None = None, chunk: int | None = None
                    ) -> tuple[Frontier, str]:
    """Check and replay every line of the journal into ``state``, in order; return the Merkle
    tree's frontier and the SHA-256 of the file.

    Lines are checked on their own in chunks (:func:`check_chunk`), by a pool of ``workers``
    processes when there is more than one chunk and more than one worker, while this process
    applies each chunk's steps to ``state`` in order (``Replay.apply_step``: every rule that
    needs the state so far), checks that each chunk chains onto the one before, and merges
    each chunk's Merkle subtrees into the tree. A fault is reported at the first bad seq,
    whichever side finds it. A thread hashes the whole file meanwhile (hashlib lets go of the
    interpreter while it hashes).
    """
    chunk = chunk or CHUNK
    if chunk < 1 or chunk & (chunk - 1):
        raise ValueError("the chunk size must be a power of two")
    tree = Frontier()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise Invalid("journal", f"cannot read {bundle.JOURNAL}: {exc.strerror}") from None
    with handle:
        length = os.fstat(handle.fileno()).st_size
        if length == 0:
            return tree, hashlib.sha256().hexdigest()
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as journal:
            ranges = _chunks(journal, length, chunk)
            opening = next(ranges)
            first = state.seq + 1
            workers = _workers(workers)
            pool = None
            if workers > 1 and opening[1] < length:  # more than one chunk: else all in here
                pool = ProcessPoolExecutor(workers, multiprocessing.get_context(_START))
            tasks = ((str(path), start, end, first + n * chunk, covered, pool is not None)
                     for n, (start, end) in enumerate(itertools.chain([opening], ranges)))
            digest = hashlib.sha256()
            hasher = threading.Thread(target=digest.update, args=(journal,), daemon=True)
            hasher.start()
            try:
                for result in (_in_pool(pool, tasks, 2 * workers) if pool is not None
                               else (check_chunk(*task) for task in tasks)):
                    _apply_chunk(state, result, tree)
                    if progress is not None:
                        progress(tree.size, covered)
            finally:
                if pool is not None:
                    pool.shutdown(cancel_futures=True)
                hasher.join()
            return tree, digest.hexdigest()


_START = "fork" if sys.platform == "linux" else "spawn"
"""Workers start as copies of this process on Linux (no imports to repeat); elsewhere, where
forking a process with threads is not safe, as new interpreters."""


def _in_pool(pool: ProcessPoolExecutor,
             tasks: Iterator[tuple[str, int, int, int, int, bool]],
             ahead: int) -> Iterator[Chunk]:
    """The chunks' results in order, with at most ``ahead`` chunks in work at once (so that
    memory stays flat however far the workers run ahead of the replay). A worker that dies
    breaks the pool, which raises here rather than waiting for ever."""
    pending: deque[Future[Chunk]] = deque(pool.submit(check_chunk, *task)
                                          for task in itertools.islice(tasks, ahead))
    while pending:
        result = pending.popleft().result()
        for task in itertools.islice(tasks, 1):
            pending.append(pool.submit(check_chunk, *task))
        yield result


def _apply_chunk(state: Replay, chunk: Chunk, tree: Frontier) -> None:
    """Replay one checked chunk onto ``state`` and join its subtrees to ``tree``. Raise at its
    first fault."""
    if chunk.first_prev:
        try:
            check_prev(chunk.first_prev[0], state.head)
        except LedgerError as exc:
            raise Invalid(f"seq {chunk.first}", str(exc)) from None
    apply_step = state.apply_step
    seq = chunk.first
    steps = marshal.loads(chunk.steps) if isinstance(chunk.steps, bytes) else chunk.steps
    try:
        for step in steps:
            apply_step(seq, step)
            seq += 1
    except LedgerError as exc:
        raise Invalid(f"seq {seq}", str(exc)) from None
    if steps:
        state.seq = seq - 1
        state.head = chunk.head
    if chunk.error is not None:
        raise Invalid(*chunk.error)
    # The chunk began where the tree's size is a multiple of the chunk size, so its subtrees,
    # tallest first (one per 1 bit of its size), each start on a boundary of their own height.
    heights = [bit for bit in reversed(range(chunk.size.bit_length())) if chunk.size >> bit & 1]
    for height, root in zip(heights, chunk.roots, strict=True):
        tree.join(height, root)


def _open_checkpoint(path: Path, key: str, origin: str) -> Checkpoint:
    try:
        note = path.read_bytes()
    except OSError as exc:
        raise Invalid("checkpoint", f"cannot read {path.name}: {exc.strerror}") from None
    try:
        return open_note(note, key, origin=origin)
    except CheckpointError as exc:
        raise Invalid("checkpoint", str(exc)) from None


_LINE_KEYS = frozenset(("seq", "kind", "record", "hash"))
_parse_json = orjson.loads  # about three times the standard library's speed


def _parse_line(line: bytes, seq: int) -> tuple[dict[str, Any], bytes]:
    """The line's entry (the line without its newline), and its record as the bytes that were
    hashed."""
    try:
        entry = _parse_json(line)
    except (ValueError, RecursionError):
        raise Invalid(f"seq {seq}", "the line is not valid JSON (truncated or damaged)") from None
    if (not isinstance(entry, dict) or entry.keys() != _LINE_KEYS
            or not isinstance(entry["record"], str) or not isinstance(entry["hash"], str)
            or isinstance(entry["seq"], bool)):
        raise Invalid(f"seq {seq}", "the line is not an entry {seq, kind, record, hash}")
    try:
        record = entry["record"].encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"seq {seq}", "the record is not valid Unicode text") from None
    return entry, record


def _check_manifest(directory: Path, state: Replay, journal_sha256: str) -> None:
    try:
        manifest = json.loads((directory / bundle.MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Invalid("manifest", f"cannot read {bundle.MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != bundle.FORMAT:
        raise Invalid("manifest", f"not a {bundle.FORMAT} export")
    if manifest.get("entries") != state.seq or manifest.get("head") != state.head:
        raise Invalid("manifest", "its entry count or head hash differs from the journal")
    files = manifest.get("files")
    if not isinstance(files, dict) or files.get(bundle.JOURNAL) != journal_sha256:
        raise Invalid("manifest", f"the SHA-256 of {bundle.JOURNAL} differs from the manifest's")


def verify_certificate(certificate: dict[str, Any], key: str, origin: str | None = None) -> str:
    """Check that one retirement certificate (or, with ``"kind": "allocation"``, one kilogram
    certificate) is in the log the key's checkpoint commits to; the checkpoint must come from
    ``origin`` (default: the key's name)."""
    wanted = expected_origin(key, origin)
    if not isinstance(certificate, dict) or certificate.get("format") != bundle.CERTIFICATE_FORMAT:
        raise Invalid("certificate", f"not a {bundle.CERTIFICATE_FORMAT} document")
    if certificate.get("kind") == "allocation":
        return verify_allocation_certificate(certificate, key, wanted)
    try:
        seq = certificate["seq"]
        record = certificate["record"].encode("utf-8")
        digest = certificate["hash"]
        note = certificate["checkpoint"].encode("utf-8")
        proof = [base64.b64decode(p, validate=True) for p in certificate["inclusion_proof"]]
    except (KeyError, AttributeError, TypeError, ValueError):
        raise Invalid("certificate", "a field is missing or malformed") from None
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise Invalid("certificate", "its seq is not a positive whole number")
    if hashlib.sha256(record).hexdigest() != digest:
        raise Invalid(f"seq {seq}", "the entry hash is not the SHA-256 of the record")
    try:
        parsed = canonical.loads(record)
    except LedgerError as exc:
        raise Invalid(f"seq {seq}", str(exc)) from None
    if not isinstance(parsed, dict) or parsed.get("seq") != seq or parsed.get("kind") != "retire":
        raise Invalid(f"seq {seq}", "the record is not the retirement this certificate names")
    try:
        checkpoint = open_note(note, key, origin=wanted)
    except CheckpointError as exc:
        raise Invalid("checkpoint", str(exc)) from None
    try:
        verify_inclusion(seq - 1, checkpoint.size, leaf_hash(record), proof, checkpoint.root)
    except MerkleProofError as exc:
        raise Invalid(f"seq {seq}", f"not proven to be in the signed log: {exc}") from None
    data = parsed["data"]
    who = "a beneficiary whose name was withheld"
    beneficiary = certificate.get("beneficiary")
    if isinstance(beneficiary, dict) and beneficiary.get("name") is not None:
        name, salt = beneficiary.get("name"), beneficiary.get("salt")
        if not isinstance(name, str) or not isinstance(salt, str) or \
                _commitment(salt, name) != data.get("beneficiary"):
            raise Invalid(f"seq {seq}", "the beneficiary's name does not match the record's "
                                        "commitment")
        who = name
    first_line = (f"certificate OK: seq {seq}, {data.get('quantity'):,} t retired for {who} on "
                  f"{data.get('date')}, included in the signed log of {checkpoint.size:,} "
                  f"entries ({checkpoint.origin})")
    origin_line = _certificate_origin(certificate, data, checkpoint)
    return first_line if origin_line is None else f"{first_line}\n{origin_line}"


def mass(grams: int) -> str:
    """Grams for people, exactly as the registry writes them: '250 g', '2.5 kg', '4,970 kg'."""
    if grams < 1_000:
        return f"{grams:,} g"
    kg, rest = divmod(grams, 1_000)
    if rest == 0:
        return f"{kg:,} kg"
    return f"{kg:,}.{rest:03d}".rstrip("0") + " kg"


def _whole(value: object, low: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _entry_proof(item: Any, what: str) -> tuple[int, bytes, str, list[bytes]]:
    """(seq, record bytes, stated hash, inclusion proof) of an entry a certificate carries."""
    try:
        seq = item["seq"]
        record = item["record"].encode("utf-8")
        digest = item["hash"]
        proof = [base64.b64decode(p, validate=True) for p in item["inclusion_proof"]]
    except (KeyError, AttributeError, TypeError, ValueError):
        raise Invalid("certificate", f"{what} is missing a field or malformed") from None
    if not _whole(seq, 1):
        raise Invalid("certificate", f"{what}'s seq is not a positive whole number")
    return seq, record, digest, proof


def _open_entry(seq: int, record: bytes, digest: object, kind: str, what: str) -> dict[str, Any]:
    """The parsed record, once its hash and canonical form are checked and it is the ``kind``
    entry at ``seq``."""
    if hashlib.sha256(record).hexdigest() != digest:
        raise Invalid(f"seq {seq}", "the entry hash is not the SHA-256 of the record")
    try:
        parsed = canonical.loads(record)
    except LedgerError as exc:
        raise Invalid(f"seq {seq}", str(exc)) from None
    if not isinstance(parsed, dict) or parsed.get("seq") != seq or parsed.get("kind") != kind:
        raise Invalid(f"seq {seq}", f"the record is not the {what} this certificate names")
    return parsed


def _included(seq: int, record: bytes, proof: list[bytes], checkpoint: Checkpoint,
              what: str = "") -> None:
    try:
        verify_inclusion(seq - 1, checkpoint.size, leaf_hash(record), proof, checkpoint.root)
    except MerkleProofError as exc:
        raise Invalid(f"seq {seq}", f"{what}not proven to be in the signed log: {exc}") from None


def _claim(where: str, name: str, claimed: object, actual: object) -> None:
    """A fact the certificate states beside the record must be the record's."""
    if claimed is not None and claimed != actual:
        raise Invalid(where, f"the certificate shows {name} {claimed!r}, but the record has "
                             f"{actual!r}")


def verify_allocation_certificate(certificate: dict[str, Any], key: str, origin: str) -> str:
    """Check a kilogram certificate: its ``allocate`` entry is in the signed log, the allocation
    is at ``index`` in it, the name (if shown) matches its commitment, and every pool retirement
    it draws from is a ``pool`` entry in the same signed log whose retired blocks are the
    serials the certificate shows."""
    seq, record, digest, proof = _entry_proof(certificate, "the certificate")
    index = certificate.get("index")
    try:
        note = certificate["checkpoint"].encode("utf-8")
        retirements = certificate["pool_retirements"]
    except (KeyError, AttributeError, TypeError, ValueError):
        raise Invalid("certificate", "a field is missing or malformed") from None
    if not _whole(index, 0):
        raise Invalid("certificate", "its index is not a whole number")
    if not isinstance(retirements, list) or not retirements:
        raise Invalid("certificate", "it carries no pool retirements")
    parsed = _open_entry(seq, record, digest, "allocate", "allocate entry")
    try:
        entry = Allocate.from_data(parsed.get("data"))
    except LedgerError as exc:
        raise Invalid(f"seq {seq}", str(exc)) from None
    try:
        checkpoint = open_note(note, key, origin=origin)
    except CheckpointError as exc:
        raise Invalid("checkpoint", str(exc)) from None
    _included(seq, record, proof, checkpoint)
    where = f"allocation {seq}.{index}"
    if index >= len(entry.allocations):
        raise Invalid(where, f"there is no such allocation: entry {seq} holds "
                             f"{len(entry.allocations)}")
    allocation = entry.allocations[index]
    _claim(where, "id", certificate.get("id"), f"{seq}.{index}")
    _claim(where, "grams", certificate.get("grams"), allocation.grams)
    _claim(where, "mass", certificate.get("mass"), mass(allocation.grams))
    purpose = certificate.get("purpose")
    _claim(where, "purpose", purpose.get("code") if isinstance(purpose, dict) else purpose,
           allocation.purpose)
    _claim(where, "country", certificate.get("country"), allocation.country)
    _claim(where, "period", certificate.get("period"),
           {"start": allocation.period_start.isoformat(),
            "end": allocation.period_end.isoformat()})
    _claim(where, "date", certificate.get("date"), entry.date.isoformat())

    who = "a beneficiary whose name was withheld"
    beneficiary = certificate.get("beneficiary")
    if isinstance(beneficiary, dict) and beneficiary.get("name") is not None:
        name, salt = beneficiary.get("name"), beneficiary.get("salt")
        try:
            matches = isinstance(name, str) and isinstance(salt, str) and \
                beneficiary_commitment(salt, name) == allocation.beneficiary
        except (UnicodeError, ValueError):  # a lone surrogate is no one's name
            matches = False
        if not matches:
            raise Invalid(where, "the beneficiary's name does not match the allocation's "
                                 "commitment")
        who = str(name)
    elif beneficiary is not None and not isinstance(beneficiary, dict):
        raise Invalid("certificate", "its beneficiary is malformed")

    drawn = dict(allocation.draws)
    pools: dict[int, tuple[str, list[str]]] = {}
    for item in retirements:
        other, pool_record, pool_digest, pool_proof = _entry_proof(item, "a pool retirement")
        if other in pools:
            raise Invalid(f"seq {other}", "the certificate carries this pool retirement twice")
        if other not in drawn:
            raise Invalid(f"seq {other}", f"allocation {seq}.{index} does not draw from this "
                                          "pool retirement")
        pool_parsed = _open_entry(other, pool_record, pool_digest, "pool", "pool retirement")
        try:
            pool = PoolRetire.from_data(pool_parsed.get("data"))
        except LedgerError as exc:
            raise Invalid(f"seq {other}", str(exc)) from None
        _included(other, pool_record, pool_proof, checkpoint, "pool retirement ")
        serials = _pool_serials(other, pool, item.get("blocks"))
        _claim(f"seq {other}", "serials", item.get("serials"), serials)
        _claim(f"seq {other}", "quantity", item.get("quantity"), pool.quantity)
        _claim(f"seq {other}", "pool", item.get("pool"), pool.pool)
        pools[other] = (pool.pool, serials)
    for pool_seq, _ in allocation.draws:
        if pool_seq not in pools:
            raise Invalid(where, f"it draws from pool retirement seq {pool_seq}, which the "
                                 "certificate does not carry")
    claimed_draws = certificate.get("draws")
    if claimed_draws is not None:
        try:
            stated = [(d["seq"], d["grams"], d.get("serials", pools.get(d["seq"], ("", []))[1]))
                      for d in claimed_draws]
        except (KeyError, TypeError, AttributeError):
            raise Invalid("certificate", "its draws are malformed") from None
        _claim(where, "draws", stated, [(s, g, pools[s][1]) for s, g in allocation.draws])
    names = sorted({pools[s][0] for s, _ in allocation.draws})
    _claim(where, "pool", certificate.get("pool"), names[0] if len(names) == 1 else names)
    sources = "; ".join(
        f"pool retirement seq {s}: " + ("" if len(allocation.draws) == 1 else f"{mass(g)}, ")
        + f"serial{'' if len(pools[s][1]) == 1 else 's'} {', '.join(pools[s][1])}"
        for s, g in allocation.draws)
    return (f"certificate OK: allocation {seq}.{index}, {mass(allocation.grams)} from pool"
            f"{'' if len(names) == 1 else 's'} {', '.join(names)} ({sources}) for {who} on "
            f"{entry.date.isoformat()}, included in the signed log of {checkpoint.size:,} "
            f"entries ({checkpoint.origin})")


def _pool_serials(seq: int, pool: PoolRetire, blocks: object) -> list[str]:
    """The serial strings the certificate shows for a pool retirement, once each is checked to
    name exactly one of the retired blocks the record created, and all of them are shown."""
    created = {(b.batch, b.first, b.last) for b in pool.created if b.state == "retired"}
    if not isinstance(blocks, list):
        raise Invalid(f"seq {seq}", "the certificate does not show this pool retirement's "
                                    "serials")
    shown: set[tuple[int, int, int]] = set()
    serials: list[str] = []
    for block in blocks:
        try:
            batch, first, last, text = block["batch"], block["first"], block["last"], \
                block["serial"]
            if not (_whole(batch, 1) and _whole(first, 1) and _whole(last, 1)):
                raise TypeError
            serial = parse_serial(text)
        except (KeyError, TypeError, LedgerError):
            raise Invalid(f"seq {seq}", "a serial shown for this pool retirement is "
                                        "malformed") from None
        same_batch = not isinstance(serial, NativeSerial) or serial.batch == batch
        if (batch, first, last) not in created or (serial.first, serial.last) != (first, last) \
                or not same_batch or str(serial) != text:
            raise Invalid(f"seq {seq}", f"serial {text} is not a block this pool retirement "
                                        "retired")
        shown.add((batch, first, last))
        serials.append(text)
    if shown != created:
        raise Invalid(f"seq {seq}", "the certificate does not show every serial this pool "
                                    "retirement retired")
    return serials


def _commitment(salt: str, name: str) -> str | None:
    """The commitment to a name, or None for text that is not even encodable (a lone
    surrogate): it then matches no record, and the certificate is refused, never a crash."""
    try:
        return beneficiary_commitment(salt, name)
    except UnicodeEncodeError:
        return None


def _certificate_origin(certificate: dict[str, Any], data: dict[str, Any],
                        checkpoint: Checkpoint) -> str | None:
    """Check the origin evidence a certificate carries and say what it proves: each record is
    an ``origin`` entry included in the same signed log, and the coverage the certificate
    claims is what those records give the retired serials."""
    origin = certificate.get("origin")
    if origin is None:
        return None
    if not isinstance(origin, dict) or not isinstance(origin.get("evidence", []), list):
        raise Invalid("certificate", "its origin section is malformed")
    records: list[OriginRetirement] = []
    for item in origin.get("evidence", []):
        try:
            other = item["seq"]
            record = item["record"].encode("utf-8")
            proof = [base64.b64decode(p, validate=True) for p in item["inclusion_proof"]]
        except (KeyError, AttributeError, TypeError, ValueError):
            raise Invalid("certificate", "an origin record is missing a field or malformed") from None
        if isinstance(other, bool) or not isinstance(other, int) or other < 1:
            raise Invalid("certificate", "an origin record's seq is not a positive whole number")
        if hashlib.sha256(record).hexdigest() != item.get("hash"):
            raise Invalid(f"seq {other}", "the origin entry's hash is not the SHA-256 of its record")
        try:
            parsed = canonical.loads(record)
            if not isinstance(parsed, dict) or parsed.get("seq") != other or \
                    parsed.get("kind") != "origin":
                raise Invalid(f"seq {other}", "the record is not the origin entry it claims")
            records.append(OriginRetirement.from_data(parsed.get("data")))
        except LedgerError as exc:
            raise Invalid(f"seq {other}", str(exc)) from None
        try:
            verify_inclusion(other - 1, checkpoint.size, leaf_hash(record), proof, checkpoint.root)
        except MerkleProofError as exc:
            raise Invalid(f"seq {other}", f"origin record not proven to be in the signed log: "
                                          f"{exc}") from None
    coverage = Coverage()
    created = data.get("created")
    for block in created if isinstance(created, list) else []:
        if isinstance(block, dict) and block.get("state") == "retired":
            coverage.add(classify([(block["first"], block["last"])],
                                  [(r.first, r.last, r.ours) for r in records
                                   if r.batch == block.get("batch")]))
    claimed = origin.get("status")
    if claimed in ("covered", "conflict") and coverage.status != claimed:
        raise Invalid("certificate", f"it claims the retirement is {claimed} at the origin "
                                     f"registry, but its origin records show {coverage.status}")
    seqs = ", ".join(str(r) for r in sorted(int(i["seq"]) for i in origin.get("evidence", [])))
    if coverage.status == "covered":
        return (f"origin: covered: all {coverage.covered:,} t are retired at the origin "
                f"registry into this marketplace's name (origin entries {seqs}, in the same log)")
    if coverage.status == "conflict":
        return (f"origin: CONFLICT: {coverage.conflict:,} t were retired at the origin registry "
                f"under another name (origin entries {seqs})")
    if claimed == "issued_here":
        return "origin: issued on this ledger, which is the credits' registry of record"
    covered = f", {coverage.covered:,} t covered (origin entries {seqs})" if records else ""
    return (f"origin: pending: {coverage.pending:,} t not yet shown retired at the origin "
            f"registry{covered}; check the whole export for records under other names")


@contextmanager
def _progress_bar(directory: Path) -> Iterator[Progress | None]:
    """A progress bar on the terminal (rich, on stderr) for exports of ``PROGRESS_FROM``
    entries or more; nothing when output goes to a file or a pipe."""
    size = 0
    try:
        size = int(json.loads((directory / bundle.MANIFEST).read_text())["entries"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if size < PROGRESS_FROM or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TimeRemainingColumn

    with Bar("verifying", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
             console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("verifying", total=size)
        yield lambda done, total: bar.update(task, completed=done, total=max(total, done))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.verify",
        description="Verify a Selva journal export, or one retirement certificate, offline.",
    )
    parser.add_argument("directory", nargs="?", type=Path, help="an export directory")
    parser.add_argument("--key", help="the operator's verifier key, or a file holding it "
                                      "(default for an export: its key.pub)")
    parser.add_argument("--certificate", type=Path, help="a certificate JSON file to check")
    parser.add_argument("--origin", help="the log the checkpoint must come from (default: the "
                                         "key's name, e.g. selva.example/ledger)")
    parser.add_argument("--strict-origin", action="store_true",
                        help="fail if any serial is in conflict with its origin registry")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="processes that check lines side by side (default: one per CPU; "
                             "1: check them all in this process)")
    parser.add_argument("--max-pending-days", type=int, metavar="N",
                        help="fail if a retirement is still pending at its origin registry "
                             "more than N days after it was made")
    args = parser.parse_args(argv)
    try:
        if args.certificate is not None:
            if args.key is None:
                parser.error("--certificate needs --key")
            try:
                certificate = json.loads(args.certificate.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise Invalid("certificate", f"cannot read {args.certificate}: {exc}") from None
            print(verify_certificate(certificate, load_key(args.key), args.origin))
            return 0
        if args.directory is None:
            parser.error("give an export directory, or --certificate FILE --key KEY")
        if args.key is None:
            print(f"note: trusting {bundle.KEY} from the export; compare it with the key the "
                  "operator publishes, or pass --key", file=sys.stderr)
        key = load_key(args.key or str(args.directory / bundle.KEY))
        if args.max_pending_days is not None and args.max_pending_days < 0:
            parser.error("--max-pending-days must be 0 or more")
        if args.workers is not None and args.workers < 1:
            parser.error("--workers must be 1 or more")
        with _progress_bar(args.directory) as progress:
            summary = verify_export(args.directory, key, args.origin, progress,
                                    workers=args.workers)
        check_origin(summary, strict=args.strict_origin, max_pending_days=args.max_pending_days)
    except Invalid as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
